//! `sync-function`: configuration, telemetry, clients, serve, drain.

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use sync_core::memory::{MemoryPublisher, MemoryStore};
use sync_core::{EntityStore, EventPublisher};
use sync_function::{router, AnnouncedLog, AppState, Backend, Config};
use sync_pubsub::{PubSubConfig, PubSubPublisher};
use sync_store::{DatastoreStore, StoreConfig};

/// The store, the publisher, and the Pub/Sub publisher to drain at shutdown.
type Clients = (
    Arc<dyn EntityStore>,
    Arc<dyn EventPublisher>,
    Option<Arc<PubSubPublisher>>,
);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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

    // Clients are built once here and shared by every request.
    let (store, publisher, pubsub): Clients = match config.backend {
        Backend::Memory => {
            tracing::warn!("SYNC_BACKEND=memory: bench-only mode, nothing is stored or published");
            (
                Arc::new(MemoryStore::new(config.policy.clone())),
                Arc::new(MemoryPublisher::default()),
                None,
            )
        }
        Backend::Gcp => {
            let mut sc = StoreConfig::new(config.project_id.clone())
                .with_emulator_from(|_| config.datastore_emulator_host.clone());
            sc.namespace = config.namespace.clone();
            sc.default_kind = config.kind.clone();
            sc.tombstone_retention = config.tombstone_retention;
            sc.retry_budget = config.retry_budget;
            sc.policy = Arc::new(config.policy.clone());
            sc.limits = config.limits.clone();
            let store = DatastoreStore::connect(sc)
                .await
                .context("connecting to Datastore")?;
            let mut pc =
                PubSubConfig::from_lookup(|k| std::env::var(k).ok()).context("Pub/Sub settings")?;
            pc.project = config.project_id.clone();
            let publisher = Arc::new(
                PubSubPublisher::connect(&pc)
                    .await
                    .context("connecting to Pub/Sub")?,
            );
            (Arc::new(store), publisher.clone(), Some(publisher))
        }
    };

    let port = config.runtime.port;
    tracing::info!(
        project = %config.project_id,
        kind = %config.kind,
        dead_letter_topic = config.dead_letter_topic.as_deref().unwrap_or("(none)"),
        external_topic_prefix = %config.external_topic_prefix,
        backend = ?config.backend,
        "sync function starting"
    );
    let state = AppState {
        store,
        publisher,
        config: Arc::new(config),
        clock: Arc::new(chrono::Utc::now),
        announced: Arc::new(AnnouncedLog::new(AnnouncedLog::DEFAULT_CAPACITY)),
    };
    sync_http::serve(router(state), port, sync_http::shutdown_signal())
        .await
        .context("serving")?;
    // In-flight requests have finished; drain what the publisher still holds
    // (Cloud Run kills 10 s after SIGTERM).
    if let Some(p) = pubsub {
        if !p.shutdown(Duration::from_secs(5)).await {
            tracing::warn!("some publishes were still pending at shutdown");
        }
    }
    Ok(())
}
