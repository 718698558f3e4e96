//! Unwrapped push (`pushConfig.noWrapper`) through the real Pub/Sub emulator:
//! the subscription is created with the admin API (`PushWrapper::Unwrapped`),
//! the emulator pushes the bare data (and, with write-metadata, the metadata
//! and attributes as headers) to the sync function (in-process on port 0),
//! which applies the event in the Datastore emulator and dead-letters poison
//! with its code. Every wait is a poll with a deadline.

use anyhow::{ensure, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use sync_core::{EventPublisher, OutgoingMessage};
use sync_http::unwrapped::derived_event_id;
use sync_pubsub::{PubSubPublisher, PubSubPuller, PushEndpoint, PushWrapper};
use sync_testkit::harness::{sync_env, sync_in_process, Clients, InProcess, Topology};
use sync_testkit::raw_event::now_timestamp;
use sync_testkit::{event as change_event, poll_until, pull_until, Emulators};

const ATTRIBUTE: (&str, &str) = ("source_app", "crm");

struct Pipeline {
    publisher: PubSubPublisher,
    puller: PubSubPuller,
    topology: Topology,
    emulators: Emulators,
    _sync: InProcess,
}

/// A fresh topology and a sync function behind an unwrapped push subscription.
async fn pipeline(label: &str, write_metadata: bool) -> Result<Pipeline> {
    let emulators = Emulators::shared().await?;
    let Clients {
        admin,
        publisher,
        puller,
    } = Clients::connect(&emulators).await?;
    let topology = Topology::new(label);
    topology.create_base(&admin).await?;
    let sync = sync_in_process(&sync_env(&topology, &emulators)).await?;
    let wrapper = PushWrapper::Unwrapped { write_metadata };
    let subscription = topology.sync_subscription_config(5);
    admin
        .create_push_subscription(
            &topology.sync_subscription,
            &topology.topic,
            &PushEndpoint::new(sync.url()).with_wrapper(wrapper),
            &subscription,
        )
        .await?;
    let info = admin.get_subscription(&topology.sync_subscription).await?;
    ensure!(
        info.push_wrapper == wrapper,
        "the emulator keeps the wrapper setting: {info:?}"
    );
    Ok(Pipeline {
        publisher,
        puller,
        topology,
        emulators,
        _sync: sync,
    })
}

fn event(entity: &str, op: &str, data: serde_json::Value) -> Vec<u8> {
    change_event(entity, op, &now_timestamp())
        .source("data_publisher")
        .data(data)
        .to_bytes()
}

async fn publish(p: &Pipeline, data: &[u8]) -> Result<String> {
    let message = OutgoingMessage {
        data: data.to_vec(),
        attributes: BTreeMap::from([(ATTRIBUTE.0.to_string(), ATTRIBUTE.1.to_string())]),
        ordering_key: None,
    };
    Ok(p.publisher.publish(&p.topology.topic, message).await?)
}

/// Publishes a good event and a poison one; waits for the entity and the dead
/// letter; returns the dead letter's attributes and the poison's message id.
async fn apply_and_dead_letter(
    p: &Pipeline,
    poison: &[u8],
) -> Result<(BTreeMap<String, String>, String)> {
    publish(
        p,
        &event(
            "unwrapped-001",
            "create",
            json!({"name": "Test Product", "status": "active"}),
        ),
    )
    .await?;
    let poison_id = publish(p, poison).await?;
    let store = p.emulators.admin(&p.topology.namespace).await?;
    let state = poll_until(Duration::from_secs(60), "unwrapped-001 applied", || async {
        Ok(store.get(None, "unwrapped-001").await?.map(|(_, s)| s))
    })
    .await?;
    ensure!(state.version() == 1, "{state:?}");
    let dead = pull_until(
        &p.puller,
        &p.topology.dlq_subscription,
        1,
        Duration::from_secs(60),
    )
    .await?;
    ensure!(dead.len() == 1, "one dead letter: {dead:?}");
    ensure!(dead[0].data == poison, "the poison's data, byte for byte");
    let created = pull_until(
        &p.puller,
        &p.topology.external_subscription("create"),
        1,
        Duration::from_secs(30),
    )
    .await?;
    ensure!(created.len() == 1, "one create announcement");
    Ok((dead[0].attributes.clone(), poison_id))
}

#[tokio::test]
async fn unwrapped_push_with_metadata_applies_and_dead_letters_with_the_code() -> Result<()> {
    let p = pipeline("unwrapped-meta", true).await?;
    let poison = event("unwrapped-002", "create", json!({"version": 7}));
    let (attrs, poison_id) = apply_and_dead_letter(&p, &poison).await?;
    ensure!(attrs["error_code"] == "reserved_field", "{attrs:?}");
    ensure!(attrs["original_message_id"] == poison_id, "{attrs:?}");
    ensure!(
        attrs.get(ATTRIBUTE.0).map(String::as_str) == Some(ATTRIBUTE.1),
        "the attribute came as a header and went on: {attrs:?}"
    );
    ensure!(
        attrs["original_subscription"].ends_with(&p.topology.sync_subscription),
        "{attrs:?}"
    );
    ensure!(
        !attrs.contains_key("user-agent") && !attrs.contains_key("host"),
        "HTTP noise is not an attribute: {attrs:?}"
    );
    Ok(())
}

#[tokio::test]
async fn unwrapped_push_without_metadata_applies_and_dead_letters_under_the_derived_id(
) -> Result<()> {
    let p = pipeline("unwrapped-bare", false).await?;
    let poison = b"{\"entity_id\": \"unwrapped-003\", not json".to_vec();
    let (attrs, _) = apply_and_dead_letter(&p, &poison).await?;
    ensure!(attrs["error_code"] == "invalid_json", "{attrs:?}");
    ensure!(
        attrs["original_message_id"] == derived_event_id(&poison),
        "{attrs:?}"
    );
    ensure!(
        !attrs.contains_key(ATTRIBUTE.0) && !attrs.contains_key("original_subscription"),
        "without metadata nothing but the data arrives: {attrs:?}"
    );
    Ok(())
}
