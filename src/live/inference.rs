//! The inference thread of one source: every frame gets y~ and the baseline; the model
//! (when there is one) steps on it; the chosen score goes through the alert machine; the
//! delayed labels judge alerts (`outcome`) and feed the rolling ROC-AUC. Gaps in the frame
//! sequence reset every window and are reported.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::FrameModel;
use crate::alert::{
    rfc3339, AlertEvent, AlertMachine, AlertRule, Event, GapEvent, LatencyWindow, OutcomeEvent,
    PredictionEvent, RollingAuc, ScoreKind, StatsEvent, StatusEvent,
};
use crate::capture::gst_source::SourceEvent;
use crate::capture::preprocess::{Preprocess, Preprocessor};
use crate::capture::ring::{FrameSlot, RingReader};
use crate::capture::{FRAME_HEIGHT, FRAME_WIDTH};
use crate::speed::{speed_proxy, Baseline, Labeller, STUDY_BASELINE, STUDY_LABELS};

/// How frames become events (what the user asked).
#[derive(Debug, Clone)]
pub struct InferenceSettings {
    pub score: ScoreKind,
    pub rule: AlertRule,
    /// Emit a `prediction` line for every frame.
    pub emit_all: bool,
    pub preprocess: Preprocess,
    /// Wall time between periodic `stats` lines.
    pub stats_every: Duration,
}

/// Frames of the rolling ROC-AUC: 5 minutes at 30 fps.
const AUC_FRAMES: usize = 9000;

/// How long a frame's lines have the cores to themselves before the next frame's model
/// step is prepared: the writer thread needs a core to write them, and preparing busies
/// every core the engine has.
const WRITER_FIRST: Duration = Duration::from_millis(2);

/// One source's inference state.
pub struct Inference {
    source: String,
    settings: InferenceSettings,
    model: Option<Box<dyn FrameModel>>,
    out: Sender<Event>,
    preprocessor: Preprocessor,
    baseline: Baseline,
    labeller: Labeller,
    alerts: AlertMachine,
    /// The previous frame (for y~), valid when `have_prev`, and the current one (reused).
    prev: Vec<u8>,
    cur: Vec<u8>,
    have_prev: bool,
    small: Vec<u8>,
    /// Output frame number of the first frame of the current segment (since the last gap).
    segment_start: u64,
    /// Output frame number = `session_base + slot.index` within a connection session.
    session: u32,
    session_base: u64,
    last_frame: Option<u64>,
    /// Recent scores, to join with labels that arrive 46 frames late.
    recent_scores: VecDeque<(u64, Option<f64>)>,
    pending_alerts: VecDeque<(u64, f64)>,
    auc: RollingAuc,
    latency: LatencyWindow,
    started: Instant,
    last_stats: Instant,
    frames: u64,
    gaps: u64,
    alert_count: u64,
}

impl Inference {
    pub fn new(
        source: String,
        settings: InferenceSettings,
        model: Option<Box<dyn FrameModel>>,
        out: Sender<Event>,
    ) -> Self {
        let now = Instant::now();
        Inference {
            preprocessor: Preprocessor::new(settings.preprocess),
            alerts: AlertMachine::new(settings.rule),
            source,
            settings,
            model,
            out,
            baseline: Baseline::new(STUDY_BASELINE),
            labeller: Labeller::new(STUDY_LABELS),
            prev: vec![0; FRAME_WIDTH * FRAME_HEIGHT],
            cur: vec![0; FRAME_WIDTH * FRAME_HEIGHT],
            have_prev: false,
            small: Vec::with_capacity(FRAME_WIDTH * FRAME_HEIGHT / 4),
            segment_start: 0,
            session: 0,
            session_base: 0,
            last_frame: None,
            recent_scores: VecDeque::with_capacity(64),
            pending_alerts: VecDeque::new(),
            auc: RollingAuc::new(AUC_FRAMES),
            latency: LatencyWindow::default(),
            started: now,
            last_stats: now,
            frames: 0,
            gaps: 0,
            alert_count: 0,
        }
    }

    fn emit(&self, e: Event) {
        // The writer is gone only when stdout closed; the run is ending then anyway.
        let _ = self.out.send(e);
    }

    fn status(&self, state: &str, message: Option<String>) {
        self.emit(Event::Status(StatusEvent {
            source: self.source.clone(),
            state: state.into(),
            message,
        }));
    }

    /// Runs until the source ends, fails or `stop` is set. Returns the source's failure.
    pub fn run(
        mut self,
        mut ring: RingReader,
        source_events: Receiver<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> Result<(), String> {
        let mut ended = false;
        let mut failure = None;
        // Whether the next frame's model step is prepared (or there is nothing to prepare).
        let mut prepared = true;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if self.last_stats.elapsed() >= self.settings.stats_every {
                self.stats(ring.dropped(), false);
            }
            let wait = if prepared {
                Duration::from_millis(20)
            } else {
                WRITER_FIRST
            };
            if let Some(slot) = ring.pop(wait) {
                self.process(&slot);
                ring.recycle(slot);
                prepared = self.model.is_none();
                continue;
            }
            if !prepared {
                // Waiting for the next frame, and the writer has had its moment for the lines
                // just sent: do the part of the next model step that does not need the frame.
                // (With frames queued, the step does it all anyway.)
                if let Some(m) = self.model.as_mut() {
                    m.prepare();
                }
                prepared = true;
            }
            // The ring is empty: every frame that came before a source event has been
            // processed, so events and frames are reported in the order they happened.
            while let Ok(ev) = source_events.try_recv() {
                match ev {
                    // Announced with the session's first frame instead (see `process`).
                    SourceEvent::Connected { .. } => {}
                    SourceEvent::Reconnecting { attempt, reason } => {
                        self.status("reconnecting", Some(format!("attempt {attempt}: {reason}")))
                    }
                    SourceEvent::Ended => ended = true,
                    SourceEvent::Failed(e) => {
                        failure = Some(e);
                        ended = true;
                    }
                }
            }
            if ended && ring.pending() == 0 {
                break;
            }
        }
        self.stats(ring.dropped(), true);
        match &failure {
            Some(e) => self.status("failed", Some(e.clone())),
            None => self.status("ended", None),
        }
        failure.map_or(Ok(()), Err)
    }

