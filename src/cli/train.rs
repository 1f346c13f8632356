//! `train`: fit the ConvLSTM to a lab's own videos (issue 7). The work is in
//! [`burstwatch::train`]; this module loads the data, draws the progress and prints the result.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use burstwatch::capture::preprocess::Preprocess;
use burstwatch::capture::read::decode_source;
use burstwatch::frame::{self, Crop};
use burstwatch::io::{read_frames, Frames};
use burstwatch::model::{InputShape, STUDY_INPUT};
use burstwatch::train::data::Clip;
use burstwatch::train::fit::{class_weights, validate, Progress, TrainConfig, Trainer};
use burstwatch::train::Net;
use burstwatch::Error;

use super::one_of;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training videos (any file `run --source` reads, or .npy frames at 240x320),
    /// processed look: bright fish on black (see `run --preprocess`).
    #[arg(long, required = true, num_args = 1..)]
    pub video: Vec<String>,
    /// Validation video; the best model on it is kept [default: the last 15 % of the last
    /// training video, held out].
    #[arg(long)]
    pub val: Option<String>,
    /// Start from this model (a study SavedModel, a .safetensors model) instead of fresh
    /// weights: fine-tuning. Its architecture must be upbeat-snowflake-91's.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Where the best model is written (.safetensors); the state to resume from is
    /// written beside it (OUT.train-state.json).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Name stored in the model [default: the output file's stem].
    #[arg(long)]
    pub name: Option<String>,
    /// Passes over the training videos (a resumed run trains on up to this many).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Adam's learning rate [default: 2e-3 from fresh weights, 3e-5 with --init].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Chains (continuous states over stretches of video) per update [default: 2 from
    /// fresh weights, one per core for the most updates per epoch; 8 with --init, smaller
    /// steps near a trained optimum].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Steps (4-frame slices) per chunk of back-propagation through time; every step is a
    /// labelled sample, one update per chunk [default: 15 from fresh weights, 30 with
    /// --init].
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Length of the stretches of video that chains run over, in seconds.
    #[arg(long, default_value_t = 80.0)]
    pub segment_seconds: f64,
    /// Phases (of 4) each stretch is run at per epoch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4))]
    pub phases: u64,
    /// Filters of a fresh model's ConvLSTM (the study's: 16).
    #[arg(long, default_value_t = 16, conflicts_with = "init")]
    pub filters: usize,
    /// Seed of the initial weights and of the sampling of chains and flips.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads [default: the cores, or BURSTWATCH_THREADS].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop after the epoch that would otherwise end past this many minutes.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Ignore a state left by an interrupted run and start over.
    #[arg(long)]
    pub fresh: bool,
    /// Crop x,y,w,h (source pixels) of every video before scaling, as `run --crop`.
    #[arg(long)]
    pub crop: Option<Crop>,
    /// Preprocessing of the decoded frames, as `run --preprocess` (train with what you
    /// will run with).
    #[arg(long, default_value = "none", value_parser = one_of::<Preprocess>(&["none", "invert", "bgsub"]))]
    pub preprocess: Preprocess,
}

/// A training or validation clip: a video decoded as `run` sees it (crop, preprocessing),
/// or frames from a file.
fn load_clip(a: &TrainArgs, path: &str, input: InputShape) -> anyhow::Result<Clip> {
    tracing::info!("reading {path}");
    let p = std::path::Path::new(path);
    let frames = if p.extension().is_some_and(|e| e == "npy") || p.is_dir() {
        read_frames(p)?
    } else {
        let mut data = Vec::new();
        let count =
            decode_source(path, a.crop, a.preprocess, |px| data.extend_from_slice(px))? as usize;
        Frames {
            count,
            height: frame::HEIGHT,
            width: frame::WIDTH,
            data,
        }
    };
    Ok(Clip::from_frames(path, &frames, input)?)
}

