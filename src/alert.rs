//! Scores become alerts: which score drives them and how two scores are fused, the alert
//! state machine (threshold, hysteresis, cooldown), and the live statistics (latency
//! percentiles, rolling ROC-AUC against the delayed labels). The events they become are
//! the output room's ([`crate::output::event`]).

use std::collections::VecDeque;

use schemars::JsonSchema;
use serde::Serialize;

use crate::eval::Roc;
use crate::model::AlertThresholds;
use crate::{Error, Result};

/// Which score drives alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Mean of the model and the baseline (the study's best AUC, 0.8503).
    Fused,
    /// The ConvLSTM alone.
    Model,
    /// The statistical baseline alone.
    Baseline,
}

impl std::str::FromStr for ScoreKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<ScoreKind> {
        match s {
            "fused" => Ok(ScoreKind::Fused),
            "model" => Ok(ScoreKind::Model),
            "baseline" => Ok(ScoreKind::Baseline),
            _ => Err(Error::Input(format!(
                "score {s:?}; expected fused, model or baseline"
            ))),
        }
    }
}

impl std::fmt::Display for ScoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScoreKind::Fused => "fused",
            ScoreKind::Model => "model",
            ScoreKind::Baseline => "baseline",
        })
    }
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

    /// Changes the rule (another score, another threshold) and re-arms; the cooldown of
    /// the last alert still holds.
    pub fn set_rule(&mut self, rule: AlertRule) {
        self.rule = rule;
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

/// The `q` quantile of `sorted` (ascending, not empty) by nearest rank.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
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
        let r = (
            Some(nearest_rank(&self.ms, 0.5)),
            Some(nearest_rank(&self.ms, 0.99)),
        );
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
}
