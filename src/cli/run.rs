//! `run`: watch cameras live and write burst alerts to stdout as JSON Lines. A lab's
//! cameras come from a config file (`--config`); one-off runs name sources on the command
//! line, all with the same settings.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use burstwatch::alert::ScoreKind;
use burstwatch::capture::preprocess::Preprocess;
use burstwatch::capture::{RtspTransport, Secret, SourceSpec};
use burstwatch::clips::ClipSettings;
use burstwatch::engine::{Device, Mode};
use burstwatch::frame::Crop;
use burstwatch::live::{Board, ModelChoice, Reloader, Runner, SourceConfig};
use burstwatch::output::event::Emit;
use burstwatch::output::{
    mqtt, EventSink, JsonLines, MqttSettings, OutputSettings, WebhookSettings,
};
use burstwatch::web::{EventStream, HttpSettings, WebServer};
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
  burstwatch run --source sim:1 --mqtt mqtt://127.0.0.1/lab/rack3  # alerts into a broker too
  burstwatch run --source tank.mkv --clips clips/ && burstwatch review clips/  # see every alert
  burstwatch run --config lab.toml --http 0.0.0.0:8080       # the tanks live in a browser, /metrics

Signals: SIGINT and SIGTERM stop the run (flush, final stats, exit 0); SIGHUP reloads
--config: cameras added start, removed ones stop, changed ones restart, the rest go on.

Environment:
  BURSTWATCH_RTSP_PASSWORD  password of an --source rtsp://user@host/... camera (kept out of ps)
  BURSTWATCH_MQTT_PASSWORD  password of an --mqtt mqtt://user@host/... broker
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
    /// How long a camera's ready model step waits for the other cameras' to batch them
    /// (cameras with the same model, mode and device share one engine) [default: 1 on
    /// CUDA, 0 on the CPU; a config's [engine] batch_wait_ms]. Replaces the config's.
    #[arg(long, value_name = "MS")]
    pub batch_wait_ms: Option<f64>,
    /// Read files as fast as they decode (and run the simulator as fast as it is scored)
    /// instead of at real speed, losing no frame.
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
    /// RTSP lower transport: auto (TCP first; UDP when the camera refuses TCP, TCP again
    /// when UDP packets do not arrive), tcp or udp.
    #[arg(long, default_value = "auto", value_parser = one_of::<RtspTransport>(&["auto", "tcp", "udp"]), conflicts_with = "config")]
    pub rtsp_transport: RtspTransport,
    /// Seconds between periodic stats lines.
    #[arg(long, default_value_t = 10.0, conflicts_with = "config")]
    pub stats_every: f64,
    /// Stop after this many seconds, as on SIGINT (flush, final stats, exit 0).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Publish every event to an MQTT broker too: mqtt://[user@]host[:port]/PREFIX (or
    /// mqtts://). With --config it replaces the file's [output.mqtt].
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// POST alerts and outcomes to this http(s):// URL too; repeat for several.
    #[arg(long = "webhook", value_name = "URL")]
    pub webhooks: Vec<String>,
    /// A clip (MP4, 5 s before the alert to 3 s after its outcome) and a snapshot (PNG) of
    /// every alert into DIR/<camera>/, at most 2000 MB (a config file sets these in
    /// [output.clips]).
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    pub clips: Option<PathBuf>,
    /// Serve the live page, /metrics (Prometheus), /healthz and /api/cameras on IP:PORT
    /// (127.0.0.1:8080 for this machine only; 0.0.0.0:8080 for the lab). With --config
    /// it replaces the file's [http] listen.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<String>,
    /// Every web request must carry the token held in this environment variable
    /// (Authorization: Bearer ..., or ?token=... once on the page).
    #[arg(long, value_name = "NAME")]
    pub http_token_env: Option<String>,
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
        c.capture.rtsp_transport = a.rtsp_transport;
        c.preprocess = a.preprocess;
        c.model = ModelChoice::parse(&a.model);
        c.mode = a.mode;
        c.device = a.device;
        c.score = a.score;
        c.threshold = a.threshold;
        c.emit = a.emit;
        c.stats_every = Duration::from_secs_f64(a.stats_every);
        c.clips = a.clips.clone().map(ClipSettings::new);
        cameras.push(c);
    }
    Ok(cameras)
}

/// The outputs of the config file with those of the command line.
fn outputs(a: &RunArgs, mut from_file: OutputSettings) -> anyhow::Result<OutputSettings> {
    if let Some(url) = &a.mqtt {
        let mut m = MqttSettings::from_url(url)?;
        if m.username.is_some() {
            if let Ok(p) = std::env::var(mqtt::PASSWORD_ENV) {
                m.password = Some(Secret::new(p));
                m.password_from = Some(format!("env {}", mqtt::PASSWORD_ENV));
            }
        }
        m.check()?;
        from_file.mqtt = Some(m);
    }
    for url in &a.webhooks {
        let w = WebhookSettings::new(url.clone());
        w.check()?;
        from_file.webhooks.push(w);
    }
    Ok(from_file)
}