pub fn train(a: TrainArgs) -> anyhow::Result<()> {
    let init = a.init.as_deref().map(burstwatch::model::load).transpose()?;
    let input = init.as_ref().map_or(STUDY_INPUT, |m| m.input);
    let name = a.name.clone().unwrap_or_else(|| {
        a.out
            .file_stem()
            .map_or("burstwatch".into(), |s| s.to_string_lossy().into_owned())
    });
    let mut net = match &init {
        Some(m) => Net::from_model(m).map_err(Error::Model)?,
        None => {
            if a.filters == 0 || a.filters > 256 {
                return Err(
                    Error::Input(format!("--filters {}; expected 1 to 256", a.filters)).into(),
                );
            }
            Net::fresh(&name, input, a.filters, a.seed)
        }
    };
    net.name = name;
    let mut clips = Vec::new();
    for v in &a.video {
        clips.push(load_clip(&a, v, input)?);
    }
    let val = match &a.val {
        Some(v) => load_clip(&a, v, input)?,
        None => {
            let last = clips.last_mut().expect("clap requires a video");
            let at = last.len() * 85 / 100;
            let need = input.slices * input.channels + 200;
            if at < need || last.len() - at < need {
                return Err(Error::Input(format!(
                    "{}: {} frames are too few to hold out a validation part; pass --val",
                    last.name,
                    last.len()
                ))
                .into());
            }
            last.split_off(at)
        }
    };
    let segment = (a.segment_seconds * 30.0).round();
    let shortest = (input.slices * input.channels) as f64 + 60.0;
    if segment.is_nan() || segment < shortest {
        return Err(Error::Input(format!(
            "--segment-seconds {}; expected at least {:.1} (a window and some)",
            a.segment_seconds,
            shortest / 30.0
        ))
        .into());
    }
    // Fine-tuning starts near an optimum: smaller, less noisy steps (measured in the README).
    let tuning = init.is_some();
    let batch = a.batch.unwrap_or(if tuning { 8 } else { 2 });
    let chunk = a.chunk.unwrap_or(if tuning { 30 } else { 15 });
    if batch == 0 || chunk == 0 || a.epochs == 0 {
        return Err(Error::Input("--batch, --chunk and --epochs must be at least 1".into()).into());
    }
    let config = TrainConfig {
        epochs: a.epochs,
        lr: a.lr.unwrap_or(if tuning { 3e-5 } else { 2e-3 }),
        batch,
        chunk,
        segment: segment as usize,
        phases: a.phases as usize,
        threads: a
            .threads
            .unwrap_or_else(burstwatch::engine::cpu::default_threads),
        seed: a.seed,
        max_minutes: a.max_minutes,
    };
    let weights = class_weights(&clips);
    let frames: usize = clips.iter().map(Clip::len).sum();
    tracing::info!(
        "{} training frames ({:.1} min), {} validation frames; positive rate {:.3}, class weights {:.3} (no burst) / {:.3} (burst)",
        frames,
        frames as f64 / 1800.0,
        val.len(),
        weights.0,
        weights.0,
        weights.1
    );
    let fingerprint = serde_json::json!({
        "videos": clips.iter().map(|c| (&c.name, c.len())).collect::<Vec<_>>(),
        "val": (&val.name, val.len()),
        "init": a.init.as_ref().map(|p| p.display().to_string()),
        "crop": a.crop.map(|c| format!("{c:?}")), "preprocess": format!("{:?}", a.preprocess),
        "filters": net.shape.filters,
        "lr": config.lr, "batch": config.batch, "chunk": config.chunk,
        "segment": config.segment, "phases": config.phases, "seed": config.seed,
    })
    .to_string();
    // A model to start from is measured first, so that what training did shows.
    let initial = match &init {
        Some(_) => {
            let v = validate(&net, &val, weights)?;
            tracing::info!(
                "initial model on the validation clip: loss {:.4}, ROC-AUC {:.4} (baseline {:.4})",
                v.loss,
                v.model.auc,
                v.baseline.auc
            );
            Some(v)
        }
        None => None,
    };
    // The library says a state cannot be resumed; the flag that starts afresh is ours.
    let mut trainer =
        Trainer::new(net, config, &a.out, fingerprint, !a.fresh).map_err(|e| match e {
            Error::BadInput { path, what } => Error::BadInput {
                what: format!("{what}: --fresh starts over"),
                path,
            },
            other => other,
        })?;
    trainer.provenance = format!(
        "burstwatch {} {}",
        env!("CARGO_PKG_VERSION"),
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    if let Some(v) = &initial {
        trainer.start_from(v)?;
    }
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} updates, {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut recent = Vec::new();
    let mut last_auc = trainer.history.last().map(|r| r.val_auc);
    trainer.fit(&clips, &val, &mut |p| match p {
        Progress::EpochStart {
            epoch,
            epochs,
            updates,
        } => {
            bar.reset();
            bar.set_length(updates as u64);
            bar.set_prefix(format!("epoch {epoch}/{epochs}"));
            recent.clear();
        }
        Progress::Update { loss } => {
            if loss.is_finite() {
                recent.push(loss);
            }
            let tail = &recent[recent.len().saturating_sub(20)..];
            let mean = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
            bar.set_message(match last_auc {
                Some(auc) => format!("loss {mean:.4}, last validation ROC-AUC {auc:.4}"),
                None => format!("loss {mean:.4}"),
            });
            bar.inc(1);
        }
        Progress::EpochEnd(r) => {
            bar.finish_and_clear();
            last_auc = Some(r.val_auc);
            tracing::info!(
                "epoch {}: train loss {:.4}, validation loss {:.4}, ROC-AUC {:.4}{} ({:.0} s)",
                r.epoch,
                r.train_loss,
                r.val_loss,
                r.val_auc,
                if r.best { ", best so far: saved" } else { "" },
                r.seconds
            );
        }
    })?;
    // The figures of the saved model, as measured when it was saved: the best epoch's, or
    // the --init model's (epoch 0) when no epoch improved on it.
    let best = trainer.history.iter().rfind(|r| r.best);
    let (epoch, loss, auc, baseline, fused) = match (best, &initial) {
        (Some(r), _) => (r.epoch, r.val_loss, r.val_auc, r.baseline_auc, r.fused_auc),
        (None, Some(i)) => (0, i.loss, i.model.auc, i.baseline.auc, i.fused.auc),
        (None, None) => return Err(Error::Input("no epoch finished".into()).into()),
    };
    let before = initial.map_or(String::new(), |i| {
        format!(" (initial {:.4}, ROC-AUC {:.4})", i.loss, i.model.auc)
    });
    super::print_stdout(&format!(
        "{}: best epoch {epoch}{} of {}: validation loss {loss:.4}{before}, ROC-AUC {auc:.4} (baseline {baseline:.4}, fused {fused:.4})\n",
        a.out.display(),
        if epoch == 0 { " (the initial model: no epoch improved on it)" } else { "" },
        trainer.epochs_done(),
    ))
}
