//! The HTTP layer alone: the sync function's own router, configuration,
//! logging and server, with the in-memory store and publisher of
//! `sync_core::memory` in place of Datastore and Pub/Sub.
//!
//! What `sync-function`'s `main` does, minus the two clients: the same
//! `Config::from_lookup` on the environment (so `PORT`, `MAX_BODY_BYTES` and
//! `LOG_FORMAT` mean what they mean there), the same telemetry, the same
//! `sync_function::router` and `sync_http::serve`, stopped by SIGTERM. Nothing
//! is stored beyond the process or published anywhere: a bench server only.

use anyhow::{Context, Result};
use std::sync::Arc;
use sync_core::memory::{MemoryPublisher, MemoryStore};
use sync_function::{router, AppState, Config};

/// The function's state with the in-memory ports.
fn memory_state(config: Config) -> AppState {
    let store = Arc::new(MemoryStore::new((*config.store.policy).clone()));
    AppState::new(
        Arc::new(config),
        store,
        Arc::new(MemoryPublisher::default()),
    )
}

/// Serves until SIGTERM or Ctrl-C.
///
/// # Errors
/// An invalid configuration (every problem listed), or a failure to serve.
pub async fn run() -> Result<()> {
    let config = Config::from_lookup(
        |k| std::env::var(k).ok(),
        |p: &str| std::fs::read_to_string(p),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    sync_http::telemetry::init(config.runtime.log_format).context("initialising logging")?;
    let port = config.runtime.port;
    tracing::info!("bench server: the sync function's router on in-memory ports");
    sync_http::serve(
        router(memory_state(config)),
        port,
        sync_http::shutdown_signal(),
    )
    .await
    .context("serving")
}
