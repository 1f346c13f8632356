//! `eval`: the study's evaluation table for any predictions against y~ and its labels.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::eval::{evaluation_range, plot, Predictor, Roc, Summary};
use crate::io::npy;
use crate::speed::{self, FIRST_FRAME, STUDY_BASELINE, STUDY_LABELS};
use crate::Error;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// y~ series (.npy, shape (T,) or (T, 1)).
    #[arg(long)]
    pub ytilde: PathBuf,
    /// Labels (.npy, length T); computed from y~ by the study's rule when not given.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// A predictor's scores as NAME=FILE.npy: length T (frame-indexed) or shorter
    /// (starting at frame 119, as the study's Y_pred.npy). Repeatable.
    #[arg(long = "pred", value_name = "NAME=FILE")]
    pub preds: Vec<String>,
    /// Print one JSON object keyed by predictor instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Draw the ROC curves and the y~ series coloured by score into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Shortest series that has at least one label: 4n-1 + h + 2 = 166 frames.
pub const MIN_FRAMES: usize = FIRST_FRAME + STUDY_LABELS.h + 2;

/// Reads a y~ series and checks that the study's rules can label it.
pub fn read_ytilde(path: &Path) -> Result<Vec<f64>, Error> {
    let y = npy::read_series(path)?;
    if y.len() < MIN_FRAMES {
        return Err(Error::bad_input(
            path,
            format!(
                "series of {} frames; expected at least {MIN_FRAMES} (4n-1 + h + 2) to have labels",
                y.len()
            ),
        ));
    }
    Ok(y)
}

/// Reads `NAME=FILE` and aligns it to the evaluation range of a `t`-frame series.
fn read_prediction(spec: &str, t: usize) -> anyhow::Result<Predictor> {
    let (name, file) = spec
        .split_once('=')
        .filter(|(n, f)| !n.is_empty() && !f.is_empty())
        .ok_or_else(|| Error::Invalid(format!("--pred {spec:?}: expected NAME=FILE.npy")))?;
    let path = Path::new(file);
    let a = npy::read(path)?;
    if !matches!(a.shape.as_slice(), [_] | [_, 1]) {
        return Err(Error::bad_input(
            path,
            format!(
                "shape {:?}; expected one series, shape (N,) or (N, 1)",
                a.shape
            ),
        )
        .into());
    }
    let v = a.to_f64();
    let range = evaluation_range(t);
    // A frame-indexed series may hold NaN before frame 119 (as `predict` writes it);
    // only the evaluated frames must be finite.
    let scores = if v.len() == t {
        v[range].to_vec()
    } else if v.len() <= range.len() && !v.is_empty() {
        v
    } else {
        return Err(Error::bad_input(
            path,
            format!(
                "{} values; expected {t} (one per frame of the y~ series) or at most {} \
                 (starting at frame {FIRST_FRAME})",
                v.len(),
                range.len()
            ),
        )
        .into());
    };
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::bad_input(
            path,
            format!(
                "value {} at frame {}; expected finite scores on the evaluated frames",
                scores[i],
                FIRST_FRAME + i
            ),
        )
        .into());
    }
    Ok(Predictor {
        name: name.to_owned(),
        scores,
    })
}

pub fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let y = read_ytilde(&a.ytilde)?;
    let t = y.len();
    let labels: Vec<bool> = match &a.labels {
        Some(path) => {
            let l = npy::read_series(path)?;
            if l.len() != t {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "{} labels; expected {t}, one per frame of {}",
                        l.len(),
                        a.ytilde.display()
                    ),
                )
                .into());
            }
            if let Some(i) = l.iter().position(|&v| v != 0.0 && v != 1.0) {
                return Err(Error::bad_input(
                    path,
                    format!("label {} at frame {i}; expected 0 or 1", l[i]),
                )
                .into());
            }
            l.into_iter().map(|v| v == 1.0).collect()
        }
        None => speed::label_bursts(&y, &STUDY_LABELS),
    };
    let range = evaluation_range(t);
    let labels = &labels[range.clone()];
    let mut predictors = a
        .preds
        .iter()
        .map(|p| read_prediction(p, t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = speed::baseline(&y, &STUDY_BASELINE)[range.clone()].to_vec();
    let fused = predictors.first().map(|first| Predictor {
        name: "fused".into(),
        scores: first
            .scores
            .iter()
            .zip(&base)
            .map(|(p, b)| (p + b) / 2.0)
            .collect(),
    });
    predictors.push(Predictor {
        name: "baseline".into(),
        scores: base,
    });
    predictors.extend(fused);

    let mut rows = Vec::with_capacity(predictors.len());
    for p in &predictors {
        let roc = Roc::new(&labels[..p.scores.len()], &p.scores)
            .map_err(|e| Error::Invalid(format!("cannot evaluate {}: {e}", p.name)))?;
        rows.push((p.name.clone(), Summary::new(&roc), roc));
    }
    if let Some(path) = &a.plot {
        plot::evaluation_figure(path, &y, range.start, labels, &predictors, &rows)
            .with_context(|| format!("{}: cannot draw the figure", path.display()))?;
    }
    let text = if a.json {
        let mut obj = serde_json::Map::new();
        for (name, s, _) in &rows {
            obj.insert(name.clone(), serde_json::to_value(s)?);
        }
        serde_json::to_string_pretty(&obj)? + "\n"
    } else {
        table(&rows, labels)
    };
    super::print_stdout(&text)
}

fn table(rows: &[(String, Summary, Roc)], labels: &[bool]) -> String {
    let fmt_r = |r: Option<f64>| r.map_or("inf".to_string(), |r| format!("{r:.3}"));
    let mut s = format!(
        "frames {}..={} ({} labels, {} positive)\n{:<12} {:>7} {:>8} {:>7} {:>6} {:>6} {:>8} {:>7} {:>6} {:>6}\n",
        FIRST_FRAME,
        FIRST_FRAME + labels.len() - 1,
        labels.len(),
        labels.iter().filter(|&&l| l).count(),
        "predictor", "auc", "max_acc", "r_acc", "tpr", "fpr", "max_J", "r_J", "tpr", "fpr"
    );
    for (name, m, _) in rows {
        s += &format!(
            "{:<12} {:>7.4} {:>8.4} {:>7} {:>6.3} {:>6.3} {:>8.4} {:>7} {:>6.3} {:>6.3}\n",
            name,
            m.auc,
            m.max_accuracy,
            fmt_r(m.r_acc),
            m.tpr_at_r_acc,
            m.fpr_at_r_acc,
            m.youden_j,
            fmt_r(m.r_j),
            m.tpr_at_r_j,
            m.fpr_at_r_j
        );
    }
    s
}
