//! Throughput of the streaming parts, every figure measured in the same run: frames per
//! second and achieved GFLOP/s of each mode for each study model, peak memory per mode,
//! the speed-up over the plain scalar reference engine, and the cost of the streaming
//! baseline. The CLI's `bench` command only prints what [`run`] returns.
//!
//! Each mode is measured in a fresh child process (the same binary, re-executed with the
//! hidden subcommand [`CHILD_COMMAND`]) so that its peak resident memory (VmHWM) is its
//! own, once with each convolution of the CPU engine on the best instruction set, and with
//! the direct convolution on AVX2 where the best is AVX-512, side by side
//! (`BURSTWATCH_CONV` and `BURSTWATCH_SIMD` in the child). Timings on a shared machine are
//! noisy: each mode is timed over several groups of 4 frames (one frame of each phase) and
//! the best group is reported next to the mean. GFLOP/s count the work of the direct
//! convolution, whichever ran: Winograd's does fewer multiplies for the same result, so
//! its figure can exceed what the machine's FMA units can do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cpu::{ConvAlgo, CpuEngine, Simd};
use super::reference::ReferenceEngine;
use super::{Engine, Mode, Stream};
use crate::model::{Model, STUDY_ARCHITECTURES};
use crate::rng::SplitMix;
use crate::speed::{Baseline, STUDY_BASELINE};
use crate::{Error, Result};

/// The hidden subcommand a bench child runs: `<exe> bench-mode <model file or study name> <mode>`.
pub const CHILD_COMMAND: &str = "bench-mode";

/// What to measure and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `<name>.reference-weights.npz` are looked up; without it, or for a model
    /// without its file, random weights of the same architecture run (as fast).
    pub models_dir: Option<PathBuf>,
    /// Minimum time spent measuring each mode (after its warm-up).
    pub min_time: Duration,
    /// Values pushed through the streaming baseline.
    pub baseline_values: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            models_dir: None,
            min_time: Duration::from_secs(3),
            baseline_values: 3_000_000,
        }
    }
}

/// One mode of one model, as a child process measured it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeReport {
    pub model: String,
    /// "study" (the study's weights) or "random" (same architecture, random weights).
    pub weights: String,
    pub mode: String,
    pub engine: String,
    /// The CPU engine's convolution, `direct` or `winograd2x2` ... (filled in by the parent).
    #[serde(default)]
    pub conv: String,
    /// The instruction set its kernels use, `avx512`, `avx2` or `portable` (filled in by
    /// the parent).
    #[serde(default)]
    pub simd: String,
    /// Frames timed after the warm-up.
    pub frames: usize,
    /// Best group of 4 consecutive frames, and the mean over all timed frames.
    pub fps_best: f64,
    pub fps_mean: f64,
    /// Multiply-adds x 2 of the work done per second, at the best and the mean rate.
    pub gflops_best: f64,
    pub gflops_mean: f64,
    /// Peak resident memory of the child process (VmHWM), in MB (10^6 bytes).
    pub peak_rss_mb: f64,
    /// CPU time the process got while timed, over wall time x engine threads: 1.0 when
    /// it had the cores to itself; less when other processes took a share of them.
    pub cpu_share: f64,
    /// `gflops_best / reference_gflops`: the speed-up over the scalar reference engine
    /// for the same kind of work (filled in by the parent).
    pub speedup: f64,
    /// `fps_best` over that of the direct convolution on the best instruction set, in the
    /// same run (`None` on that row itself).
    #[serde(default)]
    pub vs_direct: Option<f64>,
}

/// The scalar reference engine on one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReferenceReport {
    pub model: String,
    /// Best time of one step of one (non-zero) state.
    pub step_ms: f64,
    pub gflops: f64,
}

/// Everything one `bench` run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub threads: usize,
    pub modes: Vec<ModeReport>,
    pub reference: Vec<ReferenceReport>,
    /// `speed::Baseline::push`, nanoseconds per frame (best of several runs).
    pub baseline_ns_per_frame: f64,
    pub baseline_values: usize,
    pub seconds: f64,
}

/// Loads a study model by name from `dir`, or builds it with random weights when there
/// is no folder or no file. Returns the model and "study" or "random".
pub fn study_model(dir: Option<&Path>, name: &str) -> Result<(Model, &'static str)> {
    if let Some(file) = dir.map(|d| d.join(format!("{name}.reference-weights.npz"))) {
        if file.exists() {
            return Ok((Model::from_reference_npz(&file)?, "study"));
        }
    }
    let model = Model::random_study(name, 1)
        .ok_or_else(|| Error::Engine(format!("no study model named {name:?}")))?;
    Ok((model, "random"))
}

