//! `inspect`: load a model (SavedModel directory or .safetensors), validate it, and print its
//! architecture as one JSON line.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Keras SavedModel directory or a .safetensors model [default: the model embedded
    /// in the binary].
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
}

pub fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let m = super::load_model_or_default(a.model.as_deref())?;
    let maps = m.stage_maps();
    let stages: Vec<_> = m
        .stages
        .iter()
        .zip(maps)
        .map(|(s, (h, w))| {
            json!({
                "filters": s.lstm.filters,
                "in_channels": s.lstm.in_channels,
                "map": [h, w],
                "pool": s.pool,
                "norm": s.norm.as_ref().map(|n| json!({
                    "epsilon": n.epsilon,
                    "scale": n.gamma.is_some(),
                    "center": n.beta.is_some(),
                })),
            })
        })
        .collect();
    let line = json!({
        "type": "model",
        "name": m.name,
        "input": m.input,
        "stages": stages,
        "features": m.head.weights.len(),
        "parameters": m.parameter_count(),
        "macs_per_step": m.macs_per_step(),
        "thresholds": m.thresholds,
        "trained": m.trained,
    });
    super::print_stdout(&format!("{line}\n"))
}
