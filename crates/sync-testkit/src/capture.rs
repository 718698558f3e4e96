//! The capture function's end-to-end helpers: an application writing its own
//! entities straight to Datastore ([`AppWriter`]), and the events Eventarc
//! would deliver for its writes, delivered as Eventarc's push would
//! ([`deliver`]).
//!
//! No emulator emits Datastore entity events. Each write here goes to the
//! Datastore emulator as an application's would (Datastore's own `Entity`
//! message, any value type, name or numeric id), the entity is read back
//! before and after, and `sync_capture::emulate` builds the event from those
//! genuine snapshots (`EntityResult` as the emulator returned it). What the
//! stand-in makes up is listed in that module.

use crate::isolation::{unique_name, TEST_PROJECT};
use anyhow::{Context, Result};
use chrono::Utc;
use prost::Message as _;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use sync_capture::emulate::{entity_event, Origin};
use sync_capture::proto::{EntityResult, IdType, Key, PathElement, Value, ValueType};
use sync_capture::{EntityEvent, EventType};
use sync_store::DatastoreAdmin;

/// A key of `kind` with the name `name`, at the root.
pub fn name_key(kind: &str, name: &str) -> Key {
    key(kind, IdType::Name(name.to_string()))
}

/// A key of `kind` with the numeric id `id`, at the root.
pub fn id_key(kind: &str, id: i64) -> Key {
    key(kind, IdType::Id(id))
}

fn key(kind: &str, id: IdType) -> Key {
    Key {
        partition_id: None,
        path: vec![PathElement {
            kind: kind.to_string(),
            id_type: Some(id),
        }],
    }
}

/// A property value of the given type.
pub fn value(value_type: ValueType) -> Value {
    Value {
        value_type: Some(value_type),
        ..Value::default()
    }
}

/// A string value.
pub fn string(s: &str) -> Value {
    value(ValueType::StringValue(s.to_string()))
}

/// An integer value.
pub fn integer(i: i64) -> Value {
    value(ValueType::IntegerValue(i))
}

/// A double value.
pub fn double(f: f64) -> Value {
    value(ValueType::DoubleValue(f))
}

/// An application writing its own entities straight to Datastore, in one
/// namespace of the emulator, and the Eventarc stand-in for its writes.
pub struct AppWriter {
    admin: DatastoreAdmin,
    origin: Origin,
    prefix: String,
    written: AtomicU64,
}

impl AppWriter {
    /// The writer on the emulator at `datastore` (`host:port`), in
    /// `namespace`.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub async fn connect(datastore: &str, namespace: &str) -> Result<Self> {
        let mut config = sync_store::StoreConfig::new(TEST_PROJECT);
        config.emulator_host = Some(datastore.to_string());
        config.namespace = Some(namespace.to_string());
        Ok(Self {
            admin: DatastoreAdmin::connect(config).await?,
            origin: Origin::new(TEST_PROJECT, Some(namespace)),
            prefix: unique_name("ce"),
            written: AtomicU64::new(0),
        })
    }

    /// The entity under `key` as the emulator returns it, if it exists.
    ///
    /// # Errors
    /// When the lookup fails.
    pub async fn lookup(&self, key: &Key) -> Result<Option<EntityResult>> {
        let found = self.admin.lookup_encoded(&key.encode_to_vec()).await?;
        found
            .map(|bytes| EntityResult::decode(bytes.as_slice()).context("an EntityResult"))
            .transpose()
    }

    /// Writes `properties` under `key` (replacing the entity, as Datastore's
    /// upsert does) and returns the event a `written` trigger would deliver
    /// for it; `None` when the write changed nothing (Eventarc sends none).
    ///
    /// # Errors
    /// When the write or a lookup fails.
    pub async fn put(
        &self,
        key: &Key,
        properties: BTreeMap<String, Value>,
    ) -> Result<Option<EntityEvent>> {
        let before = self.lookup(key).await?;
        let entity = sync_capture::proto::Entity {
            key: Some(key.clone()),
            properties,
        };
        let committed = self.admin.write_encoded(&entity.encode_to_vec()).await?;
        let after = self.lookup(key).await?;
        Ok(self.event(before, after, committed.time))
    }

    /// Deletes the entity under `key` and returns the event a `written`
    /// trigger would deliver; `None` when there was nothing to delete.
    ///
    /// # Errors
    /// When the delete or the lookup fails.
    pub async fn delete(&self, key: &Key) -> Result<Option<EntityEvent>> {
        let before = self.lookup(key).await?;
        let committed = self.admin.delete_encoded(&key.encode_to_vec()).await?;
        Ok(self.event(before, None, committed.time))
    }

    /// The event of a change from `before` to `after` in this writer's
    /// namespace, as a `written` trigger delivers it, with a new CloudEvent
    /// id, at `time` (now when the emulator gave no commit time).
    pub fn event(
        &self,
        before: Option<EntityResult>,
        after: Option<EntityResult>,
        time: Option<chrono::DateTime<Utc>>,
    ) -> Option<EntityEvent> {
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        let written = EventType::parse("google.cloud.datastore.entity.v1.written")?;
        entity_event(
            &self.origin,
            format!("{}-{n}", self.prefix),
            written,
            before,
            after,
            time.unwrap_or_else(Utc::now),
        )
    }
}

/// Posts `event` to the capture function at `url` as Eventarc's push does
/// (binary-mode CloudEvent, protobuf body); returns the status.
///
/// # Errors
/// When the request cannot be sent.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    event: &EntityEvent,
) -> Result<reqwest::StatusCode> {
    let (headers, body) = event.to_request()?;
    post_raw(client, url, &headers, body).await
}

/// Posts `body` with `headers` to `url`; returns the status.
///
/// # Errors
/// When the request cannot be sent.
pub async fn post_raw(
    client: &reqwest::Client,
    url: &str,
    headers: &http::HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::StatusCode> {
    let mut request = client.post(url).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_bytes());
    }
    Ok(request
        .send()
        .await
        .context("posting to the capture function")?
        .status())
}
