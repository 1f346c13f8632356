//! `eval`: the study's evaluation table for any predictions against y~ and its labels, or,
//! with `--video`, for a model on any recorded video in one command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use burstwatch::alert::ScoreKind;
use burstwatch::capture::preprocess::Preprocess;
use burstwatch::capture::read::decode_source;
use burstwatch::engine::{new_engine_on, Device, Mode, Stream};
use burstwatch::eval::{
    check_length, evaluation_range, plot, read_ytilde, Predictor, Roc, Summary,
};
use burstwatch::frame::{self, Crop};
use burstwatch::io::npy;
use burstwatch::speed::{self, SpeedSeries, FIRST_FRAME, STUDY_BASELINE, STUDY_LABELS};
use burstwatch::Error;

use super::one_of;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// y~ series (.npy, shape (T,) or (T, 1)).
    #[arg(long, required_unless_present = "video", conflicts_with = "video")]
    pub ytilde: Option<PathBuf>,
    /// Or a recorded video (a file, path or file:// URI, or gst:<launch line>), decoded as
    /// `run` sees it: its y~, labels, baseline and the model's scores all come from it.
    #[arg(long, value_name = "FILE")]
    pub video: Option<String>,
    /// With --video: the model to evaluate, a Keras SavedModel directory, a .safetensors
    /// model or a `*.reference-weights.npz` [default: the model embedded in the binary].
    #[arg(long, conflicts_with = "ytilde")]
    pub model: Option<PathBuf>,
    /// With --video: how the model runs per frame, as in `run` (continuous) or `predict`
    /// (exact).
    #[arg(long, default_value = "continuous", value_parser = one_of::<Mode>(&["continuous", "exact"]), conflicts_with = "ytilde")]
    pub mode: Mode,
    /// With --video: where the model runs: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", conflicts_with = "ytilde")]
    pub device: Device,
    /// With --video: crop x,y,w,h (source pixels) before scaling.
    #[arg(long, conflicts_with = "ytilde")]
    pub crop: Option<Crop>,
    /// With --video: preprocessing of the decoded frames.
    #[arg(long, default_value = "none", value_parser = one_of::<Preprocess>(&["none", "invert", "bgsub"]), conflicts_with = "ytilde")]
    pub preprocess: Preprocess,
    /// Labels (.npy, length T); computed from y~ by the study's rule when not given.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// A predictor's scores as NAME=FILE.npy: length T (frame-indexed) or shorter
    /// (starting at frame 119, as the study's Y_pred.npy). Repeatable. With --video they
    /// follow the model.
    #[arg(long = "pred", value_name = "NAME=FILE")]
    pub preds: Vec<String>,
    /// Print one JSON object keyed by predictor instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Draw the ROC curves and the y~ series coloured by score into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Decodes a video once, computing its y~ and the model's scores on every frame; returns
/// y~ (length T) and the model's scores on the evaluation range, named by the model.
fn score_video(video: &str, a: &EvalArgs) -> anyhow::Result<(Vec<f64>, Predictor)> {
    let model = super::load_model_or_default(a.model.as_deref())?;
    frame::check_model_input(&model)?;
    let name = model.name.clone();
    let engine = new_engine_on(model, a.device)?;
    let engine_name = engine.name();
    let mut stream = Stream::new(engine, a.mode)?;
    if stream.first_frame() > FIRST_FRAME {
        return Err(Error::Model(format!(
            "model {name} scores its first frame at {}; the evaluation starts at frame {FIRST_FRAME}",
            stream.first_frame()
        ))
        .into());
    }
    let start = Instant::now();
    let mut y = SpeedSeries::default();
    let mut p: Vec<f64> = Vec::new();
    let mut failed = None;
    decode_source(video, a.crop, a.preprocess, |frame| {
        y.push(frame);
        if failed.is_none() {
            match stream.push_frame(frame) {
                Ok(v) => p.push(v.map_or(f64::NAN, f64::from)),
                Err(e) => failed = Some(e),
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let y = y.finish();
    check_length(Path::new(video), "video", y.len())?;
    tracing::info!(
        frames = y.len(),
        model = %name,
        mode = %a.mode,
        engine = %engine_name,
        fps = format!("{:.1}", y.len() as f64 / start.elapsed().as_secs_f64()),
        "scored the video"
    );
    let scores = p[evaluation_range(y.len())].to_vec();
    Ok((y, Predictor { name, scores }))
}

/// Reads `NAME=FILE` and aligns it to the evaluation range of a `t`-frame series.
fn read_prediction(spec: &str, t: usize) -> anyhow::Result<Predictor> {
    let (name, file) = spec
        .split_once('=')
        .filter(|(n, f)| !n.is_empty() && !f.is_empty())
        .ok_or_else(|| Error::Input(format!("--pred {spec:?}: expected NAME=FILE.npy")))?;
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
    let (y, series, model) = match (&a.ytilde, &a.video) {
        (Some(path), _) => (read_ytilde(path)?, path.display().to_string(), None),
        (None, Some(video)) => {
            let (y, model) = score_video(video, &a)?;
            (y, video.clone(), Some(model))
        }
        (None, None) => unreachable!("clap requires --ytilde or --video"),
    };
    let t = y.len();
    let labels: Vec<bool> = match &a.labels {
        Some(path) => {
            let l = npy::read_series(path)?;
            if l.len() != t {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "{} labels; expected {t}, one per frame of {series}",
                        l.len()
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
    let mut predictors: Vec<Predictor> = model.into_iter().collect();
    for p in &a.preds {
        predictors.push(read_prediction(p, t)?);
    }
    let base = speed::baseline(&y, &STUDY_BASELINE)[range.clone()].to_vec();
    let fused = predictors.first().map(|first| Predictor {
        name: "fused".into(),
        scores: first
            .scores
            .iter()
            .zip(&base)
            .map(|(&p, &b)| {
                ScoreKind::Fused
                    .combine(Some(p), Some(b))
                    .expect("both parts are there")
            })
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
            .map_err(|e| Error::Input(format!("cannot evaluate {}: {e}", p.name)))?;
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
    // Model names (`eval --video`) can be longer than the usual column.
    let w = rows
        .iter()
        .map(|(n, ..)| n.len())
        .max()
        .unwrap_or(0)
        .max(12);
    let mut s = format!(
        "frames {}..={} ({} labels, {} positive)\n{:<w$} {:>7} {:>8} {:>7} {:>6} {:>6} {:>8} {:>7} {:>6} {:>6}\n",
        FIRST_FRAME,
        FIRST_FRAME + labels.len() - 1,
        labels.len(),
        labels.iter().filter(|&&l| l).count(),
        "predictor", "auc", "max_acc", "r_acc", "tpr", "fpr", "max_J", "r_J", "tpr", "fpr"
    );
    for (name, m, _) in rows {
        s += &format!(
            "{:<w$} {:>7.4} {:>8.4} {:>7} {:>6.3} {:>6.3} {:>8.4} {:>7} {:>6.3} {:>6.3}\n",
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
