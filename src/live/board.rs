//! What a live run shows whoever watches it (the web page, `/metrics`, `/healthz`,
//! `/api/cameras`): every camera's counters, latency histograms, state, latest picture,
//! last minute of scores and last alerts.
//!
//! Camera threads write it: one short, uncontended lock per frame, a copy of the picture a
//! few times a second. Readers (the HTTP server's threads) copy out what they show under
//! the same lock, so that one reading is consistent: the score-latency histogram's count
//! is the frames scored, exactly. A run without watchers has no board and pays nothing.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alert::nearest_rank;
use crate::clips::SourceView;
use crate::frame::Crop;
use crate::output::event::{CameraStart, CameraState, Event};
use crate::output::Written;

/// Seconds of score history a camera keeps for its chart.
pub const CHART_S: u64 = 60;
/// Frames of it, at 30 fps.
const CHART_FRAMES: usize = CHART_S as usize * crate::frame::FPS as usize;
/// Alerts a camera keeps for its tile.
const RECENT_ALERTS: usize = 20;
/// Latencies the tile's p99 is taken over: 10 s at 30 fps.
const RECENT_LATENCIES: usize = 300;
/// How often the picture is copied for the page (a few Hz is what it refreshes at).
const PICTURE_EVERY: Duration = Duration::from_millis(200);
/// The span over which `fps` is measured.
const FPS_SPAN: Duration = Duration::from_secs(5);
/// A camera whose last frame is older than this is stale (`/healthz`).
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// Upper bounds (seconds) of the latency histograms' buckets; `+Inf` follows.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A latency histogram in Prometheus's sense: counts per bucket, their sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at most `BUCKETS[k]` (not cumulative); the last slot is `+Inf`.
    counts: [u64; BUCKETS.len() + 1],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        let k = BUCKETS.partition_point(|&b| b < seconds);
        self.counts[k] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// `(le, cumulative count)` for every bucket, `+Inf` last (as `f64::INFINITY`).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        BUCKETS
            .iter()
            .chain(std::iter::once(&f64::INFINITY))
            .zip(self.counts)
            .map(|(&le, n)| {
                total += n;
                (le, total)
            })
            .collect()
    }
}

/// One frame's score as the chart draws it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScorePoint {
    pub frame: u64,
    /// Milliseconds since the Unix epoch when it was scored (the page's time axis).
    pub t_ms: u64,
    pub score: Option<f64>,
    pub p_baseline: Option<f64>,
}

/// An alert as the tile lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub id: String,
    pub frame: u64,
    pub time: String,
    pub score: f64,
    /// `None` until its outcome is known.
    pub burst: Option<bool>,
    /// Files on disk (with clips): the snapshot's PNG and the clip's MP4.
    pub snapshot: Option<String>,
    pub clip: Option<String>,
}

/// What one frame adds to its camera's board.
#[derive(Debug, Clone, Copy)]
pub struct FrameFigures {
    pub frame: u64,
    pub score: Option<f64>,
    pub p_baseline: Option<f64>,
    /// From the frame's arrival to its score.
    pub latency: Duration,
    /// The model's step for it (`None` without a model).
    pub step: Option<Duration>,
}

/// One camera's figures and state, copied out in one piece.
#[derive(Debug, Clone)]
pub struct Live {
    /// `None` until the first status (the source is connecting).
    pub state: Option<CameraState>,
    pub message: Option<String>,
    pub frames: u64,
    pub ring_dropped: u64,
    pub gaps: u64,
    pub reconnects: u64,
    pub alerts: u64,
    /// Outcomes known: followed by a burst, and not.
    pub outcomes_burst: u64,
    pub outcomes_none: u64,
    /// From the camera's last stats line (computed there over 5 minutes of labels).
    pub auc: Option<f64>,
    pub last_frame: Option<Instant>,
    /// When the camera started: it has [`STALE_AFTER`] to deliver its first frame.
    since: Instant,
    /// Arrival to score, every frame.
    pub score_latency: Histogram,
    /// Arrival to line written, per output, for the lines that carry a frame.
    pub written_latency: Vec<(String, Histogram)>,
    pub step: Histogram,
    /// The last 10 s of arrival-to-score latencies (ms), for the tile's p99.
    pub recent_latency_ms: VecDeque<f64>,
    pub scores: VecDeque<ScorePoint>,
    /// The latest picture the model saw: GRAY8, 320x240.
    pub picture: Option<Arc<Vec<u8>>>,
    pub recent: VecDeque<AlertView>,
    /// `(when, frames)` at the start of the current fps span, and the last span's rate.
    fps_mark: (Instant, u64),
    fps: Option<f64>,
    picture_at: Option<Instant>,
}

