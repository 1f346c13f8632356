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

/// Encodes `event` into `line` as stdout's sink does: the benchmarks' sinks pay the cost
/// of a line like a real output.
fn encode(line: &mut Vec<u8>, event: &Event) -> std::result::Result<(), SinkError> {
    line.clear();
    serde_json::to_writer(line, event).map_err(|e| SinkError::Failed(e.to_string()))
}

/// The benchmarks' output: encodes every line as stdout's sink does, and takes each
/// prediction's latency when its line is written (the frame's arrival to here, the output
/// queue's hop included), and the final figures of each camera.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<LineFigures>>);

#[derive(Default)]
struct LineFigures {
    /// (camera, frame, arrival since the run's start in s, latency in ms).
    latencies: Vec<(String, u64, f64, f64)>,
    /// Final stats: camera, frames, fps, dropped, gaps.
    finals: Vec<(String, u64, f64, u64, u64)>,
    line: Vec<u8>,
    start: Option<std::time::Instant>,
}

impl EventSink for Lines {
    fn name(&self) -> String {
        "benchmark".into()
    }

    fn write(&mut self, event: &Event) -> std::result::Result<(), SinkError> {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        encode(&mut f.line, event)?;
        match event {
            Event::Prediction(p) => {
                let ms = p.arrival.elapsed().as_secs_f64() * 1e3;
                let start = *f.start.get_or_insert(p.arrival);
                let at = p.arrival.saturating_duration_since(start).as_secs_f64();
                f.latencies.push((p.source.clone(), p.frame, at, ms));
            }
            Event::Stats(s) if s.is_final => {
                let row = (s.source.clone(), s.frames, s.fps, s.dropped, s.gaps);
                f.finals.push(row);
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
    let out = Lines::default();
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
    let f = out.0.lock().unwrap_or_else(|e| e.into_inner());
    let dropped = f.finals.iter().map(|r| r.3).sum();
    let gaps = f.finals.iter().map(|r| r.4).sum();
    let frames_min = f.finals.iter().map(|r| r.1).min().unwrap_or(0);
    let mut latencies: Vec<f64> = f.latencies.iter().map(|l| l.3).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| quantile(&latencies, q);
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

/// `bench --live --cameras`: simulated cameras at 30 fps through the whole `run` path
/// (simulator, ring, y~ and baseline, engine service, outputs), every frame's line written.
#[derive(Debug, Clone)]
pub struct CamerasBench {
    pub model: ModelChoice,
    pub mode: Mode,
    pub device: Device,
    /// Seconds per run.
    pub seconds: f64,
    /// The engine services' batch wait (`None`: the device's default).
    pub batch_wait: Option<Duration>,
    /// One camera more, whose frames stop for this long from the middle of the run: what
    /// a stalled camera does to the others' latency.
    pub stall: Option<Duration>,
}

/// One run of [`CamerasBench`].
#[derive(Debug, Clone, Serialize)]
pub struct CamerasReport {
    /// Cameras measured (the stalled one, if any, not counted).
    pub cameras: usize,
    pub mode: Mode,
    pub device: String,
    pub engine: Option<String>,
    /// Frames per second per camera, over the run: the slowest camera and the mean.
    pub fps_min: f64,
    pub fps_mean: f64,
    /// Ring overflows and gaps, over every measured camera.
    pub dropped: u64,
    pub gaps: u64,
    /// A frame's arrival to its line written, over every measured camera's lines once
    /// its first window is complete.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// The process's CPU time over the run, as a share of every core.
    pub cpu_percent: f64,
    /// The GPU's mean utilisation over the run (`nvidia-smi`), with CUDA.
    pub gpu_percent: Option<f64>,
    /// Engine steps per batch (one `step_groups` call: one launch on a GPU), mean and most.
    pub batch_mean: f64,
    pub batch_largest: u64,
    /// The stalled camera: the others' latency while it stalled and outside the stall.
    pub stall: Option<StallReport>,
}

/// What a stalled camera did to the others.
#[derive(Debug, Clone, Serialize)]
pub struct StallReport {
    pub seconds: f64,
    pub p99_during_ms: f64,
    pub p99_outside_ms: f64,
}

impl CamerasReport {
    /// Every camera at 30 fps with no frame lost, and p99 within `p99_ms`.
    pub fn sustained(&self, p99_ms: f64) -> bool {
        self.dropped == 0
            && self.gaps == 0
            && self.fps_min >= 0.97 * f64::from(crate::frame::FPS)
            && self.latency_p99_ms <= p99_ms
    }
}

/// Nearest-rank quantile of sorted values (NaN for none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    crate::alert::nearest_rank(sorted, q)
}

/// The GPU's utilisation, sampled by `nvidia-smi` while a run goes.
struct GpuSampler(Option<std::process::Child>);

impl GpuSampler {
    fn start(device: Device) -> GpuSampler {
        let Device::Cuda(n) = device else {
            return GpuSampler(None);
        };
        let child = std::process::Command::new("nvidia-smi")
            .args([
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                "-lms",
                "200",
                "-i",
                &n.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        GpuSampler(child)
    }

    /// The mean of the samples.
    fn finish(self) -> Option<f64> {
        let mut child = self.0?;
        let _ = child.kill();
        let out = child.wait_with_output().ok()?;
        let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// Runs `n` simulated cameras (seeds 1..=n; each its own phase within the frame period,
/// as unsynchronised cameras have) for `b.seconds`.
pub fn measure_cameras(n: usize, b: &CamerasBench) -> Result<CamerasReport> {
    let camera = |name: String, seed: u64| {
        let mut c = SourceConfig::new(name, SourceSpec::parse(&format!("sim:{seed}"))?);
        c.model = b.model.clone();
        c.mode = b.mode;
        c.device = b.device;
        c.score = ScoreKind::Fused;
        c.threshold = Some(0.5);
        c.emit = Emit::All;
        c.stats_every = Duration::from_secs(3600);
        Ok::<_, Error>(c)
    };
    let mut cameras = (1..=n)
        .map(|i| camera(format!("cam{i}"), i as u64))
        .collect::<Result<Vec<_>>>()?;
    let half = Duration::from_secs_f64(b.seconds / 2.0);
    if let Some(lasting) = b.stall {
        let mut c = camera("stalled".into(), n as u64 + 1)?;
        c.capture.sim_stall = Some(crate::capture::Stall { at: half, lasting });
        cameras.push(c);
    }
    let out = Lines::default();
    let runner = Runner::new(cameras)?
        .with_batch_wait(b.batch_wait)
        .with_duration(Duration::from_secs_f64(b.seconds));
    let figures = runner.engine_figures();
    let engine = runner.engine_names().into_iter().next();
    let device = match &engine {
        Some(name) if name.starts_with("cuda") => b.device.resolve().to_string(),
        Some(_) => "cpu".to_owned(),
        None => "none".to_owned(),
    };
    let gpu = GpuSampler::start(b.device.resolve());
    let cpu0 = crate::engine::bench::process_cpu_seconds();
    let t0 = std::time::Instant::now();
    runner.run(vec![Box::new(out.clone())])?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = crate::engine::bench::process_cpu_seconds()
        .zip(cpu0)
        .map_or(f64::NAN, |(a, b)| a - b);
    let gpu_percent = gpu.finish();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let f = out.0.lock().unwrap_or_else(|e| e.into_inner());
    let measured = |name: &str| name != "stalled";
    let finals: Vec<_> = f.finals.iter().filter(|r| measured(&r.0)).collect();
    let fps: Vec<f64> = finals.iter().map(|r| r.2).collect();
    // Once a camera's first window is complete: the frames that carry a model step and
    // its head (without a model, every frame).
    let windowed = |l: &&(String, u64, f64, f64)| measured(&l.0) && l.1 >= 119;
    let mut all: Vec<f64> = f.latencies.iter().filter(windowed).map(|l| l.3).collect();
    all.sort_by(f64::total_cmp);
    let stall = b.stall.map(|lasting| {
        let (from, to) = (half.as_secs_f64(), (half + lasting).as_secs_f64());
        let (mut during, mut outside): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        for (_, _, at, ms) in f.latencies.iter().filter(windowed) {
            if (from..to).contains(at) {
                during.push(*ms)
            } else {
                outside.push(*ms)
            }
        }
        during.sort_by(f64::total_cmp);
        outside.sort_by(f64::total_cmp);
        StallReport {
            seconds: lasting.as_secs_f64(),
            p99_during_ms: quantile(&during, 0.99),
            p99_outside_ms: quantile(&outside, 0.99),
        }
    });
    let (batches, steps, largest) = figures.iter().fold((0, 0, 0), |(b, s, l), f| {
        (
            b + f.batches.load(std::sync::atomic::Ordering::Relaxed),
            s + f.steps.load(std::sync::atomic::Ordering::Relaxed),
            l.max(f.largest.load(std::sync::atomic::Ordering::Relaxed)),
        )
    });
    Ok(CamerasReport {
        cameras: n,
        mode: b.mode,
        device,
        engine,
        fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
        fps_mean: fps.iter().sum::<f64>() / fps.len().max(1) as f64,
        dropped: finals.iter().map(|r| r.3).sum(),
        gaps: finals.iter().map(|r| r.4).sum(),
        latency_p50_ms: quantile(&all, 0.5),
        latency_p99_ms: quantile(&all, 0.99),
        latency_max_ms: all.last().copied().unwrap_or(f64::NAN),
        cpu_percent: 100.0 * cpu / (wall * cores),
        gpu_percent,
        batch_mean: steps as f64 / batches.max(1) as f64,
        batch_largest: largest,
        stall,
    })
}

/// The most cameras sustained ([`CamerasReport::sustained`] within `p99_ms`): doubling
/// from 1 until a count fails, then halving the interval between the last that held and
/// the first that failed, down to one camera (or an eighth of the count, past 64, so that
/// a GPU's thousand cameras take a few runs, not ten). Every run is reported to `progress`
/// as it ends; returns the most sustained (0 if even one camera is not) and every run, in
/// the order run.
pub fn most_cameras(
    b: &CamerasBench,
    p99_ms: f64,
    limit: usize,
    mut progress: impl FnMut(&CamerasReport),
) -> Result<(usize, Vec<CamerasReport>)> {
    let mut runs = Vec::new();
    let mut run = |n: usize, runs: &mut Vec<CamerasReport>| -> Result<bool> {
        let r = measure_cameras(n, b)?;
        progress(&r);
        let ok = r.sustained(p99_ms);
        runs.push(r);
        Ok(ok)
    };
    let (mut good, mut bad) = (0, None);
    let mut n = 1;
    while n <= limit.max(1) {
        if run(n, &mut runs)? {
            good = n;
            n *= 2;
        } else {
            bad = Some(n);
            break;
        }
    }
    let mut bad = bad.unwrap_or(limit.max(1) + 1).min(limit.max(1) + 1);
    while bad - good > 1 && (good <= 64 || bad - good > good / 8) {
        let mid = (good + bad) / 2;
        if run(mid, &mut runs)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok((good, runs))
}
