//! [`App`]: the function wired to Datastore and Pub/Sub (or their
//! emulators): clients built once at start-up, the calls that make it ready,
//! the routes with their counters, and the drain at shutdown. `main.rs`
//! serves it through [`crate::readiness`]; tests may run it in-process.

use crate::config::Config;
use crate::counters::{self, Counters};
use crate::handler::{router, AppState};
use anyhow::Context;
use axum::Router;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use sync_pubsub::admin::TopicReach;
use sync_pubsub::{PubSubAdmin, PubSubPublisher};
use sync_store::DatastoreStore;
use tracing::info;

/// The function on Datastore and Pub/Sub (or their emulators): clients built
/// once and shared by every request.
pub struct App {
    state: AppState,
    store: DatastoreStore,
    publisher: Arc<PubSubPublisher>,
    /// Pub/Sub's admin client, for the `GetTopic`s of [`App::warm_up`].
    topics: PubSubAdmin,
    /// Deliveries answered on `POST /`.
    deliveries: Arc<AtomicU64>,
}

impl App {
    /// Builds the Datastore and Pub/Sub clients from `config`.
    ///
    /// # Errors
    /// When a client cannot be built (no credentials, an unusable endpoint…).
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        // Independent clients: built at once, each in its own task.
        let store_config = config.store.clone();
        let store = tokio::spawn(async move {
            let store = DatastoreStore::connect(store_config).await?;
            // The probe is the slowest call of the start-up: it begins as
            // soon as the channel is up, while the Pub/Sub clients are
            // built; `warm_up` waits for it (and probes again if it failed).
            let probing = store.clone();
            tokio::spawn(async move { probing.probe_transactions().await });
            Ok::<_, sync_store::ConnectError>(store)
        });
        let pubsub = config.pubsub.clone();
        let topics = tokio::spawn(async move { PubSubAdmin::connect(&pubsub).await });
        let pubsub = config.pubsub.clone();
        let publisher = tokio::spawn(async move { PubSubPublisher::connect(&pubsub).await });
        let (store, topics, publisher) = tokio::try_join!(store, topics, publisher)
            .context("a client's task ended without an answer")?;
        let store = store.context("connecting to Datastore")?;
        let topics = topics.context("connecting to Pub/Sub's admin API")?;
        let publisher = Arc::new(publisher.context("connecting to Pub/Sub")?);
        tracing::info!(
            project = %config.project_id(),
            kind = %config.kind(),
            dead_letter_topic = config.dead_letter_topic.as_deref().unwrap_or("(none)"),
            external_topic_prefix = %config.external_topic_prefix,
            "sync function starting"
        );
        let state = AppState::new(Arc::new(config), Arc::new(store.clone()), publisher.clone());
        Ok(Self {
            state,
            store,
            publisher,
            topics,
            deliveries: Arc::default(),
        })
    }

    /// The calls that make the function ready (see [`crate::readiness`]),
    /// all at once: the store's transaction probe (a lookup of a key that
    /// does not exist, beginning a transaction, and its commit; done here so
    /// that the first event does not pay for it), and a `GetTopic` of every
    /// topic the function publishes to.
    ///
    /// # Errors
    /// The first call that got no answer: a missing topic or one the
    /// account may not read is an answer (logged when missing), and so is a
    /// Datastore that refuses to begin transactions in lookups.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        let config = &self.state.config;
        let mut topics: Vec<String> = sync_core::Operation::ALL
            .into_iter()
            .map(|op| config.external_topic(op))
            .collect();
        topics.extend(config.dead_letter_topic.clone());
        let started = tokio::time::Instant::now();
        let ms = |since: tokio::time::Instant| {
            u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
        };
        let datastore = async {
            let in_lookup = self
                .store
                .probe_transactions()
                .await
                .context("Datastore lookup (the transaction probe)")?;
            tracing::debug!(
                in_lookup,
                elapsed_ms = ms(started),
                "transaction probe done"
            );
            anyhow::Ok(())
        };
        let pubsub = futures_util::future::try_join_all(topics.iter().map(|topic| async move {
            let reach = self.topics.reach_topic(topic).await;
            tracing::debug!(topic, elapsed_ms = ms(started), "GetTopic answered");
            match reach.with_context(|| format!("Pub/Sub GetTopic {topic}"))? {
                TopicReach::Missing => tracing::warn!(
                    topic,
                    "topic does not exist: publishing to it fails until it is created"
                ),
                TopicReach::Exists | TopicReach::NotReadable => {}
            }
            anyhow::Ok(())
        }));
        tokio::try_join!(datastore, pubsub).map(drop)
    }

    /// The routes, on this app's clients, counting the deliveries answered;
    /// with `GET /debug/counters` when `SYNC_DEBUG_ENDPOINTS` is on.
    pub fn router(&self) -> Router {
        let counted =
            counters::count_deliveries(router(self.state.clone()), Arc::clone(&self.deliveries));
        if !self.state.config.debug_endpoints {
            return counted;
        }
        counters::with_debug_endpoint(counted, self.counting())
    }

    /// The counters so far, as `GET /debug/counters` serves them.
    pub fn counters(&self) -> serde_json::Value {
        self.counting().json()
    }

    fn counting(&self) -> Counters {
        Counters {
            store: self.store.clone(),
            publisher: Arc::clone(&self.publisher),
            deliveries: Arc::clone(&self.deliveries),
        }
    }

    /// For shutdown, once in-flight requests have finished: sends what the
    /// publisher still holds within `timeout`, then logs the counters. Returns
    /// whether everything went.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let drained = self.publisher.shutdown(timeout).await;
        info!(counters = %self.counters(), "RPCs and deliveries counted");
        drained
    }
}
