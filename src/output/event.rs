//! The events every output carries: one JSON object per line on stdout, the same bytes
//! for every other sink. Each has a `"type"`, `time` (RFC 3339 UTC, set when the event is
//! emitted) and `source` (the camera's name; `null` only on the run's `start` line).
//! `burstwatch schema` prints the JSON Schema of all of them ([`super::schema`]), kept in
//! the repository as `docs/events.schema.json`.

use std::time::{Instant, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;

use crate::alert::ScoreKind;
use crate::capture::RtspTransport;
use crate::engine::Mode;

/// One line of output.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Start(StartEvent),
    Alert(AlertEvent),
    Outcome(OutcomeEvent),
    Prediction(PredictionEvent),
    Gap(GapEvent),
    Status(StatusEvent),
    Stats(StatsEvent),
}

impl Event {
    /// The camera the event is about (`None` for the run's start line).
    pub fn source(&self) -> Option<&str> {
        match self {
            Event::Start(_) => None,
            Event::Alert(e) => Some(&e.source),
            Event::Outcome(e) => Some(&e.source),
            Event::Prediction(e) => Some(&e.source),
            Event::Gap(e) => Some(&e.source),
            Event::Status(e) => Some(&e.source),
            Event::Stats(e) => Some(&e.source),
        }
    }

    /// The `"type"` of the line.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Start(_) => "start",
            Event::Alert(_) => "alert",
            Event::Outcome(_) => "outcome",
            Event::Prediction(_) => "prediction",
            Event::Gap(_) => "gap",
            Event::Status(_) => "status",
            Event::Stats(_) => "stats",
        }
    }

    /// Whether the event may be dropped when an output falls behind: only a frame's
    /// `prediction` may; alerts, outcomes, status, gaps and stats never are.
    pub fn droppable(&self) -> bool {
        matches!(self, Event::Prediction(_))
    }

    /// The event as emitted at `now` (`now_mono` on the monotonic clock): with its `time`,
    /// and, for a frame's events, the latency from the frame's arrival.
    pub fn stamped(self, now: SystemTime, now_mono: Instant) -> Event {
        let mut e = self;
        let time = rfc3339(now);
        let ms = |a: Instant| now_mono.saturating_duration_since(a).as_secs_f64() * 1e3;
        match &mut e {
            Event::Start(s) => s.time = time,
            Event::Alert(a) => {
                a.time = time;
                a.latency_ms = ms(a.arrival);
            }
            Event::Outcome(o) => o.time = time,
            Event::Prediction(p) => {
                p.time = time;
                p.latency_ms = ms(p.arrival);
            }
            Event::Gap(g) => g.time = time,
            Event::Status(s) => s.time = time,
            Event::Stats(s) => s.time = time,
        }
        e
    }
}

/// The first line of a run: what runs, camera by camera.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// Always `null`: the line is about the whole run, not one camera.
    #[schemars(with = "()")]
    pub source: Option<String>,
    /// burstwatch's version.
    pub version: String,
    pub cameras: Vec<CameraStart>,
}

/// One camera as a run starts it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CameraStart {
    /// The `source` of this camera's events.
    pub name: String,
    /// What it watches, as its config's `source` without credentials (a URL, a file,
    /// `gst:...`, `sim:SEED`).
    pub source: String,
    /// The ConvLSTM it runs; `null` when it scores with the baseline alone.
    pub model: Option<ModelInfo>,
    /// How the model runs per frame; `null` without a model.
    pub mode: Option<Mode>,
    /// The device the model actually runs on (`cpu`, `cuda:0`); `null` without a model.
    pub device: Option<String>,
    /// The engine, as its benchmark names it (`cpu-avx512-winograd3x3-x2`, `cpu-avx2-fma-x2`, ...); `null` without a model.
    pub engine: Option<String>,
    /// The score that drives alerts.
    pub score: ScoreKind,
    /// The alert threshold on that score.
    pub threshold: f64,
    /// Where the threshold came from: `config` (set for this camera), `model` (the model
    /// file's own calibration) or `study` (the study's Youden-optimal threshold).
    pub threshold_from: ThresholdFrom,
    /// `all`: a `prediction` line for every frame; `alerts`: alerts, outcomes, status,
    /// gaps and stats only.
    pub emit: Emit,
    /// An RTSP camera's transport setting (`auto`, `tcp`, `udp`); `null` for other
    /// sources. The `connected` status says which one a stream uses.
    pub rtsp_transport: Option<RtspTransport>,
}

/// A model as the start line names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// The model's own name (the study's run name, or what `train` called it).
    pub name: String,
    /// SHA-256 of its weights, in hex (every tensor's name and little-endian f32 values, in
    /// a fixed order): equal for the same weights whatever file they came from.
    pub sha256: String,
}

/// Where a camera's alert threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdFrom {
    /// Set for the camera (config file or command line).
    Config,
    /// The model file's own calibrated thresholds.
    Model,
    /// The study's Youden-optimal threshold of the score.
    Study,
}

/// Which events a camera writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// alert, outcome, gap, status and stats lines.
    #[default]
    Alerts,
    /// Also a `prediction` line for every frame.
    All,
}

impl std::str::FromStr for Emit {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Emit> {
        match s {
            "alerts" => Ok(Emit::Alerts),
            "all" => Ok(Emit::All),
            _ => Err(crate::Error::Input(format!(
                "emit {s:?}; expected alerts or all"
            ))),
        }
    }
}

impl std::fmt::Display for Emit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Emit::Alerts => "alerts",
            Emit::All => "all",
        })
    }
}

