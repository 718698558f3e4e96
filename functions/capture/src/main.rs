//! `capture-function`: glibc's allocator set up (`sync_http::allocator`),
//! configuration (refused at once, naming every problem, with status 2),
//! telemetry, then a [`Startup`] served at once (`/healthz` 503 until
//! Pub/Sub has answered, see `capture_function::readiness`) until SIGTERM,
//! and its `App` drained.

use anyhow::Context;
use capture_function::{CaptureConfig, Startup};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else: may re-execute the binary (see the module).
    let allocator = sync_http::allocator::ensure_mmap_threshold();
    let config = match CaptureConfig::from_lookup(|k| std::env::var(k).ok()) {
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
    // In-flight requests have finished; send what the publisher still holds
    // (Cloud Run kills 10 s after SIGTERM).
    if let Some(app) = startup.app() {
        if !app.drain(Duration::from_secs(5)).await {
            tracing::warn!("some publishes were still pending at shutdown");
        }
    }
    Ok(())
}
