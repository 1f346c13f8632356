//! See what it saw: a video clip and a snapshot of every alert.
//!
//! Each camera with clips keeps a pre-roll of its source's own picture (colour, its
//! resolution capped by `max_width`), fed by the capture: a branch of the GStreamer
//! pipeline split off before the picture is cropped and scaled to GRAY8, or the
//! simulator's frames. At an alert the camera thread opens a clip (from `pre_s` before the
//! alert frame to `post_s` after its outcome is known, 46 frames later) and waits a
//! moment for its snapshot; everything else happens on the camera's two clip threads:
//!
//! ```text
//! capture --frames--> pre-roll + open clips --complete clip--> encoder thread --> .mp4
//! camera thread --alert--> snapshot thread --> .png, .json (waited for, at most 300 ms)
//! ```
//!
//! Clips are not an [`crate::output::EventSink`]: they need the frames, and an alert line
//! names a snapshot already on disk, so they act before the events go out (the camera
//! thread fills in `snapshot` and `clip`); the sinks then carry the same bytes as ever.
//!
//! Why raw frames and not the camera's own encoded stream: a clip must start at
//! `alert - pre_s` to the frame, and an encoded stream can only be cut at its key frames
//! (every 1-10 s on cameras); encoding the pre-roll continuously instead costs a core's
//! tenth per 720p camera all day. Raw frames cost memory instead (1.4 MB a 720p frame,
//! about 300 MB of pre-roll per 720p camera; 115 kB a 320x240 frame) and encode only
//! when there is an alert (figures in the README).
//!
//! From a live source a slow disk or encoder never delays alerts or drops frames: at
//! most [`MAX_PENDING`] clips of a camera wait to be written; an alert beyond that gets
//! no clip, and the loss is logged and counted (`clips_dropped` in `stats`). A file read
//! fast has no clock to keep, so there the camera waits for the writer instead
//! ([`Overflow::Wait`], as its frame ring does): every alert gets its clip. A full disk is
//! the same: a warning and a count, never a stopped run. Files are written under hidden
//! temporary names and renamed when complete ([`store`]); the folder is kept under
//! `max_mb` by removing the oldest alerts' files. [`review`] makes the page that lists
//! them.

pub mod collect;
pub mod encode;
pub mod frame;
pub mod review;
pub mod snapshot;
pub mod store;
pub mod view;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::capture::ring::Overflow;
use crate::frame::{Crop, FPS};
use crate::output::event::{AlertEvent, OutcomeEvent};
use crate::speed::STUDY_LABELS;
use crate::{Error, Result};
use collect::{Clip, ClipPlan, Collector};
use encode::Pace;
use frame::ClipFrame;
use snapshot::{AlertCaption, TracePoint};
pub use view::SourceView;

/// Clips of one camera admitted and not yet written; an alert beyond them gets no clip.
pub const MAX_PENDING: usize = 3;

/// Longest an alert waits for its snapshot to be written.
const SNAPSHOT_WAIT: Duration = Duration::from_millis(300);

/// Longest the snapshot waits for the branch to deliver the alert's picture.
const PICTURE_WAIT: Duration = Duration::from_millis(150);

/// Longest the end of a camera waits for its last clips to be written; also the longest
/// a camera read fast waits for the writer to take a clip (one that makes no progress
/// for this long is stuck, and the alert goes without its clip).
pub const FINISH_WAIT: Duration = Duration::from_secs(15);

/// The test-only throttle: a pause in ms before each frame a clip encodes (a slow disk
/// or encoder, for the test that checks alerts do not wait on it).
pub const THROTTLE_ENV: &str = "BURSTWATCH_TEST_CLIP_DELAY_MS";

/// What `--clips DIR` or `[output.clips]` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipSettings {
    /// Clips go to `dir/<camera>/`.
    pub dir: PathBuf,
    /// Video before the alert frame.
    pub pre: Duration,
    /// Video after the alert's outcome is known.
    pub post: Duration,
    /// The folder's size limit, in MB (10^6 bytes); the oldest alerts go beyond it.
    pub max_mb: u64,
    /// The clips' widest picture; wider sources are scaled down, keeping their shape.
    pub max_width: u32,
}

