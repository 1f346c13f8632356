//! One camera's scoring, as a plain library type with no threads or channels: a frame
//! (and when it arrived) goes in, events come out. Every frame gets y~ and the baseline;
//! the model (when there is one) steps on it; the chosen score goes through the alert
//! machine; the labels, known 46 frames late, settle each alert (`outcome`) and feed the
//! rolling ROC-AUC. A hole in the frame numbers or a new connection resets every window
//! and is reported as a `gap`. A model that fails is reported once (`model_failed`) and
//! the camera goes on with the baseline.
//!
//! The camera thread ([`super::camera`]) is a short loop around it; tests drive it
//! directly with a fake [`FrameModel`].

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::board::FrameFigures;
use crate::alert::{AlertMachine, AlertRule, LatencyWindow, RollingAuc, ScoreKind};
use crate::capture::preprocess::{Preprocess, Preprocessor};
use crate::capture::RtspTransport;
use crate::clips::snapshot::{TracePoint, HISTORY_S};
use crate::clips::ClipCounts;
use crate::frame;
use crate::output::event::{
    rfc3339, AlertEvent, CameraState, Emit, Event, GapEvent, GapReason, OutcomeEvent,
    PredictionEvent, StatsEvent, StatusEvent,
};
use crate::speed::{speed_proxy, Baseline, Labeller, STUDY_BASELINE, STUDY_LABELS};
use crate::{Error, Result};

/// A model that scores frames online (an engine under a streaming schedule).
pub trait FrameModel: Send {
    /// Feeds one frame as sources deliver it (GRAY8 240x320, preprocessed); returns this
    /// frame's burst probability once its window of 120 frames is complete.
    fn push_frame(&mut self, frame: &[u8]) -> Result<Option<f32>>;
    /// Forgets every window (after a gap).
    fn reset(&mut self);
    /// Does what it can of the next frame's work before that frame arrives (called when
    /// no frame is waiting). Optional: this default does nothing.
    fn prepare(&mut self) -> Result<()> {
        Ok(())
    }
}

impl FrameModel for crate::engine::Stream {
    fn push_frame(&mut self, frame: &[u8]) -> Result<Option<f32>> {
        crate::engine::Stream::push_frame(self, frame)
    }

    fn reset(&mut self) {
        crate::engine::Stream::reset(self)
    }

    fn prepare(&mut self) -> Result<()> {
        crate::engine::Stream::prepare(self)
    }
}

/// How one camera's frames become events (what was asked for it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorerSettings {
    pub score: ScoreKind,
    pub rule: AlertRule,
    pub emit: Emit,
    pub preprocess: Preprocess,
}

/// One frame as the capture delivers it.
#[derive(Debug, Clone, Copy)]
pub struct CapturedFrame<'a> {
    /// GRAY8 240x320, rows packed.
    pub pixels: &'a [u8],
    /// Frame index within the connection session (from its timestamp, 30 fps).
    pub index: u64,
    /// Stream time in nanoseconds.
    pub pts_ns: u64,
    /// When it reached the appsink.
    pub arrival: Instant,
    /// Connection session; a new one means the stream restarted.
    pub session: u32,
    /// The source's picture within its session; a new one means its size changed.
    pub picture: u32,
    /// An RTSP camera's session: the lower transport in use.
    pub transport: Option<RtspTransport>,
}

/// Frames of the rolling ROC-AUC: 5 minutes at 30 fps.
const AUC_FRAMES: usize = 9000;

/// Frames of score history kept: what an alert's snapshot draws (10 s), and the scores
/// that labels, arriving 46 frames late, are joined with.
const TRACE_FRAMES: usize = HISTORY_S as usize * frame::FPS as usize;

