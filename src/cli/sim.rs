//! `sim`: record the simulated tank to a file, compare it with the real recording
//! (`--calibrate`), or measure how fast it renders (`--bench`). The work is in
//! [`burstwatch::sim`]; this module parses, shows progress and prints.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use burstwatch::sim::calibrate::{self, Figures, Report, LAGS};
use burstwatch::sim::{self, record, Look, SimConfig, FPS, STUDY_FISH};
use burstwatch::Error;

use super::{one_of, Missed};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Output: .mkv or .mp4 (H.264 through GStreamer) or .npy (uint8 frames, shape
    /// (T, H, W)); NAME.truth.json (seed, fps, frames, look, chases) is written beside it.
    #[arg(long, required_unless_present_any = ["calibrate", "bench"])]
    pub out: Option<PathBuf>,
    /// Length of the video [default: 60; 600 with --calibrate; 20 with --bench].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Seed: the same seed gives the same frames, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// processed (320x240, white fish on black, as the study) or raw (1280x720 camera view).
    #[arg(long, default_value = "processed", value_parser = one_of::<Look>(&["processed", "raw"]))]
    pub look: Look,
    /// Number of fish (the study had six).
    #[arg(long, default_value_t = STUDY_FISH)]
    pub fish: usize,
    /// x264 constant quantizer, 0 (lossless) to 50 [default: 0 for processed, 4 for raw,
    /// which keep y~ within 5 % of the rendered frames'].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=50))]
    pub quantizer: Option<u32>,
    /// Compare processed-look y~ of each of --seeds with a real recording's (--real),
    /// against the calibration's acceptance bounds.
    #[arg(long, conflicts_with_all = ["out", "bench"])]
    pub calibrate: bool,
    /// Seeds to calibrate, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3",
        requires = "calibrate"
    )]
    pub seeds: Vec<u64>,
    /// Folders each holding a real recording's Y_tilde.npy (the study's are
    /// data/seed/test and data/seed/validation of its data).
    #[arg(long, num_args = 1.., requires = "calibrate")]
    pub real: Vec<PathBuf>,
    /// Measure rendering speed (frames/s) of each look.
    #[arg(long, conflicts_with = "out")]
    pub bench: bool,
    /// Print the calibration or benchmark as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn frames_of(seconds: f64) -> anyhow::Result<usize> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(
            Error::Input(format!("--seconds {seconds}; expected a positive number")).into(),
        );
    }
    Ok((seconds * FPS as f64).round().max(1.0) as usize)
}

pub fn sim(a: SimArgs) -> anyhow::Result<()> {
    if a.calibrate {
        return run_calibration(&a);
    }
    if a.bench {
        return run_bench(&a);
    }
    let out = a.out.clone().expect("clap requires --out");
    let frames = frames_of(a.seconds.unwrap_or(60.0))?;
    let config = SimConfig {
        seed: a.seed,
        fish: a.fish,
        look: a.look,
        ..SimConfig::default()
    };
    let bar = progress_bar(frames as u64, "rendering and encoding");
    let started = Instant::now();
    let mut settings = record::EncoderSettings::for_look(a.look);
    if let Some(q) = a.quantizer {
        settings.quantizer = q;
    }
    let rec = record::record(config, frames, &out, settings, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    tracing::info!(
        out = %rec.path.display(),
        truth = %rec.truth_path.display(),
        frames,
        chases = rec.truth.chases.len(),
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "recorded"
    );
    Ok(())
}

/// A bar on stderr, hidden when stderr is not a terminal (logs and CI stay clean).
fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{wide_bar}] {pos}/{len} frames, eta {eta}")
            .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