impl ClipSettings {
    /// Clips into `dir` with the defaults: 5 s before, 3 s after, 2000 MB, 1280 wide.
    pub fn new(dir: impl Into<PathBuf>) -> ClipSettings {
        ClipSettings {
            dir: dir.into(),
            pre: Duration::from_secs(5),
            post: Duration::from_secs(3),
            max_mb: 2000,
            max_width: 1280,
        }
    }

    /// The first setting that is wrong: (its key, what is wrong and what was expected).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let secs = |d: Duration| d.as_secs_f64();
        if secs(self.pre) > 60.0 {
            return Some((
                "pre_s",
                format!("pre_s {}; expected 0 to 60 seconds", secs(self.pre)),
            ));
        }
        if secs(self.post) > 60.0 {
            return Some((
                "post_s",
                format!("post_s {}; expected 0 to 60 seconds", secs(self.post)),
            ));
        }
        if self.max_mb == 0 {
            return Some(("max_mb", "max_mb 0; expected at least 1 (MB)".into()));
        }
        if self.max_width < 16 || self.max_width % 2 == 1 {
            return Some((
                "max_width",
                format!(
                    "max_width {}; expected an even number of pixels, at least 16",
                    self.max_width
                ),
            ));
        }
        None
    }

    /// Makes camera `camera`'s folder (`dir/<camera>`), where its files go.
    /// Camera `camera`'s folder: `dir/<camera, made safe>`.
    pub fn folder(&self, camera: &str) -> PathBuf {
        self.dir.join(store::folder_name(camera))
    }

    pub fn make_folder(&self, camera: &str) -> Result<PathBuf> {
        let folder = self.folder(camera);
        std::fs::create_dir_all(&folder).map_err(|e| {
            Error::bad_input(
                &folder,
                format!("cannot make the clips folder: {e}; expected a folder that can be written"),
            )
        })?;
        Ok(folder)
    }

    /// Frames from the alert frame to the clip's last: the outcome's lag, then `post`.
    fn after_frames(&self) -> u64 {
        STUDY_LABELS.delay() as u64 + (self.post.as_secs_f64() * f64::from(FPS)).round() as u64
    }
}

/// A camera's clip figures, for its `stats` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClipCounts {
    /// Clips complete on disk.
    pub written: u64,
    /// Alerts whose clip was lost: the writer fell behind, the disk was full, the run
    /// ended first.
    pub dropped: u64,
}

/// What the folder keeps of an alert beside its files (`<stem>.json`): what `review` lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertRecord {
    pub id: String,
    pub source: String,
    pub frame: u64,
    pub wall_time: String,
    pub stream_time: f64,
    pub score: f64,
    pub p_model: Option<f64>,
    pub p_baseline: Option<f64>,
    pub threshold: f64,
    /// The snapshot's file name, beside this record; `null` if it could not be written.
    pub snapshot: Option<String>,
    /// The clip's file name, beside this record, once complete; `null` if it was dropped
    /// at the alert.
    pub clip: Option<String>,
    /// Whether a burst followed; `null` until the outcome is known (or when a gap made it
    /// unknowable).
    pub burst: Option<bool>,
}

/// The source's picture size before any scaling (crops are given in it), as the capture
/// learns it from the caps: unknown until then.
#[derive(Debug, Default)]
pub(crate) struct SourceSize(AtomicU64);

impl SourceSize {
    fn set(&self, width: u32, height: u32) {
        self.0.store(
            u64::from(width) << 32 | u64::from(height),
            Ordering::Relaxed,
        );
    }

    /// The size; while unknown, `picture`'s own (else 320x240).
    fn or_of(&self, picture: Option<&ClipFrame>) -> (u32, u32) {
        let size = self.0.load(Ordering::Relaxed);
        match (size >> 32, size & 0xffff_ffff) {
            (0, _) | (_, 0) => picture.map_or((320, 240), |f| (f.width(), f.height())),
            (w, h) => (w as u32, h as u32),
        }
    }
}

