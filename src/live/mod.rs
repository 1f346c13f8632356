//! A live run: many named cameras in one process, each with its own settings
//! ([`SourceConfig`]), each with a capture thread and an inference thread, all feeding the
//! outputs:
//!
//! ```text
//! source (GStreamer or simulator) -> frame ring -> camera thread (Scorer) -> outputs
//! ```
//!
//! [`Runner`] checks and prepares everything before anything starts (models loaded once
//! and shared, thresholds settled, the `start` line), then runs every camera to its end
//! or until it is stopped (a signal, a deadline, a closed stdout). A [`Reloader`] hands
//! it a new set of cameras while it runs (SIGHUP): cameras added start, cameras removed
//! stop, cameras whose settings changed restart, and the others go on untouched, their
//! windows and frame numbers with them.
//!
//! ```no_run
//! use std::time::Duration;
//! use burstwatch::capture::SourceSpec;
//! use burstwatch::live::{Runner, SourceConfig};
//! use burstwatch::output::JsonLines;
//!
//! let mut tank = SourceConfig::new("tank-a", SourceSpec::parse("sim:7")?);
//! tank.threshold = Some(0.55);
//! let runner = Runner::new(vec![tank])?.with_duration(Duration::from_secs(60));
//! runner.run(vec![Box::new(JsonLines::stdout())])?;
//! # Ok::<(), burstwatch::Error>(())
//! ```

pub mod bench;
pub mod board;
pub mod camera;
pub mod models;
pub mod scorer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::alert::{AlertRule, ScoreKind};
use crate::capture::preprocess::Preprocess;
use crate::capture::ring::{frame_ring, Overflow};
use crate::capture::{gst_source, pipeline, sim_source, CaptureSettings, SourceKind, SourceSpec};
use crate::clips::{ClipFeed, ClipSettings, Recorder, SourceView};
use crate::engine::{Device, Mode};
use crate::frame;
use crate::output::event::{CameraStart, Emit, Event, StartEvent, ThresholdFrom};
use crate::output::{Emitter, EventSink, Outputs, QueueLimits, Written};
use crate::{Error, Result};

pub use board::{Board, CameraBoard};
pub use models::{ModelChoice, ModelSet};
pub use scorer::{FrameModel, Scorer, ScorerSettings};

/// Everything one camera runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique in the run: the `source` of its events.
    pub name: String,
    /// What it watches (credentials kept apart).
    pub source: SourceSpec,
    /// Crop, real speed or not, RTSP latency, ring size.
    pub capture: CaptureSettings,
    pub preprocess: Preprocess,
    pub model: ModelChoice,
    pub mode: Mode,
    pub device: Device,
    pub score: ScoreKind,
    /// `None`: the model file's own threshold for the score, else the study's.
    pub threshold: Option<f64>,
    pub emit: Emit,
    /// Wall time between periodic `stats` lines.
    pub stats_every: Duration,
    /// A clip and a snapshot of every alert, into `clips.dir/<name>/`; `None`: none.
    pub clips: Option<ClipSettings>,
}

impl SourceConfig {
    /// A camera with the defaults: the embedded model, continuous mode, `auto` device,
    /// the fused score at its default threshold, alerts only, stats every 10 s.
    pub fn new(name: impl Into<String>, source: SourceSpec) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            source,
            capture: CaptureSettings::default(),
            preprocess: Preprocess::None,
            model: ModelChoice::Default,
            mode: Mode::Continuous,
            device: Device::Auto,
            score: ScoreKind::Fused,
            threshold: None,
            emit: Emit::Alerts,
            stats_every: Duration::from_secs(10),
            clips: None,
        }
    }

    /// Checks what can be checked without loading anything.
    fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Input(format!("camera {}: {what}", self.name)));
        if let Some(t) = self.threshold {
            if !(0.0..=1.0).contains(&t) {
                return bad(format!(
                    "threshold {t}; expected a probability between 0 and 1"
                ));
            }
        }
        let every = self.stats_every.as_secs_f64();
        if every <= 0.0 {
            return bad("stats_every: expected a positive number of seconds".into());
        }
        if self.capture.ring_slots == 0 {
            return bad("a ring of 0 slots; expected at least 1".into());
        }
        if let Some((_, what)) = self.clips.as_ref().and_then(ClipSettings::problem) {
            return bad(format!("clips: {what}"));
        }
        Ok(())
    }
}