    /// Restarts every window at output frame `frame`.
    fn reset_windows(&mut self, frame: u64) {
        self.segment_start = frame;
        self.have_prev = false;
        self.baseline.reset();
        self.labeller.reset();
        self.alerts.rearm();
        self.recent_scores.clear();
        if let Some(m) = self.model.as_mut() {
            m.reset();
        }
    }

    fn process(&mut self, slot: &FrameSlot) {
        // Output frame numbers keep rising across reconnects; within a session they follow
        // the stream's timestamps, so frames the ring dropped leave a hole.
        if slot.session != self.session {
            let next = self.last_frame.map_or(0, |f| f + 1);
            self.session_base = next.saturating_sub(slot.index);
            if self.session != 0 {
                self.gap(next, 0, "reconnect");
                self.preprocessor.reset();
            }
            self.session = slot.session;
            self.status("connected", None);
        }
        let frame = self.session_base + slot.index;
        if let Some(last) = self.last_frame {
            if frame > last + 1 {
                self.gap(frame, frame - last - 1, "dropped");
            }
        }
        self.last_frame = Some(frame);
        self.frames += 1;

        self.cur.copy_from_slice(&slot.pixels);
        self.preprocessor.apply(&mut self.cur);
        let (mut y_tilde, mut p_baseline) = (None, None);
        if self.have_prev {
            let y = speed_proxy(&self.prev, &self.cur);
            y_tilde = Some(y);
            p_baseline = self.baseline.push(y);
            if let Some((t, label)) = self.labeller.push(y) {
                self.judge(self.segment_start + t as u64, label);
            }
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.have_prev = true;

        let p_model = match self.model.as_mut() {
            Some(m) => {
                downscale_half_into(&self.prev, &mut self.small);
                m.push_frame(&self.small).map(f64::from)
            }
            None => None,
        };
        let score = self.settings.score.combine(p_model, p_baseline);
        self.recent_scores.push_back((frame, score));
        if self.recent_scores.len() > 64 {
            self.recent_scores.pop_front();
        }
        let stream_time = slot.pts_ns as f64 / 1e9;
        if let Some(s) = score {
            if self.alerts.update(frame, s) {
                self.alert_count += 1;
                self.pending_alerts.push_back((frame, s));
                self.emit(Event::Alert(AlertEvent {
                    source: self.source.clone(),
                    frame,
                    stream_time,
                    wall_time: rfc3339(SystemTime::now() - slot.arrival.elapsed()),
                    score: s,
                    p_model,
                    p_baseline,
                    threshold: self.settings.rule.threshold,
                    latency_ms: 0.0,
                    arrival: slot.arrival,
                }));
            }
        }
        if self.settings.emit_all {
            self.emit(Event::Prediction(PredictionEvent {
                source: self.source.clone(),
                frame,
                stream_time,
                score,
                p_model,
                p_baseline,
                y_tilde,
                latency_ms: 0.0,
                arrival: slot.arrival,
            }));
        }
        self.latency
            .record(slot.arrival.elapsed().as_secs_f64() * 1e3);
    }

    /// A frame's label is known: settle its alert, if any, and score the live AUC.
    fn judge(&mut self, frame: u64, label: bool) {
        if let Some(&(_, Some(score))) = self.recent_scores.iter().find(|(f, _)| *f == frame) {
            self.auc.push(score, label);
        }
        while let Some(&(alert_frame, score)) = self.pending_alerts.front() {
            if alert_frame > frame {
                break;
            }
            self.pending_alerts.pop_front();
            if alert_frame == frame {
                self.emit(Event::Outcome(OutcomeEvent {
                    source: self.source.clone(),
                    frame,
                    burst: label,
                    score,
                }));
            }
        }
    }

    fn gap(&mut self, frame: u64, missing: u64, reason: &str) {
        self.gaps += 1;
        tracing::warn!(source = %self.source, frame, missing, reason, "gap in the stream; windows restart");
        self.emit(Event::Gap(GapEvent {
            source: self.source.clone(),
            frame,
            missing,
            reason: reason.into(),
        }));
        // Alerts whose label can no longer be computed get no outcome.
        self.pending_alerts.clear();
        self.reset_windows(frame);
    }

    fn stats(&mut self, dropped: u64, is_final: bool) {
        self.last_stats = Instant::now();
        let (p50, p99) = self.latency.take_percentiles();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        self.emit(Event::Stats(StatsEvent {
            source: self.source.clone(),
            frames: self.frames,
            fps: self.frames as f64 / elapsed,
            dropped,
            gaps: self.gaps,
            alerts: self.alert_count,
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            auc: self.auc.auc(),
            auc_frames: self.auc.len(),
            is_final,
        }));
    }
}

/// PIL-nearest halving (DESIGN §1: `small[y][x] = full[2y+1][2x+1]`) into a reused buffer.
fn downscale_half_into(full: &[u8], small: &mut Vec<u8>) {
    small.clear();
    for y in 0..FRAME_HEIGHT / 2 {
        let row = &full[(2 * y + 1) * FRAME_WIDTH..(2 * y + 2) * FRAME_WIDTH];
        small.extend(row.iter().skip(1).step_by(2));
    }
}
