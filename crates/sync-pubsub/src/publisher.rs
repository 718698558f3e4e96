//! [`PubSubPublisher`]: the `EventPublisher` port on the official client.
//!
//! One batching publisher per topic, cached: messages without an ordering key
//! share publish RPCs (a batch goes [`PubSubConfig::batch_delay`] after its
//! first message), and each `publish` returns its own message's id or error.
//! A message with an ordering key goes to that key's sequential batch; a
//! failed key is resumed at once, since the nacked delivery's redelivery
//! publishes what was not announced. A topic's publisher is replaced after
//! [`PubSubConfig::max_ordering_keys`] distinct keys, as the client keeps every
//! key's task for its lifetime.
//!
//! Retrying is the client's, bounded by [`PubSubConfig::publish_timeout`];
//! nothing here retries on top of it.

use crate::config::PubSubConfig;
use crate::counters::{Counters, PublishCounts};
use crate::error::PubSubError;
use crate::names::topic_path;
use async_trait::async_trait;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_pubsub::client::{BasePublisher, Publisher};
use google_cloud_pubsub::error::PublishError as ClientPublishError;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::retry_policy::RetryableErrors;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use sync_core::{EventPublisher, OutgoingMessage, PublishError};

/// Publishes to any topic, caching one batching publisher per topic.
#[derive(Debug)]
pub struct PubSubPublisher {
    project: String,
    base: BasePublisher,
    publishers: Mutex<HashMap<String, Cached>>,
    timeout: Duration,
    batch_delay: Duration,
    max_keys: usize,
    counters: Counters,
}

/// A topic's current publisher and the ordering keys it has served.
#[derive(Debug)]
struct Cached {
    publisher: Publisher,
    keys: HashSet<String>,
    /// How many publishers this topic has had before the current one.
    replaced: u64,
}