/// What the capture and the recorder share.
struct Shared {
    collector: Mutex<Collector>,
    /// Signalled on every frame, for a snapshot waiting for its picture.
    arrived: Condvar,
    /// Complete clips to the encoder; `None` once the camera is over.
    encoder: Mutex<Option<Sender<Clip>>>,
    /// Clips admitted and neither written nor dropped.
    pending: AtomicUsize,
    /// Complete clips handed to the encoder and not yet written (or failed); signalled
    /// on `encoded` as each one is done.
    encoding: Mutex<usize>,
    encoded: Condvar,
    written: AtomicU64,
    dropped: AtomicU64,
    /// The source's picture size (`width << 32 | height`), where crops are given.
    source_size: SourceSize,
}

impl Shared {
    fn collector(&self) -> MutexGuard<'_, Collector> {
        self.collector.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encoding(&self) -> MutexGuard<'_, usize> {
        self.encoding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One clip handed to the encoder is done with (written, failed or never sent).
    fn done_encoding(&self) {
        let mut n = self.encoding();
        *n = n.saturating_sub(1);
        self.encoded.notify_all();
    }

    /// Waits until fewer than [`MAX_PENDING`] complete clips wait for the encoder, for
    /// at most [`FINISH_WAIT`] without one of them being done. Only open clips' frames
    /// can be behind it, and the encoder waits on nothing, so this never deadlocks.
    fn wait_for_encoder(&self) -> bool {
        let mut n = self.encoding();
        while *n >= MAX_PENDING {
            let (next, timeout) = self
                .encoded
                .wait_timeout(n, FINISH_WAIT)
                .unwrap_or_else(|e| e.into_inner());
            n = next;
            if timeout.timed_out() && *n >= MAX_PENDING {
                return false;
            }
        }
        true
    }

