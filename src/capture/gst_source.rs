//! Runs one GStreamer source: builds its pipeline, copies every appsink frame into the
//! frame ring (respecting strides), reads the bus in one place, and reconnects an RTSP
//! camera that drops, with backoff, while other sources run on. The pipeline always goes
//! back to Null (a dropped camera's on a thread of its own, so that reconnecting does not
//! wait on it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::ring::RingWriter;
use super::{pipeline, CaptureSettings, RtspTransport, SourceKind, SourceSpec};
use crate::clips::frame::ClipFrame;
use crate::clips::ClipFeed;
use crate::frame::{FPS, HEIGHT as FRAME_HEIGHT, WIDTH as FRAME_WIDTH};

/// What a source tells its inference thread besides frames.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// Frames of this session start flowing.
    Connected { session: u32 },
    /// The stream dropped; a new connection will be tried.
    Reconnecting { attempt: u32, reason: String },
    /// The stream ended normally (end of file, or stopped).
    Ended,
    /// The source failed for good.
    Failed(SourceFailure),
}

/// Why a source failed for good.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFailure {
    /// One line: what happened and what was expected.
    pub what: String,
    /// The path of the GStreamer element that reported it, when one did.
    pub element: Option<String>,
    /// Whether frames had flowed before (a stream that broke) or it failed at its start.
    pub after_start: bool,
}

/// `what`, then the GStreamer element that said it, if one did.
fn with_element(what: &str, element: Option<&str>) -> String {
    match element {
        Some(element) => format!("{what} (GStreamer element {element})"),
        None => what.to_owned(),
    }
}

impl SourceFailure {
    /// One line: what happened, what was expected, and the element that reported it.
    pub fn message(&self) -> String {
        with_element(&self.what, self.element.as_deref())
    }

    /// The failure as the library's error for camera `camera`.
    pub fn into_error(self, camera: &str) -> crate::Error {
        crate::Error::Capture {
            camera: camera.to_owned(),
            element: self.element,
            what: self.what,
            after_start: self.after_start,
        }
    }
}

/// A camera that sends no frame for this long while playing is treated as dropped: well
/// above the longest pause jitter makes (300 ms was measured to pass untouched), and short
/// enough to say "reconnecting" within 3 s of a network that stalls with its socket open.
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a new connection may take to its first frame: a camera joined in the middle of
/// its keyframe interval sends nothing decodable before the next keyframe, and some send
/// one every 10 s.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(12);
/// Longest wait between reconnection attempts, so that a camera that returns is picked
/// up within half a second.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts while the camera refuses the credentials.
const MAX_UNAUTHORIZED_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait for a camera's pipeline to reach Null before moving on (reconnecting).
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);

/// Starts the supervisor thread of camera `camera`'s source. With `clips` (and
/// `settings.clip_width`), the clips branch's pictures go there.
pub fn spawn(
    camera: String,
    spec: SourceSpec,
    settings: CaptureSettings,
    writer: RingWriter,
    events: Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
    clips: Option<ClipFeed>,
) -> std::io::Result<JoinHandle<()>> {
    spawn_source(format!("capture {camera}"), events, move |events| {
        let source = Source {
            camera,
            spec,
            settings,
            clips,
        };
        supervise(&source, Arc::new(Mutex::new(writer)), events, stop)
    })
}

/// Runs a source's thread; should it panic, its camera hears a failure instead of
/// silence (a camera waiting for frames that never come, with nothing said).
pub(crate) fn spawn_source(
    name: String,
    events: Sender<SourceEvent>,
    body: impl FnOnce(Sender<SourceEvent>) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        let mine = events.clone();
        let run = std::panic::AssertUnwindSafe(move || body(mine));
        if let Err(panic) = std::panic::catch_unwind(run) {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            let _ = events.send(SourceEvent::Failed(SourceFailure {
                what: format!("its capture thread failed ({why}); expected a working capture, a bug to report"),
                element: None,
                after_start: true,
            }));
        }
    })
}

/// What one supervisor watches.
struct Source {
    /// The camera's name, for logs.
    camera: String,
    spec: SourceSpec,
    settings: CaptureSettings,
    clips: Option<ClipFeed>,
}

/// A bus error: what it said and the path of the element that said it.
struct BusError {
    what: String,
    element: Option<String>,
    trouble: Trouble,
}

