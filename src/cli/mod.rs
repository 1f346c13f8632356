//! The command line: argument definitions and one module per command; everything they do
//! is the library's. Every failure is printed once, on one line. Exit codes: 0 success
//! (also when a reader closed stdout), 2 bad input or configuration found before anything
//! ran, 1 a failure after the run started (or a check that missed its targets).

use std::io::Write;
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand};

use burstwatch::model::Model;

mod bench;
mod config;
mod eval;
mod import;
mod inspect;
mod logging;
mod predict;
mod review;
mod run;
mod science;
mod sim;
mod train;

/// Real-time burst prediction for live tank cameras: the ConvLSTM of a published study of
/// fish aggression and its statistical baseline, frame by frame, alerts as JSON Lines.
#[derive(Debug, Parser)]
#[command(name = "burstwatch", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub log: logging::LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch cameras (a config file, or --source) and write burst alerts to stdout as
    /// JSON Lines.
    Run(run::RunArgs),
    /// Check a config file and print its cameras as JSON (credentials masked).
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// ROC-AUC, best accuracy and Youden's J of predictors against the labels, from y~
    /// series or straight from a recorded video (--video).
    Eval(eval::EvalArgs),
    /// One static HTML page listing every alert of a clips folder (snapshot, clip, score,
    /// outcome, time), newest first.
    Review(review::ReviewArgs),
    /// The simulated tank: record it (H.264 MKV/MP4 or .npy frames, with its ground
    /// truth), calibrate it against a real recording, or measure its rendering speed.
    Sim(sim::SimArgs),
    /// Train the ConvLSTM on your own videos (self-supervised: the labels come from y~).
    Train(train::TrainArgs),
    /// The ConvLSTM's burst probability for every frame of a sequence.
    Predict(predict::PredictArgs),
    /// Import a Keras SavedModel (the study's networks) to a .safetensors model.
    Import(import::ImportArgs),
    /// Load and validate a model (SavedModel directory or .safetensors); print its architecture.
    Inspect(inspect::InspectArgs),
    /// Throughput and latency of the streaming parts, measured in one run.
    Bench(bench::BenchArgs),
    /// Speed proxy y~ of a frame sequence or video.
    Speed(science::SpeedArgs),
    /// Self-supervised burst labels from y~ (the study's compute_targets).
    Label(science::LabelArgs),
    /// The statistical baseline's burst probability from y~.
    Baseline(science::BaselineArgs),
    /// Print the JSON Schema of every event `run` writes.
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `burstwatch man > burstwatch.1`.
    Man,
    /// One mode of `bench`, measured in a fresh process (internal).
    #[command(name = "bench-mode", hide = true)]
    BenchMode(bench::BenchModeArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// A check that ran and missed its targets: exit code 1, not 2 (the input was fine).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Missed(pub String);

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Config(c) => config::config(c),
        Command::Eval(a) => eval::eval(a),
        Command::Sim(a) => sim::sim(a),
        Command::Review(a) => review::review(a),
        Command::Train(a) => train::train(a),
        Command::Predict(a) => predict::predict(a),
        Command::Import(a) => import::import(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Bench(a) => bench::bench(a),
        Command::Speed(a) => science::speed(a),
        Command::Label(a) => science::label(a),
        Command::Baseline(a) => science::baseline(a),
        Command::Schema => print_stdout(&burstwatch::output::schema::events_schema()),
        Command::Completions(a) => {
            let mut out = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "burstwatch", &mut out);
            print_stdout(&String::from_utf8_lossy(&out))
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            print_stdout(&String::from_utf8_lossy(&out))
        }
        Command::BenchMode(a) => bench::bench_mode(a),
    }
}

/// `--model` where it may be left out (`predict`, `eval --video`, `inspect`): the given
/// model, or else the one embedded in the binary, so that every command works without a
/// model file at hand.
pub fn load_model_or_default(path: Option<&std::path::Path>) -> anyhow::Result<Model> {
    match path {
        Some(path) => Ok(burstwatch::model::load(path)?),
        None => {
            let model = burstwatch::model::default::default_model();
            tracing::debug!(model = %model.name, "no --model: the embedded default model");
            Ok(model)
        }
    }
}

/// A value parser that lists `values` in the help and turns the chosen one into `T`.
pub fn one_of<T>(values: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    PossibleValuesParser::new(values).try_map(|s| s.parse::<T>().map_err(|e| e.to_string()))
}

/// The binary's entry point: parse, run, and turn any error into one line and its exit
/// code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init(&cli.log);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "burstwatch: error: {line}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 1 for a failure after a run started (or a check that missed its targets), 2 for
/// anything found wrong before.
fn exit_code(e: &anyhow::Error) -> u8 {
    let after_start = e.chain().any(|c| {
        c.downcast_ref::<burstwatch::Error>()
            .is_some_and(burstwatch::Error::after_start)
            || c.downcast_ref::<Missed>().is_some()
    });
    if after_start {
        1
    } else {
        2
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
