//! `syncctl capture-write`: an application's own write to Datastore, and the
//! event Eventarc would deliver for it, delivered to the capture function.
//!
//! No emulator emits Datastore entity events, so locally this command stands
//! in for Eventarc: it writes (or deletes) the entity in the namespace given
//! (`--namespace`, the application's, never the synced store's), reads it
//! back before and after, builds the `written` event from those snapshots
//! (`sync_capture::emulate`) and posts it as Eventarc's push would. Against
//! Google Cloud the real trigger delivers the event; this command is for the
//! emulators (it refuses to run without `DATASTORE_EMULATOR_HOST`).

use super::clients::{project, store, Global};
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Args;
use prost::Message as _;
use serde_json::Value;
use sync_capture::emulate::{entity_event, value_from_json, Origin};
use sync_capture::proto::{Entity, EntityResult, IdType, Key, PathElement};
use sync_capture::EventType;

/// Arguments of `capture-write`.
#[derive(Args, Debug)]
pub struct CaptureWriteArgs {
    /// The entity's kind.
    #[arg(long)]
    pub kind: String,
    /// The key's name (or, with --numeric-id, its id).
    #[arg(long)]
    pub entity_id: String,
    /// The key has a numeric id, not a name.
    #[arg(long)]
    pub numeric_id: bool,
    /// The entity's properties, a JSON object (the write replaces the
    /// entity, as Datastore's upsert does).
    #[arg(long, conflicts_with = "delete", required_unless_present = "delete")]
    pub data: Option<String>,
    /// Delete the entity instead.
    #[arg(long)]
    pub delete: bool,
    /// The capture function's URL, to post the event to.
    #[arg(long)]
    pub deliver: String,
    /// W3C trace context of the delivery (`traceparent` header).
    #[arg(long)]
    pub traceparent: Option<String>,
}

pub async fn run(g: &Global, a: CaptureWriteArgs) -> Result<()> {
    if g.datastore_emulator_host
        .as_deref()
        .is_none_or(str::is_empty)
    {
        bail!("capture-write stands in for Eventarc on the emulators: set DATASTORE_EMULATOR_HOST (in Google Cloud the trigger delivers the events)");
    }
    let id = if a.numeric_id {
        IdType::Id(
            a.entity_id
                .parse()
                .context("--entity-id is not a numeric id")?,
        )
    } else {
        IdType::Name(a.entity_id.clone())
    };
    let key = Key {
        partition_id: None,
        path: vec![PathElement {
            kind: a.kind.clone(),
            id_type: Some(id),
        }],
    };
    let store = store(g).await?;
    let lookup = |key: Key| {
        let store = store.clone();
        async move {
            store
                .lookup_encoded(&key.encode_to_vec())
                .await?
                .map(|bytes| EntityResult::decode(bytes.as_slice()).context("an EntityResult"))
                .transpose()
        }
    };
    let before = lookup(key.clone()).await?;
    let committed = if a.delete {
        store.delete_encoded(&key.encode_to_vec()).await?
    } else {
        let data = a.data.as_deref().unwrap_or("{}");
        let Value::Object(properties) = serde_json::from_str(data).context("--data is not JSON")?
        else {
            bail!("--data must be a JSON object");
        };
        let entity = Entity {
            key: Some(key.clone()),
            properties: properties
                .iter()
                .map(|(k, v)| (k.clone(), value_from_json(v)))
                .collect(),
        };
        store.write_encoded(&entity.encode_to_vec()).await?
    };
    let after = lookup(key.clone()).await?;
    let namespace = g.namespace.as_deref().filter(|ns| !ns.is_empty());
    let what = if a.delete { "deleted" } else { "wrote" };
    println!(
        "{what} {}/{} in Datastore, namespace {} (version {})",
        a.kind,
        a.entity_id,
        namespace.unwrap_or("(default)"),
        committed.version
    );
    let written = EventType::parse("google.cloud.datastore.entity.v1.written")
        .context("the written event type")?;
    let id = format!("capture-write-{}", uuid::Uuid::new_v4());
    let Some(event) = entity_event(
        &Origin::new(project(g)?, namespace),
        id,
        written,
        before,
        after,
        committed.time.unwrap_or_else(Utc::now),
    ) else {
        println!("nothing changed: Eventarc sends no event for such a write");
        return Ok(());
    };
    let (headers, body) = event.to_request()?;
    let mut request = reqwest::Client::new().post(&a.deliver).body(body);
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_bytes());
    }
    if let Some(tp) = &a.traceparent {
        request = request.header("traceparent", tp.as_str());
    }
    let status = request
        .send()
        .await
        .with_context(|| format!("posting the event to {}", a.deliver))?
        .status();
    println!(
        "delivered the Eventarc event {} ({}, built here from the entity read back: no emulator emits Datastore events) to {}: {status}",
        event.id, event.event_type, a.deliver
    );
    if !status.is_success() {
        bail!("the capture function answered {status}");
    }
    Ok(())
}
