//! `speed`, `label` and `baseline`: the study's series from frames and from y~.

use std::path::PathBuf;

use clap::Args;

use crate::io::{npy, read_frames};
use crate::speed::{self, STUDY_BASELINE, STUDY_LABELS};

#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// Frames: a (T, H, W) uint8 .npy file, or a folder of 00000.png, 00001.png, ...
    #[arg(long)]
    pub frames: PathBuf,
    /// Output .npy: y~ as float64, length T (the last value is 0).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// y~ series (.npy, shape (T,) or (T, 1)).
    #[arg(long)]
    pub ytilde: PathBuf,
    /// Output .npy: labels as float64 0/1, length T (as the study's Y_label.npy).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// y~ series (.npy, shape (T,) or (T, 1)).
    #[arg(long)]
    pub ytilde: PathBuf,
    /// Output .npy: burst probability as float64, length T, 0 outside [119, T-12].
    #[arg(long)]
    pub out: PathBuf,
}

pub fn speed(a: SpeedArgs) -> anyhow::Result<()> {
    let frames = read_frames(&a.frames)?;
    if frames.count < 2 {
        return Err(crate::Error::bad_input(
            &a.frames,
            format!("{} frame(s); expected at least 2", frames.count),
        )
        .into());
    }
    let y = speed::speed_proxy_series(&frames);
    npy::write(&a.out, &y, &[y.len()])?;
    tracing::info!(frames = frames.count, out = %a.out.display(), "wrote y~");
    Ok(())
}

pub fn label(a: LabelArgs) -> anyhow::Result<()> {
    let y = super::eval::read_ytilde(&a.ytilde)?;
    let labels: Vec<f64> = speed::label_bursts(&y, &STUDY_LABELS)
        .into_iter()
        .map(|l| l as u8 as f64)
        .collect();
    npy::write(&a.out, &labels, &[labels.len()])?;
    Ok(())
}

pub fn baseline(a: BaselineArgs) -> anyhow::Result<()> {
    let y = super::eval::read_ytilde(&a.ytilde)?;
    let p = speed::baseline(&y, &STUDY_BASELINE);
    npy::write(&a.out, &p, &[p.len()])?;
    Ok(())
}
