//! `bench`: throughput of the streaming parts, each figure measured in the same run. The
//! measuring is in [`burstwatch::engine::bench`]; this module parses and prints.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use burstwatch::engine::bench::{self, Options, Report};
use burstwatch::engine::{Device, Mode};
use burstwatch::live::ModelChoice;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Folder of the study's `*.reference-weights.npz` [default: none; the models run
    /// with random weights of the same architecture, as fast; the report says which].
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Seconds to time each mode after its warm-up.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Instead: the live pipeline. Latency (appsink to line written) of one 30 fps stream,
    /// then 1, 2, ... concurrent real-speed streams until a ring overflows.
    #[arg(long)]
    pub live: bool,
    /// With --live: the model (`default`, a SavedModel dir or .safetensors); without, the
    /// baseline alone.
    #[arg(long, requires = "live")]
    pub model: Option<String>,
    /// With --live: seconds per run (of video, or of simulated cameras with --cameras).
    #[arg(
        long,
        visible_alias = "run-seconds",
        default_value_t = 20,
        requires = "live"
    )]
    pub video_seconds: u32,
    /// With --live: N simulated cameras at 30 fps through the whole `run` path (simulator,
    /// ring, y~ and baseline, engine service, outputs), every frame's line written; or
    /// `max`: the most cameras sustained (no ring overflow, every camera at 30 fps, p99
    /// within --p99-ms).
    #[arg(long, value_name = "N|max", requires = "live")]
    pub cameras: Option<String>,
    /// With --cameras: how the model runs.
    #[arg(long, default_value = "continuous", requires = "cameras")]
    pub mode: Mode,
    /// With --cameras: where the model runs (auto, cpu, cuda, cuda:N).
    #[arg(long, default_value = "cpu", requires = "cameras")]
    pub device: Device,
    /// With --cameras max: the latency bound (arrival to line written, p99), in ms.
    #[arg(long, default_value_t = 15.0, requires = "cameras")]
    pub p99_ms: f64,
    /// With --cameras max: the most cameras to try.
    #[arg(long, default_value_t = 4096, requires = "cameras")]
    pub max_cameras: usize,
    /// With --cameras: one more camera, whose frames stop for this many seconds from the
    /// middle of each run; the others' p99 is reported during and outside its stall.
    #[arg(long, value_name = "SECONDS", requires = "cameras")]
    pub stall: Option<f64>,
    /// With --cameras: how long a ready step waits for the other cameras' [default: 1 on
    /// CUDA, 0 on the CPU].
    #[arg(long, value_name = "MS", requires = "cameras")]
    pub batch_wait_ms: Option<f64>,
    /// With --live: the most streams to try.
    #[arg(long, default_value_t = 8, requires = "live")]
    pub max_streams: usize,
    /// Instead: training throughput (forward + backward), the continuous-state scheme
    /// against the window scheme, on every core.
    #[arg(long, conflicts_with = "live")]
    pub train: bool,
}

/// `bench --train`.
fn bench_train(a: &BenchArgs) -> anyhow::Result<()> {
    let threads = burstwatch::engine::cpu::default_threads();
    let r = burstwatch::train::bench::measure(threads, a.seconds.max(1.0));
    if a.json {
        return super::print_stdout(&(serde_json::to_string_pretty(&r)? + "\n"));
    }
    super::print_stdout(&format!(
        "training, upbeat-snowflake-91 architecture, {} thread(s), chunks of {} steps\n\
         forward + backward: {:.1} ms per step\n\
         continuous-state scheme: {:.1} labelled samples/s\n\
         window scheme:           {:.2} labelled samples/s\n\
         speed-up: {:.1}x\n",
        r.threads,
        r.chunk,
        r.ms_per_step,
        r.continuous_samples_per_s,
        r.window_samples_per_s,
        r.speedup
    ))
}

