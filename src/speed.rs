//! The study's science on the speed proxy y~ (DESIGN §1): y~ itself, the self-supervised
//! burst labels, and the statistical baseline, each as a batch function over a whole series
//! and as a streaming type that takes one value per frame.
//!
//! Indices are frame indices. `y~[t]` compares frames t and t+1, so online `y~[t-1]` becomes
//! known when frame t arrives. This module does no I/O.

use std::collections::VecDeque;

/// Slices per model window (the study's `n`). The first frame with a full window of
/// `4n` frames is `4n - 1`.
pub const WINDOW_SLICES: usize = 30;

/// First frame that has a prediction, a label and a baseline: `4n - 1 = 119`.
pub const FIRST_FRAME: usize = 4 * WINDOW_SLICES - 1;

/// Speed proxy of one pair of consecutive frames: the mean absolute difference of the
/// pixel values scaled to [0, 1], `sum(|next - prev|) / 255 / (H*W)`.
///
/// The sum is taken in integers, so the result is the float64 value correctly rounded
/// twice (the study computed the same quantity in float32).
pub fn speed_proxy(prev: &[u8], next: &[u8]) -> f64 {
    assert_eq!(prev.len(), next.len(), "speed_proxy: frames differ in size");
    let sum: u64 = prev
        .iter()
        .zip(next)
        .map(|(&a, &b)| a.abs_diff(b) as u64)
        .sum();
    sum as f64 / 255.0 / prev.len() as f64
}

/// y~ for a whole sequence: `T` values, the last one 0 (no next frame), as the study.
pub fn speed_proxy_series(frames: &crate::io::Frames) -> Vec<f64> {
    let mut y: Vec<f64> = (1..frames.count)
        .map(|t| speed_proxy(frames.frame(t - 1), frames.frame(t)))
        .collect();
    if frames.count > 0 {
        y.push(0.0);
    }
    y
}

/// y~ of frames that arrive one at a time (a decoding video), the series as
/// [`speed_proxy_series`] gives it once [`SpeedSeries::finish`]ed.
#[derive(Debug, Default)]
pub struct SpeedSeries {
    prev: Option<Vec<u8>>,
    y: Vec<f64>,
}

impl SpeedSeries {
    /// The next frame: gives the previous frame its y~.
    pub fn push(&mut self, frame: &[u8]) {
        match &mut self.prev {
            Some(prev) => {
                self.y.push(speed_proxy(prev, frame));
                prev.copy_from_slice(frame);
            }
            None => self.prev = Some(frame.to_vec()),
        }
    }

    /// The series, one value per frame pushed, the last one 0 (DESIGN §1).
    pub fn finish(mut self) -> Vec<f64> {
        if self.prev.is_some() {
            self.y.push(0.0);
        }
        self.y
    }
}

/// Parameters of the study's `compute_targets` labelling rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelRule {
    /// Slices per window; labels start at frame `4n - 1`.
    pub n: usize,
    /// Look-ahead in frames: the window is y~[t ..= t+h] (h = 45: 1.5 s at 30 fps).
    pub h: usize,
    /// "Calm now" fraction of the window's range.
    pub b: f64,
    /// Minimum range of y~ in the window for anything to count as a burst.
    pub c: f64,
}

/// The study's labelling constants (Compute_targets notebook): n = 30, h = 45, b = 0.1,
/// c = 0.001.
pub const STUDY_LABELS: LabelRule = LabelRule {
    n: 30,
    h: 45,
    b: 0.1,
    c: 0.001,
};

impl LabelRule {
    /// Frames from a frame's arrival until its label is known: its window ends at
    /// y~[t+h], which needs frame t+h+1.
    pub fn delay(&self) -> usize {
        self.h + 1
    }

    /// The label of a frame whose look-ahead window (y~[t ..= t+h]) has range `ptp` and
    /// minimum `min`: a burst is coming when the window moves at all (`ptp >= c`) and the
    /// present is calm (`y~[t]` within the bottom `b` of the range).
    pub fn is_burst(&self, now: f64, min: f64, ptp: f64) -> bool {
        ptp >= self.c && now <= min + self.b * ptp
    }
}

/// Labels for a whole y~ series (`compute_targets`): 1 where a burst follows, 0 elsewhere,
/// including outside the valid range `[4n-1, T-2-h]`.
pub fn label_bursts(y: &[f64], rule: &LabelRule) -> Vec<bool> {
    let mut labels = vec![false; y.len()];
    let first = 4 * rule.n - 1;
    let Some(last) = (y.len()).checked_sub(2 + rule.h) else {
        return labels;
    };
    for t in first..=last {
        let w = &y[t..=t + rule.h];
        let (min, max) = min_max(w);
        labels[t] = rule.is_burst(y[t], min, max - min);
    }
    labels
}

