//! `import`: a Keras SavedModel directory to a burstwatch safetensors model.

use std::path::PathBuf;

use clap::Args;

use burstwatch::model::{keras, weights};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Keras SavedModel directory (saved_model.pb and variables/), as TensorFlow 2.3 writes it.
    #[arg(long, value_name = "DIR")]
    pub keras: PathBuf,
    /// Output model file (.safetensors, the architecture in its metadata).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
}

pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    let model = keras::import(&a.keras)?;
    weights::save(&model, &a.out)?;
    let filters: Vec<String> = model
        .stages
        .iter()
        .map(|s| s.lstm.filters.to_string())
        .collect();
    tracing::info!(
        "imported {}: {} ConvLSTM stage(s), filters {}, {} parameters -> {}",
        model.name,
        model.stages.len(),
        filters.join("/"),
        model.parameter_count(),
        a.out.display()
    );
    Ok(())
}
