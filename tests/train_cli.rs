//! `burstwatch train` end to end on simulated video: it trains, keeps the best model,
//! resumes an interrupted run, refuses to resume with other settings, fine-tunes the study's
//! SavedModel, and rejects what it cannot train with one line.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn record(dir: &Path, name: &str, seconds: u32, seed: u64) -> String {
    let p = dir.join(name);
    record_sim(&p, seconds, seed);
    s(&p).to_owned()
}

fn state(out: &Path) -> Value {
    let p = format!("{}.train-state.json", out.display());
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn trains_keeps_the_best_model_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let train = record(dir.path(), "train.npy", 30, 4);
    let val = record(dir.path(), "val.npy", 15, 5);
    let out = dir.path().join("small.safetensors");
    let args = |epochs: &'static str, extra: &[&'static str]| {
        let mut a = vec![
            "train",
            "--video",
            &train,
            "--val",
            &val,
            "-o",
            s(&out),
            "--epochs",
            epochs,
            "--filters",
            "4",
            "--segment-seconds",
            "8",
            "--batch",
            "4",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|x| x.to_string()).collect::<Vec<String>>()
    };
    let run = |a: Vec<String>| burstwatch(&a.iter().map(String::as_str).collect::<Vec<_>>());

    let stdout = assert_ok(&run(args("1", &[])));
    assert!(stdout.contains("best epoch 1 of 1"), "{stdout}");
    let model = burstwatch::model::load(&out).unwrap();
    assert_eq!(model.stages[0].lstm.filters, 4);
    assert_eq!(model.name, "small");
    let first = state(&out);
    assert_eq!(first["epoch"], 1);

    // Asked for more epochs, the same command picks up where it stopped.
    assert_ok(&run(args("2", &[])));
    let second = state(&out);
    assert_eq!(second["epoch"], 2);
    assert_eq!(second["history"].as_array().unwrap().len(), 2);
    assert_eq!(
        second["history"][0], first["history"][0],
        "epoch 1 was kept, not run again"
    );
    let loss = |v: &Value| v["val_loss"].as_f64().unwrap();
    let best = second["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(loss)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(second["best_loss"].as_f64().unwrap(), best);

    // Other settings: no silent mix of two runs.
    let err = run(args("3", &["--lr", "0.01"]));
    assert_one_line_error(&err, &["train-state.json", "--fresh"]);

    // --fresh starts over.
    assert_ok(&run(args("1", &["--lr", "0.01", "--fresh"])));
    assert_eq!(state(&out)["history"].as_array().unwrap().len(), 1);
}

#[test]
fn fine_tuning_the_study_model_lowers_its_validation_loss() {
    let dir = tempfile::tempdir().unwrap();
    let train = record(dir.path(), "train.npy", 40, 6);
    let val = record(dir.path(), "val.npy", 20, 7);
    let out = dir.path().join("tuned.safetensors");
    let init = shared().join("models/upbeat-snowflake-91");
    let stdout = assert_ok(&burstwatch(&[
        "train",
        "--video",
        &train,
        "--val",
        &val,
        "--init",
        s(&init),
        "-o",
        s(&out),
        "--epochs",
        "2",
        "--segment-seconds",
        "10",
        "--batch",
        "4",
    ]));
    // "... validation loss L (initial L0), ..."
    let grab = |key: &str| -> f64 {
        let at = stdout
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {stdout}"))
            + key.len();
        stdout[at..]
            .split(|c: char| c != '.' && !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (tuned, initial) = (grab("validation loss "), grab("(initial "));
    eprintln!("{stdout}");
    assert!(
        tuned < initial,
        "fine-tuning: validation loss {tuned} vs {initial} before"
    );
}

#[test]
fn what_cannot_be_trained_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let missing = dir.path().join("missing.mkv");
    let err = burstwatch(&["train", "--video", s(&missing), "-o", s(&out)]);
    assert_one_line_error(&err, &["missing.mkv"]);

    let video = record(dir.path(), "v.npy", 20, 8);
    let visionary = shared().join("models/visionary-serenity");
    let err = burstwatch(&[
        "train",
        "--video",
        &video,
        "--init",
        s(&visionary),
        "-o",
        s(&out),
    ]);
    assert_one_line_error(&err, &["2 ConvLSTM stages", "upbeat-snowflake-91"]);

    let err = burstwatch(&["train", "--video", &video, "-o", s(&out)]);
    assert_one_line_error(&err, &["too few", "--val"]);
}
