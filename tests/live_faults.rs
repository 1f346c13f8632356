//! `run` under faults: bad sources at start, a file corrupt midway, signals, and a reader
//! that closes stdout.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::events::{of_type, parse_all, parse_line};
use common::video::h264_mkv;
use common::*;

#[test]
fn bad_sources_at_start_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mkv");
    std::fs::write(&text, "this is not a video\n".repeat(100)).unwrap();
    let noise = dir.path().join("noise.mp4");
    std::fs::write(
        &noise,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--source", "/nonexistent/tank.mkv"],
            vec!["/nonexistent/tank.mkv", "cannot read"],
        ),
        (vec!["--source", s(&text)], vec![s(&text)]),
        (vec!["--source", s(&noise)], vec![s(&noise)]),
        (
            vec!["--source", s(dir.path())],
            vec![s(dir.path()), "directory"],
        ),
        // Port 1 on loopback: nothing listens there.
        (
            vec!["--source", "rtsp://127.0.0.1:1/tank"],
            vec!["rtsp://127.0.0.1:1/tank"],
        ),
        (
            vec!["--source", "http://example.org/tank"],
            vec!["unsupported scheme"],
        ),
        (
            vec!["--source", "gst:nosuchelement"],
            vec!["gst:nosuchelement"],
        ),
    ];
    for (args, mentions) in cases {
        let mut all = vec!["run", "--model", "none"];
        all.extend(args);
        let out = burstwatch(&all);
        assert_one_line_error(&out, &mentions);
        // Whatever was written before the error is valid JSON Lines.
        parse_all(&String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn a_file_corrupt_midway_keeps_what_was_written_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.mkv");
    h264_mkv(&file, 300, 30, 320, 240, "I420");
    let mut bytes = std::fs::read(&file).unwrap();
    let half = bytes.len() / 2;
    bytes[half..].fill(0xff);
    std::fs::write(&file, bytes).unwrap();
    let out = burstwatch(&[
        "run",
        "--model",
        "none",
        "--source",
        s(&file),
        "--fast",
        "--emit",
        "all",
    ]);
    // The run had started: exit code 1, not 2.
    let err = assert_one_line_failure(&out, 1, &[s(&file), "unreadable"]);
    let events = parse_all(&String::from_utf8_lossy(&out.stdout));
    let predictions = of_type(&events, "prediction");
    assert!(
        predictions.len() > 100,
        "frames before the damage were scored: {err}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "status");
    assert_eq!(last["state"], "failed");
}

/// Starts a real-speed run and returns the child and a line reader over its stdout.
fn spawn_run(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(["run", "--model", "none"])
        .args(args)
        .env("BURSTWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn sigint_and_sigterm_flush_and_exit_0_within_1_s() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.mkv");
    h264_mkv(&file, 900, 30, 320, 240, "I420");
    for signal in ["INT", "TERM"] {
        let mut child = spawn_run(&["--source", s(&file), "--emit", "all"]);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until frames flow: the first prediction, not the start line (a pipeline
        // that starts slowly under load had scored only 10 frames 0.5 s after it).
        loop {
            let line = lines.next().expect("a prediction").unwrap();
            if parse_line(&line)["type"] == "prediction" {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let status = wait_with_timeout(&mut child, Duration::from_secs(5)).expect("exits");
        let took = t0.elapsed();
        assert!(status.success(), "SIG{signal}: exit {status:?}");
        assert!(took < Duration::from_secs(1), "SIG{signal}: took {took:?}");
        let events: Vec<_> = rest.iter().map(|l| parse_line(l)).collect();
        let last_stats = events
            .iter()
            .rev()
            .find(|e| e["type"] == "stats")
            .expect("a final stats line");
        assert_eq!(last_stats["final"], true);
        assert!(last_stats["frames"].as_u64().unwrap() > 10);
    }
}

#[test]
fn a_reader_that_closes_stdout_ends_the_run_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.mkv");
    h264_mkv(&file, 900, 30, 320, 240, "I420");
    let mut child = spawn_run(&["--source", s(&file), "--emit", "all"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    parse_line(line.trim_end());
    drop(stdout);
    let status = wait_with_timeout(&mut child, Duration::from_secs(3)).expect("ends soon");
    assert!(status.success(), "exit {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("error"), "quiet: {stderr}");
}
