//! `bench`: throughput of the streaming parts, each figure measured in the same run.

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn bench(_a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not implemented yet")
}
