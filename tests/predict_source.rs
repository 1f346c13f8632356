//! `predict --source`: any video through the live pipeline gives the same scores as its
//! frames given directly.

mod common;

use burstwatch::io::npy;
use common::*;

#[test]
fn predict_from_a_video_equals_predict_from_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (video, frames) = (dir.path().join("tank.mkv"), dir.path().join("tank.npy"));
    for out in [&video, &frames] {
        record_sim(out, 8, 3);
    }
    let model = shared().join("models/upbeat-snowflake-91");
    let run = |input: &[&str], out: &std::path::Path| {
        let mut args = vec!["predict", "--model", s(&model), "--mode", "continuous"];
        args.extend_from_slice(input);
        args.extend_from_slice(&["--out", s(out)]);
        assert_ok(&burstwatch(&args));
        npy::read(out).unwrap().to_f32()
    };
    let from_video = run(&["--source", s(&video)], &dir.path().join("a.npy"));
    let from_frames = run(&["--frames", s(&frames)], &dir.path().join("b.npy"));
    assert_eq!(from_video.len(), 240);
    assert_eq!(from_frames.len(), 240);
    for (t, (a, b)) in from_video.iter().zip(&from_frames).enumerate() {
        if t < 119 {
            assert!(
                a.is_nan() && b.is_nan(),
                "frame {t}: NaN before the first window"
            );
        } else {
            // The recording is lossless, so the decoded frames are the rendered ones.
            assert!((a - b).abs() <= 1e-6, "frame {t}: {a} vs {b}");
        }
    }
}

#[test]
fn run_with_a_model_scores_frames_as_predict_does() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("tank.mkv");
    record_sim(&video, 6, 4);
    let model = shared().join("models/upbeat-snowflake-91");
    let p_file = dir.path().join("p.npy");
    assert_ok(&burstwatch(&[
        "predict",
        "--model",
        s(&model),
        "--mode",
        "continuous",
        "--source",
        s(&video),
        "--out",
        s(&p_file),
    ]));
    let want = npy::read(&p_file).unwrap().to_f32();
    // As fast as possible (frames queue up: every step is whole) and at real speed (the
    // next step is prepared while waiting for each frame).
    for fast in [true, false] {
        let mut args = vec!["run", "--source", s(&video), "--model", s(&model)];
        args.extend(["--emit", "all"]);
        if fast {
            args.push("--fast");
        }
        check_run_scores(&assert_ok(&burstwatch(&args)), &want);
    }
}

/// `run`'s prediction lines carry predict's model scores and the fused score.
fn check_run_scores(out: &str, want: &[f32]) {
    let events = common::events::parse_all(out);
    let preds = common::events::of_type(&events, "prediction");
    assert_eq!(preds.len(), 180);
    for p in preds {
        let t = p["frame"].as_u64().unwrap() as usize;
        match p["p_model"].as_f64() {
            None => assert!(t < 119 && want[t].is_nan(), "frame {t} has no model score"),
            Some(v) => assert!(
                (v - want[t] as f64).abs() <= 1e-6,
                "frame {t}: {v} vs {}",
                want[t]
            ),
        }
        if let (Some(m), Some(b)) = (p["p_model"].as_f64(), p["p_baseline"].as_f64()) {
            let fused = p["score"].as_f64().unwrap();
            assert!(
                (fused - (m + b) / 2.0).abs() < 1e-12,
                "fused score at frame {t}"
            );
        }
    }
}