impl Live {
    /// Frames per second over the last few seconds.
    pub fn fps(&self) -> Option<f64> {
        self.fps
    }

    /// Fraction of settled alerts that a burst followed.
    pub fn precision(&self) -> Option<f64> {
        let settled = self.outcomes_burst + self.outcomes_none;
        (settled > 0).then(|| self.outcomes_burst as f64 / settled as f64)
    }

    /// p99 of the last 10 s of arrival-to-score latencies, in milliseconds.
    pub fn latency_p99_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.recent_latency_ms.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(nearest_rank(&v, 0.99))
    }

    /// Since the last frame (since the start, before the first).
    pub fn age(&self) -> Duration {
        self.last_frame.unwrap_or(self.since).elapsed()
    }

    /// No frame for [`STALE_AFTER`] (`/healthz`).
    pub fn stale(&self) -> bool {
        self.age() > STALE_AFTER
    }

    /// The last score (`None` before the first complete window).
    pub fn score(&self) -> Option<f64> {
        self.scores.back().and_then(|p| p.score)
    }
}

/// One camera's board; see the module documentation.
#[derive(Debug)]
pub struct CameraBoard {
    pub name: String,
    /// Its settings as its `start` line gives them.
    pub start: CameraStart,
    pub crop: Option<Crop>,
    /// Where its snapshots and clips go (with clips).
    pub clips_folder: Option<PathBuf>,
    /// The source's own picture (a GStreamer source; the simulator's is the model input).
    pub view: Option<Arc<SourceView>>,
    live: Mutex<Live>,
}

