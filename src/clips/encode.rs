//! A gathered clip to an MP4 file: H.264 through GStreamer
//! (`appsrc ! x264enc ! mp4mux ! filesink`), written under a temporary name and renamed
//! once complete, so that a reader never sees half a clip.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::frame::ClipFrame;
use super::store;

/// x264 at its fastest preset: a 720p clip of 9.5 s costs about 1 s of one core (measured
/// in the README), and clips are written while the camera goes on. Constant quality
/// (`pass=qual`), a key frame every second so that a player seeks quickly, headers first
/// (`faststart`) so that a browser plays it before it has all of it.
const ENCODER: &str = "x264enc speed-preset=ultrafast pass=qual quantizer=20 key-int-max=30 \
                       ! mp4mux faststart=true";

/// Longest wait for the muxer to finish the file once every frame is in.
const FINISH_WAIT: Duration = Duration::from_secs(60);

/// The frames as bytes GStreamer can wrap without copying.
struct Shared(Arc<ClipFrame>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0.data
    }
}

/// How a clip is written (the test-only throttle, and when to give up).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pace {
    /// A pause before each frame: the slow encoder or disk of a test.
    pub per_frame: Duration,
    /// Past this, the clip is abandoned (the run is ending and may not wait longer).
    pub deadline: Option<Instant>,
}

/// Writes `frames` (one stream, in order) to `path` as MP4; returns its size in bytes.
/// Frame times start at 0 at the first frame and keep the source's spacing (a frame the
/// branch dropped leaves its time empty). On failure nothing is left at `path`.
pub fn write_mp4(frames: &[Arc<ClipFrame>], path: &Path, pace: Pace) -> Result<u64, String> {
    let first = frames.first().ok_or("no frame to write")?;
    let temp = store::temp_path(path);
    let result = encode(frames, first, &temp, pace).and_then(|()| {
        std::fs::rename(&temp, path).map_err(|e| format!("cannot rename {}: {e}", temp.display()))
    });
    match result {
        Ok(()) => Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

fn encode(
    frames: &[Arc<ClipFrame>],
    first: &ClipFrame,
    temp: &Path,
    pace: Pace,
) -> Result<(), String> {
    let caps = first
        .info
        .to_caps()
        .map_err(|e| format!("no caps for the clip: {e}"))?;
    let location = temp.to_str().ok_or("the clip's path is not UTF-8")?;
    let line = format!("appsrc name=src format=time ! {ENCODER} ! filesink name=file");
    let pipeline = gst::parse::launch(&line)
        .map_err(|e| format!("cannot build the encoder ({e}); expected x264enc and mp4mux (gstreamer1.0-plugins-ugly, -good)"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "the encoder is not a pipeline")?;
    let file = pipeline.by_name("file").ok_or("no filesink")?;
    file.set_property("location", location);
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    src.set_caps(Some(&caps));
    // The encoder takes frames as fast as it can: no live pacing, no frame dropped.
    src.set_max_bytes(0);
    src.set_block(true);
    let result = run(&pipeline, &src, frames, first, pace);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    frames: &[Arc<ClipFrame>],
    first: &ClipFrame,
    pace: Pace,
) -> Result<(), String> {
    let bus = pipeline.bus().ok_or("the encoder has no bus")?;
    let bus_error = || {
        bus.pop_filtered(&[gst::MessageType::Error])
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => e.error().to_string().replace('\n', " "),
                _ => String::new(),
            })
    };
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| bus_error().unwrap_or_else(|| "the encoder refused to start".into()))?;
    let frame_ns = 1_000_000_000 / crate::frame::FPS as u64;
    for f in frames {
        if !pace.per_frame.is_zero() {
            std::thread::sleep(pace.per_frame);
        }
        if pace.deadline.is_some_and(|d| Instant::now() > d) {
            return Err("the run ended before the clip was written".into());
        }
        if f.info != first.info {
            // A source that changed size mid-clip: the clip ends where it did.
            break;
        }
        let mut buffer = gst::Buffer::from_slice(Shared(f.clone()));
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_nseconds(f.pts_ns - first.pts_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        if src.push_buffer(buffer).is_err() {
            return Err(bus_error().unwrap_or_else(|| "the encoder stopped taking frames".into()));
        }
    }
    let _ = src.end_of_stream();
    match bus.timed_pop_filtered(
        gst::ClockTime::from_nseconds(FINISH_WAIT.as_nanos() as u64),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) => match m.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(e.error().to_string().replace('\n', " ")),
            _ => Err("unexpected message".into()),
        },
        None => Err(format!(
            "the encoder did not finish within {} s",
            FINISH_WAIT.as_secs()
        )),
    }
}
