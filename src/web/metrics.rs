//! `/metrics`: the run in the Prometheus text exposition format (version 0.0.4), one
//! series per camera (label `camera`), plus the process's own figures and
//! `burstwatch_build_info`. Every camera's figures are read in one piece
//! ([`CameraBoard::read`]): within a scrape, `burstwatch_score_latency_seconds_count`
//! equals `burstwatch_frames_total`.

use std::fmt::Write;

use crate::live::board::{Histogram, Live};
use crate::live::{Board, CameraBoard};
use crate::output::event::CameraState;

/// A label value, escaped as the format asks (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: its HELP and TYPE, then a sample per camera.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (k, (l, v)) in labels.iter().enumerate() {
                if k > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{l}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        for (le, n) in h.cumulative() {
            let le = if le.is_infinite() {
                "+Inf".to_owned()
            } else {
                number(le)
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, n as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

/// A sample value as Prometheus reads it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A per-camera family: `value` gives the camera's sample, or none (unknown yet).
fn per_camera(
    f: &mut Family,
    cams: &[(std::sync::Arc<CameraBoard>, Live)],
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&CameraBoard, &Live) -> Option<f64>,
) {
    f.head(name, kind, help);
    for (c, l) in cams {
        if let Some(v) = value(c, l) {
            f.sample(name, &[("camera", &c.name)], v);
        }
    }
}

/// What the web server itself has done, for its own lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebFigures {
    /// Requests answered (any path, any status).
    pub requests: u64,
    /// `/events` streams open now.
    pub event_streams: usize,
}

/// A per-camera counter: its name, help, and how to read it.
type Counter = (&'static str, &'static str, fn(&Live) -> u64);

/// A per-camera histogram: its name, help, and the camera's (`None`: it has none).
type PerCamera = (
    &'static str,
    &'static str,
    for<'a> fn(&CameraBoard, &'a Live) -> Option<&'a Histogram>,
);