/// The web page's settings: the config file's `[http]` with the command line's.
fn http(a: &RunArgs, from_file: Option<HttpSettings>) -> anyhow::Result<Option<HttpSettings>> {
    let mut http = match &a.http {
        Some(listen) => {
            let mut h = HttpSettings::parse(listen)?;
            if let Some(f) = from_file {
                (h.token, h.token_from) = (f.token, f.token_from);
            }
            Some(h)
        }
        None => from_file,
    };
    if let Some(name) = &a.http_token_env {
        let Some(h) = http.take() else {
            return Err(Error::Input(
                "--http-token-env without --http (or [http] in the config); expected both".into(),
            )
            .into());
        };
        http = Some(h.with_token_env(name, &|n| std::env::var(n).ok())?);
    }
    Ok(http)
}

/// Malloc arenas for a run that goes on for months: glibc gives threads arenas of their own
/// (up to 8 per core), and every camera session brings new GStreamer threads; memory they
/// freed stays in their arena. Measured over 12 restarts of an RTSP camera's server: RSS
/// 71.9 -> 82.9 MB and still rising with the default; 69.6 -> 73.7 MB, flat from the fourth
/// restart on, with two arenas (one: 70-72 MB). The hour's soak grew 50 MB before this.
/// Two, not one, so that the streaming threads do not all queue on one lock. An explicit
/// `MALLOC_ARENA_MAX` in the environment wins.
fn bound_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes a count.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    bound_malloc_arenas();
    let (cameras, from_file, http_from_file, mut batch_wait) = match &a.config {
        Some(path) => {
            let lab = burstwatch::config::load(path)?;
            (lab.sources(), lab.outputs, lab.http, lab.batch_wait)
        }
        None => (one_off_cameras(&a)?, OutputSettings::default(), None, None),
    };
    if let Some(ms) = a.batch_wait_ms {
        let wait = burstwatch::config::batch_wait_ms(ms)
            .map_err(|e| Error::Input(format!("--batch-wait-ms {ms}; {e}")))?;
        batch_wait = Some(wait);
    }
    let outputs = outputs(&a, from_file.clone())?;
    let http = http(&a, http_from_file.clone())?;
    let cameras_have_clips = cameras.iter().any(|c| c.clips.is_some());
    let mut runner = Runner::new(cameras)?.with_batch_wait(batch_wait);
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
    let reload = a.config.clone().map(|path| {
        (
            path,
            runner.reloader(),
            (from_file, http_from_file, batch_wait),
        )
    });
    handle_signals(stop.clone(), reload)?;
    // Once asked to stop (signal, --duration, closed stdout), the cameras end within a
    // second and the network outputs have `drain` to deliver what they hold. Should a
    // GStreamer element hang on its way down, the process still goes: every line was
    // flushed when it was written, and what a network output holds is in its spool.
    let clips = cameras_have_clips.then_some(burstwatch::clips::FINISH_WAIT);
    let grace = STOP_GRACE + outputs.drain() + clips.unwrap_or_default();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(grace);
        tracing::warn!("the run did not stop within {grace:?}; exiting anyway");
        std::process::exit(0);
    });
    let mut sinks: Vec<Box<dyn EventSink>> = vec![Box::new(JsonLines::stdout())];
    sinks.extend(outputs.start()?);
    // The web server lives as long as the run; it is stopped once every line is written.
    let _web = match &http {
        Some(h) => {
            let board = Board::new();
            runner = runner.with_board(board.clone());
            let (stream, clients) = EventStream::new();
            sinks.push(Box::new(stream));
            Some(WebServer::start(h, board, clients)?)
        }
        None => None,
    };
    runner.run(sinks)?;
    Ok(())
}

/// What a run started with that a reload does not change: the outputs, `[http]` and the
/// batch wait (a reload that changes them says they take effect at the next start).
type StartedWith = (OutputSettings, Option<HttpSettings>, Option<Duration>);

/// SIGINT and SIGTERM stop the run (flush what was computed, exit 0); SIGHUP reloads the
/// config file, when there is one.
fn handle_signals(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reload: Option<(PathBuf, Reloader, StartedWith)>,
) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Input(format!("cannot handle signals: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal != SIGHUP {
                    stop.store(true, Ordering::Relaxed);
                    continue;
                }
                let Some((path, reloader, (outputs, http, batch_wait))) = &reload else {
                    tracing::info!("SIGHUP: nothing to reload (the cameras are not from --config)");
                    continue;
                };
                tracing::info!("SIGHUP: reloading {}", path.display());
                match burstwatch::config::load(path) {
                    Ok(lab) => {
                        if lab.outputs != *outputs {
                            tracing::warn!(
                                "the [output] tables changed; they take effect at the next start"
                            );
                        }
                        if lab.http != *http {
                            tracing::warn!(
                                "the [http] table changed; it takes effect at the next start"
                            );
                        }
                        if lab.batch_wait != *batch_wait {
                            tracing::warn!(
                                "the [engine] table changed; it takes effect at the next start"
                            );
                        }
                        reloader.reload(lab.sources());
                    }
                    Err(e) => {
                        tracing::error!("reload refused: {e}; the cameras run on unchanged")
                    }
                }
            }
        })
        .map_err(|e| Error::Input(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}
