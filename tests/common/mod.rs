//! Helpers shared by the integration tests: where the study's data lives, running the real
//! binary, and strict checks on its error output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared` beside the checkout: the study's data (CI has it at the same place).
pub fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(
        p.join("DESIGN.md").exists(),
        "the study's data is expected at {}",
        p.display()
    );
    p
}

/// A path under `../shared/data/seed`.
pub fn seed(rel: &str) -> PathBuf {
    shared().join("data/seed").join(rel)
}

/// Runs the burstwatch binary with `args`.
pub fn burstwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(args)
        .env("BURSTWATCH_LOG", "warn")
        .output()
        .expect("the burstwatch binary runs")
}

/// Asserts a clean failure at start: exit code 2, exactly one line on stderr, no panic,
/// and the line mentions every string in `mentions` (the file and what was expected).
pub fn assert_one_line_error(out: &Output, mentions: &[&str]) -> String {
    assert_one_line_failure(out, 2, mentions)
}

/// Asserts a clean failure with exit code `code` (2: found at start, 1: after the run
/// started): exactly one line on stderr, no panic, mentioning every string in `mentions`.
pub fn assert_one_line_failure(out: &Output, code: i32, mentions: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "exit code, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    for m in mentions {
        assert!(stderr.contains(m), "stderr should mention {m:?}: {stderr}");
    }
    stderr
}

/// Asserts success and returns stdout.
pub fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "burstwatch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Asserts success and parses stdout as one JSON object (a `--json` report).
pub fn assert_json_object(out: &Output) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(&assert_ok(out)).expect("--json prints JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("expected one object, got {other}"),
    }
}

/// `eval --video` with the embedded default model on the CPU: its JSON report.
pub fn eval_video_json(video: &Path) -> serde_json::Map<String, serde_json::Value> {
    assert_json_object(&burstwatch(&[
        "eval",
        "--video",
        s(video),
        "--device",
        "cpu",
        "--json",
    ]))
}

/// Records `seconds` of the simulated tank with `seed` to `path` (`burstwatch sim`; the
/// extension picks the format: .mkv/.mp4 video or .npy frames).
pub fn record_sim(path: &Path, seconds: u32, seed: u64) {
    record_sim_look(path, seconds, seed, "processed");
}

/// [`record_sim`] in a look of its own (`processed` or `raw`).
pub fn record_sim_look(path: &Path, seconds: u32, seed: u64, look: &str) {
    assert_ok(&burstwatch(&[
        "sim",
        "--out",
        s(path),
        "--seconds",
        &seconds.to_string(),
        "--seed",
        &seed.to_string(),
        "--look",
        look,
    ]));
}

/// Path as &str for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

#[allow(dead_code)]
pub mod broker;
#[allow(dead_code)]
pub mod browser;
#[allow(dead_code)]
pub mod events;
#[allow(dead_code)]
pub mod network;
#[allow(dead_code)]
pub mod rtsp;
#[allow(dead_code)]
pub mod video;
#[allow(dead_code)]
pub mod watch;
#[allow(dead_code)]
pub mod web;
