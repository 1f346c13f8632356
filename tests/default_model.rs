//! Without `--model` the commands use the model embedded in the binary; `run --model none`
//! runs the baseline alone; a model file's own alert thresholds replace the study's.

mod common;

use std::process::{Command, Output};

use burstwatch::model::{default::default_model, weights, AlertThresholds, Model};
use common::events::{of_type, parse_all, parse_line};
use common::*;

/// Runs the binary with info logs, so that the one-line choices show on stderr.
fn burstwatch_info(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(args)
        .env("BURSTWATCH_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

fn short_video(dir: &std::path::Path) -> std::path::PathBuf {
    let video = dir.join("tank.mkv");
    record_sim(&video, 5, 2);
    video
}

#[test]
fn run_predict_and_inspect_default_to_the_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let video = short_video(dir.path());
    let name = default_model().name;

    let (out, stderr) = burstwatch_info(&[
        "run",
        "--source",
        s(&video),
        "--fast",
        "--emit",
        "all",
        "--device",
        "cpu",
    ]);
    let events = parse_all(&assert_ok(&out));
    assert!(stderr.contains(&format!("model={name}")), "{stderr}");
    // The default model carries its own thresholds (chosen on its validation video), which
    // replace the study's; a model without them gets the study's.
    let expected = match default_model().thresholds {
        Some(t) => format!(
            "alert threshold {} on the fused score (the model file's)",
            t.fused
        ),
        None => "alert threshold 0.533 on the fused score (the study's)".to_owned(),
    };
    assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    let scored = of_type(&events, "prediction")
        .iter()
        .filter(|p| p["p_model"].is_number())
        .count();
    assert_eq!(scored, 150 - 119, "every frame from 119 has a model score");

    let p = dir.path().join("p.npy");
    assert_ok(&burstwatch(&[
        "predict",
        "--source",
        s(&video),
        "--device",
        "cpu",
        "--out",
        s(&p),
    ]));
    let p = burstwatch::io::npy::read(&p).unwrap().to_f64();
    assert_eq!(p.len(), 150);
    assert!(p[119..].iter().all(|v| (0.0..=1.0).contains(v)));

    let v: serde_json::Value = serde_json::from_str(&assert_ok(&burstwatch(&["inspect"]))).unwrap();
    assert_eq!(v["name"], name.as_str());
}

#[test]
fn run_model_none_scores_with_the_baseline_alone_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let video = short_video(dir.path());
    let (out, stderr) = burstwatch_info(&[
        "run",
        "--source",
        s(&video),
        "--fast",
        "--emit",
        "all",
        "--model",
        "none",
    ]);
    let events = parse_all(&assert_ok(&out));
    assert_eq!(
        stderr
            .matches("scoring with the statistical baseline alone")
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("alert threshold 0.604 on the baseline score (the study's)"));
    assert!(of_type(&events, "prediction")
        .iter()
        .all(|p| p["p_model"].is_null()));
}

#[test]
fn run_uses_the_thresholds_a_model_file_carries_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let video = short_video(dir.path());
    let mut m = Model::random_study("upbeat-snowflake-91", 7).unwrap();
    m.thresholds = Some(AlertThresholds {
        model: 0.25,
        fused: 0.45,
    });
    let file = dir.path().join("trained.safetensors");
    weights::save(&m, &file).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--source", s(&video), "--fast", "--device", "cpu"];
        args.extend(["--model", s(&file)]);
        args.extend_from_slice(extra);
        let (out, stderr) = burstwatch_info(&args);
        let stdout = assert_ok(&out);
        let start = parse_line(stdout.lines().next().expect("a start line"));
        (stderr, start["cameras"][0].clone())
    };
    let cases: [(&[&str], &str, f64, &str); 4] = [
        (
            &[],
            "alert threshold 0.45 on the fused score (the model file's)",
            0.45,
            "model",
        ),
        (
            &["--score", "model"],
            "alert threshold 0.25 on the model score (the model file's)",
            0.25,
            "model",
        ),
        (
            &["--score", "baseline"],
            "alert threshold 0.604 on the baseline score (the study's)",
            0.604,
            "study",
        ),
        (
            &["--threshold", "0.7"],
            "alert threshold 0.7 on the fused score (set for the camera)",
            0.7,
            "config",
        ),
    ];
    for (extra, says, threshold, from) in cases {
        let (stderr, camera) = run(extra);
        assert_eq!(stderr.matches("alert threshold").count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        // The start line says the same.
        assert_eq!(camera["threshold"], threshold, "{extra:?}: {camera}");
        assert_eq!(camera["threshold_from"], from, "{extra:?}: {camera}");
    }
}