impl From<String> for BusError {
    fn from(what: String) -> Self {
        BusError {
            what,
            element: None,
            trouble: Trouble::Other,
        }
    }
}

/// What a failure means for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// The camera answered 461 Unsupported Transport: another transport may do.
    Refused,
    /// The camera answered 401 Unauthorized: asking again soon will not help.
    Unauthorized,
    Other,
}

/// How one pipeline session ended.
enum SessionEnd {
    Eos,
    Stopped,
    Error(BusError),
    Stalled,
}

fn supervise(
    source: &Source,
    writer: Arc<Mutex<RingWriter>>,
    events: Sender<SourceEvent>,
    stop: Arc<AtomicBool>,
) {
    let kind = &source.spec.kind;
    let reconnects = matches!(kind, SourceKind::Rtsp { .. });
    let frames_seen = Arc::new(AtomicU64::new(0));
    let mut transports = Transports::new(source.settings.rtsp_transport);
    let mut session = 0u32;
    let mut attempt = 0u32;
    // Consecutive sessions the camera refused the credentials of.
    let mut unauthorized = 0u32;
    loop {
        session += 1;
        let before = frames_seen.load(Ordering::Relaxed);
        let transport = reconnects.then(|| transports.now());
        let end = run_session(
            source,
            session,
            transport,
            &writer,
            &frames_seen,
            &events,
            &stop,
        );
        let got_frames = frames_seen.load(Ordering::Relaxed) > before;
        if got_frames {
            attempt = 0;
            unauthorized = 0;
            transports.connected();
        }
        let ever_connected = frames_seen.load(Ordering::Relaxed) > 0;
        let trouble = match &end {
            SessionEnd::Error(e) => e.trouble,
            _ => Trouble::Other,
        };
        let switched = if reconnects && !got_frames {
            transports.after(trouble, ever_connected)
        } else {
            None
        };
        let reason = match end {
            SessionEnd::Stopped => {
                let _ = events.send(SourceEvent::Ended);
                return;
            }
            SessionEnd::Eos if !reconnects => {
                let _ = events.send(SourceEvent::Ended);
                return;
            }
            SessionEnd::Error(e) if !(reconnects && ever_connected) && switched.is_none() => {
                let _ = events.send(SourceEvent::Failed(SourceFailure {
                    what: with_expectation(transports.history(e.what), kind),
                    element: e.element,
                    after_start: ever_connected,
                }));
                return;
            }
            SessionEnd::Eos => "the stream ended".to_string(),
            SessionEnd::Error(e) => with_element(&e.what, e.element.as_deref()),
            SessionEnd::Stalled => format!("no frame for {} s", STALL_TIMEOUT.as_secs()),
        };
        let reason = match switched {
            Some((next, why)) => format!("{why}; trying {next}"),
            None => reason,
        };
        attempt += 1;
        let backoff = if trouble == Trouble::Unauthorized {
            unauthorized += 1;
            // Wrong credentials do not get better by asking every half second: say it
            // once, then ask less and less often, up to every 30 s.
            Duration::from_secs(1 << (unauthorized - 1).min(5)).min(MAX_UNAUTHORIZED_BACKOFF)
        } else {
            unauthorized = 0;
            Duration::from_millis(125 << attempt.min(4)).min(MAX_BACKOFF)
        };
        if unauthorized <= 1 {
            tracing::warn!(camera = %source.camera, attempt, "{reason}; reconnecting");
            let _ = events.send(SourceEvent::Reconnecting { attempt, reason });
        } else {
            tracing::debug!(camera = %source.camera, attempt, ?backoff, "still unauthorized");
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                let _ = events.send(SourceEvent::Ended);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The transport an RTSP camera's next session uses, from its setting and what the
/// camera did: with `auto`, TCP first; UDP when the camera refuses TCP; TCP again when a
/// UDP session brings no frame (its packets do not arrive: a firewall).
#[derive(Debug)]
struct Transports {
    setting: RtspTransport,
    now: RtspTransport,
    /// What failed since the last frames, in order (for the message when all did).
    failed: Vec<String>,
    /// Since the last frames: the camera refused TCP, refused UDP, sent no UDP packets.
    refused_tcp: bool,
    refused_udp: bool,
    silent_udp: bool,
}

impl Transports {
    fn new(setting: RtspTransport) -> Transports {
        let now = match setting {
            RtspTransport::Udp => RtspTransport::Udp,
            _ => RtspTransport::Tcp,
        };
        Transports {
            setting,
            now,
            failed: Vec::new(),
            refused_tcp: false,
            refused_udp: false,
            silent_udp: false,
        }
    }

    fn now(&self) -> RtspTransport {
        self.now
    }

    /// Frames flowed: what failed before no longer counts.
    fn connected(&mut self) {
        self.failed.clear();
        (self.refused_tcp, self.refused_udp, self.silent_udp) = (false, false, false);
    }

    /// A session ended without a frame; returns the transport to switch to, if any, and
    /// why. At the start (`ever_connected` false) it switches only to one not yet tried;
    /// later it goes on switching, as a camera may change its mind.
    fn after(&mut self, trouble: Trouble, ever_connected: bool) -> Option<(RtspTransport, String)> {
        if self.setting != RtspTransport::Auto {
            return None;
        }
        let other = match self.now {
            RtspTransport::Tcp => RtspTransport::Udp,
            _ => RtspTransport::Tcp,
        };
        match (trouble, self.now) {
            (Trouble::Refused, RtspTransport::Tcp) => self.refused_tcp = true,
            (Trouble::Refused, _) => self.refused_udp = true,
            (Trouble::Unauthorized, _) => return None,
            (_, RtspTransport::Udp) => self.silent_udp = true,
            (_, _) => return None,
        }
        let why = match (trouble, self.now) {
            (Trouble::Refused, t) => format!("the camera refused {t} (461 Unsupported Transport)"),
            _ => "no UDP packets arrived (a firewall?)".to_string(),
        };
        self.failed.push(why.clone());
        let tried = match other {
            RtspTransport::Tcp => self.refused_tcp,
            _ => self.refused_udp || self.silent_udp,
        };
        if tried && !ever_connected {
            return None;
        }
        if tried {
            self.connected();
        }
        self.now = other;
        Some((other, why))
    }

    /// A failure's message: what the transports met since the last frames, when they
    /// met something (the camera refused one, another sent nothing), else `what`.
    fn history(&self, what: String) -> String {
        if self.failed.is_empty() {
            what
        } else {
            self.failed.join("; then ")
        }
    }
}

/// One pipeline from build to Null.
fn run_session(
    source: &Source,
    session: u32,
    transport: Option<RtspTransport>,
    writer: &Arc<Mutex<RingWriter>>,
    frames_seen: &Arc<AtomicU64>,
    events: &Sender<SourceEvent>,
    stop: &AtomicBool,
) -> SessionEnd {
    let settings = CaptureSettings {
        rtsp_transport: transport.unwrap_or_default(),
        ..source.settings.clone()
    };
    let pipeline = match pipeline::build(&source.spec, &settings) {
        Ok(p) => p,
        Err(e) => return SessionEnd::Error(e.into()),
    };
    let Some(sink) = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
    else {
        return SessionEnd::Error(String::from("the pipeline has no appsink named sink").into());
    };
    let last_frame = Arc::new(Mutex::new(Progress::default()));
    let retired = Arc::new(AtomicBool::new(false));
    let pictures = match watch_pictures(&pipeline) {
        Ok(p) => p,
        Err(e) => return SessionEnd::Error(e.into()),
    };
    let stamp = Stamp {
        session,
        transport,
        pictures,
    };
    install_callback(
        &sink,
        stamp,
        writer.clone(),
        frames_seen.clone(),
        last_frame.clone(),
        retired.clone(),
    );
    if let Some(feed) = &source.clips {
        if let Err(e) = install_clips(&pipeline, session, feed.clone(), retired.clone()) {
            return SessionEnd::Error(e.into());
        }
    }
    let end = play(&pipeline, source, session, &last_frame, events, stop);
    tracing::debug!(camera = %source.camera, session, "session over; stopping its pipeline");
    // From here on the session's frames are not wanted: a frame still on its way must not
    // land in the ring after the next session's.
    retired.store(true, Ordering::Relaxed);
    if matches!(source.spec.kind, SourceKind::Rtsp { .. }) {
        stop_in_background(pipeline, &source.camera, session);
    } else {
        let _ = pipeline.set_state(gst::State::Null);
        tracing::debug!(camera = %source.camera, session, "pipeline stopped");
    }
    end
}

/// Takes a camera's pipeline to Null on a thread of its own and waits for it at most
/// [`TEARDOWN_WAIT`]. rtspsrc blocks on its way down when the stream stalled in the middle
/// of a message: its read cannot be cancelled once a message has started, and the state
/// change waits on the lock of the task in that read until `tcp-timeout` (2 s here, 20 s
/// by default; `docs/rtspsrc-teardown.md` has the code path, backtraces and timings). The
/// stall detector's 2 s usually outlasts that read (Null then takes 0.1 s); a stop right at
/// such a stall, or a peer that trickles bytes, can still take longer, and reconnecting
/// must not wait on that.
fn stop_in_background(pipeline: gst::Pipeline, camera: &str, session: u32) {
    let (done, stopped) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name(format!("teardown {camera} {session}"))
        .spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        tracing::warn!(camera, session, "no thread to stop the pipeline on: {e}");
        return;
    }
    match stopped.recv_timeout(TEARDOWN_WAIT) {
        Ok(()) => tracing::debug!(camera, session, "pipeline stopped"),
        Err(_) => tracing::warn!(
            camera,
            session,
            "the camera's pipeline has not stopped after {} s; it is left to stop \
             in the background",
            TEARDOWN_WAIT.as_secs()
        ),
    }
}

/// The sample an appsink holds, unless its session is over (`retired`): a frame still on
/// its way must not land after the next session's.
fn current_sample(
    sink: &gst_app::AppSink,
    retired: &AtomicBool,
) -> Result<gst::Sample, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
    if retired.load(Ordering::Relaxed) {
        return Err(gst::FlowError::Flushing);
    }
    Ok(sample)
}

/// Where each of a session's pictures starts: the timestamp of the first frame of each size
/// (a camera reconfigured, or a file's stream changing size mid-way). Read where the decoded
/// picture enters the crop and scaling, so it is the source's own size (after
/// deinterlacing and rotation); by timestamp, so that frames still on their way to the
/// appsink at a change keep the picture they belong to.
#[derive(Debug, Default)]
struct Pictures {
    /// The size the caps said last.
    size: Option<(u32, u32)>,
    /// Whether it changed since the last frame.
    changed: bool,
    /// Whether a frame has passed.
    framed: bool,
    /// The first timestamp of every picture after the first, in order.
    starts: Vec<u64>,
}

impl Pictures {
    /// The picture (1, 2, ...) a frame with timestamp `pts_ns` belongs to.
    fn of(&self, pts_ns: u64) -> u32 {
        1 + self.starts.iter().take_while(|&&s| s <= pts_ns).count() as u32
    }
}

fn watch_pictures(pipeline: &gst::Pipeline) -> Result<Arc<Mutex<Pictures>>, String> {
    let pad = pipeline
        .by_name("crop")
        .and_then(|e| e.static_pad("sink"))
        .ok_or("the pipeline has no crop element with a sink pad")?;
    let pictures = Arc::new(Mutex::new(Pictures::default()));
    let seen = pictures.clone();
    let kinds = gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER;
    pad.add_probe(kinds, move |_, info| {
        let mut p = seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(now) = pipeline::caps_size(info) {
            if p.size != Some(now) {
                p.size = Some(now);
                p.changed = true;
            }
        } else if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            // The first frame of a new size starts a picture (the first one needs no start).
            if let (true, true, Some(pts)) = (p.changed, p.framed, buffer.pts()) {
                p.starts.push(pts.nseconds());
            }
            p.changed = false;
            p.framed = true;
        }
        gst::PadProbeReturn::Ok
    });
    Ok(pictures)
}

