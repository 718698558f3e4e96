//! The Pub/Sub adapter on the real Pub/Sub emulator.
//!
//! Every test creates its own topics and subscriptions (`unique_name`), so tests
//! run in parallel on one shared emulator (`sync_testkit::Emulators::shared()`:
//! the one the test script exported, or one started for this process).

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use sync_core::{Announcement, Classify, EventPublisher, Operation, OutgoingMessage, PublishError};
use sync_pubsub::{
    messages, AdminOutcome, DeadLetter, PubSubAdmin, PubSubConfig, PubSubError, PubSubPublisher,
    PubSubPuller, PushEndpoint, ReceivedMessage, SubscriptionConfig,
};
use sync_testkit::harness::Clients;
use sync_testkit::{unique_name, Emulators, TEST_PROJECT};

/// A config for the shared emulator.
async fn config() -> Result<PubSubConfig> {
    Ok(Emulators::shared().await?.pubsub_config())
}

async fn clients() -> Result<Clients> {
    Clients::connect(&Emulators::shared().await?).await
}

/// A fresh topic with a fresh pull subscription on it.
async fn topic_with_subscription(admin: &PubSubAdmin, ordered: bool) -> Result<(String, String)> {
    let topic = unique_name("topic");
    let subscription = unique_name("sub");
    admin.create_topic(&topic).await?;
    let config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(30),
        enable_message_ordering: ordered,
        ..SubscriptionConfig::default()
    };
    admin
        .create_pull_subscription(&subscription, &topic, &config)
        .await?;
    Ok((topic, subscription))
}

/// Pulls until `count` messages have arrived (30 s at most), acking each.
async fn pull_n(
    puller: &PubSubPuller,
    subscription: &str,
    count: usize,
) -> Result<Vec<ReceivedMessage>> {
    sync_testkit::pull_until(puller, subscription, count, Duration::from_secs(30)).await
}

fn message(data: &str, key: Option<&str>, attributes: &[(&str, &str)]) -> OutgoingMessage {
    OutgoingMessage {
        data: data.as_bytes().to_vec(),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ordering_key: key.map(str::to_string),
    }
}

#[tokio::test]
async fn published_attributes_and_ordering_key_are_pulled_back_intact() -> Result<()> {
    let c = clients().await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, true).await?;
    let mut sent = Vec::new();
    for version in 1..=3 {
        let m = message(
            &format!(r#"{{"entity_id":"test-entity-001","version":{version}}}"#),
            Some("test-entity-001"),
            &[
                ("entity_id", "test-entity-001"),
                ("operation", "update"),
                ("version", &version.to_string()),
            ],
        );
        let id = c.publisher.publish(&topic, m.clone()).await?;
        ensure!(!id.is_empty(), "a message id is returned");
        sent.push((id, m));
    }

    let received = pull_n(&c.puller, &subscription, 3).await?;
    ensure!(
        received.len() == 3,
        "exactly the three messages: {received:?}"
    );
    for ((id, m), r) in sent.iter().zip(&received) {
        ensure!(&r.message_id == id, "same order and ids: {received:?}");
        ensure!(r.data == m.data, "data intact");
        ensure!(
            r.attributes == m.attributes,
            "attributes intact: {:?}",
            r.attributes
        );
        ensure!(r.ordering_key.as_deref() == Some("test-entity-001"));
        ensure!(r.publish_time.is_some(), "publish time is set");
    }
    // Everything was acked: nothing comes back.
    let again = c
        .puller
        .pull(&subscription, 10, Duration::from_millis(500))
        .await?;
    ensure!(again.is_empty(), "acked messages are gone: {again:?}");
    Ok(())
}

#[tokio::test]
async fn message_without_key_or_attributes_round_trips() -> Result<()> {
    let c = clients().await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, false).await?;
    let id = c
        .publisher
        .publish(&topic, message("plain", None, &[]))
        .await?;
    let received = pull_n(&c.puller, &subscription, 1).await?;
    let r = received.first().context("one message")?;
    ensure!(r.message_id == id);
    ensure!(r.data == b"plain");
    ensure!(r.attributes.is_empty() && r.ordering_key.is_none(), "{r:?}");
    Ok(())
}

