//! A reader that stops reading: two simulated cameras with every frame's prediction, and
//! a subscriber that reads for a few seconds, then nothing for 20 s, then reads on. The
//! cameras never wait for it: no ring overflows, memory stays flat, and once it reads
//! again every alert and outcome of those 20 s is there, in order.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burstwatch::alert::{alerts_in_series, AlertRule};
use common::events::{final_stats, of_camera, parse_line};
use serde_json::Value;

/// Resident memory of a process in kB (`VmRSS` of /proc/PID/status).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn a_reader_that_stops_for_20_s_loses_no_alert_and_stalls_no_camera() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args([
            "run",
            "--source",
            "sim:3",
            "--source",
            "sim:4",
            "--emit",
            "all",
            "--device",
            "cpu",
            "--threshold",
            "0.45",
            "--duration",
            "32",
        ])
        .env("BURSTWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    let (lines_tx, lines_rx) = mpsc::channel::<(bool, String)>();
    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let mut lines = stdout.lines();
        // Read for 4 s, then stop until told to go on.
        let mut paused = false;
        while let Some(Ok(line)) = lines.next() {
            if !paused && started.elapsed() > Duration::from_secs(4) {
                paused = true;
                lines_tx.send((true, line)).unwrap();
                resume_rx.recv().unwrap();
                continue;
            }
            lines_tx.send((false, line)).unwrap();
        }
    });
    // Wait for the pause, then measure memory over the 20 s nobody reads.
    let mut lines = Vec::new();
    loop {
        let (pause, line) = lines_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        lines.push(line);
        if pause {
            break;
        }
    }
    let before = rss_kb(pid);
    std::thread::sleep(Duration::from_secs(20));
    let during = rss_kb(pid);
    resume_tx.send(()).unwrap();
    reader.join().unwrap();
    while let Ok((_, line)) = lines_rx.try_recv() {
        lines.push(line);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let grew_mb = (during as f64 - before as f64) / 1024.0;
    assert!(
        grew_mb < 50.0,
        "resident memory grew by {grew_mb:.1} MB while nobody read"
    );
    eprintln!("resident memory {before} kB -> {during} kB while nobody read");

    let events: Vec<Value> = lines.iter().map(|l| parse_line(l)).collect();
    for camera in ["sim:3", "sim:4"] {
        let stats = final_stats(&events, camera);
        assert_eq!(
            stats["dropped"], 0,
            "{camera}: the ring never overflowed: {stats}"
        );
        assert_eq!(stats["gaps"], 0, "{camera}: {stats}");
        assert_eq!(
            stats["dropped_lines"], 0,
            "{camera}: every prediction kept: {stats}"
        );
        let mine = of_camera(&events, camera);
        let predictions: Vec<&&Value> = mine.iter().filter(|e| e["type"] == "prediction").collect();
        let frames: Vec<u64> = predictions
            .iter()
            .map(|p| p["frame"].as_u64().unwrap())
            .collect();
        let n = frames.len() as u64;
        assert!(n >= 28 * 30, "{camera}: {n} frames in 32 s");
        assert_eq!(
            frames,
            (0..n).collect::<Vec<_>>(),
            "{camera}: every frame, in order"
        );
        // Every alert the scores call for is there, in order, and so is its outcome.
        let scores: Vec<Option<f64>> = predictions.iter().map(|p| p["score"].as_f64()).collect();
        let want = alerts_in_series(&scores, AlertRule::new(0.45));
        let alerts: Vec<u64> = mine
            .iter()
            .filter(|e| e["type"] == "alert")
            .map(|a| a["frame"].as_u64().unwrap())
            .collect();
        assert_eq!(alerts, want, "{camera}: alerts");
        let stalled: Vec<&u64> = alerts
            .iter()
            .filter(|&&f| (150..750).contains(&f))
            .collect();
        assert!(
            !stalled.is_empty(),
            "{camera}: alerts while nobody read: {alerts:?}"
        );
        let outcomes: Vec<u64> = mine
            .iter()
            .filter(|e| e["type"] == "outcome")
            .map(|o| o["frame"].as_u64().unwrap())
            .collect();
        let settled: Vec<u64> = alerts.iter().copied().filter(|&f| f + 46 < n).collect();
        assert_eq!(
            outcomes, settled,
            "{camera}: an outcome for every alert, in order"
        );
    }
}
