//! Scores become events: the alert state machine (threshold, hysteresis, cooldown), the
//! JSON Lines events every subscriber reads (each with a `"type"`), and the live
//! statistics (latency percentiles, rolling ROC-AUC against the delayed labels).

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;

use crate::eval::Roc;
use crate::model::AlertThresholds;

/// Which score drives alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Mean of the model and the baseline (the study's best AUC, 0.8503).
    Fused,
    /// The ConvLSTM alone.
    Model,
    /// The statistical baseline alone.
    Baseline,
}

impl ScoreKind {
    /// The study's Youden-optimal threshold for this score on its test set (DESIGN §1:
    /// r_J = 0.533 fused, 0.308 ConvLSTM, 0.604 baseline), the default alert threshold.
    pub fn default_threshold(self) -> f64 {
        match self {
            ScoreKind::Fused => 0.533,
            ScoreKind::Model => 0.308,
            ScoreKind::Baseline => 0.604,
        }
    }

    /// The default alert threshold when the model may carry its own calibration: a trained
    /// model's thresholds replace the study's for the model and fused scores (its scores
    /// are not the study model's); the baseline's is the study's whatever the model.
    pub fn threshold_for(self, carried: Option<&AlertThresholds>) -> f64 {
        match (self, carried) {
            (ScoreKind::Fused, Some(t)) => t.fused,
            (ScoreKind::Model, Some(t)) => t.model,
            _ => self.default_threshold(),
        }
    }

    /// The score of one frame from its parts; `None` while a needed part is warming up.
    pub fn combine(self, p_model: Option<f64>, p_baseline: Option<f64>) -> Option<f64> {
        match self {
            ScoreKind::Fused => Some((p_model? + p_baseline?) / 2.0),
            ScoreKind::Model => p_model,
            ScoreKind::Baseline => p_baseline,
        }
    }
}

/// When a score becomes an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertRule {
    pub threshold: f64,
    /// The score must fall below `threshold - hysteresis` before another alert can fire,
    /// so a score hovering at the threshold does not chatter.
    pub hysteresis: f64,
    /// Frames after an alert during which no other alert fires (default 45: the study's
    /// 1.5 s look-ahead, the span one alert already covers).
    pub cooldown_frames: u64,
}

impl AlertRule {
    pub fn new(threshold: f64) -> Self {
        AlertRule {
            threshold,
            hysteresis: 0.05,
            cooldown_frames: 45,
        }
    }
}

/// Rising-edge detection with hysteresis and cooldown.
#[derive(Debug, Clone)]
pub struct AlertMachine {
    rule: AlertRule,
    armed: bool,
    last_alert: Option<u64>,
}

impl AlertMachine {
    pub fn new(rule: AlertRule) -> Self {
        AlertMachine {
            rule,
            armed: true,
            last_alert: None,
        }
    }

    /// Feeds the score of `frame`; true when it raises an alert. A rising edge during the
    /// cooldown is consumed without an alert.
    pub fn update(&mut self, frame: u64, score: f64) -> bool {
        if score >= self.rule.threshold {
            if !self.armed {
                return false;
            }
            self.armed = false;
            let cooled = self
                .last_alert
                .is_none_or(|last| frame >= last + self.rule.cooldown_frames);
            if cooled {
                self.last_alert = Some(frame);
            }
            cooled
        } else {
            if score < self.rule.threshold - self.rule.hysteresis {
                self.armed = true;
            }
            false
        }
    }

    /// After a gap: the next crossing counts as a rising edge again.
    pub fn rearm(&mut self) {
        self.armed = true;
    }
}

/// The alerts a whole score series raises (frames with `None` are skipped), as the live
/// machine would raise them: the batch twin used to check live runs.
pub fn alerts_in_series(scores: &[Option<f64>], rule: AlertRule) -> Vec<u64> {
    let mut m = AlertMachine::new(rule);
    scores
        .iter()
        .enumerate()
        .filter_map(|(t, s)| s.filter(|&s| m.update(t as u64, s)).map(|_| t as u64))
        .collect()
}