/// A burst is predicted: the score rose over the threshold.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The camera's name.
    pub source: String,
    /// `<camera>-<frame>`: the alert's identity, which its outcome repeats as `alert_id`.
    pub id: String,
    pub frame: u64,
    /// Seconds of stream time (the frame's timestamp).
    pub stream_time: f64,
    /// Wall-clock time the frame arrived, RFC 3339 UTC.
    #[schemars(extend("format" = "date-time"))]
    pub wall_time: String,
    pub score: f64,
    pub p_model: Option<f64>,
    pub p_baseline: Option<f64>,
    pub threshold: f64,
    /// From the frame's arrival at the appsink to the line being handed to the outputs.
    pub latency_ms: f64,
    /// With clips: the snapshot PNG of the alert (the picture at the alert above the last
    /// 10 s of scores), written before this line; `null` without clips, or when it could
    /// not be written in time (the disk was full or slow).
    pub snapshot: Option<String>,
    #[serde(skip)]
    pub arrival: Instant,
}

/// The ground truth of an earlier alert, known 46 frames later by the study's labelling
/// rule.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The camera's name.
    pub source: String,
    /// The `id` of the alert this settles.
    pub alert_id: String,
    /// The alert's frame.
    pub frame: u64,
    /// True when a burst followed (label 1).
    pub burst: bool,
    /// The alert's score.
    pub score: f64,
    /// With clips: the alert's MP4, from `pre_s` before the alert to `post_s` after this
    /// line. It is renamed into place once complete, so it appears there about `post_s`
    /// after this line, whole; `null` without clips, or when the alert got no clip (the
    /// writer had fallen behind; counted in `stats` as `clips_dropped`).
    pub clip: Option<String>,
}

/// One frame's scores (`emit = "all"`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictionEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The camera's name.
    pub source: String,
    pub frame: u64,
    pub stream_time: f64,
    /// `null` while the windows warm up (the first 119 frames after a start or a gap).
    pub score: Option<f64>,
    pub p_model: Option<f64>,
    pub p_baseline: Option<f64>,
    /// The speed proxy of the previous frame and this one; `null` on a segment's first frame.
    pub y_tilde: Option<f64>,
    pub latency_ms: f64,
    #[serde(skip)]
    pub arrival: Instant,
}

/// Why frames are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The ring overflowed (inference fell behind) or the stream skipped frames.
    Dropped,
    /// The source reconnected; how many frames were missed is not known.
    Reconnect,
    /// The source's picture changed size (a camera reconfigured): scoring goes on at the
    /// new size, scaled to 320x240 as before, from fresh windows. No frame is missing.
    Resized,
}

/// Frames are missing: windows restart and scores warm up again for 119 frames.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GapEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The camera's name.
    pub source: String,
    /// First frame after the gap.
    pub frame: u64,
    /// Frames known to be missing (0 when unknown, as after a reconnect).
    pub missing: u64,
    pub reason: GapReason,
}

/// A camera's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Frames of a new connection (or the start) flow.
    Connected,
    /// The stream dropped; a new connection is being tried.
    Reconnecting,
    /// The source ended (end of file, or the run stopped).
    Ended,
    /// The source failed for good; `message` says why.
    Failed,
    /// The model's engine failed; the camera goes on with the baseline alone.
    ModelFailed,
}

/// A camera's connection or model changed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The camera's name.
    pub source: String,
    pub state: CameraState,
    pub message: Option<String>,
    /// `connected` of an RTSP camera: the lower transport its stream comes over.
    pub transport: Option<RtspTransport>,
}

/// Periodic and final figures of one camera.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsEvent {
    /// When the event was emitted (RFC 3339 UTC): the same on every output.
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// The camera's name.
    pub source: String,
    /// Frames processed so far.
    pub frames: u64,
    /// Frames processed per second of wall time since the start.
    pub fps: f64,
    /// Frames the ring dropped because inference fell behind.
    pub dropped: u64,
    /// This camera's lines that outputs dropped because they fell behind (prediction lines
    /// first; counted over every output).
    pub dropped_lines: u64,
    pub gaps: u64,
    pub alerts: u64,
    /// Alerts whose outcome is known (46 frames after them).
    pub alerts_settled: u64,
    /// Of those, the alerts a burst followed.
    pub alerts_followed: u64,
    /// alerts_followed / alerts_settled: the live precision of this camera's alerts;
    /// `null` until an outcome is known.
    pub precision: Option<f64>,
    /// With clips: the camera's clips complete on disk; `null` without clips.
    pub clips_written: Option<u64>,
    /// With clips: alerts whose clip was lost (the writer fell behind, the disk was full,
    /// the run ended first); `null` without clips.
    pub clips_dropped: Option<u64>,
    /// Arrival at the appsink to the score being ready, since the previous stats line.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// ROC-AUC of the live scores against the labels known so far (last 5 minutes);
    /// `null` until both classes were seen.
    pub auc: Option<f64>,
    pub auc_frames: usize,
    /// True on the last line of a camera.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// RFC 3339 UTC time of a `SystemTime` (microsecond precision), without a date crate.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn events_carry_their_type_time_and_source() {
        let e = Event::Gap(GapEvent {
            time: String::new(),
            source: "tank-a".into(),
            frame: 5,
            missing: 2,
            reason: GapReason::Dropped,
        });
        let stamped = e.stamped(std::time::UNIX_EPOCH, Instant::now());
        let v: serde_json::Value = serde_json::to_value(&stamped).unwrap();
        assert_eq!(v["type"], "gap");
        assert_eq!(v["missing"], 2);
        assert_eq!(v["reason"], "dropped");
        assert_eq!(v["source"], "tank-a");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000000Z");
    }
}
