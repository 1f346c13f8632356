//! `eval --video`: a model evaluated on a recorded video in one command gives the same
//! numbers as the step-by-step route (`speed --source`, `predict --source`, `eval --ytilde`).

mod common;

use common::*;

#[test]
fn eval_video_equals_speed_predict_and_eval_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("x.mkv");
    record_sim(&video, 20, 5);

    // One command, the embedded default model, continuous mode.
    let one = eval_video_json(&video);
    let name = burstwatch::model::default::default_model().name;
    let keys: Vec<&str> = one.keys().map(String::as_str).collect();
    assert_eq!(keys, [name.as_str(), "baseline", "fused"]);
    let auc = one[&name]["auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc), "model AUC {auc}");

    // Step by step: y~ of the same decoded frames, the batch baseline and labels from it.
    let y = dir.path().join("y.npy");
    assert_ok(&burstwatch(&[
        "speed",
        "--source",
        s(&video),
        "--out",
        s(&y),
    ]));
    let steps = assert_json_object(&burstwatch(&["eval", "--ytilde", s(&y), "--json"]));
    assert_eq!(one["baseline"], steps["baseline"], "same baseline numbers");
    assert!(one["baseline"]["auc"].as_f64().unwrap() > 0.5);

    // And the model's scores written by `predict --source` give the same model and fused
    // rows.
    let p = dir.path().join("p.npy");
    assert_ok(&burstwatch(&[
        "predict",
        "--source",
        s(&video),
        "--mode",
        "continuous",
        "--device",
        "cpu",
        "--out",
        s(&p),
    ]));
    let pred = format!("{name}={}", s(&p));
    let steps = assert_json_object(&burstwatch(&[
        "eval",
        "--ytilde",
        s(&y),
        "--pred",
        &pred,
        "--json",
    ]));
    assert_eq!(one, steps, "eval --video equals predict + eval --pred");
}

#[test]
fn eval_video_refuses_a_missing_or_short_video_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mkv");
    let out = burstwatch(&["eval", "--video", s(&missing), "--device", "cpu"]);
    assert_one_line_error(&out, &[s(&missing)]);

    // 4 s = 120 frames: one window, but no labels (166 frames needed).
    let short = dir.path().join("short.mkv");
    record_sim(&short, 4, 5);
    let out = burstwatch(&["eval", "--video", s(&short), "--device", "cpu"]);
    assert_one_line_error(&out, &[s(&short), "video of 120 frames", "at least 166"]);
}