/// What every frame of a session carries besides its pixels and times.
struct Stamp {
    session: u32,
    /// An RTSP camera's transport in this session.
    transport: Option<RtspTransport>,
    pictures: Arc<Mutex<Pictures>>,
}

/// The appsink callback: copy the frame into a ring slot, row by row (strides differ).
fn install_callback(
    sink: &gst_app::AppSink,
    stamp: Stamp,
    writer: Arc<Mutex<RingWriter>>,
    frames_seen: Arc<AtomicU64>,
    last_frame: Arc<Mutex<Progress>>,
    retired: Arc<AtomicBool>,
) {
    let mut first_pts: Option<u64> = None;
    // A recorded file's duration, asked once: videorate may close a stream with one frame
    // timestamped at its very end (a 60 fps file of 4 s gives a 121st frame at 4.0 s),
    // which is not a frame of the file.
    let mut duration: Option<Option<u64>> = None;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = current_sample(sink, &retired)?;
                let arrival = Instant::now();
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let caps = sample.caps().ok_or(gst::FlowError::NotNegotiated)?;
                let info = gst_video::VideoInfo::from_caps(caps)
                    .map_err(|_| gst::FlowError::NotNegotiated)?;
                if info.width() as usize != FRAME_WIDTH || info.height() as usize != FRAME_HEIGHT {
                    return Err(gst::FlowError::NotNegotiated);
                }
                let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                    .map_err(|_| gst::FlowError::Error)?;
                let stride = frame.info().stride()[0] as usize;
                let data = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
                let pts_ns = buffer.pts().map_or(0, |p| p.nseconds());
                let end = *duration.get_or_insert_with(|| {
                    sink.query_duration::<gst::ClockTime>()
                        .map(|d| d.nseconds())
                });
                // Stream time from the first frame (an RTSP stream starts at its latency).
                let first = *first_pts.get_or_insert(pts_ns);
                let since_start = pts_ns.saturating_sub(first);
                if end.is_some_and(|end| since_start >= end) {
                    return Ok(gst::FlowSuccess::Ok);
                }
                // After videorate, timestamps step by exactly 1/30 s: the index follows.
                let index = (since_start * FPS as u64 + 500_000_000) / 1_000_000_000;
                let pictures = stamp.pictures.lock().unwrap_or_else(|e| e.into_inner());
                let picture = pictures.of(pts_ns);
                drop(pictures);
                let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                w.write(|slot| {
                    for (row, out) in slot.pixels.chunks_exact_mut(FRAME_WIDTH).enumerate() {
                        let start = row * stride;
                        out.copy_from_slice(&data[start..start + FRAME_WIDTH]);
                    }
                    slot.index = index;
                    slot.pts_ns = pts_ns;
                    slot.arrival = arrival;
                    slot.session = stamp.session;
                    slot.picture = picture;
                    slot.transport = stamp.transport;
                });
                frames_seen.fetch_add(1, Ordering::Relaxed);
                let mut progress = last_frame.lock().unwrap_or_else(|e| e.into_inner());
                progress.arrival = Some(arrival);
                progress.pts_ns = since_start;
                progress.duration_ns = end;
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// The clips branch's appsink: each picture, copied out of GStreamer's buffer, to the
/// camera's clips; and the source's size (before scaling) as its caps say.
fn install_clips(
    pipeline: &gst::Pipeline,
    session: u32,
    feed: ClipFeed,
    retired: Arc<AtomicBool>,
) -> Result<(), String> {
    let sink = pipeline
        .by_name("clips")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("the pipeline has no appsink named clips")?;
    let queue = pipeline
        .by_name("clipq")
        .ok_or("the pipeline has no clipq")?;
    let pad = queue
        .static_pad("sink")
        .ok_or("the clips queue has no sink pad")?;
    let sizes = feed.clone();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some((w, h)) = pipeline::caps_size(info) {
            sizes.set_source_size(w, h);
        }
        gst::PadProbeReturn::Ok
    });
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = current_sample(sink, &retired)?;
                if !feed.wants() {
                    // The web page's view has a picture recent enough: nothing to copy.
                    return Ok(gst::FlowSuccess::Ok);
                }
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let caps = sample.caps().ok_or(gst::FlowError::NotNegotiated)?;
                let info = gst_video::VideoInfo::from_caps(caps)
                    .map_err(|_| gst::FlowError::NotNegotiated)?;
                let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                    .map_err(|_| gst::FlowError::Error)?;
                let pts_ns = buffer.pts().map_or(0, |p| p.nseconds());
                let strides = frame.info().stride();
                let copied =
                    ClipFrame::copy_i420(session, pts_ns, info.width(), info.height(), |p| {
                        (
                            frame.plane_data(p as u32).unwrap_or(&[]),
                            strides[p] as usize,
                        )
                    });
                // A picture that cannot be read is the branch's loss alone.
                if let Some(f) = copied {
                    feed.push(f);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// Plays the pipeline and reads its bus until it ends, fails, stalls or is stopped.
fn play(
    pipeline: &gst::Pipeline,
    source: &Source,
    session: u32,
    last_frame: &Mutex<Progress>,
    events: &Sender<SourceEvent>,
    stop: &AtomicBool,
) -> SessionEnd {
    let Some(bus) = pipeline.bus() else {
        return SessionEnd::Error(String::from("the pipeline has no bus").into());
    };
    let live = source.spec.kind.is_live();
    tracing::debug!(camera = %source.camera, session, "starting the pipeline");
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus.
        return match bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(500),
            &[gst::MessageType::Error],
        ) {
            Some(msg) => SessionEnd::Error(describe(&msg)),
            None => SessionEnd::Error(String::from("the pipeline refused to start").into()),
        };
    }
    let started = Instant::now();
    let mut announced = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return SessionEnd::Stopped;
        }
        let progress = *last_frame.lock().unwrap_or_else(|e| e.into_inner());
        let last = progress.arrival;
        if let Some(t) = last {
            if !announced {
                announced = true;
                tracing::info!(camera = %source.camera, session, "frames flowing");
                let _ = events.send(SourceEvent::Connected { session });
            }
            if live && t.elapsed() > STALL_TIMEOUT {
                return SessionEnd::Stalled;
            }
        } else if live && started.elapsed() > FIRST_FRAME_TIMEOUT {
            return SessionEnd::Error(String::from("no frame arrived").into());
        }
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {
                // A camera's stream has no end to reach: it closed the connection.
                if live {
                    return SessionEnd::Eos;
                }
                // Every frame has passed the appsink once EOS is on the bus.
                return check_complete(&last_frame.lock().unwrap_or_else(|e| e.into_inner()));
            }
            Some(gst::MessageView::Error(_)) => {
                return SessionEnd::Error(describe(msg.as_ref().expect("matched Some")))
            }
            _ => {}
        }
    }
}

