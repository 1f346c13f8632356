//! `run`: watch one or more sources live and write burst alerts to stdout as JSON Lines.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::alert::{AlertRule, ScoreKind};
use crate::capture::preprocess::Preprocess;
use crate::capture::{CaptureSettings, Crop, SourceSpec};
use crate::engine::device::Device;
use crate::engine::Mode;
use crate::live::{self, InferenceSettings, RunConfig};

/// Which events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// alert, outcome, gap, status and stats lines.
    Alerts,
    /// Also a `prediction` line for every frame.
    All,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// rtsp://[user:pass@]host/path, a video file (path or file:// URI),
    /// gst:<launch line ending in a video branch>, or sim[:SEED]. Repeat for several cameras.
    #[arg(long = "source", required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The ConvLSTM: a Keras SavedModel directory or a .safetensors model
    /// (`burstwatch import`, `burstwatch train`) [default: the model embedded in the
    /// binary]. `none`: no model, alerts come from the baseline alone.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// How the model runs per frame: `continuous` (one state per phase, ~30x cheaper, within
    /// ~1e-4 of the exact window) or `exact` (the original window output for every frame).
    #[arg(long, default_value = "continuous")]
    pub mode: Mode,
    /// Where the model runs: auto (CUDA device 0 when usable, else the CPU), cpu, cuda,
    /// cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: Device,
    /// Crop x,y,w,h (source pixels) before scaling to 320x240.
    #[arg(long, value_parser = clap::value_parser!(Crop))]
    pub crop: Option<Crop>,
    /// Make raw camera frames look like the study's (bright fish on black).
    #[arg(long, value_enum, default_value_t = Preprocess::None)]
    pub preprocess: Preprocess,
    /// Read files as fast as possible instead of at real speed.
    #[arg(long)]
    pub fast: bool,
    /// Alert threshold [default: the model file's own thresholds for the fused and model
    /// scores when it carries them, else the study's Youden-optimal threshold of the score:
    /// fused 0.533, model 0.308, baseline 0.604].
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Score that drives alerts (without a model: the baseline).
    #[arg(long, value_enum, default_value_t = ScoreKind::Fused)]
    pub score: ScoreKind,
    /// Which lines to write.
    #[arg(long, value_enum, default_value_t = Emit::Alerts)]
    pub emit: Emit,
    /// RTSP jitter-buffer latency in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub rtsp_latency_ms: u32,
    /// Seconds between periodic stats lines.
    #[arg(long, default_value_t = 10.0)]
    pub stats_every: f64,
    /// Stop after this many seconds, as on SIGINT (flush, final stats, exit 0).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
}

/// `--model none`: run without a model (the baseline alone). A file really named `none` is
/// still reachable as `./none`.
const NO_MODEL: &str = "none";

/// How long a stopping run may take before the process exits regardless.
const STOP_GRACE: Duration = Duration::from_secs(3);

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let sources = a
        .sources
        .iter()
        .map(|s| SourceSpec::parse(s))
        .collect::<crate::Result<Vec<_>>>()?;
    let (model, carried) = match a.model.as_deref() {
        Some(path) if path == Path::new(NO_MODEL) => (None, None),
        path => {
            let model = super::load_model_or_default(path)?;
            let from = if path.is_some() {
                "file"
            } else {
                "embedded default"
            };
            tracing::info!(model = %model.name, from, mode = %a.mode, "model loaded");
            let carried = model.thresholds;
            (
                Some(live::engine_factory(model, a.mode, a.device)?),
                carried,
            )
        }
    };
    let score = if model.is_some() {
        a.score
    } else {
        tracing::info!("no model: scoring with the statistical baseline alone");
        ScoreKind::Baseline
    };
    let (threshold, from) = match (a.threshold, carried) {
        (Some(t), _) => (t, "--threshold"),
        (None, Some(t)) if score != ScoreKind::Baseline => {
            (score.threshold_for(Some(&t)), "the model file's")
        }
        (None, _) => (score.default_threshold(), "the study's"),
    };
    let score_name = format!("{score:?}").to_lowercase();
    tracing::info!("alert threshold {threshold} on the {score_name} score ({from})");
    if !(0.0..=1.0).contains(&threshold) {
        return Err(crate::Error::Invalid(format!(
            "--threshold {threshold}: expected a probability between 0 and 1"
        ))
        .into());
    }
    if !(a.stats_every > 0.0 && a.stats_every.is_finite()) {
        return Err(crate::Error::Invalid(
            "--stats-every: expected a positive number of seconds".into(),
        )
        .into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // SIGINT and SIGTERM: stop capturing, flush what was computed, exit 0.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    {
        // Once asked to stop (signal, --duration, closed stdout), the run ends within a
        // second. Should a GStreamer element hang on its way down, the process still goes:
        // every line was flushed when it was written, so nothing computed is lost.
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(STOP_GRACE);
            tracing::warn!("a source did not stop within {STOP_GRACE:?}; exiting anyway");
            std::process::exit(0);
        });
    }
    if let Some(d) = a.duration {
        if !(d > 0.0 && d.is_finite()) {
            return Err(crate::Error::Invalid(format!(
                "--duration {d}: expected a positive number of seconds"
            ))
            .into());
        }
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(d));
            stop.store(true, Ordering::Relaxed);
        });
    }
    let config = RunConfig {
        sources,
        capture: CaptureSettings {
            crop: a.crop,
            fast: a.fast,
            rtsp_latency_ms: a.rtsp_latency_ms,
            ..CaptureSettings::default()
        },
        inference: InferenceSettings {
            score,
            rule: AlertRule::new(threshold),
            emit_all: a.emit == Emit::All,
            preprocess: a.preprocess,
            stats_every: Duration::from_secs_f64(a.stats_every),
        },
        model: model.as_ref().map(|m| m as &live::ModelFactory),
    };
    live::run(config, std::io::stdout(), stop)?;
    Ok(())
}