#[tokio::test]
async fn topic_id_and_full_path_share_one_cached_publisher() -> Result<()> {
    let c = clients().await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, false).await?;
    let path = format!("projects/{TEST_PROJECT}/topics/{topic}");
    c.publisher.publish(&topic, message("a", None, &[])).await?;
    c.publisher.publish(&path, message("b", None, &[])).await?;
    ensure!(
        c.publisher.cached_topics() == vec![path],
        "one publisher per topic: {:?}",
        c.publisher.cached_topics()
    );
    let received = pull_n(&c.puller, &subscription, 2).await?;
    ensure!(received.len() == 2);
    ensure!(
        c.publisher.shutdown(Duration::from_secs(5)).await,
        "flushed in time"
    );
    ensure!(c.publisher.cached_topics().is_empty());
    Ok(())
}

#[tokio::test]
async fn publisher_replaced_for_its_key_budget_delivers_everything_in_key_order() -> Result<()> {
    let config = config().await?.with_max_ordering_keys(2);
    let c = clients().await?;
    let publisher = PubSubPublisher::connect(&config).await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, true).await?;
    let path = format!("projects/{TEST_PROJECT}/topics/{topic}");
    // Keys a, b fill the first publisher; c starts a second, a a third…
    let keys = ["a", "b", "a", "c", "a", "d", "b", "a"];
    for (i, key) in keys.iter().enumerate() {
        let m = message(&format!("{key}-{i}"), Some(key), &[]);
        publisher.publish(&topic, m).await?;
    }
    ensure!(
        publisher.replacements(&path) >= 3,
        "the budget of 2 keys forced replacements: {}",
        publisher.replacements(&path)
    );
    let received = pull_n(&c.puller, &subscription, keys.len()).await?;
    let mut seen: Vec<String> = received
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    // Per key, the order of publishing survives the replacements.
    for key in ["a", "b"] {
        let order: Vec<&String> = seen.iter().filter(|d| d.starts_with(key)).collect();
        let expected: Vec<String> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| *k == &key)
            .map(|(i, k)| format!("{k}-{i}"))
            .collect();
        ensure!(
            order
                .iter()
                .map(|s| s.as_str())
                .eq(expected.iter().map(String::as_str)),
            "key {key}: {order:?}"
        );
    }
    seen.sort();
    seen.dedup();
    ensure!(seen.len() == keys.len(), "every message once: {seen:?}");
    Ok(())
}

#[tokio::test]
async fn failed_ordered_publish_is_resumed_for_the_next_one() -> Result<()> {
    let c = clients().await?;
    let topic = unique_name("later");
    // The topic does not exist yet: the publish fails, and the client pauses the key.
    let err = c
        .publisher
        .publish(&topic, message("first", Some("k-1"), &[]))
        .await
        .expect_err("no such topic");
    let PublishError::Unavailable { topic: failed, .. } = &err;
    ensure!(failed.ends_with(&topic), "{err}");
    ensure!(err.disposition() == sync_core::Disposition::Transient);

    // Once the topic exists, the same key publishes again (the key was resumed).
    let subscription = unique_name("later-sub");
    c.admin.create_topic(&topic).await?;
    c.admin
        .create_pull_subscription(&subscription, &topic, &SubscriptionConfig::default())
        .await?;
    let id = c
        .publisher
        .publish(&topic, message("second", Some("k-1"), &[]))
        .await?;
    let received = pull_n(&c.puller, &subscription, 1).await?;
    ensure!(received.first().map(|m| &m.message_id) == Some(&id));
    Ok(())
}

#[tokio::test]
async fn admin_create_and_delete_are_idempotent() -> Result<()> {
    let c = clients().await?;
    let topic = unique_name("idem");
    let subscription = unique_name("idem-sub");
    ensure!(!c.admin.topic_exists(&topic).await?);
    ensure!(c.admin.create_topic(&topic).await? == AdminOutcome::Created);
    ensure!(c.admin.create_topic(&topic).await? == AdminOutcome::AlreadyExisted);
    ensure!(c.admin.topic_exists(&topic).await?);

    let config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(60),
        retention: Some(Duration::from_secs(7 * 24 * 3600)),
        ..SubscriptionConfig::default()
    };
    let created = c
        .admin
        .create_pull_subscription(&subscription, &topic, &config)
        .await?;
    ensure!(created == AdminOutcome::Created && created.changed());
    let again = c
        .admin
        .create_pull_subscription(&subscription, &topic, &config)
        .await?;
    ensure!(again == AdminOutcome::AlreadyExisted && !again.changed());
    let info = c.admin.get_subscription(&subscription).await?;
    ensure!(info.ack_deadline_seconds == 60, "{info:?}");
    ensure!(info.push_endpoint.is_none(), "{info:?}");
    ensure!(info.topic == format!("projects/{TEST_PROJECT}/topics/{topic}"));

    ensure!(c.admin.delete_subscription(&subscription).await? == AdminOutcome::Deleted);
    ensure!(c.admin.delete_subscription(&subscription).await? == AdminOutcome::AlreadyAbsent);
    ensure!(c.admin.delete_topic(&topic).await? == AdminOutcome::Deleted);
    ensure!(c.admin.delete_topic(&topic).await? == AdminOutcome::AlreadyAbsent);
    ensure!(!c.admin.topic_exists(&topic).await?);
    Ok(())
}