/// `bench --live`: the real pipeline, continuous mode on the CPU.
fn bench_live(a: &BenchArgs) -> anyhow::Result<()> {
    use burstwatch::live::bench::{measure_streams, record_test_video};
    let dir = std::env::temp_dir().join(format!("burstwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let video = dir.join("camera.mkv");
    record_test_video(&video, a.video_seconds)?;
    let model = a
        .model
        .as_deref()
        .map_or(ModelChoice::None, ModelChoice::parse);
    let with_model = model != ModelChoice::None;
    let mut rows = Vec::new();
    for n in 1..=a.max_streams.max(1) {
        tracing::info!("measuring {n} stream(s) of {} s", a.video_seconds);
        let r = measure_streams(&video, n, &model)?;
        let sustained = r.sustained;
        rows.push(r);
        if !sustained {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if a.json {
        return super::print_stdout(&(serde_json::to_string_pretty(&rows)? + "\n"));
    }
    let mut s = format!(
        "live pipeline: {} s H.264 640x480 file(s) at real speed, {}, continuous mode, CPU\n\n\
         streams  frames/stream  dropped  gaps  latency p50 ms  p99 ms  sustained\n",
        a.video_seconds,
        if with_model {
            "model + baseline"
        } else {
            "baseline only"
        }
    );
    for r in &rows {
        s += &format!(
            "{:>7}  {:>13}  {:>7}  {:>4}  {:>14.2}  {:>6.2}  {}\n",
            r.streams,
            r.frames_min,
            r.dropped,
            r.gaps,
            r.latency_p50_ms,
            r.latency_p99_ms,
            if r.sustained { "yes" } else { "no" }
        );
    }
    super::print_stdout(&s)
}

/// `bench --live --cameras N|max`.
fn bench_cameras(a: &BenchArgs, count: &str) -> anyhow::Result<()> {
    use burstwatch::live::bench::{measure_cameras, most_cameras, CamerasBench, CamerasReport};
    let seconds = |what: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(anyhow::anyhow!(
                "{what} {v}; expected a number of seconds, 0 or more"
            ))
        }
    };
    let b = CamerasBench {
        model: a
            .model
            .as_deref()
            .map_or(ModelChoice::Default, ModelChoice::parse),
        mode: a.mode,
        device: a.device,
        seconds: f64::from(a.video_seconds.max(1)),
        batch_wait: a
            .batch_wait_ms
            .map(|ms| seconds("--batch-wait-ms", ms / 1e3))
            .transpose()?,
        stall: a.stall.map(|s| seconds("--stall", s)).transpose()?,
    };
    let row = |r: &CamerasReport| {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let mut s = format!(
            "{:>7}  {:>8.2}  {:>8.2}  {:>7}  {:>4}  {:>6.2}  {:>6.2}  {:>7.1}  {:>5.0}  {:>5}  {:>10.2}  {:>7}",
            r.cameras,
            r.fps_min,
            r.fps_mean,
            r.dropped,
            r.gaps,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.latency_max_ms,
            r.cpu_percent,
            opt(r.gpu_percent),
            r.batch_mean,
            if r.sustained(a.p99_ms) { "yes" } else { "no" }
        );
        if let Some(st) = &r.stall {
            s += &format!(
                "  stall {:.0} s: others' p99 {:.2} ms during, {:.2} ms outside",
                st.seconds, st.p99_during_ms, st.p99_outside_ms
            );
        }
        s + "\n"
    };
    let (most, runs) = match count {
        "max" => {
            let (most, runs) = most_cameras(&b, a.p99_ms, a.max_cameras, |r| {
                tracing::info!("{} cameras: {}", r.cameras, row(r).trim_end())
            })?;
            (Some(most), runs)
        }
        n => {
            let n: usize = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                anyhow::anyhow!("--cameras {n:?}; expected a count (1 or more) or max")
            })?;
            (None, vec![measure_cameras(n, &b)?])
        }
    };
    if a.json {
        let v =
            serde_json::json!({ "most_sustained": most, "p99_bound_ms": a.p99_ms, "runs": runs });
        return super::print_stdout(&(serde_json::to_string_pretty(&v)? + "\n"));
    }
    let engine = runs
        .first()
        .and_then(|r| r.engine.clone())
        .unwrap_or_else(|| "no model".into());
    let mut s = format!(
        "{} simulated camera(s) at 30 fps, {} s per run, {} mode, {} ({})\n\n\
         cameras  fps min  fps mean  dropped  gaps  p50 ms  p99 ms  max ms  CPU %  GPU %  batch mean  sustained\n",
        count,
        b.seconds,
        b.mode,
        engine,
        runs.first().map_or("-", |r| r.device.as_str()),
    );
    for r in &runs {
        s += &row(r);
    }
    if let Some(most) = most {
        s += &format!(
            "\nmost cameras sustained (no ring overflow, every camera >= 29.1 fps, p99 <= {} ms): {most}\n",
            a.p99_ms
        );
    }
    super::print_stdout(&s)
}

