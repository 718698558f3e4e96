//! The settings every subcommand shares (project, namespace, emulators,
//! Pub/Sub's publisher settings), read once by clap from the command line or
//! the environment, and the clients built from them.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::time::Duration;
use sync_config::PUBSUB_PUBLISH_TIMEOUT_MS;
use sync_config::{DATASTORE_EMULATOR_HOST, DATASTORE_NAMESPACE, GOOGLE_CLOUD_PROJECT};
use sync_config::{PUBSUB_BATCH_DELAY_MS, PUBSUB_EMULATOR_HOST, PUBSUB_MAX_ORDERING_KEYS};
use sync_pubsub::{PubSubAdmin, PubSubConfig, PubSubPublisher, PubSubPuller};
use sync_store::{DatastoreAdmin, StoreConfig};

/// Settings every subcommand shares, from the options or else the
/// environment (read here only, by clap).
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Google Cloud project id.
    #[arg(long, global = true, env = GOOGLE_CLOUD_PROJECT)]
    pub project: Option<String>,
    /// Datastore namespace (default namespace when unset).
    #[arg(long, global = true, env = DATASTORE_NAMESPACE)]
    pub namespace: Option<String>,
    /// Datastore emulator `host:port`; production Datastore when unset.
    #[arg(long, global = true, env = DATASTORE_EMULATOR_HOST)]
    pub datastore_emulator_host: Option<String>,
    /// Pub/Sub emulator `host:port`; production Pub/Sub when unset.
    #[arg(long, global = true, env = PUBSUB_EMULATOR_HOST)]
    pub pubsub_emulator_host: Option<String>,
    /// Per-publish timeout, milliseconds (default 10000).
    #[arg(long, global = true, env = PUBSUB_PUBLISH_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub pubsub_publish_timeout_ms: Option<u64>,
    /// Publisher batching delay, milliseconds (default 2).
    #[arg(long, global = true, env = PUBSUB_BATCH_DELAY_MS)]
    pub pubsub_batch_delay_ms: Option<u64>,
    /// Distinct ordering keys a publisher serves before it is replaced (default 250).
    #[arg(long, global = true, env = PUBSUB_MAX_ORDERING_KEYS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub pubsub_max_ordering_keys: Option<u64>,
}

/// A set, non-blank value.
fn set(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

pub fn project(g: &Global) -> Result<String> {
    set(&g.project)
        .ok_or_else(|| anyhow!("no project: pass --project or set {GOOGLE_CLOUD_PROJECT}"))
}

/// Pub/Sub's configuration from the shared settings.
pub fn pubsub_config(g: &Global) -> Result<PubSubConfig> {
    let mut config = PubSubConfig::new(project(g)?);
    if let Some(host) = set(&g.pubsub_emulator_host) {
        config = config.with_emulator(host);
    }
    if let Some(ms) = g.pubsub_publish_timeout_ms {
        config = config.with_publish_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = g.pubsub_batch_delay_ms {
        config = config.with_batch_delay(Duration::from_millis(ms));
    }
    if let Some(keys) = g.pubsub_max_ordering_keys {
        config = config.with_max_ordering_keys(usize::try_from(keys).unwrap_or(usize::MAX));
    }
    Ok(config)
}

pub async fn publisher(g: &Global) -> Result<PubSubPublisher> {
    PubSubPublisher::connect(&pubsub_config(g)?)
        .await
        .context("connecting to Pub/Sub")
}

pub async fn puller(g: &Global) -> Result<PubSubPuller> {
    PubSubPuller::connect(&pubsub_config(g)?)
        .await
        .context("connecting to Pub/Sub")
}

pub async fn admin(g: &Global) -> Result<PubSubAdmin> {
    PubSubAdmin::connect(&pubsub_config(g)?)
        .await
        .context("connecting to Pub/Sub")
}

pub async fn store(g: &Global) -> Result<DatastoreAdmin> {
    let mut config = StoreConfig::new(project(g)?);
    config.emulator_host = set(&g.datastore_emulator_host);
    config.namespace = set(&g.namespace);
    DatastoreAdmin::connect(config)
        .await
        .context("connecting to Datastore")
}