#[tokio::test]
async fn push_subscription_with_dead_letter_policy_reads_back() -> Result<()> {
    let c = clients().await?;
    let topic = unique_name("events");
    let dead_letters = unique_name("dead-letters");
    let subscription = unique_name("sync-processor");
    c.admin.create_topic(&topic).await?;
    c.admin.create_topic(&dead_letters).await?;
    // Nothing listens there: the test is about the subscription's settings.
    let port = sync_testkit::free_port()?;
    let endpoint = PushEndpoint::new(format!("http://127.0.0.1:{port}/"));
    let config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(60),
        dead_letter: Some(DeadLetter {
            topic: dead_letters.clone(),
            max_delivery_attempts: 5,
        }),
        ..SubscriptionConfig::default()
    };
    let outcome = c
        .admin
        .create_push_subscription(&subscription, &topic, &endpoint, &config)
        .await?;
    ensure!(outcome == AdminOutcome::Created);

    let info = c.admin.get_subscription(&subscription).await?;
    ensure!(
        info.push_endpoint.as_deref() == Some(endpoint.url.as_str()),
        "{info:?}"
    );
    ensure!(info.ack_deadline_seconds == 60, "{info:?}");
    let dl = info.dead_letter.as_ref().context("dead-letter policy")?;
    ensure!(
        dl.topic == format!("projects/{TEST_PROJECT}/topics/{dead_letters}"),
        "{dl:?}"
    );
    ensure!(dl.max_delivery_attempts == 5, "{dl:?}");

    // Same call again: nothing to do. Another endpoint: the endpoint moves.
    let same = c
        .admin
        .create_push_subscription(&subscription, &topic, &endpoint, &config)
        .await?;
    ensure!(same == AdminOutcome::AlreadyExisted);
    let moved = PushEndpoint::new(format!("http://127.0.0.1:{port}/moved"));
    let updated = c
        .admin
        .create_push_subscription(&subscription, &topic, &moved, &config)
        .await?;
    ensure!(updated == AdminOutcome::Updated);
    let info = c.admin.get_subscription(&subscription).await?;
    ensure!(
        info.push_endpoint.as_deref() == Some(moved.url.as_str()),
        "{info:?}"
    );
    ensure!(info.dead_letter.is_some(), "the policy survives the move");
    c.admin.delete_subscription(&subscription).await?;
    Ok(())
}

#[tokio::test]
async fn nack_makes_a_message_available_again() -> Result<()> {
    let c = clients().await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, false).await?;
    let id = c
        .publisher
        .publish(&topic, message("again", None, &[]))
        .await?;
    let first = c
        .puller
        .pull(&subscription, 10, Duration::from_secs(10))
        .await?;
    let m = first.first().context("pulled once")?;
    ensure!(m.message_id == id);
    c.puller
        .nack(&subscription, std::slice::from_ref(&m.ack_id))
        .await?;
    // Redelivered at once, not after the 30 s ack deadline.
    let second = pull_n(&c.puller, &subscription, 1).await?;
    ensure!(second.first().map(|m| &m.message_id) == Some(&id));
    Ok(())
}

#[tokio::test]
async fn missing_subscription_and_bad_names_are_reported() -> Result<()> {
    let c = clients().await?;
    let missing = unique_name("nowhere");
    match c.puller.pull(&missing, 1, Duration::from_secs(5)).await {
        Err(PubSubError::NotFound { .. }) => {}
        other => bail!("expected NotFound, got {other:?}"),
    }
    match c.admin.get_subscription(&missing).await {
        Err(PubSubError::NotFound { .. }) => {}
        other => bail!("expected NotFound, got {other:?}"),
    }
    match c.admin.create_topic("projects/p/oops").await {
        Err(PubSubError::InvalidName { .. }) => {}
        other => bail!("expected InvalidName, got {other:?}"),
    }
    let attributes: BTreeMap<String, String> = BTreeMap::new();
    let err = c
        .publisher
        .publish(
            "bad/name",
            OutgoingMessage {
                attributes,
                ..OutgoingMessage::default()
            },
        )
        .await
        .expect_err("invalid topic id");
    ensure!(err.to_string().contains("bad/name"), "{err}");
    Ok(())
}