/// Ends a failure message with what was expected, unless it says so already.
fn with_expectation(message: String, kind: &SourceKind) -> String {
    if message.contains("expected") {
        return message;
    }
    let message = message.trim_end_matches('.');
    let expected = match kind {
        SourceKind::Rtsp { .. } => "expected a reachable RTSP camera serving video",
        SourceKind::File { .. } => "expected a video file GStreamer can decode",
        SourceKind::Launch(_) => "expected a launch line ending in a video branch",
        SourceKind::Sim { .. } => "expected the simulated tank",
    };
    format!("{message}; {expected}")
}

/// Where a session's stream has got to.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// When the last frame arrived.
    arrival: Option<Instant>,
    /// Its timestamp.
    pts_ns: u64,
    /// The stream's duration, when it has one (files).
    duration_ns: Option<u64>,
}

/// A file whose stream ends well before its stated duration was cut short: the decoders
/// gave up on a corrupt or truncated part without an error of their own.
fn check_complete(p: &Progress) -> SessionEnd {
    let frame_ns = 1_000_000_000 / FPS as u64;
    match p.duration_ns {
        Some(d) if p.arrival.is_some() && p.pts_ns + 3 * frame_ns < d => SessionEnd::Error(
            format!(
                "the stream ended at {:.2} s of its {:.2} s; the rest is unreadable \
                 (corrupt or truncated); expected a complete video file",
                p.pts_ns as f64 / 1e9,
                d as f64 / 1e9
            )
            .into(),
        ),
        _ => SessionEnd::Eos,
    }
}

