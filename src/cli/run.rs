//! `run`: watch cameras live and write burst alerts to stdout as JSON Lines. A lab's
//! cameras come from a config file (`--config`); one-off runs name sources on the command
//! line, all with the same settings.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use burstwatch::alert::ScoreKind;
use burstwatch::capture::preprocess::Preprocess;
use burstwatch::capture::{Secret, SourceSpec};
use burstwatch::engine::{Device, Mode};
use burstwatch::frame::Crop;
use burstwatch::live::{ModelChoice, Runner, SourceConfig};
use burstwatch::output::event::Emit;
use burstwatch::output::JsonLines;
use burstwatch::Error;

use super::one_of;

const EXAMPLES: &str = "\
Examples:
  burstwatch run --config /etc/burstwatch/lab.toml          # every tank of the lab
  burstwatch run --source sim:1 --duration 60               # the simulated tank for a minute
  burstwatch run --source rtsp://lab@camera.lab/stream1     # password from BURSTWATCH_RTSP_PASSWORD
  burstwatch run --source tank.mkv --model none             # a recording, the baseline alone
  burstwatch run --source tank.mkv --fast --emit all        # as fast as it decodes, every frame
  burstwatch run --source \"gst:v4l2src device=/dev/video0\"  # any GStreamer video branch

Environment:
  BURSTWATCH_RTSP_PASSWORD  password of an --source rtsp://user@host/... camera (kept out of ps)
  BURSTWATCH_LOG            log filter (error, warn, info, debug, trace, target=level)
  BURSTWATCH_LOG_FORMAT     text or json
  BURSTWATCH_THREADS        CPU engine threads per camera (default: every core)

Exit codes: 0 done (or stdout closed), 2 bad input or config found at start,
1 a failure after the run started.";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("cameras").required(true).args(["config", "sources"])))]
pub struct RunArgs {
    /// The lab's config file (TOML): a [defaults] table and one [[camera]] table per
    /// camera, each with its own settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// rtsp://[user@]host[:port]/path, a video file (path or file:// URI),
    /// gst:<launch line ending in a video branch>, or sim[:SEED]. Repeat for several
    /// cameras, all with the settings below.
    #[arg(long = "source", value_name = "SOURCE", conflicts_with = "config")]
    pub sources: Vec<String>,
    /// The ConvLSTM: `default` (the model embedded in the binary), `none` (the baseline
    /// alone), a Keras SavedModel directory or a .safetensors model.
    #[arg(long, default_value = "default", conflicts_with = "config")]
    pub model: String,
    /// How the model runs per frame: continuous (one state per phase, ~30x cheaper,
    /// within ~1e-4 of the exact window) or exact (every frame's original window).
    #[arg(long, default_value = "continuous", value_parser = one_of::<Mode>(&["continuous", "exact"]), conflicts_with = "config")]
    pub mode: Mode,
    /// Where the model runs: auto (CUDA device 0 when usable, else the CPU), cpu, cuda,
    /// cuda:N.
    #[arg(long, default_value = "auto", conflicts_with = "config")]
    pub device: Device,
    /// Crop x,y,w,h (source pixels) before scaling to 320x240.
    #[arg(long, conflicts_with = "config")]
    pub crop: Option<Crop>,
    /// Make raw camera frames look like the study's (bright fish on black).
    #[arg(long, default_value = "none", value_parser = one_of::<Preprocess>(&["none", "invert", "bgsub"]), conflicts_with = "config")]
    pub preprocess: Preprocess,
    /// Read files as fast as they decode instead of at real speed.
    #[arg(long, conflicts_with = "config")]
    pub fast: bool,
    /// Alert threshold [default: the model file's own thresholds for the fused and model
    /// scores when it carries them, else the study's Youden-optimal threshold of the
    /// score: fused 0.533, model 0.308, baseline 0.604].
    #[arg(long, conflicts_with = "config")]
    pub threshold: Option<f64>,
    /// Score that drives alerts (without a model: the baseline).
    #[arg(long, default_value = "fused", value_parser = one_of::<ScoreKind>(&["fused", "model", "baseline"]), conflicts_with = "config")]
    pub score: ScoreKind,
    /// Which lines to write: alerts (alert, outcome, gap, status, stats) or all (also a
    /// prediction line for every frame).
    #[arg(long, default_value = "alerts", value_parser = one_of::<Emit>(&["alerts", "all"]), conflicts_with = "config")]
    pub emit: Emit,
    /// RTSP jitter-buffer latency in milliseconds.
    #[arg(long, default_value_t = 100, conflicts_with = "config")]
    pub rtsp_latency_ms: u32,
    /// Seconds between periodic stats lines.
    #[arg(long, default_value_t = 10.0, conflicts_with = "config")]
    pub stats_every: f64,
    /// Stop after this many seconds, as on SIGINT (flush, final stats, exit 0).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
}

