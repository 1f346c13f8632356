//! Calibration: the figures that say whether simulated y~ looks like the real recording's
//! (issue 5), computed the same way for both. Real series are read from the study's
//! `Y_tilde.npy` files; nothing here is hard-wired except the acceptance tolerances.
//!
//! The figures of a y~ series: median and 5th/95th percentiles (as NumPy's default linear
//! interpolation), autocorrelation at lags 1, 5, 15 and 30 frames, the rate of positive
//! labels (the study's `compute_targets`, on its valid range), the ROC-AUC of the study's
//! baseline against those labels (on the evaluation range), and the two-sample
//! Kolmogorov-Smirnov statistic between a simulated and the real distribution. Several
//! series (the test and validation parts) are pooled: one distribution, one
//! autocorrelation with the pooled mean and variance, labels and scores concatenated.
//! The padding zero that ends every y~ series is not a measurement and is left out of the
//! distribution and the autocorrelation.

use std::path::PathBuf;

use serde::Serialize;

use super::{Chase, SimConfig, SimulatedTank};
use crate::eval::{evaluation_range, Roc};
use crate::io::npy;
use crate::speed::{baseline, label_bursts, speed_proxy, STUDY_BASELINE, STUDY_LABELS};
use crate::{Error, Result};

/// Lags of the autocorrelation compared, in frames (issue 5).
pub const LAGS: [usize; 4] = [1, 5, 15, 30];

/// The acceptance criteria of issue 5 for ten minutes of processed-look video.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    /// Largest KS statistic between simulated and real y~.
    pub ks_max: f64,
    /// Largest difference of the autocorrelation at each lag of [`LAGS`].
    pub autocorrelation_max_diff: f64,
    /// Range of the positive-label rate.
    pub positive_rate: (f64, f64),
    /// Range of the baseline's ROC-AUC.
    pub baseline_auc: (f64, f64),
}

/// Issue 5: KS <= 0.15; autocorrelation within 0.1; positive labels 11-18 %; baseline
/// ROC-AUC 0.74-0.88.
pub const ACCEPTANCE: Tolerance = Tolerance {
    ks_max: 0.15,
    autocorrelation_max_diff: 0.1,
    positive_rate: (0.11, 0.18),
    baseline_auc: (0.74, 0.88),
};

/// The figures of one y~ series, or of several pooled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Frames, all parts together.
    pub frames: usize,
    pub median: f64,
    pub p5: f64,
    pub p95: f64,
    /// Autocorrelation at each lag of [`LAGS`].
    pub autocorrelation: [f64; 4],
    /// Fraction of frames in the labels' valid range `[119, T-47]` labelled 1.
    pub positive_rate: f64,
    /// ROC-AUC of the baseline against the labels over `[119, T-12]`; `None` when the
    /// labels hold a single class (no ROC curve exists).
    pub baseline_auc: Option<f64>,
}

impl Figures {
    /// The figures of the parts pooled. Fails when a part is too short to have labels.
    pub fn of(parts: &[&[f64]]) -> Result<Figures> {
        let min = 4 * STUDY_LABELS.n + STUDY_LABELS.h + 1;
        if parts.is_empty() || parts.iter().any(|p| p.len() < min) {
            return Err(Error::Input(format!(
                "calibration needs series of at least {min} frames"
            )));
        }
        let mut values: Vec<f64> = parts.iter().flat_map(|p| measured(p)).copied().collect();
        values.sort_by(f64::total_cmp);
        let (mut positives, mut valid) = (0usize, 0usize);
        let (mut labels, mut scores) = (Vec::new(), Vec::new());
        for p in parts {
            let l = label_bursts(p, &STUDY_LABELS);
            let range = 4 * STUDY_LABELS.n - 1..p.len() - 1 - STUDY_LABELS.h;
            positives += l[range.clone()].iter().filter(|&&x| x).count();
            valid += range.len();
            let b = baseline(p, &STUDY_BASELINE);
            let e = evaluation_range(p.len());
            labels.extend_from_slice(&l[e.clone()]);
            scores.extend_from_slice(&b[e]);
        }
        let auc = Roc::new(&labels, &scores).ok().map(|roc| roc.auc());
        Ok(Figures {
            frames: parts.iter().map(|p| p.len()).sum(),
            median: quantile(&values, 0.5),
            p5: quantile(&values, 0.05),
            p95: quantile(&values, 0.95),
            autocorrelation: LAGS.map(|k| autocorrelation(parts, k)),
            positive_rate: positives as f64 / valid as f64,
            baseline_auc: auc,
        })
    }
}