/// Synthetic camera-size frames: dark noise with a few bright moving blobs. The engine's
/// speed does not depend on the content.
fn synthetic_frames(count: usize, height: usize, width: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix(42);
    (0..count)
        .map(|t| {
            let mut f: Vec<u8> = (0..height * width)
                .map(|_| (rng.next_u64() >> 61) as u8)
                .collect();
            for b in 0..6 {
                let cy = (b * 37 + t * (b + 1)) % height;
                let cx = (b * 53 + t * 2 * (b + 1)) % width;
                for y in cy.saturating_sub(2)..(cy + 3).min(height) {
                    for x in cx.saturating_sub(6)..(cx + 7).min(width) {
                        f[y * width + x] = 200;
                    }
                }
            }
            f
        })
        .collect()
}

/// Peak resident memory of this process so far (VmHWM), in MB; 0 where unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb * 1024.0 / 1e6)
}

/// CPU time (user + system) of this process so far, in seconds; `None` where unavailable.
pub fn process_cpu_seconds() -> Option<f64> {
    // utime and stime: fields 14 and 15 of /proc/self/stat (after the parenthesised
    // name), in clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_s.max(1.0))
}

/// Measures one mode in this process (what a bench child does): a fresh stream on the
/// CPU engine, a warm-up until every phase has all its windows in flight, then groups of
/// 4 frames until `min_time` has passed (at least 3 groups).
pub fn measure_mode(
    model: Model,
    weights: &str,
    mode: Mode,
    min_time: Duration,
) -> Result<ModeReport> {
    let name = model.name.clone();
    let inp = model.input;
    let engine = Box::new(CpuEngine::new(model)?);
    let engine_name = engine.name();
    let threads = engine.threads();
    let mut stream = Stream::new(engine, mode)?;
    let phases = inp.channels;
    // All phases are in steady state once the last one has had its first whole window.
    let warmup = stream.first_frame() + phases;
    let frames = synthetic_frames(64, inp.height, inp.width);
    let mut next = 0;
    let mut push = |stream: &mut Stream| -> Result<()> {
        stream.push_frame(&frames[next % frames.len()])?;
        next += 1;
        Ok(())
    };
    for _ in 0..warmup {
        push(&mut stream)?;
    }
    let macs0 = stream.engine().macs_done();
    let cpu0 = process_cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    let (mut best_fps, mut best_gflops, mut groups) = (0.0f64, 0.0f64, 0);
    while groups < 3 || start.elapsed() < min_time {
        let m0 = stream.engine().macs_done();
        let t0 = Instant::now();
        for _ in 0..phases {
            push(&mut stream)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        let macs = (stream.engine().macs_done() - m0) as f64;
        if phases as f64 / secs > best_fps {
            best_fps = phases as f64 / secs;
            best_gflops = 2.0 * macs / secs / 1e9;
        }
        groups += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().unwrap_or(0.0) - cpu0;
    let timed = groups * phases;
    let macs = (stream.engine().macs_done() - macs0) as f64;
    Ok(ModeReport {
        model: name,
        weights: weights.to_owned(),
        mode: mode.to_string(),
        engine: engine_name,
        frames: timed,
        fps_best: best_fps,
        fps_mean: timed as f64 / secs,
        gflops_best: best_gflops,
        gflops_mean: 2.0 * macs / secs / 1e9,
        peak_rss_mb: peak_rss_mb(),
        cpu_share: cpu / (secs * threads as f64),
        speedup: 0.0,
        conv: String::new(),
        simd: String::new(),
        vs_direct: None,
    })
}

/// Times the reference engine on a few steps of one non-zero state (the first step,
/// from zero, is not timed).
pub fn measure_reference(model: Model, steps: usize) -> Result<ReferenceReport> {
    let name = model.name.clone();
    let inp = model.input;
    let macs_per_step = model.macs_per_step();
    let mut engine = ReferenceEngine::new(model)?;
    engine.alloc_states(1)?;
    let mut rng = SplitMix(7);
    let slice: Vec<f32> = (0..inp.height * inp.width * inp.channels)
        .map(|_| rng.uniform(0.0, 1.0))
        .collect();
    engine.step(&slice, &[0])?;
    let mut best = f64::INFINITY;
    for _ in 0..steps.max(1) {
        let t = Instant::now();
        engine.step(&slice, &[0])?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(ReferenceReport {
        model: name,
        step_ms: best * 1e3,
        gflops: 2.0 * macs_per_step as f64 / best / 1e9,
    })
}

/// `speed::Baseline::push` in nanoseconds per value, best of 5 runs over `values` values.
pub fn measure_baseline(values: usize) -> f64 {
    let mut rng = SplitMix(3);
    let y: Vec<f64> = (0..values).map(|_| rng.uniform(0.0, 0.01) as f64).collect();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let mut b = Baseline::new(STUDY_BASELINE);
        let mut sink = 0.0;
        let t = Instant::now();
        for &v in &y {
            if let Some(p) = b.push(v) {
                sink += p;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        best = best.min(secs / values as f64 * 1e9);
    }
    best
}

/// An instruction set and a convolution of the CPU engine.
type Variant = (Simd, ConvAlgo);

/// What each mode is timed with: every convolution on the best instruction set, and,
/// where that is not AVX2, the direct convolution on AVX2 too (the engine's kernels
/// before AVX-512's, for the ratio).
fn variants() -> Vec<Variant> {
    let best = Simd::best();
    let mut out = Vec::new();
    if best != Simd::Avx2 && Simd::available().contains(&Simd::Avx2) {
        out.push((Simd::Avx2, ConvAlgo::Direct));
    }
    out.extend(ConvAlgo::ALL.into_iter().map(|c| (best, c)));
    out
}

/// Runs one bench child: `exe bench-mode <model> <mode>`, where `<model>` is a weights
/// file or (when it does not exist) a study name for random weights.
fn run_child(
    exe: &Path,
    model: &str,
    mode: Mode,
    run: Variant,
    min_time: Duration,
) -> Result<ModeReport> {
    let (simd, conv) = run;
    let out = Command::new(exe)
        .args([
            CHILD_COMMAND,
            model,
            &mode.to_string(),
            &min_time.as_secs_f64().to_string(),
        ])
        .env("BURSTWATCH_LOG", "warn")
        .env("BURSTWATCH_CONV", conv.name())
        .env("BURSTWATCH_SIMD", simd.name())
        .output()
        .map_err(|e| Error::Engine(format!("cannot run the bench child {}: {e}", exe.display())))?;
    if !out.status.success() {
        return Err(Error::Engine(format!(
            "bench child for {model} {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Engine(format!("bench child for {model} {mode}: bad report ({e})")))
}

/// What a bench child does: measure one mode and return its report as JSON.
/// `model` is a `.reference-weights.npz` file, or a study name for random weights.
pub fn child_main(model: &str, mode: Mode, min_time: Duration) -> Result<String> {
    let (model, weights) = if Path::new(model).exists() {
        (Model::from_reference_npz(Path::new(model))?, "study")
    } else {
        let m = Model::random_study(model, 1)
            .ok_or_else(|| Error::Engine(format!("no model file or study model {model:?}")))?;
        (m, "random")
    };
    let report = measure_mode(model, weights, mode, min_time)?;
    serde_json::to_string(&report).map_err(|e| Error::Engine(e.to_string()))
}

/// The whole benchmark. `progress` is called with a line before each measurement.
pub fn run(opts: &Options, mut progress: impl FnMut(&str)) -> Result<Report> {
    let start = Instant::now();
    let exe = std::env::current_exe()
        .map_err(|e| Error::Engine(format!("cannot find this program: {e}")))?;
    let mut modes = Vec::new();
    let mut reference = Vec::new();
    for (name, _) in STUDY_ARCHITECTURES {
        let (model, weights) = study_model(opts.models_dir.as_deref(), name)?;
        let arg = match &opts.models_dir {
            Some(dir) if weights == "study" => dir
                .join(format!("{name}.reference-weights.npz"))
                .to_string_lossy()
                .into_owned(),
            _ => name.to_owned(),
        };
        progress(&format!("{name}: reference engine"));
        let r = measure_reference(model, 2)?;
        for mode in [Mode::Exact, Mode::Continuous] {
            let mut rows = Vec::new();
            for run in variants() {
                let (simd, conv) = (run.0.name(), run.1.name());
                progress(&format!(
                    "{name}: {mode} mode, {conv}, {simd} ({weights} weights)"
                ));
                let mut m = run_child(&exe, &arg, mode, run, opts.min_time)?;
                m.speedup = m.gflops_best / r.gflops;
                m.conv = conv.to_owned();
                m.simd = simd.to_owned();
                rows.push((run, m));
            }
            let direct = rows
                .iter()
                .find(|(run, _)| *run == (Simd::best(), ConvAlgo::Direct))
                .map(|(_, m)| m.fps_best);
            for (run, mut m) in rows {
                if run != (Simd::best(), ConvAlgo::Direct) {
                    m.vs_direct = direct.map(|d| m.fps_best / d);
                }
                modes.push(m);
            }
        }
        reference.push(r);
    }
    progress("streaming baseline");
    let baseline_ns_per_frame = measure_baseline(opts.baseline_values);
    Ok(Report {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        modes,
        reference,
        baseline_ns_per_frame,
        baseline_values: opts.baseline_values,
        seconds: start.elapsed().as_secs_f64(),
    })
}
