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
//! or until it is stopped (a signal, a deadline, a closed stdout).
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
pub mod camera;
pub mod models;
pub mod scorer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::{AlertRule, ScoreKind};
use crate::capture::preprocess::Preprocess;
use crate::capture::ring::{frame_ring, Overflow};
use crate::capture::{gst_source, pipeline, sim_source, CaptureSettings, SourceKind, SourceSpec};
use crate::engine::{Device, Mode};
use crate::frame;
use crate::output::event::{CameraStart, Emit, Event, StartEvent, ThresholdFrom};
use crate::output::{EventSink, Outputs, QueueLimits};
use crate::{Error, Result};

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
        Ok(())
    }
}

/// One camera, ready to run.
struct Camera {
    config: SourceConfig,
    scorer: Scorer,
}

/// A run, checked and prepared; see the module documentation.
pub struct Runner {
    cameras: Vec<Camera>,
    start: StartEvent,
    stop: Arc<AtomicBool>,
    duration: Option<Duration>,
    limits: QueueLimits,
}

impl Runner {
    /// Checks every camera and loads what they run: each model once, an engine per
    /// camera sharing its weights, the score and threshold each will use. Every mistake
    /// found here is found before anything starts.
    pub fn new(cameras: Vec<SourceConfig>) -> Result<Runner> {
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
        let mut models = ModelSet::new();
        let mut prepared = Vec::with_capacity(cameras.len());
        let mut starts = Vec::with_capacity(cameras.len());
        for config in cameras {
            let (camera, start) = prepare(config, &mut models)?;
            prepared.push(camera);
            starts.push(start);
        }
        Ok(Runner {
            cameras: prepared,
            start: StartEvent {
                time: String::new(),
                source: None,
                version: env!("CARGO_PKG_VERSION").into(),
                cameras: starts,
            },
            stop: Arc::new(AtomicBool::new(false)),
            duration: None,
            limits: QueueLimits::default(),
        })
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

    /// How much each output's queue holds.
    pub fn with_queue_limits(mut self, limits: QueueLimits) -> Runner {
        self.limits = limits;
        self
    }

    /// Runs every camera to its end (or until stopped), every event to every sink.
    /// Returns the first camera's failure, after everything computed before it was
    /// handed to the outputs and written, or else the first output's failure.
    pub fn run(self, sinks: Vec<Box<dyn EventSink>>) -> Result<()> {
        let stop = self.stop.clone();
        let outputs = Outputs::start(sinks, self.limits, stop.clone())?;
        outputs.emitter().emit(Event::Start(self.start));
        let deadline = self.duration.map(|d| Instant::now() + d);
        let failure = std::thread::scope(|scope| {
            if let Some(deadline) = deadline {
                let stop = &stop;
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                    }
                });
            }
            let mut workers = Vec::with_capacity(self.cameras.len());
            for camera in self.cameras {
                let out = outputs.emitter();
                let stop = &stop;
                let worker = start_camera(camera, out, stop, scope);
                workers.push(worker);
            }
            let mut first = None;
            for w in workers {
                let r = match w {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|_| Err(Error::Input("a camera thread panicked".into()))),
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    first.get_or_insert(e);
                }
            }
            // Every camera is over: the deadline watcher must not outlive the run.
            stop.store(true, Ordering::Relaxed);
            first
        });
        let written = outputs.finish();
        match failure {
            Some(e) => Err(e),
            None => written,
        }
    }
}

/// Starts one camera's capture and inference threads; the inference thread joins the
/// capture thread when its source is over.
fn start_camera<'scope>(
    camera: Camera,
    out: crate::output::Emitter,
    stop: &'scope Arc<AtomicBool>,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<std::thread::ScopedJoinHandle<'scope, Result<()>>> {
    let Camera { config, scorer } = camera;
    let overflow = if config.capture.fast && !config.source.kind.is_live() {
        Overflow::Wait
    } else {
        Overflow::Drop
    };
    let (ring_w, ring_r) = frame_ring(config.capture.ring_slots, frame::PIXELS, overflow);
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let capture = match &config.source.kind {
        SourceKind::Sim { seed } => {
            sim_source::spawn(&config.name, *seed, ring_w, ev_tx, stop.clone())
        }
        _ => gst_source::spawn(
            config.name.clone(),
            config.source.clone(),
            config.capture.clone(),
            ring_w,
            ev_tx,
            stop.clone(),
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
            let r = camera::run(scorer, ring_r, ev_rx, out, stop, stats_every);
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
fn prepare(config: SourceConfig, models: &mut ModelSet) -> Result<(Camera, CameraStart)> {
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
    };
    let settings = ScorerSettings {
        score,
        rule: AlertRule::new(threshold),
        emit: config.emit,
        preprocess: config.preprocess,
    };
    let scorer = Scorer::new(config.name.clone(), settings, camera_model.map(|m| m.model));
    Ok((Camera { config, scorer }, start))
}