/// The hidden child of `bench`: measures one mode in a fresh process.
#[derive(Debug, Args)]
pub struct BenchModeArgs {
    pub model: String,
    pub mode: Mode,
    pub seconds: f64,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    if a.train {
        return bench_train(&a);
    }
    if let Some(n) = &a.cameras {
        return bench_cameras(&a, n);
    }
    if a.live {
        return bench_live(&a);
    }
    let opts = Options {
        models_dir: a.models,
        min_time: Duration::from_secs_f64(a.seconds.max(0.0)),
        ..Options::default()
    };
    let report = bench::run(&opts, |line| tracing::info!("measuring {line}"))?;
    if a.json {
        super::print_stdout(&(serde_json::to_string_pretty(&report)? + "\n"))
    } else {
        super::print_stdout(&table(&report))
    }
}

pub fn bench_mode(a: BenchModeArgs) -> anyhow::Result<()> {
    let json = bench::child_main(
        &a.model,
        a.mode,
        Duration::from_secs_f64(a.seconds.max(0.0)),
    )?;
    super::print_stdout(&(json + "\n"))
}

fn table(r: &Report) -> String {
    let mut s = format!(
        "ConvLSTM, CPU engine on {} threads (best group of 4 frames; mean in brackets)\n\n",
        r.threads
    );
    s += "| model | weights | mode | convolution | instructions | frames/s | vs direct | GFLOP/s* | peak RSS | vs scalar reference | CPU share |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for m in &r.modes {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.1} ({:.1}) | {} | {:.1} ({:.1}) | {:.0} MB | {:.0}x | {:.0} % |\n",
            m.model,
            m.weights,
            m.mode,
            m.conv,
            m.simd,
            m.fps_best,
            m.fps_mean,
            m.vs_direct.map_or("-".to_owned(), |v| format!("{v:.2}x")),
            m.gflops_best,
            m.gflops_mean,
            m.peak_rss_mb,
            m.speedup,
            100.0 * m.cpu_share
        );
    }
    s += "\n* GFLOP/s of direct-convolution work: Winograd's does fewer multiplies for the same \
          result, so its figure can exceed what the machine's FMA units do. vs direct: frames/s \
          over the direct convolution's on the best instruction set, same run\n";
    s += "\nscalar reference engine (one state, one thread):\n";
    for x in &r.reference {
        s += &format!(
            "  {}: {:.0} ms per step, {:.2} GFLOP/s\n",
            x.model, x.step_ms, x.gflops
        );
    }
    s += &format!(
        "\nstreaming baseline (speed::Baseline::push): {:.1} ns per frame over {} values\n",
        r.baseline_ns_per_frame, r.baseline_values
    );
    let mut engines: Vec<&str> = Vec::new();
    for m in &r.modes {
        if !engines.contains(&m.engine.as_str()) {
            engines.push(&m.engine);
        }
    }
    s += &format!(
        "engines: {}; whole run {:.0} s\n",
        engines.join(", "),
        r.seconds
    );
    s
}