/// How long a stopping run may take before the process exits regardless.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The password of a one-off `--source rtsp://user@host/...`, from the environment so
/// that it never shows in `ps`.
const RTSP_PASSWORD_ENV: &str = "BURSTWATCH_RTSP_PASSWORD";

/// The cameras of a one-off run: every `--source` with the command line's settings; a
/// source given twice is told apart by `#2`, `#3`, ...
fn one_off_cameras(a: &RunArgs) -> anyhow::Result<Vec<SourceConfig>> {
    if !(a.stats_every > 0.0 && a.stats_every.is_finite()) {
        return Err(
            Error::Input("--stats-every: expected a positive number of seconds".into()).into(),
        );
    }
    let password = std::env::var(RTSP_PASSWORD_ENV).ok().map(Secret::new);
    let mut cameras: Vec<SourceConfig> = Vec::new();
    for s in &a.sources {
        let mut spec = SourceSpec::parse(s)?;
        if spec.user().is_some() && !spec.has_password() {
            spec = spec.with_credentials(None, password.clone());
        }
        let mut name = spec.display.clone();
        let same = cameras
            .iter()
            .filter(|c| c.source.display == spec.display)
            .count();
        if same > 0 {
            name = format!("{name}#{}", same + 1);
        }
        let mut c = SourceConfig::new(name, spec);
        c.capture.crop = a.crop;
        c.capture.fast = a.fast;
        c.capture.rtsp_latency_ms = a.rtsp_latency_ms;
        c.preprocess = a.preprocess;
        c.model = ModelChoice::parse(&a.model);
        c.mode = a.mode;
        c.device = a.device;
        c.score = a.score;
        c.threshold = a.threshold;
        c.emit = a.emit;
        c.stats_every = Duration::from_secs_f64(a.stats_every);
        cameras.push(c);
    }
    Ok(cameras)
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let cameras = match &a.config {
        Some(path) => burstwatch::config::load(path)?.sources(),
        None => one_off_cameras(&a)?,
    };
    let mut runner = Runner::new(cameras)?;
    if let Some(d) = a.duration {
        if !(d > 0.0 && d.is_finite()) {
            return Err(Error::Input(format!(
                "--duration {d}: expected a positive number of seconds"
            ))
            .into());
        }
        runner = runner.with_duration(Duration::from_secs_f64(d));
    }
    let stop = runner.stop_handle();
    {
        let stop = stop.clone();
        // SIGINT and SIGTERM: stop capturing, flush what was computed, exit 0.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    {
        // Once asked to stop (signal, --duration, closed stdout), the run ends within a
        // second. Should a GStreamer element hang on its way down, the process still goes:
        // every line was flushed when it was written, so nothing written is lost.
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(STOP_GRACE);
            tracing::warn!("the run did not stop within {STOP_GRACE:?}; exiting anyway");
            std::process::exit(0);
        });
    }
    runner.run(vec![Box::new(JsonLines::stdout())])?;
    Ok(())
}
