//! Figures of an evaluation, drawn with plotters: the ROC curves, and the y~ series coloured
//! by score with the positive labels marked (as the study's figures).

use std::path::Path;

use super::{Predictor, Roc, Summary};

/// Draws the evaluation figure into a PNG.
pub fn evaluation_figure(
    _path: &Path,
    _y: &[f64],
    _start: usize,
    _labels: &[bool],
    _predictors: &[Predictor],
    _rows: &[(String, Summary, Roc)],
) -> anyhow::Result<()> {
    anyhow::bail!("plotting is not implemented yet")
}
