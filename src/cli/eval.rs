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
use burstwatch::eval::events::{self, EventSummary, Ground, WARN_WINDOW_S};
use burstwatch::eval::{
    check_length, evaluation_range, plot, read_ytilde, Predictor, Roc, Summary,
};
use burstwatch::frame::{self, Crop};
use burstwatch::io::npy;
use burstwatch::model::AlertThresholds;
use burstwatch::sim::record::Truth;
use burstwatch::sim::{self, Look, SimConfig, SimulatedTank};
use burstwatch::speed::{self, SpeedSeries, FIRST_FRAME, STUDY_BASELINE, STUDY_LABELS};
use burstwatch::Error;

use super::one_of;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// y~ series (.npy, shape (T,) or (T, 1)).
    #[arg(long, required_unless_present_any = ["video", "sim"], conflicts_with_all = ["video", "sim"])]
    pub ytilde: Option<PathBuf>,
    /// Or a recorded video (a file, path or file:// URI, or gst:<launch line>), decoded as
    /// `run` sees it: its y~, labels, baseline and the model's scores all come from it.
    #[arg(long, value_name = "FILE", conflicts_with = "sim")]
    pub video: Option<String>,
    /// Or the simulated tank with this seed, rendered straight into the model (the
    /// processed look, no file): its own ground truth judges it by events, as --truth.
    #[arg(long, value_name = "SEED", conflicts_with_all = ["truth", "crop", "preprocess"])]
    pub sim: Option<u64>,
    /// With --sim: seconds of the tank.
    #[arg(long, default_value_t = 600.0, requires = "sim")]
    pub seconds: f64,
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
    /// Draw the ROC curves and the y~ series coloured by score into this PNG (with
    /// --truth also NAME.events.png beside it: recall against false alarms per hour over
    /// thresholds, and the lead times).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Ground truth of the recording (`NAME.truth.json`, as `sim` writes it): also judge
    /// each predictor by events: chases warned, lead times, false alarms per hour.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// With --truth: seconds before a chase's start in which an alert warns of it (and
    /// after an alert in which a chase must start for it not to be a false alarm).
    #[arg(long, default_value_t = WARN_WINDOW_S, value_name = "SECONDS")]
    pub warn_window: f64,
}

/// Decodes a video once, computing its y~ and the model's scores on every frame; returns
/// y~ (length T), the model's scores on the evaluation range, named by the model, and the
/// alert thresholds the model carries.
fn score_video(
    video: &str,
    a: &EvalArgs,
) -> anyhow::Result<(Vec<f64>, Predictor, Option<AlertThresholds>)> {
    let scored = score_frames(a, Path::new(video), &mut |on_frame| {
        decode_source(video, a.crop, a.preprocess, on_frame).map(|_| ())
    })?;
    Ok(scored)
}

/// Renders `seconds` of the simulated tank `seed` into the model, as [`score_video`]
/// scores a video; also returns the tank's truth of those frames.
fn score_sim(
    seed: u64,
    seconds: f64,
    a: &EvalArgs,
) -> anyhow::Result<(Vec<f64>, Predictor, Option<AlertThresholds>, Truth)> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(
            Error::Input(format!("--seconds {seconds}: expected a positive number")).into(),
        );
    }
    let frames = (seconds * f64::from(sim::FPS)).round() as usize;
    let config = SimConfig {
        seed,
        look: Look::Processed,
        ..SimConfig::default()
    };
    let mut tank = SimulatedTank::new(config)?;
    let mut buf = vec![0u8; tank.frame_len()];
    let name = format!("sim:{seed}");
    let (y, p, t) = score_frames(a, Path::new(&name), &mut |on_frame| {
        for _ in 0..frames {
            tank.render_into(&mut buf);
            on_frame(&buf);
        }
        Ok(())
    })?;
    let truth = Truth::of(&tank, frames);
    Ok((y, p, t, truth))
}