/// Parameters of the study's `baseline_prediction_probabilistic`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineRule {
    /// Slices per window; predictions start at frame `4n - 1`.
    pub n: usize,
    /// End margin: predictions stop at frame `T - 2 - h` (the original used h = 10 here).
    pub h: usize,
    /// Past frames examined: y~[t-d .. t-1].
    pub d: usize,
    /// "Calm now" fraction of the past range.
    pub b: f64,
    /// Range of past y~ at which the activity term is one half.
    pub c: f64,
    /// Steepness of the activity term.
    pub g1: f64,
    /// Steepness of the calm-now term.
    pub g2: f64,
}

/// The study's baseline constants: d = 89, b = 0.2, c = 0.0006, g1 = 5300, g2 = 11000, h = 10.
pub const STUDY_BASELINE: BaselineRule = BaselineRule {
    n: 30,
    h: 10,
    d: 89,
    b: 0.2,
    c: 0.0006,
    g1: 5300.0,
    g2: 11000.0,
};

impl BaselineRule {
    /// The probability of a burst given the past window's range `ptp` and minimum `min`
    /// and the latest value `last` = y~[t-1]: the mean of "the past has been active"
    /// and "the latest value is calm".
    pub fn probability(&self, last: f64, min: f64, ptp: f64) -> f64 {
        let active = 1.0 / (1.0 + (-self.g1 * (ptp - self.c)).exp());
        let calm = 1.0 / (1.0 + (self.g2 * (last - (min + self.b * ptp))).exp());
        (active + calm) / 2.0
    }
}

/// The baseline over a whole series: `p[t]` for t in `[4n-1, T-2-h]`, 0 elsewhere.
pub fn baseline(y: &[f64], rule: &BaselineRule) -> Vec<f64> {
    let mut p = vec![0.0; y.len()];
    let first = (4 * rule.n - 1).max(rule.d);
    let Some(last) = y.len().checked_sub(2 + rule.h) else {
        return p;
    };
    for t in first..=last {
        let past = &y[t - rule.d..t];
        let (min, max) = min_max(past);
        p[t] = rule.probability(y[t - 1], min, max - min);
    }
    p
}

