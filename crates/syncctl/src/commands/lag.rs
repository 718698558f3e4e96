//! `syncctl lag`: publish-to-apply lag percentiles of a sync-function log
//! (the reading itself is the library's, `syncctl::lag`).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `lag`.
#[derive(Args, Debug)]
pub struct LagArgs {
    /// The sync function's output (JSON lines; other lines are skipped and counted).
    #[arg(long)]
    pub log: PathBuf,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &LagArgs) -> Result<()> {
    syncctl::lag::run(&a.log, a.json)
}
