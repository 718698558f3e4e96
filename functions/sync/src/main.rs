//! `sync-function`: glibc's allocator set up (`sync_http::allocator`),
//! configuration, telemetry, then a [`Startup`] served at
//! once (`/healthz` 503 until the backends have answered, see
//! `sync_function::readiness`) until SIGTERM, and its `App` drained.

use anyhow::Context;
use std::time::Duration;
use sync_function::{Config, Startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else: may re-execute the binary (see the module).
    let allocator = sync_http::allocator::ensure_mmap_threshold();
    let config = match Config::from_lookup(
        |k| std::env::var(k).ok(),
        |p: &str| std::fs::read_to_string(p),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(2);
        }
    };
    sync_http::telemetry::init(config.runtime.log_format).context("initialising logging")?;
    allocator.log();
    let port = config.runtime.port;
    let startup = Startup::begin(config);
    sync_http::serve(startup.router(), port, sync_http::shutdown_signal())
        .await
        .context("serving")?;
    // In-flight requests have finished; drain what the publisher still holds
    // (Cloud Run kills 10 s after SIGTERM).
    if let Some(app) = startup.app() {
        if !app.drain(Duration::from_secs(5)).await {
            tracing::warn!("some publishes were still pending at shutdown");
        }
    }
    Ok(())
}