/// One camera, ready to run.
struct Camera {
    config: SourceConfig,
    scorer: Scorer,
    /// Its line of the start event.
    start: CameraStart,
}

/// A run, checked and prepared; see the module documentation.
pub struct Runner {
    cameras: Vec<Camera>,
    models: ModelSet,
    stop: Arc<AtomicBool>,
    duration: Option<Duration>,
    limits: QueueLimits,
    reloads: (Sender<Vec<SourceConfig>>, Receiver<Vec<SourceConfig>>),
    board: Option<Arc<Board>>,
}

/// Hands a running [`Runner`] a new set of cameras; see the module documentation.
#[derive(Clone)]
pub struct Reloader(Sender<Vec<SourceConfig>>);

impl Reloader {
    /// Asks the run to watch `cameras` from now on. They are checked and prepared first:
    /// should one be wrong, the reload is refused (logged) and every camera goes on as it
    /// was.
    pub fn reload(&self, cameras: Vec<SourceConfig>) {
        let _ = self.0.send(cameras);
    }
}

/// Stops one camera, and says why (a reload removed or changed it).
#[derive(Debug, Clone, Default)]
pub struct CameraStop {
    flag: Arc<AtomicBool>,
    why: Arc<Mutex<Option<String>>>,
}

impl CameraStop {
    fn stop(&self, why: Option<&str>) {
        if let Some(why) = why {
            let mut w = self.why.lock().unwrap_or_else(|e| e.into_inner());
            w.get_or_insert_with(|| why.to_owned());
        }
        self.flag.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Why it was stopped, when it was not simply the end of the run.
    pub fn reason(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Checks a set of cameras as a run takes them.
fn check_cameras(cameras: &[SourceConfig]) -> Result<()> {
    if cameras.is_empty() {
        return Err(Error::Input(
            "no camera to watch; expected at least one".into(),
        ));
    }
    for (k, c) in cameras.iter().enumerate() {
        if cameras[..k].iter().any(|o| o.name == c.name) {
            return Err(Error::Input(format!(
                "two cameras are named {:?}; expected unique names",
                c.name
            )));
        }
        c.check()?;
    }
    if cameras
        .iter()
        .any(|c| !matches!(c.source.kind, SourceKind::Sim { .. }))
    {
        pipeline::init()?;
    }
    Ok(())
}

/// The `start` line of a run (or of a reload) with these cameras.
fn start_event(cameras: Vec<CameraStart>) -> StartEvent {
    StartEvent {
        time: String::new(),
        source: None,
        version: env!("CARGO_PKG_VERSION").into(),
        cameras,
    }
}

impl Runner {
    /// Checks every camera and loads what they run: each model once, an engine per
    /// camera sharing its weights, the score and threshold each will use. Every mistake
    /// found here is found before anything starts.
    pub fn new(cameras: Vec<SourceConfig>) -> Result<Runner> {
        check_cameras(&cameras)?;
        let mut models = ModelSet::new();
        let mut prepared = Vec::with_capacity(cameras.len());
        for config in cameras {
            prepared.push(prepare(config, &mut models)?);
        }
        Ok(Runner {
            cameras: prepared,
            models,
            stop: Arc::new(AtomicBool::new(false)),
            duration: None,
            limits: QueueLimits::default(),
            reloads: crossbeam_channel::unbounded(),
            board: None,
        })
    }

    /// A handle to change the run's cameras while it runs.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.reloads.0.clone())
    }

    /// Set it to stop the run: every camera flushes, writes its final stats and ends.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Stops the run after `d`, as if stopped by hand.
    pub fn with_duration(mut self, d: Duration) -> Runner {
        self.duration = Some(d);
        self
    }

    /// Keeps every camera's figures, state and picture on `board` while it runs (for the
    /// web page and `/metrics`).
    pub fn with_board(mut self, board: Arc<Board>) -> Runner {
        self.board = Some(board);
        self
    }

    /// How long each engine service's ready steps wait for the other cameras' (`None`:
    /// the device's default: 1 ms on CUDA, 0 on the CPU).
    pub fn with_batch_wait(mut self, wait: Option<Duration>) -> Runner {
        self.models.set_batch_wait(wait);
        self
    }

    /// The engine services' figures (batches, steps), to read while or after it runs.
    pub fn engine_figures(&self) -> Vec<Arc<crate::engine::service::ServiceFigures>> {
        self.models.services().map(|s| s.figures()).collect()
    }

    /// The engines the cameras run on, one per service.
    pub fn engine_names(&self) -> Vec<String> {
        self.models
            .services()
            .map(|s| s.name().to_owned())
            .collect()
    }

    /// How much each output's queue holds.
    pub fn with_queue_limits(mut self, limits: QueueLimits) -> Runner {
        self.limits = limits;
        self
    }

    /// Runs every camera to its end (or until stopped), every event to every sink.
    /// Returns the first camera's failure, after everything computed before it was
    /// handed to the outputs and written, or else the first output's failure.
    pub fn run(self, sinks: Vec<Box<dyn EventSink>>) -> Result<()> {
        let Runner {
            cameras,
            mut models,
            stop,
            duration,
            limits,
            reloads,
            board,
        } = self;
        drop(reloads.0);
        let watcher = board.clone().map(|b| b as Arc<dyn Written>);
        let outputs = Outputs::start(sinks, limits, stop.clone(), watcher)?;
        let deadline = duration.map(|d| Instant::now() + d);
        let failure = std::thread::scope(|scope| {
            let mut run = Running {
                scope,
                cameras: Vec::with_capacity(cameras.len()),
                first_failure: None,
                outputs: &outputs,
                board: board.as_deref(),
            };
            run.announce(cameras.iter().map(|c| c.start.clone()).collect());
            for camera in cameras {
                run.start(camera);
            }
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                run.join_finished();
                if run.cameras.is_empty() {
                    break;
                }
                match reloads.1.recv_timeout(Duration::from_millis(50)) {
                    Ok(new) => run.reload(new, &mut models),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                }
            }
            for c in &run.cameras {
                c.stop.stop(None);
            }
            for c in std::mem::take(&mut run.cameras) {
                run.join(c);
            }
            // Every camera is over: the run is, for whoever watches `stop`.
            stop.store(true, Ordering::Relaxed);
            run.first_failure
        });
        let written = outputs.finish();
        match failure {
            Some(e) => Err(e),
            None => written,
        }
    }
}

/// A camera as the run keeps it while it runs.
struct Started<'scope> {
    config: SourceConfig,
    start: CameraStart,
    stop: CameraStop,
    thread: std::thread::ScopedJoinHandle<'scope, Result<()>>,
}