/// The measured values of a y~ series: all but the padding zero at its end.
fn measured(y: &[f64]) -> &[f64] {
    &y[..y.len().saturating_sub(1)]
}

/// Quantile `q` of sorted values with linear interpolation (NumPy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// Autocorrelation at `lag` of the parts pooled: lagged products within each part, about
/// the pooled mean, over the pooled variance (for one part, NumPy's
/// `((y[:-k]-m)*(y[k:]-m)).mean() / y.var()`).
pub fn autocorrelation(parts: &[&[f64]], lag: usize) -> f64 {
    let n: usize = parts.iter().map(|p| measured(p).len()).sum();
    let mean = parts.iter().flat_map(|p| measured(p)).sum::<f64>() / n as f64;
    let var = parts
        .iter()
        .flat_map(|p| measured(p))
        .map(|v| (v - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    let (mut sum, mut pairs) = (0.0, 0usize);
    for p in parts {
        let m = measured(p);
        if m.len() > lag {
            sum += m
                .iter()
                .zip(&m[lag..])
                .map(|(a, b)| (a - mean) * (b - mean))
                .sum::<f64>();
            pairs += m.len() - lag;
        }
    }
    sum / pairs as f64 / var
}

/// Two-sample Kolmogorov-Smirnov statistic: the largest distance between the empirical
/// distribution functions of `a` and `b` (as SciPy's `ks_2samp`).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    d
}

/// y~ of a stretch of simulated video, and its ground truth.
#[derive(Debug, Clone)]
pub struct SimulatedSeries {
    /// `frames` values, the last one the padding 0, as [`crate::speed::speed_proxy_series`].
    pub ytilde: Vec<f64>,
    /// The chases that started within the stretch.
    pub chases: Vec<Chase>,
}

/// Simulates `frames` frames and computes y~ as they are rendered (no frame is kept).
pub fn simulate_ytilde(config: SimConfig, frames: usize) -> Result<SimulatedSeries> {
    let mut sim = SimulatedTank::new(config)?;
    let mut prev = vec![0; sim.frame_len()];
    let mut next = vec![0; sim.frame_len()];
    let mut ytilde = Vec::with_capacity(frames);
    if frames > 0 {
        sim.render_into(&mut prev);
        for _ in 1..frames {
            sim.render_into(&mut next);
            ytilde.push(speed_proxy(&prev, &next));
            std::mem::swap(&mut prev, &mut next);
        }
        ytilde.push(0.0);
    }
    let chases = sim
        .truth()
        .iter()
        .filter(|c| c.start_frame < frames)
        .copied()
        .collect();
    Ok(SimulatedSeries { ytilde, chases })
}

/// A real y~ series: where it came from and its values.
#[derive(Debug, Clone)]
pub struct RealSeries {
    pub name: String,
    pub ytilde: Vec<f64>,
}

/// Reads `Y_tilde.npy` from each folder (the study's test and validation parts).
pub fn read_real(dirs: &[PathBuf]) -> Result<Vec<RealSeries>> {
    dirs.iter()
        .map(|d| {
            let ytilde = npy::read_series(&d.join("Y_tilde.npy"))?;
            let name = d.file_name().map_or_else(
                || d.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            Ok(RealSeries { name, ytilde })
        })
        .collect()
}

/// One simulated seed next to the real recording.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub seed: u64,
    pub figures: Figures,
    /// KS statistic against the real series pooled.
    pub ks: f64,
    /// Chases in the simulated stretch (ground truth).
    pub chases: usize,
    /// Criteria not met, each as one phrase; empty when the seed passes.
    pub failures: Vec<String>,
}

/// The whole comparison: the real parts, the real pooled, and each seed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub real_parts: Vec<(String, Figures)>,
    pub real: Figures,
    pub seeds: Vec<SeedReport>,
    pub tolerance: Tolerance,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.seeds.iter().all(|s| s.failures.is_empty())
    }
}