    fn send(&self, clips: Vec<Clip>) {
        if clips.is_empty() {
            return;
        }
        let encoder = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
        for clip in clips {
            *self.encoding() += 1;
            let sent = encoder.as_ref().is_some_and(|tx| tx.send(clip).is_ok());
            if !sent {
                self.done_encoding();
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A camera's picture input, handed to its capture: every picture of the clips branch
/// goes to its clips (with clips) and, a few times a second, to its [`SourceView`] (with
/// the web page).
#[derive(Clone)]
pub struct ClipFeed {
    clips: Option<Arc<Shared>>,
    view: Option<Arc<SourceView>>,
    max_width: u32,
}

impl ClipFeed {
    /// A feed for the web page's view alone (no clips).
    pub fn view_only(view: Arc<SourceView>) -> ClipFeed {
        ClipFeed {
            clips: None,
            view: Some(view),
            max_width: view::VIEW_WIDTH,
        }
    }

    /// The same feed, also keeping `view` up to date.
    pub fn with_view(mut self, view: Option<Arc<SourceView>>) -> ClipFeed {
        self.view = view;
        self
    }

    /// Whether the next picture is wanted (clips take every one; the view a few a second):
    /// one that is not need not be copied out of the pipeline at all.
    pub fn wants(&self) -> bool {
        self.clips.is_some() || self.view.as_ref().is_some_and(|v| v.wants())
    }

    /// Takes the next picture; clips it completes go to the encoder (never waits on it).
    pub fn push(&self, frame: ClipFrame) {
        let frame = Arc::new(frame);
        if let Some(v) = self.view.as_ref().filter(|v| v.wants()) {
            v.offer(&frame);
        }
        if let Some(shared) = &self.clips {
            let done = shared.collector().push(frame);
            shared.arrived.notify_all();
            shared.send(done);
        }
    }

    /// The source's picture size, before any scaling (crops are given in it).
    pub fn set_source_size(&self, width: u32, height: u32) {
        if let Some(shared) = &self.clips {
            shared.source_size.set(width, height);
        }
        if let Some(v) = &self.view {
            v.source_size.set(width, height);
        }
    }

    /// The widest picture the branch delivers.
    pub fn max_width(&self) -> u32 {
        self.max_width
    }

    /// The branch's most pictures a second; `None`: every picture (clips need them all).
    pub fn max_rate(&self) -> Option<u32> {
        self.clips.is_none().then_some(view::VIEW_FPS)
    }
}

/// A snapshot to make.
struct SnapshotJob {
    record: AlertRecord,
    png: PathBuf,
    json: PathBuf,
    session: u32,
    pts_ns: u64,
    trace: Vec<TracePoint>,
    done: Sender<bool>,
}

enum Note {
    Snapshot(Box<SnapshotJob>),
    /// An alert's outcome is known: its record says so.
    Outcome {
        json: PathBuf,
        burst: bool,
    },
}

/// One camera's clips and snapshots; see the module documentation.
pub struct Recorder {
    camera: String,
    /// `dir/<camera>`.
    folder: PathBuf,
    settings: ClipSettings,
    crop: Option<Crop>,
    shared: Arc<Shared>,
    notes: Option<Sender<Note>>,
    threads: Vec<JoinHandle<()>>,
    /// When the encoder gives up on what is left (set at the end).
    deadline: Arc<Mutex<Option<Instant>>>,
    /// What an alert does when [`MAX_PENDING`] clips wait: goes without its clip (a live
    /// source) or waits for the writer (a file read fast).
    overflow: Overflow,
    /// Recent alerts' records and clips, for their outcomes.
    recent: VecDeque<(String, PathBuf, Option<PathBuf>)>,
}

impl Recorder {
    /// Starts camera `camera`'s clip threads; its folder is made now, so that a folder
    /// that cannot be written is found before the run starts. `overflow` is what its
    /// frame ring does when full: [`Overflow::Wait`] (a file read fast) makes an alert
    /// wait for the writer rather than go without its clip.
    pub fn start(
        camera: &str,
        settings: &ClipSettings,
        crop: Option<Crop>,
        overflow: Overflow,
    ) -> Result<Recorder> {
        if let Some((_, what)) = settings.problem() {
            return Err(Error::Input(format!("clips: {what}")));
        }
        // Clips are encoded with GStreamer whatever the source (the simulator has none).
        crate::capture::pipeline::init()?;
        let folder = settings.make_folder(camera)?;
        // What a killed run left half-written is nobody's now.
        for f in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".part") {
                let _ = std::fs::remove_file(f.path());
            }
        }
        let (enc_tx, enc_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            collector: Mutex::new(Collector::new(settings.pre.as_nanos() as u64)),
            arrived: Condvar::new(),
            encoder: Mutex::new(Some(enc_tx)),
            pending: AtomicUsize::new(0),
            encoding: Mutex::new(0),
            encoded: Condvar::new(),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            source_size: SourceSize::default(),
        });
        let deadline = Arc::new(Mutex::new(None));
        let per_frame = std::env::var(THROTTLE_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        let spawn = |what: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("{what} {camera}"))
                .spawn(f)
                .map_err(|e| {
                    Error::Input(format!(
                        "camera {camera}: cannot start its {what} thread: {e}"
                    ))
                })
        };
        let encoder = {
            let (shared, deadline) = (shared.clone(), deadline.clone());
            let (camera, root, max_bytes) = (
                camera.to_owned(),
                settings.dir.clone(),
                settings.max_mb * 1_000_000,
            );
            spawn(
                "clips",
                Box::new(move || {
                    encode_clips(
                        &camera, &root, max_bytes, enc_rx, &shared, &deadline, per_frame,
                    )
                }),
            )?
        };
        let (notes_tx, notes_rx) = crossbeam_channel::unbounded();
        let notes = {
            let shared = shared.clone();
            let (camera, crop) = (camera.to_owned(), crop);
            spawn(
                "snapshots",
                Box::new(move || write_notes(&camera, crop, notes_rx, &shared)),
            )?
        };
        Ok(Recorder {
            camera: camera.to_owned(),
            folder,
            settings: settings.clone(),
            crop,
            shared,
            notes: Some(notes_tx),
            threads: vec![encoder, notes],
            deadline,
            overflow,
            recent: VecDeque::new(),
        })
    }