/// A bus error's message as one line, made specific where GStreamer's own is not: its
/// debug text names the codec that has no decoder, and a stream "not linked" is a source
/// without a video stream.
fn what_failed(error: &str, debug: &str) -> (String, Trouble) {
    let error = error.replace('\n', " ");
    if let Some(missing) = debug
        .lines()
        .find_map(|l| l.trim().strip_prefix("Missing decoder:"))
    {
        let what = format!(
            "{error} (no decoder for {}): an unsupported codec",
            missing.trim()
        );
        return (what, Trouble::Other);
    }
    if debug.contains("reason not-linked") {
        let what = format!("{error}: the source has no video stream (audio only?)");
        return (what, Trouble::Other);
    }
    // rtspsrc's words when every SETUP was answered 461 Unsupported Transport.
    if error.starts_with("No supported stream was found") {
        let what = "the camera offers none of the transports asked for (461 Unsupported \
                    Transport); expected one it serves (rtsp_transport = \"auto\" tries TCP, \
                    then UDP)";
        return (what.into(), Trouble::Refused);
    }
    if error == "Unauthorized" || debug.contains("Unauthorized (401)") {
        // The credentials themselves are never part of a message.
        let what = "unauthorized: the camera refused the user name and password (401); \
                    expected the right ones";
        return (what.into(), Trouble::Unauthorized);
    }
    (error, Trouble::Other)
}

