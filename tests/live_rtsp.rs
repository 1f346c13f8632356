//! `run` on an RTSP camera: a real gst-rtsp-server on 127.0.0.1 serving a generated file.
//! Every frame arrives; the server is stopped mid-stream and restarted 5 times and
//! burstwatch reconnects within 2 s of each return; credentials never show.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::events::parse_line;
use common::rtsp::{self, free_port, KillOnDrop, Serve};
use common::video::h264_mkv;

/// Not a test: the RTSP server process the tests start (see `common::rtsp`).
#[test]
#[ignore = "helper process for the RTSP tests"]
fn rtsp_server_process() {
    rtsp::serve_from_env();
}

/// burstwatch's stderr so far, kept so that a failure can show what it logged.
type Log = Arc<Mutex<String>>;

/// burstwatch's stdout lines as they arrive, with their arrival time, and its stderr.
fn spawn_burstwatch(args: &[&str]) -> (Child, mpsc::Receiver<(Instant, String)>, Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
        .args(["run", "--model", "none"])
        .args(args)
        .env("BURSTWATCH_LOG", "info,burstwatch=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::default();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let (tx, rx) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx, log)
}

/// Waits for a status line with `state`; returns when it arrived. Collects every line.
/// A timeout fails with burstwatch's stderr, which says what its source was doing.
fn wait_status(
    rx: &mpsc::Receiver<(Instant, String)>,
    log: &Log,
    all: &mut Vec<String>,
    state: &str,
    limit: Duration,
) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, line) = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no {state:?} status within {limit:?}\nstdout status lines: {:?}\nstderr:\n{}",
                all.iter()
                    .filter(|l| l.contains("\"status\""))
                    .collect::<Vec<_>>(),
                log.lock().unwrap()
            )
        });
        let v = parse_line(&line);
        all.push(line);
        if v["type"] == "status" && v["state"] == state {
            return at;
        }
    }
}

#[test]
fn rtsp_every_frame_then_five_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("camera.mkv");
    h264_mkv(&file, 180, 30, 320, 240, "I420");
    let port = free_port();
    let serve = Serve {
        shared: true,
        ..Serve::default()
    };
    let mut server = KillOnDrop(rtsp::start_server(port, &file, &serve));
    let url = format!("rtsp://watcher:secret@127.0.0.1:{port}/tank");
    let (bw, rx, log) = spawn_burstwatch(&["--source", &url, "--emit", "all"]);
    let mut bw = KillOnDrop(bw);
    let mut lines = Vec::new();

    // The whole 6 s file arrives, frame for frame, then the stream ends and burstwatch
    // reconnects (a camera does not end).
    wait_status(&rx, &log, &mut lines, "connected", Duration::from_secs(10));
    let start = lines.len();
    wait_status(
        &rx,
        &log,
        &mut lines,
        "reconnecting",
        Duration::from_secs(30),
    );
    let frames = lines[start..]
        .iter()
        .filter(|l| l.contains("\"type\":\"prediction\""))
        .count();
    assert_eq!(frames, 180, "every frame of the served file");

    // Each round starts connected (the reconnection after the file's end, then the one
    // after the previous restart) and stops the server mid-stream.
    wait_status(&rx, &log, &mut lines, "connected", Duration::from_secs(10));
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(800));
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        wait_status(
            &rx,
            &log,
            &mut lines,
            "reconnecting",
            Duration::from_secs(6),
        );
        std::thread::sleep(Duration::from_millis(1500));
        server = KillOnDrop(rtsp::start_server(port, &file, &serve));
        let back = Instant::now();
        let connected = wait_status(&rx, &log, &mut lines, "connected", Duration::from_secs(10));
        let delay = connected.saturating_duration_since(back);
        assert!(
            delay <= Duration::from_secs(2),
            "round {round}: reconnected {delay:?} after the server returned"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    Command::new("kill")
        .args(["-INT", &bw.0.id().to_string()])
        .status()
        .unwrap();
    let status = bw.0.wait().unwrap();
    // A camera's pipeline comes down at once too (rtspsrc's teardown is bounded); the
    // exit watchdog, at 3 s, must not be what ends the run.
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(1), "SIGINT: took {took:?}");
    drop(server);
    assert!(status.success(), "burstwatch exit {status:?}");
    while let Ok((_, line)) = rx.recv_timeout(Duration::from_secs(1)) {
        parse_line(&line);
        lines.push(line);
    }
    let stderr = log.lock().unwrap().clone();
    let stdout = lines.join("\n");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("secret"), "credentials leaked: {text}");
        assert!(!text.contains("watcher"), "user name leaked: {text}");
    }
    assert!(stdout.contains(&format!("rtsp://127.0.0.1:{port}/tank")));
    let gaps = lines
        .iter()
        .filter(|l| l.contains("\"reason\":\"reconnect\""))
        .count();
    assert!(gaps >= 5, "each reconnect is a gap: {gaps}");
}