impl PubSubPublisher {
    /// Creates the client: the emulator (anonymous) when configured, otherwise
    /// production with Application Default Credentials.
    ///
    /// # Errors
    /// [`PubSubError::Client`] when the client cannot be built (no credentials…).
    pub async fn connect(config: &PubSubConfig) -> Result<Self, PubSubError> {
        // The client retries retryable errors inside the publish; bound that by
        // our timeout so a publish we gave up on does not linger for minutes.
        let mut builder = BasePublisher::builder()
            .with_retry_policy(RetryableErrors.with_time_limit(config.publish_timeout));
        if let Some(endpoint) = config.emulator_endpoint() {
            builder = builder
                .with_endpoint(endpoint)
                .with_credentials(crate::credentials::anonymous_credentials());
        }
        let base = builder.build().await.map_err(|e| PubSubError::Client {
            client: "publisher",
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Ok(Self {
            project: config.project.clone(),
            base,
            publishers: Mutex::new(HashMap::new()),
            timeout: config.publish_timeout,
            batch_delay: config.batch_delay,
            max_keys: config.max_ordering_keys.max(1),
            counters: Counters::default(),
        })
    }

    fn build(&self, path: &str) -> Publisher {
        self.base
            .publisher(path)
            .set_delay_threshold(self.batch_delay)
            .build()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A poisoned map is still a valid map: each update is one assignment.
        self.publishers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The publisher of `path` for a message on `key`: the cached one, created
    /// on first use and replaced when `key` would exceed its key budget.
    fn publisher_for(&self, path: &str, key: Option<&str>) -> Publisher {
        let mut map = self.lock();
        let cached = map.entry(path.to_string()).or_insert_with(|| Cached {
            publisher: self.build(path),
            keys: HashSet::new(),
            replaced: 0,
        });
        if let Some(key) = key {
            if !cached.keys.contains(key) {
                if cached.keys.len() >= self.max_keys {
                    cached.publisher = self.build(path);
                    cached.keys.clear();
                    cached.replaced += 1;
                }
                cached.keys.insert(key.to_string());
            }
        }
        cached.publisher.clone()
    }

    fn cached(&self) -> Vec<Publisher> {
        self.lock().values().map(|c| c.publisher.clone()).collect()
    }

    /// How many times the publisher of `topic` (a full path) was replaced to
    /// bound the ordering keys it holds (for tests and diagnostics).
    pub fn replacements(&self, topic: &str) -> u64 {
        self.lock().get(topic).map_or(0, |c| c.replaced)
    }

    /// Full paths of the topics that have a publisher (for tests and diagnostics).
    pub fn cached_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.lock().keys().cloned().collect();
        topics.sort();
        topics
    }

    /// What this publisher has published so far (messages, not batches: the
    /// client does not report its RPCs).
    pub fn counts(&self) -> PublishCounts {
        self.counters.snapshot()
    }

    /// Sends every buffered message now and waits until each has succeeded or
    /// failed for good.
    pub async fn flush(&self) {
        let mut tasks = tokio::task::JoinSet::new();
        for publisher in self.cached() {
            tasks.spawn(async move { publisher.flush().await });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// For SIGTERM: flushes within `grace`, then drops the publishers (their
    /// background tasks end). Returns whether everything was flushed in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let drained = tokio::time::timeout(grace, self.flush()).await.is_ok();
        self.lock().clear();
        drained
    }

    async fn publish_once(
        &self,
        publisher: &Publisher,
        msg: Message,
        key: Option<&str>,
    ) -> Result<String, ClientPublishError> {
        self.counters.handed();
        match publisher.publish(msg.clone()).await {
            Err(ClientPublishError::OrderingKeyPaused) => {
                // An earlier publish on this key failed (its caller got the
                // error and its delivery will be redelivered); ours was never
                // sent. Resume the key and send ours once more.
                if let Some(key) = key {
                    publisher.resume_publish(key);
                }
                self.counters.handed();
                publisher.publish(msg).await
            }
            other => other,
        }
    }
}

#[async_trait]
impl EventPublisher for PubSubPublisher {
    async fn publish(&self, topic: &str, message: OutgoingMessage) -> Result<String, PublishError> {
        let path = topic_path(&self.project, topic).map_err(|e| PublishError::Unavailable {
            topic: topic.to_string(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        let key = message.ordering_key.filter(|k| !k.is_empty());
        let mut msg = Message::new()
            .set_data(message.data)
            .set_attributes(message.attributes);
        if let Some(key) = &key {
            msg = msg.set_ordering_key(key.clone());
        }
        let publisher = self.publisher_for(&path, key.as_deref());
        let outcome = tokio::time::timeout(
            self.timeout,
            self.publish_once(&publisher, msg, key.as_deref()),
        )
        .await;
        self.counters.answered(matches!(outcome, Ok(Ok(_))));
        match outcome {
            Ok(Ok(message_id)) => Ok(message_id),
            Ok(Err(e)) => {
                if let Some(key) = &key {
                    // Unpause so the redelivery can publish on this key again.
                    publisher.resume_publish(key.clone());
                }
                Err(PublishError::Unavailable {
                    topic: path,
                    message: e.to_string(),
                    source: Some(Box::new(e)),
                })
            }
            // The message may still go out later: at-least-once, and a
            // duplicate downstream carries the same version.
            Err(_) => Err(PublishError::Unavailable {
                topic: path,
                message: format!("no answer within {} ms", self.timeout.as_millis()),
                source: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::Classify;

    /// A TCP endpoint that accepts connections and never answers.
    async fn black_hole() -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let host = listener.local_addr()?.to_string();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Ok((host, task))
    }

    #[tokio::test]
    async fn publish_to_a_silent_server_times_out_as_unavailable(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (host, task) = black_hole().await?;
        let config = PubSubConfig::new("p")
            .with_emulator(host)
            .with_publish_timeout(Duration::from_millis(300));
        let publisher = PubSubPublisher::connect(&config).await?;
        let message = OutgoingMessage {
            data: b"x".to_vec(),
            ordering_key: Some("e-1".into()),
            ..OutgoingMessage::default()
        };
        let err = publisher
            .publish("t1", message.clone())
            .await
            .expect_err("nobody answers");
        let PublishError::Unavailable { topic, .. } = &err;
        assert_eq!(topic, "projects/p/topics/t1");
        assert_eq!(err.disposition(), sync_core::Disposition::Transient);
        // The key is not stuck: the next publish on it is attempted (and times out too).
        let again = publisher
            .publish("t1", message)
            .await
            .expect_err("still silent");
        assert!(!again.to_string().contains("paused"), "{again}");
        assert_eq!(
            publisher.cached_topics(),
            vec!["projects/p/topics/t1".to_string()]
        );
        task.abort();
        Ok(())
    }

    #[tokio::test]
    async fn publisher_is_replaced_after_its_key_budget() -> Result<(), Box<dyn std::error::Error>>
    {
        let config = PubSubConfig::new("p")
            .with_emulator("127.0.0.1:9")
            .with_max_ordering_keys(2);
        let publisher = PubSubPublisher::connect(&config).await?;
        let path = "projects/p/topics/t";
        for key in ["a", "b", "a", "b"] {
            publisher.publisher_for(path, Some(key));
        }
        publisher.publisher_for(path, None);
        assert_eq!(publisher.replacements(path), 0, "two keys fit");
        publisher.publisher_for(path, Some("c"));
        assert_eq!(publisher.replacements(path), 1, "a third key starts afresh");
        publisher.publisher_for(path, Some("a"));
        assert_eq!(publisher.replacements(path), 1, "c and a fit the new one");
        publisher.publisher_for(path, Some("b"));
        assert_eq!(publisher.replacements(path), 2);
        assert_eq!(publisher.replacements("projects/p/topics/other"), 0);
        Ok(())
    }

    #[tokio::test]
    async fn invalid_topic_is_unavailable_without_a_publisher(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let publisher =
            PubSubPublisher::connect(&PubSubConfig::new("p").with_emulator("127.0.0.1:9")).await?;
        let err = publisher
            .publish("projects/p/subscriptions/s", OutgoingMessage::default())
            .await
            .expect_err("not a topic path");
        assert!(
            err.to_string().contains("projects/p/subscriptions/s"),
            "{err}"
        );
        assert!(publisher.cached_topics().is_empty());
        Ok(())
    }
}