    /// The input its capture feeds.
    pub fn feed(&self) -> ClipFeed {
        ClipFeed {
            clips: Some(self.shared.clone()),
            view: None,
            max_width: self.settings.max_width,
        }
    }

    /// The crop rectangle the snapshots draw.
    pub fn crop(&self) -> Option<Crop> {
        self.crop
    }

    /// An alert, at the frame of stream time `pts_ns` of connection `session`: opens its
    /// clip (unless [`MAX_PENDING`] are waiting from a live source; read fast, it waits
    /// for the writer) and writes its snapshot and record.
    /// Returns the snapshot's path once it is written (`None` if it could not be, or not
    /// within [`SNAPSHOT_WAIT`]).
    pub fn alert(
        &mut self,
        alert: &AlertEvent,
        session: u32,
        pts_ns: u64,
        trace: Vec<TracePoint>,
    ) -> Option<PathBuf> {
        let stem = store::stem(&alert.wall_time, alert.frame);
        let frame_ns = 1_000_000_000 / u64::from(FPS);
        let clip_path = self.folder.join(format!("{stem}.mp4"));
        let admitted = match self.overflow {
            Overflow::Drop => self.shared.pending.load(Ordering::Relaxed) < MAX_PENDING,
            Overflow::Wait => self.shared.wait_for_encoder(),
        };
        if admitted {
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
            self.shared.collector().open(ClipPlan {
                id: alert.id.clone(),
                path: clip_path.clone(),
                session,
                start_ns: pts_ns.saturating_sub(self.settings.pre.as_nanos() as u64),
                end_ns: pts_ns + self.settings.after_frames() * frame_ns,
            });
        } else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                camera = %self.camera,
                alert = %alert.id,
                "{MAX_PENDING} clips are still being written; this alert gets no clip"
            );
        }
        let png = self.folder.join(format!("{stem}.png"));
        let json = self.folder.join(format!("{stem}.json"));
        let record = AlertRecord {
            id: alert.id.clone(),
            source: alert.source.clone(),
            frame: alert.frame,
            wall_time: alert.wall_time.clone(),
            stream_time: alert.stream_time,
            score: alert.score,
            p_model: alert.p_model,
            p_baseline: alert.p_baseline,
            threshold: alert.threshold,
            snapshot: Some(format!("{stem}.png")),
            clip: admitted.then(|| format!("{stem}.mp4")),
            burst: None,
        };
        self.recent.push_back((
            alert.id.clone(),
            json.clone(),
            admitted.then_some(clip_path),
        ));
        if self.recent.len() > 64 {
            self.recent.pop_front();
        }
        let (done, written) = crossbeam_channel::bounded(1);
        let job = SnapshotJob {
            record,
            png: png.clone(),
            json,
            session,
            pts_ns,
            trace,
            done,
        };
        self.notes
            .as_ref()?
            .send(Note::Snapshot(Box::new(job)))
            .ok()?;
        match written.recv_timeout(SNAPSHOT_WAIT) {
            Ok(true) => Some(png),
            Ok(false) => None,
            Err(_) => {
                tracing::warn!(camera = %self.camera, alert = %alert.id, "the snapshot took over {} ms; the alert goes without it", SNAPSHOT_WAIT.as_millis());
                None
            }
        }
    }

    /// An alert's outcome: its record is updated; returns the path its clip has once
    /// complete (`None` when it got none).
    pub fn outcome(&mut self, outcome: &OutcomeEvent) -> Option<PathBuf> {
        let at = self
            .recent
            .iter()
            .position(|(id, ..)| *id == outcome.alert_id)?;
        let (_, json, clip) = self.recent.remove(at)?;
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note::Outcome {
                json,
                burst: outcome.burst,
            });
        }
        clip
    }

    /// The camera's clip figures so far.
    pub fn counts(&self) -> ClipCounts {
        ClipCounts {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// The camera is over: open clips end with the frames they have, and what is left is
    /// written, for at most [`FINISH_WAIT`]. Returns the final figures.
    pub fn finish(mut self) -> ClipCounts {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + FINISH_WAIT);
        let open = self.shared.collector().close_all();
        self.shared.send(open);
        self.shared
            .encoder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.notes.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.counts()
    }
}

