//! Evaluation by events, as the person at the tank judges an alarm: of the chases that
//! happened, how many did it warn about, how many seconds before they started, and how
//! often did it cry wolf? The ROC-AUC judges every frame; this judges the alerts `run`
//! would have raised (the live alert rule on the scores) against the chases a recording's
//! ground truth (`NAME.truth.json` of the simulated tank) says started.
//!
//! With a warning window of `W` seconds:
//! - a chase is *warned* when an alert fell in the `W` seconds up to its start (the display
//!   that leads to it included); its *lead time* is its start minus the first such alert;
//! - an alert is a *false alarm* when no chase starts within the `W` seconds after it;
//! - only chases starting at least `W` after the first scored frame count (an alert could
//!   have come for them), and only alerts whose `W` seconds fit in the recording;
//! - false alarms per hour are per hour of scored frames.

use std::ops::Range;

use serde::Serialize;

use crate::alert::{alerts_in_series, AlertRule};

/// Default warning window, seconds.
pub const WARN_WINDOW_S: f64 = 3.0;

/// One predictor at one threshold, by events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSummary {
    pub threshold: f64,
    /// Alerts raised (those whose window fits in the recording).
    pub alerts: usize,
    /// Chases that could be warned.
    pub chases: usize,
    pub warned: usize,
    /// warned / chases; `null` without chases.
    pub recall: Option<f64>,
    /// Lead times of the warned chases, seconds (linear-interpolated percentiles, as
    /// numpy's default); `null` when none was warned.
    pub lead_median_s: Option<f64>,
    pub lead_p10_s: Option<f64>,
    pub lead_p90_s: Option<f64>,
    /// Alerts with no chase starting within the window after them.
    pub false_alarms: usize,
    /// Hours of scored frames.
    pub hours: f64,
    pub false_alarms_per_hour: f64,
    /// Alerts that were followed by a chase within the window / alerts.
    pub precision: Option<f64>,
    /// Every warned chase's lead time, seconds, ascending (for the histogram).
    #[serde(skip)]
    pub leads_s: Vec<f64>,
}

/// What the events are judged against.
#[derive(Debug, Clone)]
pub struct Ground {
    /// First frame of each chase.
    pub chase_starts: Vec<usize>,
    /// Frames in the recording.
    pub frames: usize,
    pub fps: f64,
    /// The warning window, seconds.
    pub window_s: f64,
}

impl Ground {
    fn window(&self) -> usize {
        (self.window_s * self.fps).round() as usize
    }
}

/// The `q` percentile (0..=1) of sorted values, interpolated linearly between ranks.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// Judges alerts at frames `alerts` (ascending), raised on the scored frames `scored`.
pub fn summarize(
    alerts: &[usize],
    scored: Range<usize>,
    ground: &Ground,
    threshold: f64,
) -> EventSummary {
    let w = ground.window();
    let alerts: Vec<usize> = alerts
        .iter()
        .copied()
        .filter(|&a| a + w < ground.frames)
        .collect();
    let counted: Vec<usize> = ground
        .chase_starts
        .iter()
        .copied()
        .filter(|&s| s >= scored.start + w && s < scored.end)
        .collect();
    let mut leads: Vec<f64> = counted
        .iter()
        .filter_map(|&s| {
            let first = alerts.iter().find(|&&a| a + w >= s && a <= s)?;
            Some((s - first) as f64 / ground.fps)
        })
        .collect();
    leads.sort_by(f64::total_cmp);
    let false_alarms = alerts
        .iter()
        .filter(|&&a| !ground.chase_starts.iter().any(|&s| s >= a && s <= a + w))
        .count();
    let hours = scored.len() as f64 / ground.fps / 3600.0;
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    EventSummary {
        threshold,
        alerts: alerts.len(),
        chases: counted.len(),
        warned: leads.len(),
        recall: ratio(leads.len(), counted.len()),
        lead_median_s: percentile(&leads, 0.5),
        lead_p10_s: percentile(&leads, 0.1),
        lead_p90_s: percentile(&leads, 0.9),
        false_alarms,
        hours,
        false_alarms_per_hour: if hours > 0.0 {
            false_alarms as f64 / hours
        } else {
            0.0
        },
        precision: ratio(alerts.len() - false_alarms, alerts.len()),
        leads_s: leads,
    }
}

/// The alerts the live rule raises on `scores` (the scores of frames `first..`), as
/// recording frames.
pub fn alert_frames(scores: &[f64], first: usize, threshold: f64) -> Vec<usize> {
    let s: Vec<Option<f64>> = scores.iter().map(|&v| v.is_finite().then_some(v)).collect();
    alerts_in_series(&s, AlertRule::new(threshold))
        .into_iter()
        .map(|i| first + i as usize)
        .collect()
}

/// One predictor's scores (of frames `first..`) judged at `threshold`.
pub fn evaluate(scores: &[f64], first: usize, ground: &Ground, threshold: f64) -> EventSummary {
    let alerts = alert_frames(scores, first, threshold);
    summarize(&alerts, first..first + scores.len(), ground, threshold)
}

/// The same over thresholds 0.05, 0.10, ..., 0.95: recall against false alarms per hour.
pub fn curve(scores: &[f64], first: usize, ground: &Ground) -> Vec<EventSummary> {
    (1..20)
        .map(|k| evaluate(scores, first, ground, k as f64 / 20.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ground(starts: &[usize]) -> Ground {
        Ground {
            chase_starts: starts.to_vec(),
            frames: 10_000,
            fps: 30.0,
            window_s: 3.0,
        }
    }

    #[test]
    fn warned_chases_lead_times_and_false_alarms_follow_their_definitions() {
        // Chases at 1000 (alert 60 frames before), 2000 (alert 200 before: too early),
        // 3000 (alert at its start: warned, lead 0), 150 (too early to be warned at all).
        let g = ground(&[150, 1000, 2000, 3000]);
        let s = summarize(&[940, 1800, 3000, 5000], 119..9_988, &g, 0.5);
        assert_eq!((s.chases, s.warned, s.alerts), (3, 2, 4));
        assert_eq!(s.recall, Some(2.0 / 3.0));
        assert_eq!(s.lead_median_s, Some(1.0));
        assert_eq!(s.lead_p10_s, Some(0.2));
        assert_eq!(
            s.false_alarms, 2,
            "1800 (nothing within 90 frames after) and 5000"
        );
        assert!((s.hours - 9_869.0 / 30.0 / 3600.0).abs() < 1e-12);
        assert!((s.false_alarms_per_hour - 2.0 / s.hours).abs() < 1e-9);
        assert_eq!(s.precision, Some(0.5));
    }

    #[test]
    fn alerts_are_the_live_rule_on_the_scores() {
        let mut scores = vec![0.1; 400];
        scores[10] = 0.9; // an alert
        scores[20] = 0.9; // within the refractory 45 frames: none
        scores[100] = 0.9; // another
        assert_eq!(alert_frames(&scores, 119, 0.5), vec![129, 219]);
        let c = curve(&scores, 119, &ground(&[]));
        assert_eq!(c.len(), 19);
        assert_eq!(c[0].threshold, 0.05);
        assert_eq!(
            c[0].alerts, 1,
            "at 0.05 the score is always above: one alert, then re-armed never"
        );
    }

    #[test]
    fn percentiles_interpolate_as_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(2.5));
        assert_eq!(percentile(&v, 0.1), Some(1.3));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
