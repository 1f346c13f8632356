//! `burstwatch run` as a long-running child: its stdout lines as they arrive (with their
//! arrival time) and its stderr kept, so that a test can wait for what it says and a
//! failure can show what it logged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::events::parse_line;
use super::rtsp::KillOnDrop;

pub struct Watch {
    pub child: KillOnDrop,
    rx: mpsc::Receiver<(Instant, String)>,
    log: Arc<Mutex<String>>,
    /// Every stdout line read so far.
    pub lines: Vec<String>,
}

impl Watch {
    /// `burstwatch run --model none ARGS`, logging at debug, with `env` set.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Watch {
        let mut all = vec!["--model", "none"];
        all.extend_from_slice(args);
        Watch::run(&all, env)
    }

    /// `burstwatch run ARGS`, logging at debug, with `env` set.
    pub fn run(args: &[&str], env: &[(&str, &str)]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burstwatch"))
            .arg("run")
            .args(args)
            .env("BURSTWATCH_LOG", "info,burstwatch=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
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
        Watch {
            child: KillOnDrop(child),
            rx,
            log,
            lines: Vec::new(),
        }
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The status lines read so far, for failure messages.
    pub fn statuses(&self) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| l.contains("\"type\":\"status\""))
            .collect()
    }

    /// Waits for a status line with `state`; returns when it arrived, and the line. A
    /// timeout fails with burstwatch's stderr, which says what its source was doing.
    pub fn wait_status(&mut self, state: &str, limit: Duration) -> (Instant, Value) {
        self.wait_for(&format!("a {state:?} status"), limit, |v| {
            v["type"] == "status" && v["state"] == state
        })
    }

    /// Waits for a line `wanted` says yes to; returns when it arrived, and the line.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> (Instant, Value) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((at, line)) = self.rx.recv_timeout(left) else {
                panic!(
                    "no {what} within {limit:?}\nstdout status lines: {:?}\nstderr:\n{}",
                    self.statuses(),
                    self.stderr()
                )
            };
            let v = parse_line(&line);
            self.lines.push(line);
            if wanted(&v) {
                return (at, v);
            }
        }
    }

    /// Reads lines for `d`.
    pub fn read_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok((_, line)) = self
            .rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            parse_line(&line);
            self.lines.push(line);
        }
    }

    /// The lines from `from` on, parsed.
    pub fn events_since(&self, from: usize) -> Vec<Value> {
        self.lines[from..].iter().map(|l| parse_line(l)).collect()
    }

    /// Stops it with SIGINT; returns how long it took to exit, and whether it succeeded.
    pub fn interrupt(&mut self) -> (Duration, bool) {
        let asked = Instant::now();
        Command::new("kill")
            .args(["-INT", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.0.wait().unwrap();
        let took = asked.elapsed();
        self.read_for(Duration::from_millis(500));
        (took, status.success())
    }
}