/// An announcement of `entity` at `version`, as the sync function builds it.
fn announcement_of(entity: &str, version: i64, ordered: bool) -> OutgoingMessage {
    let a = Announcement {
        operation: Operation::Update,
        version,
        data: serde_json::Map::from_iter([("v".to_string(), version.into())]),
        last_modified: None,
        correlation_id: Some(format!("{entity}@{version}")),
    };
    messages::announcement("SyncEntity", entity, &a, ordered)
}

/// A publisher on the shared emulator that holds each batch open for `delay`.
async fn batching_publisher(delay: Duration) -> Result<Arc<PubSubPublisher>> {
    let config = config().await?.with_batch_delay(delay);
    Ok(Arc::new(PubSubPublisher::connect(&config).await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unordered_announcements_are_each_delivered_once_and_confirmed() -> Result<()> {
    let c = clients().await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, false).await?;
    // A long delay, so that the concurrent publishes share batches.
    let publisher = batching_publisher(Duration::from_millis(50)).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (publisher, topic) = (publisher.clone(), topic.clone());
        tasks.spawn(async move {
            let m = announcement_of(&format!("e-{}", i % 10), i / 10 + 1, false);
            let id = publisher.publish(&topic, m.clone()).await;
            (id, m)
        });
    }
    let mut sent = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (id, m) = done?;
        ensure!(m.ordering_key.is_none(), "no key by default: {m:?}");
        // The id is Pub/Sub's answer to this very message's publish.
        ensure!(sent.insert(id?, m).is_none(), "ids are distinct");
    }
    let received = pull_n(&c.puller, &subscription, sent.len()).await?;
    ensure!(received.len() == sent.len(), "{} of 40", received.len());
    for r in &received {
        let m = sent
            .get(&r.message_id)
            .with_context(|| format!("{} was answered to a publish", r.message_id))?;
        ensure!(r.data == m.data, "data of {}", r.message_id);
        ensure!(r.attributes == m.attributes, "{:?}", r.attributes);
        ensure!(r.ordering_key.is_none());
    }
    let mut ids: Vec<&String> = received.iter().map(|r| &r.message_id).collect();
    ids.sort();
    ids.dedup();
    ensure!(ids.len() == sent.len(), "each delivered once");
    let again = c
        .puller
        .pull(&subscription, 10, Duration::from_millis(500))
        .await?;
    ensure!(again.is_empty(), "nothing more: {again:?}");
    ensure!(publisher.shutdown(Duration::from_secs(5)).await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_announcements_keep_each_entitys_version_order_while_batched() -> Result<()> {
    let c = clients().await?;
    let (topic, subscription) = topic_with_subscription(&c.admin, true).await?;
    let publisher = batching_publisher(Duration::from_millis(5)).await?;
    const VERSIONS: i64 = 6;
    let entities: Vec<String> = (0..5).map(|i| format!("e-{i}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for entity in &entities {
        let (publisher, topic, entity) = (publisher.clone(), topic.clone(), entity.clone());
        // One entity's announcements one after the other, as the handler's
        // per-key turn sends them; the entities side by side.
        tasks.spawn(async move {
            for version in 1..=VERSIONS {
                publisher
                    .publish(&topic, announcement_of(&entity, version, true))
                    .await?;
            }
            Ok::<_, PublishError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let expected = entities.len() * VERSIONS as usize;
    let received = pull_n(&c.puller, &subscription, expected).await?;
    ensure!(
        received.len() == expected,
        "{} of {expected}",
        received.len()
    );
    for entity in &entities {
        let versions: Vec<&str> = received
            .iter()
            .filter(|r| r.ordering_key.as_deref() == Some(entity.as_str()))
            .filter_map(|r| r.attributes.get("version").map(String::as_str))
            .collect();
        let wanted: Vec<String> = (1..=VERSIONS).map(|v| v.to_string()).collect();
        ensure!(versions == wanted, "{entity}: {versions:?}");
    }
    Ok(())
}
