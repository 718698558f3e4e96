//! `audit-function`: glibc's allocator set up (`sync_http::allocator`),
//! configuration, telemetry, wiring, serve.

use anyhow::Context;
use audit_function::{router, AppState, AuditConfig, StdoutSink};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else: may re-execute the binary (see the module).
    let allocator = sync_http::allocator::ensure_mmap_threshold();
    let config =
        AuditConfig::from_lookup(|k| std::env::var(k).ok()).context("invalid configuration")?;
    sync_http::telemetry::init(config.runtime.log_format).context("initialising logging")?;
    allocator.log();
    let port = config.runtime.port;
    let state = AppState {
        config: Arc::new(config),
        sink: Arc::new(StdoutSink),
        clock: Arc::new(chrono::Utc::now),
    };
    sync_http::serve(router(state), port, sync_http::shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}