fn min_max(w: &[f64]) -> (f64, f64) {
    w.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// Minimum and maximum of the last `len` values pushed, in O(1) amortised per value
/// (monotonic queues of (index, value)).
#[derive(Debug, Clone)]
pub struct SlidingRange {
    len: usize,
    pushed: usize,
    mins: VecDeque<(usize, f64)>,
    maxs: VecDeque<(usize, f64)>,
}

impl SlidingRange {
    /// A window over the last `len` values.
    pub fn new(len: usize) -> Self {
        assert!(len > 0, "SlidingRange needs a window of at least one value");
        SlidingRange {
            len,
            pushed: 0,
            mins: VecDeque::with_capacity(len + 1),
            maxs: VecDeque::with_capacity(len + 1),
        }
    }

    /// Adds a value, dropping the one that falls out of the window.
    pub fn push(&mut self, v: f64) {
        let i = self.pushed;
        self.pushed += 1;
        while self.mins.back().is_some_and(|&(_, m)| m >= v) {
            self.mins.pop_back();
        }
        self.mins.push_back((i, v));
        while self.maxs.back().is_some_and(|&(_, m)| m <= v) {
            self.maxs.pop_back();
        }
        self.maxs.push_back((i, v));
        let oldest = self.pushed.saturating_sub(self.len);
        while self.mins.front().is_some_and(|&(j, _)| j < oldest) {
            self.mins.pop_front();
        }
        while self.maxs.front().is_some_and(|&(j, _)| j < oldest) {
            self.maxs.pop_front();
        }
    }

    /// True once `len` values have been pushed.
    pub fn is_full(&self) -> bool {
        self.pushed >= self.len
    }

    /// Values pushed so far.
    pub fn pushed(&self) -> usize {
        self.pushed
    }

    /// Minimum of the window (`+inf` when empty).
    pub fn min(&self) -> f64 {
        self.mins.front().map_or(f64::INFINITY, |&(_, v)| v)
    }

    /// Maximum of the window (`-inf` when empty).
    pub fn max(&self) -> f64 {
        self.maxs.front().map_or(f64::NEG_INFINITY, |&(_, v)| v)
    }

    /// Forgets everything (after a gap in the stream).
    pub fn clear(&mut self) {
        self.pushed = 0;
        self.mins.clear();
        self.maxs.clear();
    }
}

/// The baseline, online: feed `y~[t-1]` when frame t arrives and get `p[t]` at once. Equal to
/// [`baseline`] on every frame of its range; it keeps predicting past the batch function's
/// end margin, which exists only because the study cropped its evaluation there.
#[derive(Debug, Clone)]
pub struct Baseline {
    rule: BaselineRule,
    past: SlidingRange,
    last: f64,
}

impl Baseline {
    pub fn new(rule: BaselineRule) -> Self {
        Baseline {
            rule,
            past: SlidingRange::new(rule.d),
            last: 0.0,
        }
    }

    /// Feeds `y~[t-1]` (known once frame t has arrived); returns `p[t]` for t >= 4n-1.
    pub fn push(&mut self, y_prev: f64) -> Option<f64> {
        self.past.push(y_prev);
        self.last = y_prev;
        let t = self.past.pushed();
        (t >= (4 * self.rule.n - 1).max(self.rule.d)).then(|| {
            let (min, max) = (self.past.min(), self.past.max());
            self.rule.probability(self.last, min, max - min)
        })
    }

    /// Starts over, as after a gap in the stream: the next push is `y~[0]` again.
    pub fn reset(&mut self) {
        self.past.clear();
    }
}

/// The labels, online: feed `y~[k]` as it becomes known (when frame k+1 arrives); the label
/// of frame k-h comes out, `h + 1` frames after that frame arrived. Equal to
/// [`label_bursts`] on its whole valid range.
#[derive(Debug, Clone)]
pub struct Labeller {
    rule: LabelRule,
    window: SlidingRange,
    recent: VecDeque<f64>,
}

impl Labeller {
    pub fn new(rule: LabelRule) -> Self {
        Labeller {
            rule,
            window: SlidingRange::new(rule.h + 1),
            recent: VecDeque::with_capacity(rule.h + 2),
        }
    }

    /// Feeds `y~[k]`; returns `(t, label[t])` for t = k - h once t >= 4n-1.
    pub fn push(&mut self, y: f64) -> Option<(usize, bool)> {
        self.window.push(y);
        self.recent.push_back(y);
        if self.recent.len() > self.rule.h + 1 {
            self.recent.pop_front();
        }
        let k = self.window.pushed() - 1;
        let t = k.checked_sub(self.rule.h)?;
        if t < 4 * self.rule.n - 1 {
            return None;
        }
        let now = self.recent[0];
        let (min, max) = (self.window.min(), self.window.max());
        Some((t, self.rule.is_burst(now, min, max - min)))
    }

    /// Starts over, as after a gap in the stream.
    pub fn reset(&mut self) {
        self.window.clear();
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic bursty test series (a cheap LCG; no dependency).
    fn series(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                0.001 + 0.0005 * u + if (i / 37) % 5 == 0 { 0.002 * u } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn sliding_range_matches_rescan() {
        let y = series(500, 3);
        let mut r = SlidingRange::new(17);
        for (i, &v) in y.iter().enumerate() {
            r.push(v);
            let w = &y[i.saturating_sub(16)..=i];
            assert_eq!((r.min(), r.max()), min_max(w));
        }
    }

    #[test]
    fn streaming_baseline_equals_batch() {
        let y = series(700, 5);
        let batch = baseline(&y, &STUDY_BASELINE);
        let mut online = Baseline::new(STUDY_BASELINE);
        for t in 1..y.len() {
            let p = online.push(y[t - 1]);
            assert_eq!(p.is_some(), t >= FIRST_FRAME);
            if t <= y.len() - 12 && t >= FIRST_FRAME {
                assert_eq!(p.unwrap(), batch[t], "frame {t}");
            }
        }
    }

    #[test]
    fn streaming_labels_equal_batch() {
        let y = series(700, 7);
        let batch = label_bursts(&y, &STUDY_LABELS);
        let mut online = Labeller::new(STUDY_LABELS);
        let mut seen = 0;
        // y~[T-1] is the padding zero, never observed online.
        for &v in &y[..y.len() - 1] {
            if let Some((t, l)) = online.push(v) {
                assert_eq!(l, batch[t], "frame {t}");
                seen += 1;
            }
        }
        assert_eq!(seen, y.len() - 2 - 45 - FIRST_FRAME + 1);
        assert!(batch.iter().any(|&l| l), "the test series has bursts");
    }

    #[test]
    fn speed_proxy_is_mean_abs_difference() {
        assert_eq!(speed_proxy(&[0, 255, 10, 10], &[255, 0, 10, 10]), 0.5);
    }
}