fn run_calibration(a: &SimArgs) -> anyhow::Result<()> {
    let frames = frames_of(a.seconds.unwrap_or(600.0))?;
    if a.real.is_empty() {
        return Err(Error::Input(
            "--calibrate needs --real DIR...: folders holding a real recording's Y_tilde.npy"
                .into(),
        )
        .into());
    }
    let real = calibrate::read_real(&a.real)?;
    let base = SimConfig {
        fish: a.fish,
        look: Look::Processed,
        ..SimConfig::default()
    };
    let report = calibrate::calibrate(base, &a.seeds, frames, &real)?;
    if a.json {
        super::print_stdout(&(serde_json::to_string(&report)? + "\n"))?;
    } else {
        super::print_stdout(&calibration_table(&report, frames))?;
    }
    if !report.passed() {
        let failed: Vec<String> = report
            .seeds
            .iter()
            .filter(|s| !s.failures.is_empty())
            .map(|s| format!("seed {}: {}", s.seed, s.failures.join(", ")))
            .collect();
        return Err(Missed(format!(
            "calibration out of tolerance: {}",
            failed.join("; ")
        ))
        .into());
    }
    Ok(())
}

fn calibration_table(r: &Report, frames: usize) -> String {
    let mut t = format!(
        "Processed look, {frames} frames ({:.0} s) per seed, against the real y~ \
         (KS against the real parts pooled)\n\n",
        frames as f64 / FPS as f64
    );
    t += &format!(
        "{:<18} {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}\n",
        "series",
        "frames",
        "median",
        "p5",
        "p95",
        "ac1",
        "ac5",
        "ac15",
        "ac30",
        "pos%",
        "AUC",
        "KS",
        "chases"
    );
    let row = |name: &str, f: &Figures, ks: Option<f64>, chases: Option<usize>| {
        let ac = f.autocorrelation;
        format!(
            "{:<18} {:>6} {:>8.5} {:>8.5} {:>8.5} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.1} {:>6} {:>6} {:>7}\n",
            name,
            f.frames,
            f.median,
            f.p5,
            f.p95,
            ac[0],
            ac[1],
            ac[2],
            ac[3],
            100.0 * f.positive_rate,
            f.baseline_auc.map_or("-".into(), |a| format!("{a:.3}")),
            ks.map_or("-".into(), |k| format!("{k:.3}")),
            chases.map_or("-".into(), |c| c.to_string()),
        )
    };
    for (name, f) in &r.real_parts {
        t += &row(&format!("real {name}"), f, None, None);
    }
    t += &row("real pooled", &r.real, None, None);
    for s in &r.seeds {
        t += &row(
            &format!("sim seed {}", s.seed),
            &s.figures,
            Some(s.ks),
            Some(s.chases),
        );
    }
    let tol = &r.tolerance;
    t += &format!(
        "\nacceptance: KS <= {}; autocorrelation within {} of real pooled at lags {:?}; \
         positive labels {:.0}-{:.0} %; baseline ROC-AUC {}-{}\n",
        tol.ks_max,
        tol.autocorrelation_max_diff,
        LAGS,
        100.0 * tol.positive_rate.0,
        100.0 * tol.positive_rate.1,
        tol.baseline_auc.0,
        tol.baseline_auc.1
    );
    for s in &r.seeds {
        t += &if s.failures.is_empty() {
            format!("seed {}: pass\n", s.seed)
        } else {
            format!("seed {}: FAIL ({})\n", s.seed, s.failures.join(", "))
        };
    }
    t
}

fn run_bench(a: &SimArgs) -> anyhow::Result<()> {
    let frames = frames_of(a.seconds.unwrap_or(20.0))?;
    let mut rates = Vec::new();
    for look in [Look::Processed, Look::Raw] {
        rates.push((look, sim::render_rate(look, frames)?));
    }
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> = rates
            .iter()
            .map(|(l, r)| (format!("{l}_frames_per_s"), (*r).into()))
            .collect();
        super::print_stdout(&(serde_json::Value::Object(obj).to_string() + "\n"))?;
    } else {
        let mut t =
            format!("rendering (dynamics included), {frames} frames per look, one thread\n");
        for (look, rate) in rates {
            t += &format!(
                "{:<10} {:>4}x{:<4} {:>9.0} frames/s  ({:.1} % of a core at {FPS} fps)\n",
                look.to_string(),
                look.width(),
                look.height(),
                rate,
                100.0 * FPS as f64 / rate
            );
        }
        super::print_stdout(&t)?;
    }
    Ok(())
}