/// The cameras of a running run.
struct Running<'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    cameras: Vec<Started<'scope>>,
    first_failure: Option<Error>,
    outputs: &'env Outputs,
    board: Option<&'env Board>,
}

impl<'scope> Running<'scope, '_> {
    /// Writes the `start` line for the cameras now running.
    fn announce(&self, cameras: Vec<CameraStart>) {
        self.outputs
            .emitter()
            .emit(Event::Start(start_event(cameras)));
    }

    fn fail(&mut self, e: Error) {
        self.first_failure.get_or_insert(e);
    }

    fn start(&mut self, camera: Camera) {
        let (config, start) = (camera.config.clone(), camera.start.clone());
        let stop = CameraStop::default();
        let board = self.board.map(|b| {
            let folder = config.clips.as_ref().map(|c| c.folder(&config.name));
            // The simulator's picture is the model's input: it needs no view of its own.
            let view = (!matches!(config.source.kind, SourceKind::Sim { .. }))
                .then(|| Arc::new(SourceView::default()));
            let c = Arc::new(CameraBoard::new(
                start.clone(),
                config.capture.crop,
                folder,
                view,
            ));
            b.add(c.clone());
            c
        });
        match start_camera(
            camera,
            self.outputs.emitter(),
            stop.clone(),
            board,
            self.scope,
        ) {
            Ok(thread) => self.cameras.push(Started {
                config,
                start,
                stop,
                thread,
            }),
            Err(e) => self.fail(e),
        }
    }

    fn join(&mut self, c: Started<'scope>) {
        let r = c
            .thread
            .join()
            .unwrap_or_else(|_| Err(Error::Input("a camera thread panicked".into())));
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// Joins the cameras whose source is over.
    fn join_finished(&mut self) {
        let (over, on): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cameras)
            .into_iter()
            .partition(|c| c.thread.is_finished());
        self.cameras = on;
        for c in over {
            self.join(c);
        }
    }

    /// Moves the run to the cameras `new`: see the module documentation.
    fn reload(&mut self, new: Vec<SourceConfig>, models: &mut ModelSet) {
        if let Err(e) = check_cameras(&new) {
            tracing::error!("reload refused: {e}; the cameras run on unchanged");
            return;
        }
        let unchanged = |c: &SourceConfig| self.cameras.iter().any(|r| r.config == *c);
        // Everything new is prepared (models loaded) before anything stops.
        let mut fresh = Vec::new();
        for c in new.iter().filter(|c| !unchanged(c)) {
            match prepare(c.clone(), models) {
                Ok(camera) => fresh.push(camera),
                Err(e) => {
                    tracing::error!("reload refused: {e}; the cameras run on unchanged");
                    return;
                }
            }
        }
        let (mut added, mut changed, mut removed) = (0, 0, 0);
        let (going, staying): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cameras)
            .into_iter()
            .partition(|r| !new.contains(&r.config));
        self.cameras = staying;
        for r in &going {
            if new.iter().any(|c| c.name == r.config.name) {
                changed += 1;
                r.stop
                    .stop(Some("restarting with its new settings (config reloaded)"));
            } else {
                removed += 1;
                r.stop.stop(Some("removed from the config"));
                if let Some(b) = self.board {
                    b.remove(&r.config.name);
                }
            }
        }
        let restarted: Vec<String> = going.iter().map(|r| r.config.name.clone()).collect();
        // A changed camera's last lines come before its new start.
        for r in going {
            self.join(r);
        }
        for camera in fresh {
            if !restarted.contains(&camera.config.name) {
                added += 1;
            }
            self.start(camera);
        }
        // The start line lists the cameras in the config's order.
        let order = |name: &str| new.iter().position(|c| c.name == name);
        self.cameras.sort_by_key(|r| order(&r.config.name));
        if let Some(b) = self.board {
            b.order(&new.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
        }
        self.announce(self.cameras.iter().map(|r| r.start.clone()).collect());
        tracing::info!(
            "config reloaded: {added} cameras added, {changed} restarted with new settings, \
             {removed} removed, {} unchanged",
            self.cameras.len().saturating_sub(added + changed)
        );
    }
}

