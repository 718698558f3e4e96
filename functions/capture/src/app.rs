//! [`App`]: the function wired to Pub/Sub (or its emulator): the publisher
//! and the admin client built once at start-up, the calls that make it
//! ready, the routes, and the drain at shutdown. `main.rs` serves it
//! through [`crate::readiness`]; tests may run it in-process.

use crate::config::CaptureConfig;
use crate::handler::{router, AppState};
use anyhow::Context;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use sync_pubsub::admin::TopicReach;
use sync_pubsub::{PubSubAdmin, PubSubPublisher};
use tracing::info;

/// The function on Pub/Sub: clients built once and shared by every request.
pub struct App {
    state: AppState,
    publisher: Arc<PubSubPublisher>,
    /// Pub/Sub's admin client, for the `GetTopic`s of [`App::warm_up`].
    topics: PubSubAdmin,
}

impl App {
    /// Builds the Pub/Sub clients from `config`.
    ///
    /// # Errors
    /// When a client cannot be built (no credentials, an unusable endpoint…).
    pub async fn connect(config: CaptureConfig) -> anyhow::Result<Self> {
        let (topics, publisher) = tokio::join!(
            PubSubAdmin::connect(&config.pubsub),
            PubSubPublisher::connect(&config.pubsub)
        );
        let topics = topics.context("connecting to Pub/Sub's admin API")?;
        let publisher = Arc::new(publisher.context("connecting to Pub/Sub")?);
        info!(
            project = %config.project_id(),
            events_topic = %config.events_topic,
            dead_letter_topic = config.dead_letter_topic.as_deref().unwrap_or("(none)"),
            kinds = %config.kinds_text(),
            "capture function starting"
        );
        let state = AppState::new(Arc::new(config), publisher.clone());
        Ok(Self {
            state,
            publisher,
            topics,
        })
    }

    /// The calls that make the function ready: a `GetTopic` of the events
    /// topic and of the dead-letter topic, at once. A topic that does not
    /// exist, or that the account may publish to but not read, is an answer
    /// (a missing one is logged).
    ///
    /// # Errors
    /// The first call that got no answer.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        let config = &self.state.config;
        let reach = |topic: String| async move {
            let reach = self
                .topics
                .reach_topic(&topic)
                .await
                .with_context(|| format!("Pub/Sub GetTopic {topic}"))?;
            if reach == TopicReach::Missing {
                tracing::warn!(
                    topic,
                    "topic does not exist: publishing to it fails until it is created"
                );
            }
            anyhow::Ok(())
        };
        let events = reach(config.events_topic.clone());
        let dead_letters = async {
            match &config.dead_letter_topic {
                Some(t) => reach(t.clone()).await,
                None => {
                    tracing::warn!("no DEAD_LETTER_TOPIC: an event that can never be forwarded is answered 400, and Eventarc redelivers it for a day");
                    Ok(())
                }
            }
        };
        tokio::try_join!(events, dead_letters).map(drop)
    }

    /// The routes, on this app's clients.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// For shutdown, once in-flight requests have finished: sends what the
    /// publisher still holds within `timeout`, then logs what was counted.
    /// Returns whether everything went.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let drained = self.publisher.shutdown(timeout).await;
        info!(
            events = %self.state.counts.json(),
            messages = ?self.publisher.counts(),
            "events counted"
        );
        drained
    }
}
