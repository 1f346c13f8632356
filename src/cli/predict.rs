//! `predict`: the ConvLSTM's burst probability for every frame of a recorded sequence,
//! through the same streaming schedules as live input.

use std::path::PathBuf;

use clap::Args;

use crate::engine::{new_engine, new_engine_on, Device, EngineKind, Mode, Stream};
use crate::io::{npy, read_frames};
use crate::Error;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model: a `*.reference-weights.npz` file of one of the study models.
    #[arg(long)]
    pub model: PathBuf,
    /// Frames: a (T, H, W) uint8 .npy file or a folder of PNG frames, at 240x320 (the
    /// camera, downscaled as the study did) or 120x160 (the model input).
    #[arg(long)]
    pub frames: PathBuf,
    /// exact: every frame's original 120-frame window; continuous: one never-reset state
    /// per phase (~30x cheaper, within ~1e-4 of exact).
    #[arg(long, default_value = "exact")]
    pub mode: Mode,
    /// Where the fast engine runs: auto (CUDA device 0 when usable, else the CPU), cpu,
    /// cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: Device,
    /// A specific engine instead of --device: reference (plain scalar loops, very slow),
    /// cpu, cuda or cuda:N.
    #[arg(long, conflicts_with = "device")]
    pub engine: Option<EngineKind>,
    /// Output .npy: float32 probabilities, length T, NaN before frame 119.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn predict(a: PredictArgs) -> anyhow::Result<()> {
    let model = super::load_model(&a.model)?;
    let frames = read_frames(&a.frames)?;
    let inp = model.input;
    let sizes = [(inp.height, inp.width), (2 * inp.height, 2 * inp.width)];
    if !sizes.contains(&(frames.height, frames.width)) {
        return Err(Error::bad_input(
            &a.frames,
            format!(
                "frames of {}x{} (height x width); expected {}x{} or {}x{}",
                frames.height, frames.width, sizes[1].0, sizes[1].1, sizes[0].0, sizes[0].1
            ),
        )
        .into());
    }
    let first = inp.slices * inp.channels - 1;
    if frames.count <= first {
        return Err(Error::bad_input(
            &a.frames,
            format!(
                "{} frames; expected at least {} (one whole window)",
                frames.count,
                first + 1
            ),
        )
        .into());
    }
    let engine = match a.engine {
        Some(kind) => new_engine(model, kind)?,
        None => new_engine_on(model, a.device)?,
    };
    let name = engine.name();
    let mut stream = Stream::new(engine, a.mode)?;
    let start = std::time::Instant::now();
    let mut p = Vec::with_capacity(frames.count);
    for t in 0..frames.count {
        p.push(stream.push_frame(frames.frame(t))?.unwrap_or(f32::NAN));
    }
    let secs = start.elapsed().as_secs_f64();
    npy::write(&a.out, &p, &[p.len()])?;
    tracing::info!(
        frames = frames.count,
        mode = %a.mode,
        engine = %name,
        fps = format!("{:.1}", frames.count as f64 / secs),
        out = %a.out.display(),
        "wrote probabilities"
    );
    Ok(())
}