/// Starts one camera's capture and inference threads; the inference thread joins the
/// capture thread when its source is over.
fn start_camera<'scope>(
    camera: Camera,
    out: Emitter,
    stop: CameraStop,
    board: Option<Arc<CameraBoard>>,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<std::thread::ScopedJoinHandle<'scope, Result<()>>> {
    let Camera { config, scorer, .. } = camera;
    let fast = config.capture.reads_fast(&config.source.kind);
    let overflow = if fast { Overflow::Wait } else { Overflow::Drop };
    let recorder = match &config.clips {
        Some(c) => Some(Recorder::start(
            &config.name,
            c,
            config.capture.crop,
            overflow,
        )?),
        None => None,
    };
    // The clips branch feeds the clips and the web page's view of the source.
    let view = board.as_ref().and_then(|b| b.view.clone());
    let feed = match (&recorder, view) {
        (Some(r), view) => Some(r.feed().with_view(view)),
        (None, Some(view)) => Some(ClipFeed::view_only(view)),
        (None, None) => None,
    };
    let (ring_w, ring_r) = frame_ring(config.capture.ring_slots, frame::PIXELS, overflow);
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let capture = match &config.source.kind {
        SourceKind::Sim { seed } => sim_source::spawn(
            &config.name,
            sim_source::SimPace {
                seed: *seed,
                fast,
                stall: config.capture.sim_stall,
            },
            ring_w,
            ev_tx,
            stop.flag.clone(),
            feed,
        ),
        _ => gst_source::spawn(
            config.name.clone(),
            config.source.clone(),
            CaptureSettings {
                clip_width: feed.as_ref().map(|f| f.max_width()),
                clip_rate: feed.as_ref().and_then(|f| f.max_rate()),
                ..config.capture.clone()
            },
            ring_w,
            ev_tx,
            stop.flag.clone(),
            feed,
        ),
    }
    .map_err(|e| Error::Capture {
        camera: config.name.clone(),
        element: None,
        what: format!("cannot start its capture thread: {e}"),
        after_start: false,
    })?;
    let stats_every = config.stats_every;
    std::thread::Builder::new()
        .name(format!("camera {}", config.name))
        .spawn_scoped(scope, move || {
            let extras = camera::Extras { recorder, board };
            let r = camera::run(scorer, ring_r, ev_rx, out, &stop, stats_every, extras);
            // A source that ends or fails stops its own capture; the others run on.
            let _ = capture.join();
            r
        })
        .map_err(|e| Error::Capture {
            camera: config.name,
            element: None,
            what: format!("cannot start its inference thread: {e}"),
            after_start: false,
        })
}

