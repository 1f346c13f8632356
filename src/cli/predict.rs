//! `predict`: the ConvLSTM's burst probability for every frame of a recorded sequence,
//! through the same streaming schedules as live input.

use std::path::PathBuf;

use clap::Args;

use burstwatch::capture::preprocess::Preprocess;
use burstwatch::capture::read::decode_source;
use burstwatch::engine::{new_engine, new_engine_on, Device, EngineKind, Mode, Stream};
use burstwatch::frame::{self, Crop};
use burstwatch::io::{npy, read_frames};
use burstwatch::Error;

use super::one_of;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model: a Keras SavedModel directory, a .safetensors model, or a
    /// `*.reference-weights.npz` [default: the model embedded in the binary].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Frames: a (T, H, W) uint8 .npy file or a folder of PNG frames, at 240x320 (the
    /// camera, downscaled as the study did) or 120x160 (the model input).
    #[arg(long, required_unless_present = "source", conflicts_with = "source")]
    pub frames: Option<PathBuf>,
    /// Or a video: a file (path or file:// URI) or gst:<launch line>, decoded as `run`
    /// sees it (30 fps, GRAY8 320x240).
    #[arg(long)]
    pub source: Option<String>,
    /// Crop x,y,w,h (source pixels) before scaling (with --source).
    #[arg(long, requires = "source")]
    pub crop: Option<Crop>,
    /// Preprocessing of the decoded frames (with --source).
    #[arg(long, default_value = "none", value_parser = one_of::<Preprocess>(&["none", "invert", "bgsub"]), requires = "source")]
    pub preprocess: Preprocess,
    /// exact: every frame's original 120-frame window; continuous: one never-reset state
    /// per phase (~30x cheaper, within ~1e-4 of exact).
    #[arg(long, default_value = "exact", value_parser = one_of::<Mode>(&["exact", "continuous"]))]
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
    let model = super::load_model_or_default(a.model.as_deref())?;
    let inp = model.input;
    let first = inp.slices * inp.channels - 1;
    let frames = match &a.frames {
        Some(path) => {
            let frames = read_frames(path)?;
            let sizes = [(inp.height, inp.width), (2 * inp.height, 2 * inp.width)];
            if !sizes.contains(&(frames.height, frames.width)) {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "frames of {}x{} (height x width); expected {}x{} or {}x{}",
                        frames.height, frames.width, sizes[1].0, sizes[1].1, sizes[0].0, sizes[0].1
                    ),
                )
                .into());
            }
            if frames.count <= first {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "{} frames; expected at least {} (one whole window)",
                        frames.count,
                        first + 1
                    ),
                )
                .into());
            }
            Some(frames)
        }
        None => {
            frame::check_model_input(&model)?;
            None
        }
    };
    let engine = match a.engine {
        Some(kind) => new_engine(model, kind)?,
        None => new_engine_on(model, a.device)?,
    };
    let name = engine.name();
    let mut stream = Stream::new(engine, a.mode)?;
    let start = std::time::Instant::now();
    let mut p = Vec::new();
    match (&frames, &a.source) {
        (Some(frames), _) => {
            for t in 0..frames.count {
                p.push(stream.push_frame(frames.frame(t))?.unwrap_or(f32::NAN));
            }
        }
        (None, Some(source)) => {
            let mut failed = None;
            decode_source(source, a.crop, a.preprocess, |frame| {
                match stream.push_frame(frame) {
                    Ok(v) => p.push(v.unwrap_or(f32::NAN)),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        (None, None) => unreachable!("clap requires --frames or --source"),
    }
    let secs = start.elapsed().as_secs_f64();
    npy::write(&a.out, &p, &[p.len()])?;
    tracing::info!(
        frames = p.len(),
        mode = %a.mode,
        engine = %name,
        fps = format!("{:.1}", p.len() as f64 / secs),
        out = %a.out.display(),
        "wrote probabilities"
    );
    Ok(())
}
