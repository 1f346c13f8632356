//! `bench`: throughput of the streaming parts, each figure measured in the same run. The
//! measuring is in [`crate::engine::bench`]; this module parses and prints.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::engine::bench::{self, Options, Report};
use crate::engine::Mode;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Folder of the study's `*.reference-weights.npz`; a model without its file runs
    /// with random weights of the same architecture (the report says which).
    #[arg(long, default_value = "../shared/models")]
    pub models: PathBuf,
    /// Seconds to time each mode after its warm-up.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
}

/// The hidden child of `bench`: measures one mode in a fresh process.
#[derive(Debug, Args)]
pub struct BenchModeArgs {
    pub model: String,
    pub mode: Mode,
    pub seconds: f64,
}

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
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
    s += "| model | weights | mode | frames/s | GFLOP/s | peak RSS | vs scalar reference | CPU share |\n";
    s += "|---|---|---|---|---|---|---|---|\n";
    for m in &r.modes {
        s += &format!(
            "| {} | {} | {} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.0} MB | {:.0}x | {:.0} % |\n",
            m.model,
            m.weights,
            m.mode,
            m.fps_best,
            m.fps_mean,
            m.gflops_best,
            m.gflops_mean,
            m.peak_rss_mb,
            m.speedup,
            100.0 * m.cpu_share
        );
    }
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
    s += &format!(
        "engine: {}; whole run {:.0} s\n",
        r.modes.first().map_or("-", |m| m.engine.as_str()),
        r.seconds
    );
    s
}