/// Where the frames come from: calls its argument with every frame, in order.
type FrameSource<'a> = dyn FnMut(&mut dyn FnMut(&[u8])) -> burstwatch::Result<()> + 'a;

/// Scores every frame `source` gives (named `what`), as [`score_video`] says.
fn score_frames(
    a: &EvalArgs,
    what: &Path,
    source: &mut FrameSource<'_>,
) -> anyhow::Result<(Vec<f64>, Predictor, Option<AlertThresholds>)> {
    let model = super::load_model_or_default(a.model.as_deref())?;
    frame::check_model_input(&model)?;
    let name = model.name.clone();
    let thresholds = model.thresholds;
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
    source(&mut |frame| {
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
    check_length(what, "video", y.len())?;
    tracing::info!(
        frames = y.len(),
        model = %name,
        mode = %a.mode,
        engine = %engine_name,
        fps = format!("{:.1}", y.len() as f64 / start.elapsed().as_secs_f64()),
        "scored the video"
    );
    let scores = p[evaluation_range(y.len())].to_vec();
    Ok((y, Predictor { name, scores }, thresholds))
}

/// Reads a recording's ground truth (before any decoding, so that a mistake is found at
/// once).
fn read_truth(path: &Path, window_s: f64) -> anyhow::Result<Truth> {
    read_warn_window(window_s)?;
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let truth: Truth = serde_json::from_str(&text).map_err(|e| {
        Error::bad_input(
            path,
            format!("{e}; expected a NAME.truth.json as `sim` writes it"),
        )
    })?;
    Ok(truth)
}

fn read_warn_window(window_s: f64) -> anyhow::Result<()> {
    if !(window_s > 0.0 && window_s.is_finite()) {
        return Err(Error::Input(format!(
            "--warn-window {window_s}: expected a positive number of seconds"
        ))
        .into());
    }
    Ok(())
}

/// What the events are judged against: the truth, checked to belong to a series of `t`
/// frames.
fn ground(path: &Path, truth: Truth, t: usize, window_s: f64) -> anyhow::Result<Ground> {
    if truth.frames != t {
        return Err(Error::bad_input(
            path,
            format!(
                "the truth of {} frames; expected {t}, one per frame of the evaluated video",
                truth.frames
            ),
        )
        .into());
    }
    Ok(Ground {
        chase_starts: truth.chases.iter().map(|c| c.start_frame).collect(),
        frames: truth.frames,
        fps: f64::from(truth.fps),
        window_s,
    })
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
    let truth = match &a.truth {
        Some(path) => Some((path, read_truth(path, a.warn_window)?)),
        None => None,
    };
    let mut own_truth = None;
    let (y, series, model, carried) = match (&a.ytilde, &a.video, a.sim) {
        (Some(path), ..) => (read_ytilde(path)?, path.display().to_string(), None, None),
        (None, Some(video), _) => {
            let (y, model, carried) = score_video(video, &a)?;
            (y, video.clone(), Some(model), carried)
        }
        (None, None, Some(seed)) => {
            // Checked before the tank runs, as --truth is before decoding.
            read_warn_window(a.warn_window)?;
            let (y, model, carried, truth) = score_sim(seed, a.seconds, &a)?;
            own_truth = Some(truth);
            (y, format!("sim:{seed}"), Some(model), carried)
        }
        (None, None, None) => unreachable!("clap requires --ytilde, --video or --sim"),
    };
    let t = y.len();
    let ground = match (truth, own_truth) {
        (Some((path, truth)), _) => Some(ground(path, truth, t, a.warn_window)?),
        (None, Some(truth)) => Some(ground(Path::new(&series), truth, t, a.warn_window)?),
        (None, None) => None,
    };
    let scored_model = model.is_some();
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
    // By events, each predictor at the threshold `run` would alert at: the model's and
    // the fused score's from the model file when it carries them, else the study's;
    // another --pred at its Youden-optimal threshold here.
    let by_events: Vec<Option<(EventSummary, Vec<EventSummary>)>> = match &ground {
        None => vec![None; rows.len()],
        Some(g) => predictors
            .iter()
            .zip(&rows)
            .enumerate()
            .map(|(k, (p, (name, summary, _)))| {
                let threshold = match name.as_str() {
                    "baseline" => Some(ScoreKind::Baseline.default_threshold()),
                    "fused" => Some(ScoreKind::Fused.threshold_for(carried.as_ref())),
                    _ if k == 0 && scored_model => {
                        Some(ScoreKind::Model.threshold_for(carried.as_ref()))
                    }
                    _ => summary.r_j,
                }?;
                let at = events::evaluate(&p.scores, range.start, g, threshold);
                Some((at, events::curve(&p.scores, range.start, g)))
            })
            .collect(),
    };
    if let (Some(path), Some(_)) = (&a.plot, &ground) {
        let path = path.with_extension("events.png");
        let drawn: Vec<(&str, &EventSummary, &[EventSummary])> = rows
            .iter()
            .zip(&by_events)
            .filter_map(|((name, ..), ev)| {
                ev.as_ref()
                    .map(|(at, curve)| (name.as_str(), at, curve.as_slice()))
            })
            .collect();
        plot::events_figure(&path, &drawn)
            .with_context(|| format!("{}: cannot draw the figure", path.display()))?;
    }
    let text = if a.json {
        let mut obj = serde_json::Map::new();
        for ((name, s, _), ev) in rows.iter().zip(&by_events) {
            let mut v = serde_json::to_value(s)?;
            if let Some((at, curve)) = ev {
                v["events"] = serde_json::to_value(at)?;
                v["events_curve"] = serde_json::to_value(curve)?;
            }
            obj.insert(name.clone(), v);
        }
        serde_json::to_string_pretty(&obj)? + "\n"
    } else {
        let mut text = table(&rows, labels);
        if let Some(g) = &ground {
            text += &events_table(&rows, &by_events, g);
        }
        text
    };
    super::print_stdout(&text)
}

/// The predictor column's width: model names (`eval --video`) can be longer than the
/// usual 12.
fn name_width(rows: &[(String, Summary, Roc)]) -> usize {
    rows.iter()
        .map(|(n, ..)| n.len())
        .max()
        .unwrap_or(0)
        .max(12)
}

/// The by-events table: one row per predictor at its alert threshold.
fn events_table(
    rows: &[(String, Summary, Roc)],
    by_events: &[Option<(EventSummary, Vec<EventSummary>)>],
    g: &Ground,
) -> String {
    let w = name_width(rows);
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let mut s = String::new();
    for ((name, ..), ev) in rows.iter().zip(by_events) {
        let Some((e, _)) = ev else { continue };
        if s.is_empty() {
            s = format!(
                "\nby events (warn window {:.1} s, {} chases that could be warned, {:.2} h scored)\n\
                 {:<w$} {:>9} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8} {:>6} {:>6}\n",
                g.window_s,
                e.chases,
                e.hours,
                "predictor", "threshold", "alerts", "warned", "recall", "lead_p50", "lead_p10",
                "lead_p90", "FA", "FA/h"
            );
        }
        s += &format!(
            "{:<w$} {:>9.3} {:>6} {:>6} {:>6} {:>9} {:>8} {:>8} {:>6} {:>6.1}\n",
            name,
            e.threshold,
            e.alerts,
            e.warned,
            opt(e.recall, 3),
            opt(e.lead_median_s, 2),
            opt(e.lead_p10_s, 2),
            opt(e.lead_p90_s, 2),
            e.false_alarms,
            e.false_alarms_per_hour
        );
    }
    s
}

fn table(rows: &[(String, Summary, Roc)], labels: &[bool]) -> String {
    let fmt_r = |r: Option<f64>| r.map_or("inf".to_string(), |r| format!("{r:.3}"));
    let w = name_width(rows);
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