/// The encoder thread: writes each complete clip, then keeps the folder under its size.
/// It runs at the lowest priority: the cameras' inference comes first, and a clip that
/// waits too long is dropped, counted.
fn encode_clips(
    camera: &str,
    root: &Path,
    max_bytes: u64,
    clips: Receiver<Clip>,
    shared: &Shared,
    deadline: &Mutex<Option<Instant>>,
    per_frame: Duration,
) {
    crate::priority::lowest("the clip encoder");
    let mut last_warning: Option<Instant> = None;
    for clip in clips {
        let pace = Pace {
            per_frame,
            deadline: *deadline.lock().unwrap_or_else(|e| e.into_inner()),
        };
        let started = Instant::now();
        let result = encode::write_mp4(&clip.frames, &clip.plan.path, pace);
        shared.pending.fetch_sub(1, Ordering::Relaxed);
        shared.done_encoding();
        match result {
            Ok(bytes) => {
                shared.written.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    camera,
                    clip = %clip.plan.path.display(),
                    bytes,
                    frames = clip.frames.len(),
                    encode_ms = started.elapsed().as_millis() as u64,
                    "clip written"
                );
                if let Err(e) = store::prune(root, max_bytes) {
                    tracing::warn!(camera, "cannot keep {} under its size: {e}", root.display());
                }
            }
            Err(e) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                // A full disk fails every clip: say so once a minute, with the count.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        camera,
                        alert = %clip.plan.id,
                        dropped = shared.dropped.load(Ordering::Relaxed),
                        "clip {} not written: {e}",
                        clip.plan.path.display()
                    );
                }
            }
        }
    }
}

/// The snapshot thread: snapshots and records, in the order asked.
fn write_notes(camera: &str, crop: Option<Crop>, notes: Receiver<Note>, shared: &Shared) {
    for note in notes {
        match note {
            Note::Snapshot(job) => {
                let ok = snapshot(camera, crop, &job, shared);
                let _ = job.done.send(ok);
                let mut record = job.record.clone();
                if !ok {
                    record.snapshot = None;
                }
                write_record(camera, &job.json, &record);
            }
            Note::Outcome { json, burst } => {
                let read = std::fs::read(&json)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<AlertRecord>(&b).ok());
                if let Some(mut record) = read {
                    record.burst = Some(burst);
                    write_record(camera, &json, &record);
                }
            }
        }
    }
}

fn write_record(camera: &str, path: &Path, record: &AlertRecord) {
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    if let Err(e) = store::write_atomic(path, &bytes) {
        tracing::warn!(camera, "cannot write {}: {e}", path.display());
    }
}

/// Draws and writes one snapshot; false when it could not be.
fn snapshot(camera: &str, crop: Option<Crop>, job: &SnapshotJob, shared: &Shared) -> bool {
    let until = Instant::now() + PICTURE_WAIT;
    let picture = {
        let mut c = shared.collector();
        loop {
            if let Some(f) = c.frame_at(job.session, job.pts_ns) {
                break Some(f);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break c.newest();
            }
            c = shared
                .arrived
                .wait_timeout(c, left)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    };
    let source = shared.source_size.or_of(picture.as_deref());
    let caption = AlertCaption {
        camera: camera.to_owned(),
        frame: job.record.frame,
        score: job.record.score,
        threshold: job.record.threshold,
        wall_time: job.record.wall_time.clone(),
    };
    let written = snapshot::render(picture.as_deref(), source, crop, &job.trace, &caption)
        .and_then(|bytes| store::write_atomic(&job.png, &bytes).map_err(|e| e.to_string()));
    match written {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(camera, alert = %job.record.id, "snapshot {} not written: {e}", job.png.display());
            false
        }
    }
}
