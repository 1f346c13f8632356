//! Evaluation as the study's analysis script did it: ROC curve (thresholds as
//! scikit-learn's `roc_curve`: +inf, then every distinct score, a score >= r is positive),
//! ROC-AUC, the threshold of best accuracy and the threshold of best Youden's J.

pub mod events;
pub mod plot;

use std::path::Path;

use serde::Serialize;

use crate::io::npy;
use crate::speed::{FIRST_FRAME, STUDY_BASELINE, STUDY_LABELS};
use crate::{Error, Result};

/// Shortest series that has at least one label: 4n-1 + h + 2 = 166 frames.
pub const MIN_FRAMES: usize = FIRST_FRAME + STUDY_LABELS.h + 2;

/// Reads a y~ series and checks that the study's rules can label it.
pub fn read_ytilde(path: &Path) -> Result<Vec<f64>> {
    let y = npy::read_series(path)?;
    check_length(path, "series", y.len())?;
    Ok(y)
}

/// Checks that a series (or video, `what`) of `len` frames read from `path` has labels,
/// and a window before the first one.
pub fn check_length(path: &Path, what: &str, len: usize) -> Result<()> {
    if len < MIN_FRAMES {
        return Err(Error::bad_input(
            path,
            format!(
                "{what} of {len} frames; expected at least {MIN_FRAMES} (4n-1 + h + 2) to have labels"
            ),
        ));
    }
    Ok(())
}

/// The frames the study evaluated on for a series of `len` frames: `[4n-1, T-2-h]` with
/// the baseline's h = 10, i.e. 119 ..= T-12 (empty when the series is too short).
pub fn evaluation_range(len: usize) -> std::ops::Range<usize> {
    let end = (len + 1).saturating_sub(2 + STUDY_BASELINE.h);
    FIRST_FRAME..end.max(FIRST_FRAME)
}

/// One predictor's scores on the evaluation range (the first score is frame 119).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictor {
    pub name: String,
    pub scores: Vec<f64>,
}

/// A ROC curve: one point per threshold, the first being +inf (nothing predicted positive).
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    pub thresholds: Vec<f64>,
    pub tpr: Vec<f64>,
    pub fpr: Vec<f64>,
    pub positives: usize,
    pub negatives: usize,
}

impl Roc {
    /// The curve of `scores` against `labels`. Fails when the labels hold only one class
    /// (no curve exists) or a score is not finite.
    pub fn new(labels: &[bool], scores: &[f64]) -> Result<Roc, String> {
        assert_eq!(labels.len(), scores.len(), "Roc::new: length mismatch");
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(format!("score {} at position {i} is not finite", scores[i]));
        }
        let positives = labels.iter().filter(|&&l| l).count();
        let negatives = labels.len() - positives;
        if positives == 0 || negatives == 0 {
            return Err(format!(
                "the labels hold only one class ({positives} positive, {negatives} negative); \
                 a ROC curve needs both"
            ));
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut roc = Roc {
            thresholds: vec![f64::INFINITY],
            tpr: vec![0.0],
            fpr: vec![0.0],
            positives,
            negatives,
        };
        let (mut tp, mut fp) = (0usize, 0usize);
        for (k, &i) in order.iter().enumerate() {
            if labels[i] {
                tp += 1;
            } else {
                fp += 1;
            }
            let last_of_score = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
            if last_of_score {
                roc.thresholds.push(scores[i]);
                roc.tpr.push(tp as f64 / positives as f64);
                roc.fpr.push(fp as f64 / negatives as f64);
            }
        }
        Ok(roc)
    }

    /// Area under the curve (trapezoids; equal to scikit-learn's `roc_auc_score`).
    pub fn auc(&self) -> f64 {
        self.fpr
            .windows(2)
            .zip(self.tpr.windows(2))
            .map(|(f, t)| (f[1] - f[0]) * (t[1] + t[0]) / 2.0)
            .sum()
    }

    /// Accuracy at every threshold.
    pub fn accuracy(&self) -> Vec<f64> {
        let (p, n) = (self.positives as f64, self.negatives as f64);
        self.tpr
            .iter()
            .zip(&self.fpr)
            .map(|(t, f)| (t * p + (1.0 - f) * n) / (p + n))
            .collect()
    }

    /// Youden's J = TPR - FPR at every threshold.
    pub fn youden(&self) -> Vec<f64> {
        self.tpr.iter().zip(&self.fpr).map(|(t, f)| t - f).collect()
    }
}

/// The study's table row for one predictor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub auc: f64,
    pub max_accuracy: f64,
    /// Threshold of best accuracy; `None` when it is +inf ("predict nothing").
    pub r_acc: Option<f64>,
    pub tpr_at_r_acc: f64,
    pub fpr_at_r_acc: f64,
    pub youden_j: f64,
    /// Threshold of best J; `None` when it is +inf.
    pub r_j: Option<f64>,
    pub tpr_at_r_j: f64,
    pub fpr_at_r_j: f64,
}

/// Index of the first maximum (as NumPy's argmax: the highest threshold among ties).
fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

impl Summary {
    pub fn new(roc: &Roc) -> Summary {
        let acc = roc.accuracy();
        let j = roc.youden();
        let (ia, ij) = (argmax(&acc), argmax(&j));
        let finite = |r: f64| r.is_finite().then_some(r);
        Summary {
            auc: roc.auc(),
            max_accuracy: acc[ia],
            r_acc: finite(roc.thresholds[ia]),
            tpr_at_r_acc: roc.tpr[ia],
            fpr_at_r_acc: roc.fpr[ia],
            youden_j: j[ij],
            r_j: finite(roc.thresholds[ij]),
            tpr_at_r_j: roc.tpr[ij],
            fpr_at_r_j: roc.fpr[ij],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_of_a_small_case_matches_sklearn() {
        // sklearn: roc_curve([0,0,1,1],[0.1,0.4,0.35,0.8]) ->
        // fpr [0,0,.5,.5,1], tpr [0,.5,.5,1,1], thresholds [inf,.8,.4,.35,.1]; auc 0.75
        let roc = Roc::new(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert_eq!(roc.thresholds, vec![f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
        assert_eq!(roc.fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(roc.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(roc.auc(), 0.75);
        let s = Summary::new(&roc);
        assert_eq!((s.max_accuracy, s.r_acc), (0.75, Some(0.8)));
        assert_eq!((s.youden_j, s.r_j), (0.5, Some(0.8)));
    }

    #[test]
    fn ties_share_one_threshold() {
        let roc = Roc::new(&[false, true, true], &[0.5, 0.5, 0.9]).unwrap();
        assert_eq!(roc.thresholds, vec![f64::INFINITY, 0.9, 0.5]);
        assert_eq!(roc.auc(), 0.75);
    }

    #[test]
    fn one_class_is_an_error() {
        assert!(Roc::new(&[true, true], &[0.1, 0.2]).is_err());
    }

    #[test]
    fn range_is_119_to_t_minus_12() {
        assert_eq!(evaluation_range(5367), 119..5356);
        assert!(evaluation_range(100).is_empty());
    }
}
