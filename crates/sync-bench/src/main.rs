//! `sync-bench`: the measuring parts of `scripts/bench.sh` (see
//! `docs/benchmarks.md`): what is awkward in shell. The script builds,
//! starts and stops every process; every measurement here prints one JSON
//! object per run (`item`, `case`, `run` and its figures), which the script
//! collects in `target/bench/results.jsonl` for [`summary`]. Loopback only;
//! every loop is bounded.

mod bodies;
mod cost;
mod first_event;
mod follow;
mod load;
mod proc;
mod relay;
mod results;
mod serve;
mod summary;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;

/// Benchmark helpers for scripts/bench.sh.
#[derive(Parser, Debug)]
#[command(name = "sync-bench", about)]
enum Command {
    /// Serve the sync function's router on in-memory ports (the HTTP layer
    /// alone), configured from the environment as the function is.
    ServeMemory,
    /// Load sync functions with wrk, taking turns; one result per run.
    Wrk(load::Plan),
    /// Start sync functions (`--bin NAME=PATH`, taking turns) with `--env
    /// KEY=VALUE` and time the first event after `/healthz` turns 200
    /// against the steady state; one result per start.
    FirstEvent {
        #[arg(long = "bin", value_parser = proc::pair, required = true)]
        bins: Vec<(String, String)>,
        #[arg(long, default_value_t = 5)]
        runs: u32,
        #[arg(long = "env", value_parser = proc::pair)]
        env: Vec<(String, String)>,
    },
    /// Follow the sync function's log through an end-to-end run; one result.
    Follow(follow::Args),
    /// Relay each route with `--delay-ms` added to every request, and serve
    /// the calls counted per route as JSON on `--control-port` (or `PORT`);
    /// runs until killed.
    Relay(relay::Args),
    /// Print the medians of a run's results (`--raw`), old against new, and
    /// the cost model.
    Summary {
        #[arg(long)]
        raw: PathBuf,
        /// The revision compared against.
        #[arg(long, default_value = "baseline")]
        baseline: String,
    },
}

fn block_on(f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    runtime.context("starting the async runtime")?.block_on(f)
}

fn main() -> Result<()> {
    match Command::parse() {
        Command::ServeMemory => block_on(serve::run()),
        Command::Wrk(plan) => load::run(&plan),
        Command::FirstEvent { bins, runs, env } => first_event::run(&bins, runs, &env),
        Command::Follow(args) => follow::run(&args),
        Command::Relay(args) => block_on(relay::serve(args)),
        Command::Summary { raw, baseline } => {
            let text = std::fs::read_to_string(&raw).context("reading the results")?;
            print!("{}", summary::render(&results::group(&text)?, &baseline));
            Ok(())
        }
    }
}
