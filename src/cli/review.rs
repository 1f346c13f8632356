//! `review`: the static page of a clips folder ([`burstwatch::clips::review`]).

use std::path::PathBuf;

use clap::Args;

use burstwatch::Error;

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The clips folder (`run --clips DIR`, or `[output.clips] dir`).
    pub dir: PathBuf,
    /// The page to write [default: DIR/index.html].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn review(a: ReviewArgs) -> anyhow::Result<()> {
    if !a.dir.is_dir() {
        return Err(Error::bad_input(
            &a.dir,
            "is not a folder; expected a clips folder (run --clips DIR)",
        )
        .into());
    }
    let out = a.out.unwrap_or_else(|| a.dir.join("index.html"));
    let review = burstwatch::clips::review::write(&a.dir, &out)?;
    tracing::info!(
        page = %out.display(),
        cameras = review.cameras.len(),
        alerts = review.alerts(),
        "review page written"
    );
    Ok(())
}