/// One line of output. Every line carries `"type"`; the README documents each schema.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Alert(AlertEvent),
    Outcome(OutcomeEvent),
    Prediction(PredictionEvent),
    Gap(GapEvent),
    Status(StatusEvent),
    Stats(StatsEvent),
}

impl Event {
    /// When the frame behind this event reached the appsink, for latency.
    pub fn arrival(&self) -> Option<Instant> {
        match self {
            Event::Alert(a) => Some(a.arrival),
            Event::Prediction(p) => Some(p.arrival),
            _ => None,
        }
    }

    /// Sets the latency from the frame's arrival to now (the writer calls it just before
    /// writing the line).
    pub fn stamp_latency(&mut self, now: Instant) {
        let ms = |a: Instant| now.saturating_duration_since(a).as_secs_f64() * 1e3;
        match self {
            Event::Alert(a) => a.latency_ms = ms(a.arrival),
            Event::Prediction(p) => p.latency_ms = ms(p.arrival),
            _ => {}
        }
    }
}

/// A burst is predicted: the score rose over the threshold.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub source: String,
    pub frame: u64,
    /// Seconds of stream time (the frame's timestamp).
    pub stream_time: f64,
    /// Wall-clock time the frame arrived, RFC 3339 UTC.
    pub wall_time: String,
    pub score: f64,
    pub p_model: Option<f64>,
    pub p_baseline: Option<f64>,
    pub threshold: f64,
    /// From the frame's arrival at the appsink to this line being written.
    pub latency_ms: f64,
    #[serde(skip)]
    pub arrival: Instant,
}

/// The ground truth of an earlier alert, known 46 frames later by the study's labelling rule.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeEvent {
    pub source: String,
    /// The alert's frame.
    pub frame: u64,
    /// True when a burst followed (label 1).
    pub burst: bool,
    pub score: f64,
}

/// One frame's scores (`--emit all`).
#[derive(Debug, Clone, Serialize)]
pub struct PredictionEvent {
    pub source: String,
    pub frame: u64,
    pub stream_time: f64,
    /// `null` while the windows warm up (the first 119 frames after a start or a gap).
    pub score: Option<f64>,
    pub p_model: Option<f64>,
    pub p_baseline: Option<f64>,
    pub y_tilde: Option<f64>,
    pub latency_ms: f64,
    #[serde(skip)]
    pub arrival: Instant,
}

/// Frames are missing: windows restart and scores warm up again for 119 frames.
#[derive(Debug, Clone, Serialize)]
pub struct GapEvent {
    pub source: String,
    /// First frame after the gap.
    pub frame: u64,
    /// Frames known to be missing (0 when unknown, as after a reconnect).
    pub missing: u64,
    /// `dropped` (the ring overflowed or the stream skipped) or `reconnect`.
    pub reason: String,
}

/// A source's connection changed: `connected`, `reconnecting`, `ended`, `failed`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent {
    pub source: String,
    pub state: String,
    pub message: Option<String>,
}

/// Periodic and final figures of one source.
#[derive(Debug, Clone, Serialize)]
pub struct StatsEvent {
    pub source: String,
    /// Frames processed so far.
    pub frames: u64,
    /// Frames processed per second of wall time since the start.
    pub fps: f64,
    /// Frames the ring dropped because inference fell behind.
    pub dropped: u64,
    pub gaps: u64,
    pub alerts: u64,
    /// Arrival at the appsink to the score being ready, since the previous stats line.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// ROC-AUC of the live scores against the labels known so far (last 5 minutes);
    /// `null` until both classes were seen.
    pub auc: Option<f64>,
    pub auc_frames: usize,
    /// True on the last line of a source.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// Latencies collected between two stats lines.
#[derive(Debug, Default, Clone)]
pub struct LatencyWindow {
    ms: Vec<f64>,
}

impl LatencyWindow {
    pub fn record(&mut self, ms: f64) {
        self.ms.push(ms);
    }