/// A bus error: what it said (one line) and the path of the element that said it.
fn describe(msg: &gst::Message) -> BusError {
    match msg.view() {
        gst::MessageView::Error(e) => {
            let (what, trouble) =
                what_failed(&e.error().to_string(), e.debug().as_deref().unwrap_or(""));
            BusError {
                what,
                element: msg.src().map(|s| s.path_string().to_string()),
                trouble,
            }
        }
        _ => String::from("unexpected bus message").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_errors_name_the_missing_codec_and_a_missing_video_stream() {
        let (codec, _) = what_failed(
            "Your GStreamer installation is missing a plug-in.",
            "Missing decoder: video/x-unknown (video/x-unknown, codec-id=(string)V_SNOW)",
        );
        assert!(codec.contains("no decoder for video/x-unknown") && codec.contains("V_SNOW"));
        let (audio, _) = what_failed(
            "Internal data stream error.",
            "qtdemux.c(6948): gst_qtdemux_loop ():\nstreaming stopped, reason not-linked (-1)",
        );
        assert!(audio.ends_with("no video stream (audio only?)"), "{audio}");
        assert_eq!(what_failed("a\nb", ""), ("a b".to_string(), Trouble::Other));
        let (refused, trouble) = what_failed(
            "No supported stream was found. You might need to allow more transport protocols.",
            "gstrtspsrc.c(7894): gst_rtspsrc_setup_streams_start ()",
        );
        assert!(
            refused.contains("461") && trouble == Trouble::Refused,
            "{refused}"
        );
        let (denied, trouble) = what_failed(
            "Unauthorized",
            "gstrtspsrc.c(6899): gst_rtspsrc_send (): Unauthorized (401)",
        );
        assert!(denied.starts_with("unauthorized") && trouble == Trouble::Unauthorized);
    }

    #[test]
    fn auto_goes_to_udp_when_tcp_is_refused_and_back_when_udp_is_silent() {
        use RtspTransport::{Auto, Tcp, Udp};
        // At the start: TCP refused, then UDP silent: nothing left to try, and the
        // message says both.
        let mut t = Transports::new(Auto);
        assert_eq!(t.now(), Tcp);
        assert_eq!(t.after(Trouble::Refused, false).map(|s| s.0), Some(Udp));
        assert_eq!(t.after(Trouble::Other, false), None);
        let said = t.history("ignored".into());
        assert!(said.contains("refused tcp (461") && said.contains("then no UDP packets"));
        // Once watched over UDP, a UDP session that brings nothing goes back to TCP, and
        // the one that works stays.
        let mut t = Transports::new(Auto);
        t.after(Trouble::Refused, false);
        t.connected();
        assert_eq!(t.now(), Udp);
        let (to, why) = t.after(Trouble::Other, true).unwrap();
        assert_eq!(
            (to, why.as_str()),
            (Tcp, "no UDP packets arrived (a firewall?)")
        );
        let (to, why) = t.after(Trouble::Refused, true).unwrap();
        assert_eq!(to, Udp, "later it keeps trying");
        assert!(why.contains("refused tcp"), "{why}");
        // Credentials are not a transport's fault; a fixed setting never switches.
        assert_eq!(t.after(Trouble::Unauthorized, true), None);
        let mut fixed = Transports::new(Tcp);
        assert_eq!(fixed.after(Trouble::Refused, false), None);
        assert_eq!(Transports::new(Udp).now(), Udp);
        assert_eq!(fixed.history("as said".into()), "as said");
    }

    #[test]
    fn a_source_thread_that_panics_is_a_failure_its_camera_hears() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let t = spawn_source("test".into(), tx, |_| panic!("no frames today")).unwrap();
        let _ = t.join();
        match rx.recv().unwrap() {
            SourceEvent::Failed(f) => assert!(f.what.contains("no frames today"), "{}", f.what),
            other => panic!("{other:?}"),
        }
    }
}