impl CameraBoard {
    pub fn new(
        start: CameraStart,
        crop: Option<Crop>,
        clips_folder: Option<PathBuf>,
        view: Option<Arc<SourceView>>,
    ) -> CameraBoard {
        let now = Instant::now();
        CameraBoard {
            name: start.name.clone(),
            start,
            crop,
            clips_folder,
            view,
            live: Mutex::new(Live {
                state: None,
                message: None,
                frames: 0,
                ring_dropped: 0,
                gaps: 0,
                reconnects: 0,
                alerts: 0,
                outcomes_burst: 0,
                outcomes_none: 0,
                auc: None,
                last_frame: None,
                since: now,
                score_latency: Histogram::default(),
                written_latency: Vec::new(),
                step: Histogram::default(),
                recent_latency_ms: VecDeque::with_capacity(RECENT_LATENCIES + 1),
                scores: VecDeque::with_capacity(CHART_FRAMES + 1),
                picture: None,
                recent: VecDeque::with_capacity(RECENT_ALERTS + 1),
                fps_mark: (now, 0),
                fps: None,
                picture_at: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything, consistent in itself.
    pub fn read(&self) -> Live {
        self.lock().clone()
    }

    /// Since its last frame, without copying the rest.
    pub fn age(&self) -> Duration {
        self.lock().age()
    }

    /// The scores after frame `after` (all of the last minute when `None`).
    pub fn scores_after(&self, after: Option<u64>) -> Vec<ScorePoint> {
        let l = self.lock();
        l.scores
            .iter()
            .filter(|p| after.is_none_or(|a| p.frame > a))
            .copied()
            .collect()
    }

    pub fn picture(&self) -> Option<Arc<Vec<u8>>> {
        self.lock().picture.clone()
    }

    /// A frame was scored; `pixels` is what the model saw (copied a few times a second),
    /// `ring_dropped` the frames the camera's ring has dropped so far.
    pub fn frame(&self, f: FrameFigures, ring_dropped: u64, pixels: &[u8]) {
        let now = Instant::now();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let want_picture = {
            let l = self.lock();
            l.picture_at.is_none_or(|t| now - t >= PICTURE_EVERY)
        };
        // Copied outside the lock: readers never wait for a memcpy.
        let picture = want_picture.then(|| Arc::new(pixels.to_vec()));
        let mut l = self.lock();
        l.frames += 1;
        l.ring_dropped = ring_dropped;
        l.last_frame = Some(now);
        l.score_latency.observe(f.latency.as_secs_f64());
        l.recent_latency_ms.push_back(f.latency.as_secs_f64() * 1e3);
        if l.recent_latency_ms.len() > RECENT_LATENCIES {
            l.recent_latency_ms.pop_front();
        }
        if let Some(s) = f.step {
            l.step.observe(s.as_secs_f64());
        }
        l.scores.push_back(ScorePoint {
            frame: f.frame,
            t_ms: wall,
            score: f.score,
            p_baseline: f.p_baseline,
        });
        if l.scores.len() > CHART_FRAMES {
            l.scores.pop_front();
        }
        if let Some(p) = picture {
            l.picture = Some(p);
            l.picture_at = Some(now);
        }
        let (mark, at) = l.fps_mark;
        let span = now - mark;
        if span >= FPS_SPAN {
            l.fps = Some((l.frames - at) as f64 / span.as_secs_f64());
            l.fps_mark = (now, l.frames);
        } else if l.fps.is_none() && span >= Duration::from_secs(1) {
            l.fps = Some((l.frames - at) as f64 / span.as_secs_f64());
        }
    }

    /// An event the camera emitted (before any output has it).
    pub fn event(&self, e: &Event) {
        let mut l = self.lock();
        match e {
            Event::Alert(a) => {
                l.alerts += 1;
                l.recent.push_back(AlertView {
                    id: a.id.clone(),
                    frame: a.frame,
                    time: a.wall_time.clone(),
                    score: a.score,
                    burst: None,
                    snapshot: a.snapshot.clone(),
                    clip: None,
                });
                if l.recent.len() > RECENT_ALERTS {
                    l.recent.pop_front();
                }
            }
            Event::Outcome(o) => {
                if o.burst {
                    l.outcomes_burst += 1;
                } else {
                    l.outcomes_none += 1;
                }
                if let Some(v) = l.recent.iter_mut().rev().find(|v| v.id == o.alert_id) {
                    v.burst = Some(o.burst);
                    v.clip = o.clip.clone();
                }
            }
            Event::Gap(_) => {
                l.gaps += 1;
                // The chart restarts with the windows.
                l.scores.clear();
            }
            Event::Status(s) => {
                if s.state == CameraState::Reconnecting {
                    l.reconnects += 1;
                }
                // A model failure is news, not a state: the camera goes on connected.
                if s.state != CameraState::ModelFailed {
                    l.state = Some(s.state);
                }
                l.message = s.message.clone();
            }
            Event::Stats(s) => l.auc = s.auc,
            Event::Start(_) | Event::Prediction(_) => {}
        }
    }

    fn written(&self, output: &str, latency: Duration) {
        let mut l = self.lock();
        let k = match l.written_latency.iter().position(|(o, _)| o == output) {
            Some(k) => k,
            None => {
                l.written_latency
                    .push((output.to_owned(), Histogram::default()));
                l.written_latency.len() - 1
            }
        };
        l.written_latency[k].1.observe(latency.as_secs_f64());
    }
}

/// Every camera's board, in the run's order.
#[derive(Debug)]
pub struct Board {
    pub started: Instant,
    cameras: Mutex<Vec<Arc<CameraBoard>>>,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            started: Instant::now(),
            cameras: Mutex::new(Vec::new()),
        }
    }
}

impl Board {
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<CameraBoard>>> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A camera (re)starts: its board replaces any of the same name, in the same place.
    pub fn add(&self, camera: Arc<CameraBoard>) {
        let mut cams = self.lock();
        match cams.iter().position(|c| c.name == camera.name) {
            Some(k) => cams[k] = camera,
            None => cams.push(camera),
        }
    }

    /// A camera is no longer watched (a reload removed it).
    pub fn remove(&self, name: &str) {
        self.lock().retain(|c| c.name != name);
    }

    /// Puts the cameras in this order (the config's); unnamed ones go last.
    pub fn order(&self, names: &[String]) {
        self.lock().sort_by_key(|c| {
            names
                .iter()
                .position(|n| *n == c.name)
                .unwrap_or(usize::MAX)
        });
    }

    pub fn cameras(&self) -> Vec<Arc<CameraBoard>> {
        self.lock().clone()
    }

    pub fn camera(&self, name: &str) -> Option<Arc<CameraBoard>> {
        self.lock().iter().find(|c| c.name == name).cloned()
    }

    /// The cameras without a frame for [`STALE_AFTER`], with how long.
    pub fn stale(&self) -> Vec<(String, Duration)> {
        self.cameras()
            .iter()
            .filter_map(|c| {
                let age = c.age();
                (age > STALE_AFTER).then(|| (c.name.clone(), age))
            })
            .collect()
    }
}

impl Written for Board {
    fn written(&self, output: &str, event: &Event) {
        let (source, arrival) = match event {
            Event::Alert(a) => (&a.source, a.arrival),
            Event::Prediction(p) => (&p.source, p.arrival),
            _ => return,
        };
        if let Some(c) = self.camera(source) {
            c.written(output, arrival.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounded_above() {
        let mut h = Histogram::default();
        for s in [0.0004, 0.0005, 0.003, 0.003, 2.0] {
            h.observe(s);
        }
        let c = h.cumulative();
        assert_eq!(c[0], (0.0005, 2), "le is inclusive");
        assert_eq!(c[3], (0.005, 4));
        assert_eq!(*c.last().unwrap(), (f64::INFINITY, 5));
        assert_eq!(h.count, 5);
        assert!((h.sum - 2.0069).abs() < 1e-12);
    }
}