/// One camera's model, score and threshold settled; its line of the start event.
fn prepare(config: SourceConfig, models: &mut ModelSet) -> Result<Camera> {
    // Say which camera a model or engine mistake is about (file errors name the file).
    let name = config.name.clone();
    let in_camera = move |e: Error| {
        let say = |what: String| format!("camera {name}: {what}");
        match e {
            Error::Model(what) => Error::Model(say(what)),
            Error::Engine(what) => Error::Engine(say(what)),
            Error::Cuda(what) => Error::Cuda(say(what)),
            Error::Input(what) => Error::Input(say(what)),
            other => other,
        }
    };
    // A clips folder that cannot be made is found before anything starts.
    if let Some(c) = &config.clips {
        c.make_folder(&config.name)?;
    }
    let camera_model = models
        .camera_model(&config.model, config.mode, config.device)
        .map_err(in_camera)?;
    let loaded = camera_model.as_ref().map(|m| m.loaded.clone());
    let score = match &camera_model {
        Some(_) => config.score,
        None => {
            if config.score != ScoreKind::Baseline {
                tracing::info!(camera = %config.name, "no model: scoring with the statistical baseline alone");
            }
            ScoreKind::Baseline
        }
    };
    let carried = loaded.as_ref().and_then(|m| m.model.thresholds);
    let (threshold, from) = match (config.threshold, carried) {
        (Some(t), _) => (t, ThresholdFrom::Config),
        (None, Some(t)) if score != ScoreKind::Baseline => {
            (score.threshold_for(Some(&t)), ThresholdFrom::Model)
        }
        (None, _) => (score.default_threshold(), ThresholdFrom::Study),
    };
    let said = match from {
        ThresholdFrom::Config => "set for the camera",
        ThresholdFrom::Model => "the model file's",
        ThresholdFrom::Study => "the study's",
    };
    tracing::info!(
        camera = %config.name,
        "alert threshold {threshold} on the {score} score ({said})"
    );
    let start = CameraStart {
        name: config.name.clone(),
        source: config.source.display.clone(),
        model: loaded.as_ref().map(|m| m.info.clone()),
        mode: camera_model.as_ref().map(|_| config.mode),
        device: camera_model.as_ref().map(|m| m.device.to_string()),
        engine: camera_model.as_ref().map(|m| m.engine.clone()),
        score,
        threshold,
        threshold_from: from,
        emit: config.emit,
        rtsp_transport: matches!(config.source.kind, SourceKind::Rtsp { .. })
            .then_some(config.capture.rtsp_transport),
    };
    let settings = ScorerSettings {
        score,
        rule: AlertRule::new(threshold),
        emit: config.emit,
        preprocess: config.preprocess,
    };
    let scorer = Scorer::new(config.name.clone(), settings, camera_model.map(|m| m.model));
    Ok(Camera {
        config,
        scorer,
        start,
    })
}