/// The whole exposition.
pub fn render(board: &Board, web: WebFigures) -> String {
    let cams: Vec<_> = board
        .cameras()
        .into_iter()
        .map(|c| {
            let l = c.read();
            (c, l)
        })
        .collect();
    let mut out = String::with_capacity(4096 + cams.len() * 4096);
    let f = &mut Family { out: &mut out };
    let counters: [Counter; 5] = [
        ("burstwatch_frames_total", "Frames scored.", |l| l.frames),
        (
            "burstwatch_dropped_frames_total",
            "Frames the camera's ring dropped (inference behind the source).",
            |l| l.ring_dropped,
        ),
        (
            "burstwatch_gaps_total",
            "Holes in the stream (dropped frames, reconnects); every window restarts.",
            |l| l.gaps,
        ),
        (
            "burstwatch_reconnects_total",
            "Times the source dropped and was reconnected.",
            |l| l.reconnects,
        ),
        ("burstwatch_alerts_total", "Burst alerts.", |l| l.alerts),
    ];
    for (name, help, value) in &counters {
        per_camera(
            f,
            &cams,
            name,
            "counter",
            help,
            |_, l| Some(value(l) as f64),
        );
    }
    f.head(
        "burstwatch_outcomes_total",
        "counter",
        "Alerts settled by their label, 46 frames later: burst=\"true\" when a burst followed.",
    );
    for (c, l) in &cams {
        for (burst, n) in [("true", l.outcomes_burst), ("false", l.outcomes_none)] {
            f.sample(
                "burstwatch_outcomes_total",
                &[("camera", &c.name), ("burst", burst)],
                n as f64,
            );
        }
    }
    per_camera(
        f,
        &cams,
        "burstwatch_fps",
        "gauge",
        "Frames scored per second over the last 5 s.",
        |_, l| l.fps(),
    );
    per_camera(
        f,
        &cams,
        "burstwatch_precision",
        "gauge",
        "Fraction of settled alerts a burst followed (absent before the first outcome).",
        |_, l| l.precision(),
    );
    per_camera(
        f,
        &cams,
        "burstwatch_auc",
        "gauge",
        "Rolling ROC-AUC of the score over the last 5 minutes of labels, as of the last stats line.",
        |_, l| l.auc,
    );
    per_camera(
        f,
        &cams,
        "burstwatch_threshold",
        "gauge",
        "The camera's alert threshold.",
        |c, _| Some(c.start.threshold),
    );
    per_camera(
        f,
        &cams,
        "burstwatch_last_frame_age_seconds",
        "gauge",
        "Seconds since the camera's last frame (since its start before the first).",
        |_, l| Some(l.age().as_secs_f64()),
    );
    per_camera(
        f,
        &cams,
        "burstwatch_up",
        "gauge",
        "1 when the camera delivered a frame in the last 5 s (as /healthz), else 0.",
        |_, l| Some(f64::from(!l.stale())),
    );
    f.head(
        "burstwatch_camera_state",
        "gauge",
        "1 for the camera's current state (connecting, connected, reconnecting, ended, failed).",
    );
    for (c, l) in &cams {
        for state in ["connecting", "connected", "reconnecting", "ended", "failed"] {
            let now = match l.state {
                None => "connecting",
                Some(CameraState::Connected | CameraState::ModelFailed) => "connected",
                Some(CameraState::Reconnecting) => "reconnecting",
                Some(CameraState::Ended) => "ended",
                Some(CameraState::Failed) => "failed",
            };
            f.sample(
                "burstwatch_camera_state",
                &[("camera", &c.name), ("state", state)],
                f64::from(now == state),
            );
        }
    }
    let histograms: [PerCamera; 2] = [
        (
            "burstwatch_score_latency_seconds",
            "From a frame's arrival at the appsink to its score; one observation per frame scored.",
            |_, l| Some(&l.score_latency),
        ),
        (
            "burstwatch_step_seconds",
            "The model's step per frame (the engine's share of the score latency).",
            |c, l| c.start.model.is_some().then_some(&l.step),
        ),
    ];
    for (name, help, pick) in histograms {
        f.head(name, "histogram", help);
        for (c, l) in &cams {
            if let Some(h) = pick(c, l) {
                f.histogram(name, &[("camera", &c.name)], h);
            }
        }
    }
    let name = "burstwatch_line_latency_seconds";
    f.head(
        name,
        "histogram",
        "From a frame's arrival to its line (alert, prediction) written by an output.",
    );
    for (c, l) in &cams {
        for (output, h) in &l.written_latency {
            f.histogram(name, &[("camera", &c.name), ("output", output)], h);
        }
    }
    f.head(
        "burstwatch_build_info",
        "gauge",
        "1, labelled with burstwatch's version and each model in use (none: the baseline alone).",
    );
    let mut models: Vec<String> = cams
        .iter()
        .map(|(c, _)| {
            c.start
                .model
                .as_ref()
                .map_or("none".into(), |m| m.name.clone())
        })
        .collect();
    models.sort();
    models.dedup();
    for m in &models {
        f.sample(
            "burstwatch_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("model", m)],
            1.0,
        );
    }
    f.head(
        "burstwatch_web_requests_total",
        "counter",
        "Requests the web server answered (any path and status).",
    );
    f.sample("burstwatch_web_requests_total", &[], web.requests as f64);
    f.head(
        "burstwatch_web_event_streams",
        "gauge",
        "Clients of /events now (pages open).",
    );
    f.sample(
        "burstwatch_web_event_streams",
        &[],
        web.event_streams as f64,
    );
    process(f, board);
    out
}

/// The process's own figures, under the names Prometheus's client libraries use.
fn process(f: &mut Family, board: &Board) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let cpu = crate::engine::bench::process_cpu_seconds();
    let one = |f: &mut Family, name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            f.head(name, kind, help);
            f.sample(name, &[], v);
        }
    };
    one(
        f,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        field("VmRSS:").map(|kb| kb * 1024.0),
    );
    one(
        f,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        field("VmSize:").map(|kb| kb * 1024.0),
    );
    one(
        f,
        "process_threads",
        "gauge",
        "Threads of the process.",
        field("Threads:"),
    );
    one(
        f,
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        Some(fds.saturating_sub(1) as f64),
    );
    one(
        f,
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        cpu,
    );
    let up = board.started.elapsed().as_secs_f64();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    one(
        f,
        "process_start_time_seconds",
        "gauge",
        "When the run started, in seconds since the Unix epoch.",
        Some((now - up).floor()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.25), "0.25");
    }
}
