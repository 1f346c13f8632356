//! `eval --truth`: the evaluation by events of a simulated recording, recomputed by an
//! independent script (tests/events_check.py, Python's standard library) from the model's
//! own scores (`predict`) and the truth file; and a truth that does not belong to the
//! video, or a window that is not one, is one line at start.

mod common;

use common::*;

#[test]
fn eval_from_the_simulator_is_eval_of_its_recording() {
    // The processed look is recorded losslessly: rendering the tank straight into the
    // model (--sim) must give the very figures the recording and its truth file give.
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("tank.mkv");
    record_sim(&video, 30, 3);
    let truth = dir.path().join("tank.truth.json");
    let from_file = assert_json_object(&burstwatch(&[
        "eval",
        "--video",
        s(&video),
        "--truth",
        s(&truth),
        "--device",
        "cpu",
        "--json",
    ]));
    let from_sim = assert_json_object(&burstwatch(&[
        "eval",
        "--sim",
        "3",
        "--seconds",
        "30",
        "--device",
        "cpu",
        "--json",
    ]));
    assert_eq!(from_sim, from_file);
    assert!(from_sim["baseline"]["events"]["chases"].as_u64().unwrap() >= 3);
    // Its own truth: a truth file besides is refused, as a conflicting option.
    let out = burstwatch(&["eval", "--sim", "3", "--truth", s(&truth)]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_events_of_a_recording_are_what_an_independent_script_recomputes() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("tank.mkv");
    record_sim(&video, 60, 5);
    let truth = dir.path().join("tank.truth.json");
    for window in ["3", "1.5"] {
        let out = burstwatch(&[
            "eval",
            "--video",
            s(&video),
            "--device",
            "cpu",
            "--truth",
            s(&truth),
            "--warn-window",
            window,
            "--json",
        ]);
        let report = assert_json_object(&out);
        let name = burstwatch::model::default::default_model().name;
        let e = &report[name.as_str()]["events"];
        assert!(e["chases"].as_u64().unwrap() >= 10, "{e}");
        assert!(e["alerts"].as_u64().unwrap() >= 10, "{e}");
        let report_file = dir.path().join("report.json");
        std::fs::write(&report_file, &out.stdout).unwrap();
        let scores = dir.path().join("scores.npy");
        if !scores.exists() {
            assert_ok(&burstwatch(&[
                "predict",
                "--source",
                s(&video),
                "--mode",
                "continuous",
                "--device",
                "cpu",
                "--out",
                s(&scores),
            ]));
        }
        let threshold = e["threshold"].as_f64().unwrap().to_string();
        let check = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/events_check.py"
            ))
            .args([
                s(&scores),
                s(&truth),
                s(&report_file),
                &name,
                &threshold,
                window,
            ])
            .output()
            .expect("python3 runs");
        assert!(
            check.status.success(),
            "window {window}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // The table names the events too, and the figure has its by-events twin.
    let figure = dir.path().join("fig.png");
    let out = burstwatch(&[
        "eval",
        "--video",
        s(&video),
        "--device",
        "cpu",
        "--truth",
        s(&truth),
        "--plot",
        s(&figure),
    ]);
    let text = assert_ok(&out);
    let events_png = std::fs::read(dir.path().join("fig.events.png")).unwrap();
    assert!(events_png.starts_with(b"\x89PNG"), "a PNG");
    assert!(text.contains("by events (warn window 3.0 s"), "{text}");
    assert!(text.contains("FA/h"), "{text}");

    // A truth of another recording, and a window that is not one: one line each.
    let other = dir.path().join("other.mkv");
    record_sim(&other, 10, 6);
    let out = burstwatch(&[
        "eval",
        "--video",
        s(&video),
        "--truth",
        s(&dir.path().join("other.truth.json")),
    ]);
    assert_one_line_error(&out, &["other.truth.json", "expected 1800"]);
    let out = burstwatch(&[
        "eval",
        "--ytilde",
        s(&seed("test/Y_tilde.npy")),
        "--truth",
        s(&truth),
        "--warn-window",
        "0",
    ]);
    assert_one_line_error(&out, &["--warn-window 0", "positive number of seconds"]);
}
