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
        assert_ok(&burstwatch(&[
            "sim",
            "--out",
            s(out),
            "--seconds",
            "8",
            "--seed",
            "3",
        ]));
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