/// One camera's scoring state; see the module documentation.
pub struct Scorer {
    camera: String,
    settings: ScorerSettings,
    model: Option<Box<dyn FrameModel>>,
    preprocessor: Preprocessor,
    baseline: Baseline,
    labeller: Labeller,
    alerts: AlertMachine,
    /// The previous frame (for y~), valid when `have_prev`, and the current one (reused).
    prev: Vec<u8>,
    cur: Vec<u8>,
    have_prev: bool,
    /// Output frame number of the first frame of the current segment (since the last gap).
    segment_start: u64,
    /// Output frame number = `session_base + index` within a connection session.
    session: u32,
    /// The picture (size) of the session's frames, as the source numbers them.
    picture: u32,
    session_base: u64,
    last_frame: Option<u64>,
    /// The last 10 s of scores since the last gap: for snapshots and the live AUC.
    trace: VecDeque<TracePoint>,
    /// Alerts waiting for their label: frame and score.
    pending_alerts: VecDeque<(u64, f64)>,
    auc: RollingAuc,
    latency: LatencyWindow,
    started: Instant,
    /// The last frame's latency (arrival to score) and model step.
    last_latency: Duration,
    last_step: Option<Duration>,
    frames: u64,
    gaps: u64,
    alert_count: u64,
    /// Outcomes known so far, and those a burst followed.
    settled: (u64, u64),
}

impl Scorer {
    /// A scorer for camera `camera`; without a model it scores with the baseline (and
    /// should be given [`ScoreKind::Baseline`]).
    pub fn new(
        camera: impl Into<String>,
        settings: ScorerSettings,
        model: Option<Box<dyn FrameModel>>,
    ) -> Scorer {
        Scorer {
            camera: camera.into(),
            preprocessor: Preprocessor::new(settings.preprocess),
            alerts: AlertMachine::new(settings.rule),
            settings,
            model,
            baseline: Baseline::new(STUDY_BASELINE),
            labeller: Labeller::new(STUDY_LABELS),
            prev: vec![0; frame::PIXELS],
            cur: vec![0; frame::PIXELS],
            have_prev: false,
            segment_start: 0,
            session: 0,
            picture: 0,
            session_base: 0,
            last_frame: None,
            trace: VecDeque::with_capacity(TRACE_FRAMES + 1),
            pending_alerts: VecDeque::new(),
            auc: RollingAuc::new(AUC_FRAMES),
            latency: LatencyWindow::default(),
            started: Instant::now(),
            last_latency: Duration::ZERO,
            last_step: None,
            frames: 0,
            gaps: 0,
            alert_count: 0,
            settled: (0, 0),
        }
    }

    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// The settings in force (after a model failure: the baseline's score and threshold).
    pub fn settings(&self) -> ScorerSettings {
        self.settings
    }

