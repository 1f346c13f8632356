//! `speed`, `label` and `baseline`: the study's series from frames and from y~.

use std::path::PathBuf;

use clap::Args;

use burstwatch::capture::preprocess::Preprocess;
use burstwatch::capture::read::decode_source;
use burstwatch::eval::read_ytilde;
use burstwatch::frame::Crop;
use burstwatch::io::{npy, read_frames};
use burstwatch::speed::{self, SpeedSeries, STUDY_BASELINE, STUDY_LABELS};

use super::one_of;

#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// Frames: a (T, H, W) uint8 .npy file, or a folder of 00000.png, 00001.png, ...
    #[arg(long, required_unless_present = "source", conflicts_with = "source")]
    pub frames: Option<PathBuf>,
    /// Or a video: a file (path or file:// URI) or gst:<launch line>, decoded as `run`
    /// would see it (30 fps, GRAY8 320x240).
    #[arg(long)]
    pub source: Option<String>,
    /// Crop x,y,w,h (source pixels) before scaling (with --source).
    #[arg(long, requires = "source")]
    pub crop: Option<Crop>,
    /// Preprocessing of the decoded frames (with --source).
    #[arg(long, default_value = "none", value_parser = one_of::<Preprocess>(&["none", "invert", "bgsub"]), requires = "source")]
    pub preprocess: Preprocess,
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
    let y = match (&a.frames, &a.source) {
        (Some(path), _) => {
            let frames = read_frames(path)?;
            if frames.count < 2 {
                return Err(burstwatch::Error::bad_input(
                    path,
                    format!("{} frame(s); expected at least 2", frames.count),
                )
                .into());
            }
            speed::speed_proxy_series(&frames)
        }
        (None, Some(source)) => speed_of_source(source, a.crop, a.preprocess)?,
        (None, None) => unreachable!("clap requires --frames or --source"),
    };
    npy::write(&a.out, &y, &[y.len()])?;
    tracing::info!(frames = y.len(), out = %a.out.display(), "wrote y~");
    Ok(())
}

/// y~ of a decoded video, frame by frame as `run` computes it.
fn speed_of_source(
    source: &str,
    crop: Option<Crop>,
    preprocess: Preprocess,
) -> anyhow::Result<Vec<f64>> {
    let mut y = SpeedSeries::default();
    decode_source(source, crop, preprocess, |frame| y.push(frame))?;
    Ok(y.finish())
}

pub fn label(a: LabelArgs) -> anyhow::Result<()> {
    let y = read_ytilde(&a.ytilde)?;
    let labels: Vec<f64> = speed::label_bursts(&y, &STUDY_LABELS)
        .into_iter()
        .map(|l| l as u8 as f64)
        .collect();
    npy::write(&a.out, &labels, &[labels.len()])?;
    Ok(())
}

pub fn baseline(a: BaselineArgs) -> anyhow::Result<()> {
    let y = read_ytilde(&a.ytilde)?;
    let p = speed::baseline(&y, &STUDY_BASELINE);
    npy::write(&a.out, &p, &[p.len()])?;
    Ok(())
}