    /// p50 and p99 (nearest rank), then starts a new window.
    pub fn take_percentiles(&mut self) -> (Option<f64>, Option<f64>) {
        if self.ms.is_empty() {
            return (None, None);
        }
        self.ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * self.ms.len() as f64).ceil() as usize).clamp(1, self.ms.len());
            self.ms[rank - 1]
        };
        let r = (Some(at(0.5)), Some(at(0.99)));
        self.ms.clear();
        r
    }
}

/// ROC-AUC of the most recent (score, label) pairs.
#[derive(Debug, Clone)]
pub struct RollingAuc {
    capacity: usize,
    pairs: VecDeque<(f64, bool)>,
}

impl RollingAuc {
    /// The last `capacity` labelled frames (9000 = 5 minutes at 30 fps by default).
    pub fn new(capacity: usize) -> Self {
        RollingAuc {
            capacity,
            pairs: VecDeque::with_capacity(capacity.min(1 << 16)),
        }
    }

    pub fn push(&mut self, score: f64, label: bool) {
        if self.pairs.len() == self.capacity {
            self.pairs.pop_front();
        }
        self.pairs.push_back((score, label));
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `None` until both classes were seen.
    pub fn auc(&self) -> Option<f64> {
        let (scores, labels): (Vec<f64>, Vec<bool>) = self.pairs.iter().copied().unzip();
        Roc::new(&labels, &scores).ok().map(|r| r.auc())
    }
}

/// RFC 3339 UTC time of a `SystemTime` (millisecond precision), without a date crate.
pub fn rfc3339(t: std::time::SystemTime) -> String {
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
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_edges_with_hysteresis_and_cooldown() {
        let rule = AlertRule {
            threshold: 0.5,
            hysteresis: 0.1,
            cooldown_frames: 10,
        };
        let s = |v: &[f64]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        // Hovering around the threshold without falling below 0.4: one alert.
        assert_eq!(
            alerts_in_series(&s(&[0.2, 0.6, 0.45, 0.55, 0.3]), rule),
            vec![1]
        );
        // A second edge inside the cooldown is swallowed; one after it fires.
        let mut v = vec![0.0; 30];
        v[2] = 0.9;
        v[6] = 0.9;
        v[20] = 0.9;
        assert_eq!(alerts_in_series(&s(&v), rule), vec![2, 20]);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut w = LatencyWindow::default();
        for i in 1..=100 {
            w.record(i as f64);
        }
        assert_eq!(w.take_percentiles(), (Some(50.0), Some(99.0)));
        assert_eq!(w.take_percentiles(), (None, None));
    }

    #[test]
    fn rfc3339_of_known_instants() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn fused_needs_both_parts() {
        assert_eq!(ScoreKind::Fused.combine(Some(0.2), None), None);
        assert_eq!(
            ScoreKind::Fused.combine(Some(0.2), Some(0.4)),
            Some(0.30000000000000004)
        );
        assert_eq!(ScoreKind::Baseline.combine(None, Some(0.4)), Some(0.4));
    }

    #[test]
    fn a_model_s_thresholds_replace_the_study_s_except_the_baseline_s() {
        let t = AlertThresholds {
            model: 0.2,
            fused: 0.4,
        };
        assert_eq!(ScoreKind::Fused.threshold_for(Some(&t)), 0.4);
        assert_eq!(ScoreKind::Model.threshold_for(Some(&t)), 0.2);
        assert_eq!(ScoreKind::Baseline.threshold_for(Some(&t)), 0.604);
        assert_eq!(ScoreKind::Fused.threshold_for(None), 0.533);
        assert_eq!(ScoreKind::Model.threshold_for(None), 0.308);
    }

    #[test]
    fn events_carry_their_type() {
        let e = Event::Gap(GapEvent {
            source: "s".into(),
            frame: 5,
            missing: 2,
            reason: "dropped".into(),
        });
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "gap");
        assert_eq!(v["missing"], 2);
    }
}