    /// Whether a model is scoring (none was given, or it failed).
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// Frames scored so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Scores one frame; its events (gap, status, alert, outcome, prediction) are
    /// appended to `out` in the order they happened.
    pub fn push(&mut self, frame: CapturedFrame<'_>, out: &mut Vec<Event>) {
        // Output frame numbers keep rising across reconnects; within a session they follow
        // the stream's timestamps, so frames the ring dropped leave a hole.
        if frame.session != self.session {
            let next = self.last_frame.map_or(0, |f| f + 1);
            self.session_base = next.saturating_sub(frame.index);
            if self.session != 0 {
                self.gap(next, 0, GapReason::Reconnect, out);
                self.preprocessor.reset();
            }
            self.session = frame.session;
            self.picture = frame.picture;
            out.push(self.status_with(CameraState::Connected, None, frame.transport));
        }
        let number = self.session_base + frame.index;
        if frame.picture != self.picture {
            // A picture of another size, scaled to 320x240 like the last: the speed proxy
            // between the two would measure the change of size, not the fish.
            self.picture = frame.picture;
            self.gap(number, 0, GapReason::Resized, out);
            self.preprocessor.reset();
        }
        if let Some(last) = self.last_frame {
            if number > last + 1 {
                self.gap(number, number - last - 1, GapReason::Dropped, out);
            }
        }
        self.last_frame = Some(number);
        self.frames += 1;

        self.cur.copy_from_slice(frame.pixels);
        self.preprocessor.apply(&mut self.cur);
        let (mut y_tilde, mut p_baseline) = (None, None);
        if self.have_prev {
            let y = speed_proxy(&self.prev, &self.cur);
            y_tilde = Some(y);
            p_baseline = self.baseline.push(y);
            if let Some((t, label)) = self.labeller.push(y) {
                self.judge(self.segment_start + t as u64, label, out);
            }
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.have_prev = true;

        let step_started = Instant::now();
        let stepped = self.model.as_mut().map(|m| m.push_frame(&self.prev));
        self.last_step = stepped.as_ref().map(|_| step_started.elapsed());
        let p_model = match stepped {
            Some(Ok(p)) => p.map(f64::from),
            Some(Err(e)) => {
                self.model_failed(number, &e, out);
                None
            }
            None => None,
        };
        let score = self.settings.score.combine(p_model, p_baseline);
        self.trace.push_back(TracePoint {
            frame: number,
            score,
            p_baseline,
        });
        if self.trace.len() > TRACE_FRAMES {
            self.trace.pop_front();
        }
        let stream_time = frame.pts_ns as f64 / 1e9;
        if let Some(s) = score {
            if self.alerts.update(number, s) {
                self.alert_count += 1;
                self.pending_alerts.push_back((number, s));
                out.push(Event::Alert(AlertEvent {
                    time: String::new(),
                    source: self.camera.clone(),
                    id: alert_id(&self.camera, number),
                    frame: number,
                    stream_time,
                    wall_time: rfc3339(SystemTime::now() - frame.arrival.elapsed()),
                    score: s,
                    p_model,
                    p_baseline,
                    threshold: self.settings.rule.threshold,
                    latency_ms: 0.0,
                    snapshot: None,
                    arrival: frame.arrival,
                }));
            }
        }
        if self.settings.emit == Emit::All {
            out.push(Event::Prediction(PredictionEvent {
                time: String::new(),
                source: self.camera.clone(),
                frame: number,
                stream_time,
                score,
                p_model,
                p_baseline,
                y_tilde,
                latency_ms: 0.0,
                arrival: frame.arrival,
            }));
        }
        self.last_latency = frame.arrival.elapsed();
        self.latency.record(self.last_latency.as_secs_f64() * 1e3);
    }

    /// The frame just scored, as a watcher's board takes it.
    pub fn last_figures(&self) -> Option<FrameFigures> {
        let point = self.trace.back()?;
        Some(FrameFigures {
            frame: point.frame,
            score: point.score,
            p_baseline: point.p_baseline,
            latency: self.last_latency,
            step: self.last_step,
        })
    }

    /// The last 10 s of scores (since the last gap), oldest first: what a snapshot draws.
    pub fn trace(&self) -> Vec<TracePoint> {
        self.trace.iter().copied().collect()
    }

    /// Does ahead what the model can of the next frame's step (call it when no frame is
    /// waiting). A failure is the model's failure, reported as for a frame.
    pub fn prepare(&mut self, out: &mut Vec<Event>) {
        if let Some(Err(e)) = self.model.as_mut().map(|m| m.prepare()) {
            let next = self.last_frame.map_or(0, |f| f + 1);
            self.model_failed(next, &e, out);
        }
    }

    /// The source dropped and is being reconnected.
    pub fn reconnecting(&mut self, attempt: u32, reason: &str, out: &mut Vec<Event>) {
        out.push(self.status(
            CameraState::Reconnecting,
            Some(format!("attempt {attempt}: {reason}")),
        ));
    }

    /// The source is over: ended (`failure` is `None`; `note` says why, as "removed from
    /// the config") or failed for good.
    pub fn end(&mut self, failure: Option<&str>, note: Option<&str>, out: &mut Vec<Event>) {
        out.push(match failure {
            Some(why) => self.status(CameraState::Failed, Some(why.to_owned())),
            None => self.status(CameraState::Ended, note.map(str::to_owned)),
        });
    }

    /// The camera's figures so far (`ring_dropped`: frames its ring dropped;
    /// `dropped_lines`: its events the outputs dropped; `clips`: its clip figures, with
    /// clips); starts a new latency window.
    pub fn stats(
        &mut self,
        ring_dropped: u64,
        dropped_lines: u64,
        clips: Option<ClipCounts>,
        is_final: bool,
        out: &mut Vec<Event>,
    ) {
        let (p50, p99) = self.latency.take_percentiles();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        out.push(Event::Stats(StatsEvent {
            time: String::new(),
            source: self.camera.clone(),
            frames: self.frames,
            fps: self.frames as f64 / elapsed,
            dropped: ring_dropped,
            dropped_lines,
            gaps: self.gaps,
            alerts: self.alert_count,
            alerts_settled: self.settled.0,
            alerts_followed: self.settled.1,
            precision: (self.settled.0 > 0).then(|| self.settled.1 as f64 / self.settled.0 as f64),
            clips_written: clips.map(|c| c.written),
            clips_dropped: clips.map(|c| c.dropped),
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            auc: self.auc.auc(),
            auc_frames: self.auc.len(),
            is_final,
        }));
    }

    fn status(&self, state: CameraState, message: Option<String>) -> Event {
        self.status_with(state, message, None)
    }

    fn status_with(
        &self,
        state: CameraState,
        message: Option<String>,
        transport: Option<RtspTransport>,
    ) -> Event {
        Event::Status(StatusEvent {
            time: String::new(),
            source: self.camera.clone(),
            state,
            message,
            transport,
        })
    }

    /// The model failed: say so once, forget it, and go on with the baseline's score and
    /// the baseline's threshold (the study's, as for a camera without a model).
    fn model_failed(&mut self, frame: u64, e: &Error, out: &mut Vec<Event>) {
        self.model = None;
        let mut switch = String::new();
        if self.settings.score != ScoreKind::Baseline {
            let threshold = ScoreKind::Baseline.default_threshold();
            self.settings.score = ScoreKind::Baseline;
            self.settings.rule.threshold = threshold;
            self.alerts.set_rule(self.settings.rule);
            switch = format!(" and its threshold {threshold}");
        }
        tracing::error!(
            camera = %self.camera,
            frame,
            "the model failed: {e}; scoring with the baseline alone from now on"
        );
        out.push(self.status(
            CameraState::ModelFailed,
            Some(format!(
                "{e}; from frame {frame} on, alerts come from the baseline's score{switch}"
            )),
        ));
    }

    /// Restarts every window at output frame `frame`.
    fn reset_windows(&mut self, frame: u64) {
        self.segment_start = frame;
        self.have_prev = false;
        self.baseline.reset();
        self.labeller.reset();
        self.alerts.rearm();
        self.trace.clear();
        if let Some(m) = self.model.as_mut() {
            m.reset();
        }
    }

    /// A frame's label is known: settle its alert, if any, and score the live AUC.
    fn judge(&mut self, frame: u64, label: bool, out: &mut Vec<Event>) {
        // The label is 46 frames late: its frame is near the back.
        let scored = self.trace.iter().rev().find(|t| t.frame == frame);
        if let Some(score) = scored.and_then(|t| t.score) {
            self.auc.push(score, label);
        }
        while let Some(&(alert_frame, score)) = self.pending_alerts.front() {
            if alert_frame > frame {
                break;
            }
            self.pending_alerts.pop_front();
            if alert_frame == frame {
                self.settled.0 += 1;
                self.settled.1 += u64::from(label);
                out.push(Event::Outcome(OutcomeEvent {
                    time: String::new(),
                    source: self.camera.clone(),
                    alert_id: alert_id(&self.camera, frame),
                    frame,
                    burst: label,
                    score,
                    clip: None,
                }));
            }
        }
    }

    fn gap(&mut self, frame: u64, missing: u64, reason: GapReason, out: &mut Vec<Event>) {
        self.gaps += 1;
        tracing::warn!(camera = %self.camera, frame, missing, ?reason, "gap in the stream; windows restart");
        out.push(Event::Gap(GapEvent {
            time: String::new(),
            source: self.camera.clone(),
            frame,
            missing,
            reason,
        }));
        // Alerts whose label can no longer be computed get no outcome.
        self.pending_alerts.clear();
        self.reset_windows(frame);
    }
}

/// An alert's identity: `<camera>-<frame>`.
pub fn alert_id(camera: &str, frame: u64) -> String {
    format!("{camera}-{frame}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speed::FIRST_FRAME;
    use std::sync::{Arc, Mutex};

    /// A model that gives probability `p(t)` for the t-th frame since its last reset
    /// once 120 frames were seen, and fails from its `fail_at`-th frame on.
    struct FakeModel {
        seen: usize,
        pushed: usize,
        p: fn(usize) -> f32,
        fail_at: Option<usize>,
        resets: Arc<Mutex<usize>>,
    }

    impl FrameModel for FakeModel {
        fn push_frame(&mut self, frame: &[u8]) -> Result<Option<f32>> {
            assert_eq!(frame.len(), frame::PIXELS);
            self.pushed += 1;
            if self.fail_at.is_some_and(|n| self.pushed > n) {
                return Err(Error::Engine("the device went away".into()));
            }
            let t = self.seen;
            self.seen += 1;
            Ok((t >= FIRST_FRAME).then(|| (self.p)(t)))
        }
        fn reset(&mut self) {
            self.seen = 0;
            *self.resets.lock().unwrap() += 1;
        }
    }

    fn fake(
        p: fn(usize) -> f32,
        fail_at: Option<usize>,
    ) -> (Box<dyn FrameModel>, Arc<Mutex<usize>>) {
        let resets = Arc::new(Mutex::new(0));
        let m = FakeModel {
            seen: 0,
            pushed: 0,
            p,
            fail_at,
            resets: resets.clone(),
        };
        (Box::new(m), resets)
    }

    /// A tank with one bright 20x20 fish that swims 4 px a frame for 30 frames, then rests
    /// for 30: y~ alternates between ~0.002 and 0, so the baseline alerts at each rest and
    /// the labels see the next swim coming.
    fn tank_frame(t: u64) -> Vec<u8> {
        let mut f = vec![0u8; frame::PIXELS];
        let cycle = t % 60;
        let swum = (t / 60) * 30 + cycle.min(30);
        let x0 = (swum * 4) % (frame::WIDTH as u64 - 20);
        for y in 100..120 {
            for x in x0..x0 + 20 {
                f[y * frame::WIDTH + x as usize] = 255;
            }
        }
        f
    }

    fn settings(score: ScoreKind, threshold: f64) -> ScorerSettings {
        ScorerSettings {
            score,
            rule: AlertRule::new(threshold),
            emit: Emit::All,
            preprocess: Preprocess::None,
        }
    }

    /// Pushes frames with the given (session, index) numbers; returns every event.
    fn run(scorer: &mut Scorer, frames: impl IntoIterator<Item = (u32, u64)>) -> Vec<Event> {
        run_pictures(scorer, frames.into_iter().map(|(s, i)| (s, 1, i)))
    }

    /// Pushes frames with the given (session, picture, index) numbers; returns every event.
    fn run_pictures(
        scorer: &mut Scorer,
        frames: impl IntoIterator<Item = (u32, u32, u64)>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for (k, (session, picture, index)) in frames.into_iter().enumerate() {
            let pixels = tank_frame(k as u64);
            scorer.push(
                CapturedFrame {
                    pixels: &pixels,
                    index,
                    pts_ns: index * 33_333_333,
                    arrival: Instant::now(),
                    session,
                    picture,
                    transport: None,
                },
                &mut out,
            );
        }
        out
    }

    fn of<'a>(events: &'a [Event], kind: &str) -> Vec<&'a Event> {
        events.iter().filter(|e| e.kind() == kind).collect()
    }

