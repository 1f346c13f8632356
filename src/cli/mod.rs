//! The command line: argument definitions and one module per command. `main.rs` only calls
//! [`main`]. Every failure is printed once, on one line, and exits with code 2.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::capture::preprocess::{Preprocess, Preprocessor};
use crate::capture::read::for_each_frame;
use crate::capture::{CaptureSettings, Crop, SourceSpec, FRAME_HEIGHT, FRAME_WIDTH};
use crate::model::Model;
use crate::Error;

mod bench;
mod eval;
mod import;
mod inspect;
mod predict;
mod run;
mod science;
mod sim;
mod train;

/// Real-time burst prediction for live tank cameras.
#[derive(Debug, Parser)]
#[command(name = "burstwatch", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Speed proxy y~ of a frame sequence (DESIGN §1).
    Speed(science::SpeedArgs),
    /// Self-supervised burst labels from y~ (the study's compute_targets).
    Label(science::LabelArgs),
    /// The statistical baseline's burst probability from y~.
    Baseline(science::BaselineArgs),
    /// ROC-AUC, best accuracy and Youden's J of predictors against the labels, from y~
    /// series or straight from a recorded video (--video).
    Eval(eval::EvalArgs),
    /// Watch live sources and write burst alerts to stdout as JSON Lines.
    Run(run::RunArgs),
    /// Throughput of the streaming parts, measured in one run.
    Bench(bench::BenchArgs),
    /// Import a Keras SavedModel (the study's networks) to a .safetensors model.
    Import(import::ImportArgs),
    /// Load and validate a model (SavedModel directory or .safetensors); print its architecture.
    Inspect(inspect::InspectArgs),
    /// The simulated tank: record it (H.264 MKV/MP4 or .npy frames, with its ground
    /// truth), calibrate it against the real recording, or measure its rendering speed.
    Sim(sim::SimArgs),
    /// The ConvLSTM's burst probability for every frame of a sequence.
    Predict(predict::PredictArgs),
    /// Train the ConvLSTM on your own videos (self-supervised: the labels come from y~).
    Train(train::TrainArgs),
    /// One mode of `bench`, measured in a fresh process (internal).
    #[command(name = "bench-mode", hide = true)]
    BenchMode(bench::BenchModeArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Speed(a) => science::speed(a),
        Command::Label(a) => science::label(a),
        Command::Baseline(a) => science::baseline(a),
        Command::Eval(a) => eval::eval(a),
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::bench(a),
        Command::Import(a) => import::import(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Sim(a) => sim::sim(a),
        Command::Predict(a) => predict::predict(a),
        Command::Train(a) => train::train(a),
        Command::BenchMode(a) => bench::bench_mode(a),
    }
}

/// Loads `--model`: a Keras SavedModel directory, a `.safetensors` model file, or (for
/// cross-checks) the study's `*.reference-weights.npz`.
pub fn load_model(path: &std::path::Path) -> anyhow::Result<Model> {
    if path.extension().is_some_and(|e| e == "npz") {
        return Ok(Model::from_reference_npz(path)?);
    }
    Ok(crate::model::load(path)?)
}

/// `--model` where it may be left out (`predict`, `eval --video`, `inspect`, `run`): the given
/// model, or else the one embedded in the binary ([`crate::model::default`]), so that every
/// command works without a model file at hand.
pub fn load_model_or_default(path: Option<&std::path::Path>) -> anyhow::Result<Model> {
    match path {
        Some(path) => load_model(path),
        None => {
            let model = crate::model::default::default_model();
            tracing::debug!(model = %model.name, "no --model: the embedded default model");
            Ok(model)
        }
    }
}

/// Refuses a model that cannot take decoded video: every source delivers 240x320 frames,
/// which the models see halved.
fn check_takes_source_frames(model: &Model) -> Result<(), Error> {
    let inp = model.input;
    if (2 * inp.height, 2 * inp.width) == (FRAME_HEIGHT, FRAME_WIDTH) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "model {} takes {}x{} frames; a --source delivers {FRAME_WIDTH}x{FRAME_HEIGHT} (halved: {}x{})",
        model.name,
        inp.width,
        inp.height,
        FRAME_WIDTH / 2,
        FRAME_HEIGHT / 2
    )))
}

/// Decodes a recorded source (a file, or `gst:` launch line) as `run` sees it: 30 fps,
/// GRAY8 320x240, the optional crop, then the preprocessing. Calls `on_frame` with every
/// frame in order, as fast as it decodes; returns the frame count. What `speed --source`,
/// `predict --source` and `eval --video` share, so that they see the same frames.
fn for_each_source_frame(
    source: &str,
    crop: Option<Crop>,
    preprocess: Preprocess,
    mut on_frame: impl FnMut(&[u8]),
) -> crate::Result<u64> {
    let spec = SourceSpec::parse(source)?;
    let settings = CaptureSettings {
        crop,
        ..CaptureSettings::default()
    };
    let mut pre = Preprocessor::new(preprocess);
    let mut frame = vec![0u8; FRAME_WIDTH * FRAME_HEIGHT];
    for_each_frame(&spec, &settings, |pixels| {
        frame.copy_from_slice(pixels);
        pre.apply(&mut frame);
        on_frame(&frame);
    })
}

/// Logs go to stderr through tracing; `BURSTWATCH_LOG` (or `RUST_LOG`) sets the filter.
fn init_logging() {
    let filter = std::env::var("BURSTWATCH_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The binary's entry point: parse, run, and turn any error into one line and exit code 2.
pub fn main() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "burstwatch: error: {line}");
            ExitCode::from(2)
        }
    }
}

/// A reader that closed our stdout is not an error (as ripgrep).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `text` to stdout; a closed pipe surfaces as a BrokenPipe error (handled above).
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
