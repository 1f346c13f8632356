//! The live benchmark: end-to-end latency of one 30 fps stream (appsink to line written)
//! and how many concurrent 30 fps streams the machine sustains without a ring overflow,
//! both through the real pipeline (H.264 file decoded at real speed by the pipeline clock,
//! ring, inference thread, writer).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;

use super::{ModelChoice, Runner, SourceConfig};
use crate::alert::ScoreKind;
use crate::capture::SourceSpec;
use crate::engine::{Device, Mode};
use crate::output::event::Emit;
use crate::output::{Event, EventSink, SinkError};
use crate::{Error, Result};

/// Records `seconds` of a moving test pattern as H.264 in Matroska (640x480, 30 fps): the
/// camera stand-in every stream of the benchmark decodes.
pub fn record_test_video(path: &Path, seconds: u32) -> Result<()> {
    crate::capture::pipeline::init()?;
    let line = format!(
        "videotestsrc num-buffers={} pattern=ball motion=sweep ! \
         video/x-raw,width=640,height=480,framerate=30/1 ! videoconvert ! \
         x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! matroskamux ! \
         filesink location=\"{}\"",
        seconds * 30,
        path.display()
    );
    let fail = |what: String| Error::Capture {
        camera: "benchmark video".into(),
        element: None,
        what,
        after_start: false,
    };
    let p = gst::parse::launch(&line).map_err(|e| fail(format!("{e}")))?;
    p.set_state(gst::State::Playing)
        .map_err(|e| fail(format!("{e}")))?;
    let bus = p.bus().ok_or_else(|| fail("no bus".into()))?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(300),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = p.set_state(gst::State::Null);
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(()),
        Some(gst::MessageView::Error(e)) => Err(fail(format!("cannot record it: {}", e.error()))),
        _ => Err(fail("recording it timed out".into())),
    }
}

/// The benchmark's output: encodes every line as stdout's sink does, and takes each
/// prediction's latency when its line is written (the frame's arrival to here, the output
/// queue's hop included), and the final figures of each stream.
#[derive(Clone, Default)]
struct Measured(Arc<Mutex<Figures>>);

#[derive(Default)]
struct Figures {
    latencies: Vec<f64>,
    dropped: u64,
    gaps: u64,
    frames: Vec<u64>,
    line: Vec<u8>,
}

impl EventSink for Measured {
    fn name(&self) -> String {
        "benchmark".into()
    }

    fn write(&mut self, event: &Event) -> std::result::Result<(), SinkError> {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.line.clear();
        serde_json::to_writer(&mut f.line, event).map_err(|e| SinkError::Failed(e.to_string()))?;
        match event {
            Event::Prediction(p) => {
                let ms = p.arrival.elapsed().as_secs_f64() * 1e3;
                f.latencies.push(ms);
            }
            Event::Stats(s) if s.is_final => {
                f.dropped += s.dropped;
                f.gaps += s.gaps;
                f.frames.push(s.frames);
            }
            _ => {}
        }
        Ok(())
    }
}

/// One run of `streams` copies of the video at real speed.
#[derive(Debug, Clone, Serialize)]
pub struct StreamsReport {
    pub streams: usize,
    /// Frames processed per stream (the minimum over the streams).
    pub frames_min: u64,
    /// Frames the rings dropped, over all streams.
    pub dropped: u64,
    pub gaps: u64,
    /// Appsink to line written (the output's queue included), over every `prediction`
    /// line of every stream.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// No frame dropped and no gap in any stream.
    pub sustained: bool,
}

/// Runs `streams` real-speed copies of `video` through a [`Runner`] with every frame's
/// prediction written, the model (if any) continuous on the CPU.
pub fn measure_streams(video: &Path, streams: usize, model: &ModelChoice) -> Result<StreamsReport> {
    let spec = SourceSpec::parse(&video.to_string_lossy())?;
    let out = Measured::default();
    let cameras = (0..streams)
        .map(|i| {
            let mut c = SourceConfig::new(format!("{}#{i}", spec.display), spec.clone());
            c.model = model.clone();
            c.mode = Mode::Continuous;
            c.device = Device::Cpu;
            c.score = ScoreKind::Fused;
            c.threshold = Some(0.5);
            c.emit = Emit::All;
            c.stats_every = Duration::from_secs(3600);
            c
        })
        .collect();
    Runner::new(cameras)?.run(vec![Box::new(out.clone())])?;
    let mut f = out.0.lock().unwrap_or_else(|e| e.into_inner());
    let (dropped, gaps) = (f.dropped, f.gaps);
    let frames_min = f.frames.iter().copied().min().unwrap_or(0);
    let latencies = &mut f.latencies;
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((q * latencies.len() as f64).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(StreamsReport {
        streams,
        frames_min,
        dropped,
        gaps,
        latency_p50_ms: at(0.5),
        latency_p99_ms: at(0.99),
        sustained: dropped == 0 && gaps == 0,
    })
}