    fn predictions(events: &[Event]) -> Vec<&PredictionEvent> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Prediction(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn alerts(events: &[Event]) -> Vec<&AlertEvent> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Alert(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_hole_in_the_frames_is_a_gap_and_every_window_restarts() {
        let (model, resets) = fake(|_| 0.1, None);
        let mut s = Scorer::new("tank-a", settings(ScoreKind::Fused, 0.9), Some(model));
        // Frames 0..300, then 10 missing, then 300 more.
        let frames = (0..300).chain(310..610).map(|i| (1, i));
        let events = run(&mut s, frames);
        let gaps: Vec<&Event> = of(&events, "gap");
        assert_eq!(gaps.len(), 1);
        let Event::Gap(g) = gaps[0] else { panic!() };
        assert_eq!(
            (g.frame, g.missing, g.reason),
            (310, 10, GapReason::Dropped)
        );
        assert_eq!(*resets.lock().unwrap(), 1);
        let p = predictions(&events);
        // Scores warm up for 119 frames after the start and after the gap.
        let scored: Vec<u64> = p
            .iter()
            .filter(|p| p.score.is_some())
            .map(|p| p.frame)
            .collect();
        assert_eq!(scored.first(), Some(&119));
        assert!(!scored.contains(&(310 + 118)) && scored.contains(&(310 + 119)));
        assert!(p.iter().all(|p| p.frame != 300 && p.frame != 309));
        // y~ is null on the first frame of each segment.
        assert!(p.iter().find(|p| p.frame == 310).unwrap().y_tilde.is_none());
    }

    #[test]
    fn a_new_session_is_a_reconnect_gap_and_frame_numbers_keep_rising() {
        let (model, resets) = fake(|_| 0.1, None);
        let mut s = Scorer::new("tank-a", settings(ScoreKind::Fused, 0.9), Some(model));
        let frames = (0..200).map(|i| (1, i)).chain((0..200).map(|i| (2, i)));
        let events = run(&mut s, frames);
        let Event::Gap(g) = of(&events, "gap")[0] else {
            panic!()
        };
        assert_eq!(
            (g.frame, g.missing, g.reason),
            (200, 0, GapReason::Reconnect)
        );
        let connected = events
            .iter()
            .filter(|e| matches!(e, Event::Status(s) if s.state == CameraState::Connected))
            .count();
        assert_eq!(connected, 2);
        assert_eq!(*resets.lock().unwrap(), 1);
        let last = predictions(&events).last().unwrap().frame;
        assert_eq!(last, 399);
    }

    #[test]
    fn a_new_picture_size_is_a_resized_gap_and_the_frames_go_on() {
        let (model, resets) = fake(|_| 0.1, None);
        let mut s = Scorer::new("tank-a", settings(ScoreKind::Fused, 0.9), Some(model));
        // The second picture starts at frame 150 of the same session.
        let frames = (0..300).map(|i| (1, if i < 150 { 1 } else { 2 }, i));
        let events = run_pictures(&mut s, frames);
        let gaps = of(&events, "gap");
        let [Event::Gap(g)] = gaps.as_slice() else {
            panic!("one gap: {gaps:?}")
        };
        assert_eq!((g.frame, g.missing, g.reason), (150, 0, GapReason::Resized));
        assert_eq!(*resets.lock().unwrap(), 1, "the model's state restarts");
        let p = predictions(&events);
        assert_eq!(p.len(), 300, "no frame is lost");
        assert!(p[150].y_tilde.is_none() && p[151].y_tilde.is_some());
        assert!(p[149].score.is_some() && p[150 + 118].score.is_none());
    }

    #[test]
    fn every_alert_gets_its_outcome_46_frames_later() {
        let mut s = Scorer::new("tank-a", settings(ScoreKind::Baseline, 0.604), None);
        let events = run(&mut s, (0..1200).map(|i| (1, i)));
        let a = alerts(&events);
        assert!(a.len() >= 10, "the resting fish alerts: {}", a.len());
        let outcomes: Vec<&OutcomeEvent> = events
            .iter()
            .filter_map(|e| match e {
                Event::Outcome(o) => Some(o),
                _ => None,
            })
            .collect();
        // Every alert whose 46 frames of future have been seen is settled, in order.
        let settled: Vec<&&AlertEvent> = a.iter().filter(|a| a.frame + 47 <= 1200).collect();
        assert_eq!(outcomes.len(), settled.len());
        for (o, a) in outcomes.iter().zip(&settled) {
            assert_eq!(o.alert_id, a.id);
            assert_eq!(a.id, format!("tank-a-{}", a.frame));
            assert_eq!(o.frame, a.frame);
            assert_eq!(o.score, a.score);
        }
        // Each outcome comes after the frame 46 later (its label needs those frames).
        let pos = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
        for o in &outcomes {
            let at = pos(&|e| matches!(e, Event::Outcome(x) if x.frame == o.frame));
            let future = pos(&|e| matches!(e, Event::Prediction(p) if p.frame == o.frame + 45));
            assert!(at > future);
        }
        // The resting fish's next swim is a burst: most alerts are right.
        let right = outcomes.iter().filter(|o| o.burst).count();
        assert!(right * 2 > outcomes.len(), "{right} of {}", outcomes.len());
        // The stats line counts them: the live precision.
        let mut out = Vec::new();
        s.stats(0, 0, None, true, &mut out);
        let Event::Stats(st) = &out[0] else { panic!() };
        assert_eq!(st.alerts_settled, outcomes.len() as u64);
        assert_eq!(st.alerts_followed, right as u64);
        assert_eq!(st.precision, Some(right as f64 / outcomes.len() as f64));
    }

    #[test]
    fn the_rolling_auc_appears_once_both_classes_were_seen() {
        let mut s = Scorer::new("tank-a", settings(ScoreKind::Baseline, 0.604), None);
        let mut out = Vec::new();
        s.stats(0, 0, None, false, &mut out);
        let Event::Stats(before) = &out[0] else {
            panic!()
        };
        assert_eq!((before.auc, before.auc_frames), (None, 0));
        let _ = run(&mut s, (0..1200).map(|i| (1, i)));
        out.clear();
        s.stats(3, 7, None, true, &mut out);
        let Event::Stats(after) = &out[0] else {
            panic!()
        };
        let auc = after.auc.expect("both classes seen");
        assert!(auc > 0.6, "the baseline reads the resting fish: {auc}");
        // Labelled frames: from frame 119 (the baseline's first) to T - 47.
        assert_eq!(after.auc_frames, 1200 - 47 - FIRST_FRAME + 1);
        assert_eq!(
            (after.frames, after.dropped, after.dropped_lines),
            (1200, 3, 7)
        );
        assert!(after.is_final);
    }

    #[test]
    fn thresholds_and_scores_decide_alerts() {
        // The model's score alone: it crosses 0.7 at frame 200 and 0.4 never.
        let p = |t: usize| if (200..210).contains(&t) { 0.75 } else { 0.1 };
        for (threshold, want) in [(0.7, vec![200]), (0.8, vec![])] {
            let (model, _) = fake(p, None);
            let mut s = Scorer::new("t", settings(ScoreKind::Model, threshold), Some(model));
            let events = run(&mut s, (0..400).map(|i| (1, i)));
            let got: Vec<u64> = alerts(&events).iter().map(|a| a.frame).collect();
            assert_eq!(got, want, "threshold {threshold}");
            for a in alerts(&events) {
                assert_eq!(a.threshold, threshold);
                assert_eq!(Some(a.score), a.p_model);
            }
        }
        // Fused: the mean of the model and the baseline.
        let (model, _) = fake(|_| 0.5, None);
        let mut s = Scorer::new("t", settings(ScoreKind::Fused, 0.0), Some(model));
        let events = run(&mut s, (0..200).map(|i| (1, i)));
        for p in predictions(&events) {
            if let (Some(m), Some(b)) = (p.p_model, p.p_baseline) {
                assert_eq!(p.score, Some((m + b) / 2.0));
            }
        }
    }

    #[test]
    fn a_failing_engine_is_one_model_failed_status_then_baseline_alerts() {
        let (model, _) = fake(|_| 0.1, Some(400));
        let mut s = Scorer::new("tank-a", settings(ScoreKind::Fused, 0.9), Some(model));
        let events = run(&mut s, (0..1500).map(|i| (1, i)));
        let failed: Vec<&StatusEvent> = events
            .iter()
            .filter_map(|e| match e {
                Event::Status(s) if s.state == CameraState::ModelFailed => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), 1, "said once");
        let message = failed[0].message.as_deref().unwrap();
        assert!(message.contains("the device went away"), "{message}");
        assert!(message.contains("from frame 400"), "{message}");
        assert!(!s.has_model());
        assert_eq!(s.settings().score, ScoreKind::Baseline);
        let a = alerts(&events);
        assert!(
            a.iter().all(|a| a.frame >= 400),
            "none before: the fused threshold is high"
        );
        assert!(a.len() >= 5, "the baseline alerts afterwards: {}", a.len());
        for a in &a {
            assert_eq!(a.p_model, None);
            assert_eq!(Some(a.score), a.p_baseline);
            assert_eq!(a.threshold, 0.604);
        }
        assert!(predictions(&events)
            .iter()
            .filter(|p| p.frame >= 400)
            .all(|p| p.p_model.is_none()));
    }

    #[test]
    fn alerts_only_without_predictions() {
        let mut s = Scorer::new(
            "t",
            ScorerSettings {
                emit: Emit::Alerts,
                ..settings(ScoreKind::Baseline, 0.604)
            },
            None,
        );
        let events = run(&mut s, (0..600).map(|i| (1, i)));
        assert!(of(&events, "prediction").is_empty());
        assert!(!of(&events, "alert").is_empty());
    }
}