/// What `figures` (with KS statistic `ks`) misses of `tolerance` against `real`.
pub fn judge(figures: &Figures, ks: f64, real: &Figures, tolerance: &Tolerance) -> Vec<String> {
    let mut failures = Vec::new();
    if ks > tolerance.ks_max {
        failures.push(format!("KS {ks:.3} > {}", tolerance.ks_max));
    }
    for (k, lag) in LAGS.iter().enumerate() {
        let (s, r) = (figures.autocorrelation[k], real.autocorrelation[k]);
        if (s - r).abs() > tolerance.autocorrelation_max_diff {
            failures.push(format!(
                "autocorrelation at lag {lag} {s:.3} vs real {r:.3}"
            ));
        }
    }
    let (lo, hi) = tolerance.positive_rate;
    if !(lo..=hi).contains(&figures.positive_rate) {
        failures.push(format!(
            "positive-label rate {:.1} % outside {:.0}-{:.0} %",
            100.0 * figures.positive_rate,
            100.0 * lo,
            100.0 * hi
        ));
    }
    let (lo, hi) = tolerance.baseline_auc;
    match figures.baseline_auc {
        Some(auc) if (lo..=hi).contains(&auc) => {}
        Some(auc) => failures.push(format!("baseline ROC-AUC {auc:.3} outside {lo}-{hi}")),
        None => failures.push("no baseline ROC-AUC (the labels hold one class)".into()),
    }
    failures
}

/// Simulates `frames` frames of `base` for each seed and compares them with the real
/// series, against [`ACCEPTANCE`].
pub fn calibrate(
    base: SimConfig,
    seeds: &[u64],
    frames: usize,
    real: &[RealSeries],
) -> Result<Report> {
    if real.is_empty() {
        return Err(Error::Input(
            "calibration needs at least one real y~ series".into(),
        ));
    }
    let parts: Vec<&[f64]> = real.iter().map(|r| r.ytilde.as_slice()).collect();
    let real_parts = real
        .iter()
        .map(|r| Ok((r.name.clone(), Figures::of(&[&r.ytilde])?)))
        .collect::<Result<Vec<_>>>()?;
    let real_figures = Figures::of(&parts)?;
    let real_values: Vec<f64> = parts.iter().flat_map(|p| measured(p)).copied().collect();
    let mut reports = Vec::new();
    for &seed in seeds {
        let config = SimConfig { seed, ..base };
        let sim = simulate_ytilde(config, frames)?;
        let y = sim.ytilde;
        let figures = Figures::of(&[&y])?;
        let ks = ks_statistic(measured(&y), &real_values);
        let failures = judge(&figures, ks, &real_figures, &ACCEPTANCE);
        reports.push(SeedReport {
            seed,
            figures,
            ks,
            chases: sim.chases.len(),
            failures,
        });
    }
    Ok(Report {
        real_parts,
        real: real_figures,
        seeds: reports,
        tolerance: ACCEPTANCE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.05) - 1.15).abs() < 1e-12);
    }

    #[test]
    fn ks_of_shifted_samples() {
        let a: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..100).map(|i| i as f64 + 10.0).collect();
        assert!((ks_statistic(&a, &b) - 0.1).abs() < 1e-12);
        assert_eq!(ks_statistic(&a, &a), 0.0);
    }

    #[test]
    fn autocorrelation_of_alternating_series() {
        // Mean 0, variance 1: lag 1 is -1 and lag 2 is 1 (the padding zero is dropped).
        let y = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0];
        assert!((autocorrelation(&[&y], 1) + 1.0).abs() < 1e-12);
        assert!((autocorrelation(&[&y], 2) - 1.0).abs() < 1e-12);
    }
}
