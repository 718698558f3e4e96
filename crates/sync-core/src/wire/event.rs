//! The change event as a publisher writes it.
//!
//! [`EventMessage`] is the recipe's event in serde form: what `syncctl
//! publish`/`load` and the tests send, and what anything reading a recorded
//! event deserialises. The sync and audit functions do not read events
//! through it: [`crate::parse_event`] checks the same fields by hand, because
//! serde's errors cannot give the stable codes dead letters carry (an absent
//! field and a `null` are both `missing_field`, a number where a string
//! belongs is `wrong_type`, a key too large is reported before an invalid
//! name, …). It reads them under the names in [`field`], which a test checks
//! against what [`EventMessage`] writes.

use super::json::to_json;
use super::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The wire names of the event's fields.
pub mod field {
    /// Key name of the entity.
    pub const ENTITY_ID: &str = "entity_id";
    /// `create`, `update` or `delete`.
    pub const OPERATION: &str = "operation";
    /// When the change happened, ISO-8601.
    pub const TIMESTAMP: &str = "timestamp";
    /// The writer.
    pub const SOURCE: &str = "source";
    /// Traced through logs, announcements and audit.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// Datastore kind override.
    pub const KIND: &str = "kind";
    /// Wire schema version.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The user fields.
    pub const DATA: &str = "data";
    /// The writer's own id for the change (optional): ordering and
    /// deduplication use it in place of the Pub/Sub message id, so a change
    /// published twice is one event.
    pub const EVENT_ID: &str = "event_id";
    /// Fields the change removed (optional, update only): each stops showing
    /// in the synced entity unless a later write sets it again (see
    /// `crate::merge`).
    pub const REMOVED: &str = "removed";

    /// Every field, in the order [`super::EventMessage`] writes them.
    pub const ALL: [&str; 10] = [
        ENTITY_ID,
        OPERATION,
        TIMESTAMP,
        SOURCE,
        CORRELATION_ID,
        KIND,
        SCHEMA_VERSION,
        DATA,
        EVENT_ID,
        REMOVED,
    ];
}

/// One change event, as published on the events topic.
///
/// Optional fields left unset are not written, as the recipe's publisher
/// leaves them out.
///
/// ```
/// use sync_core::{parse_event, parse_timestamp, ValidationLimits, Operation};
/// use sync_core::wire::EventMessage;
/// let message = EventMessage::new("e1", Operation::Update, "2025-07-23T10:15:30.123456")
///     .source("crm")
///     .field("name", "Test Product");
/// let now = parse_timestamp("2025-07-23T10:16:00")?;
/// let event = parse_event(&message.to_bytes(), "m1", &ValidationLimits::default(), now)?;
/// assert_eq!(event.data["name"], "Test Product");
/// assert_eq!(serde_json::from_slice::<EventMessage>(&message.to_bytes()).ok(), Some(message));
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// Key name of the entity.
    pub entity_id: String,
    /// What the event does.
    pub operation: Operation,
    /// When the change happened, as the writer spells it (naive ISO-8601 in
    /// the recipe, read as UTC).
    pub timestamp: String,
    /// The writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Datastore kind override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Wire schema version (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// The user fields (a delete needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    /// The writer's id for the change ([`field::EVENT_ID`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Fields the change removed ([`field::REMOVED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl EventMessage {
    /// An event with only the required fields.
    pub fn new(
        entity_id: impl Into<String>,
        operation: Operation,
        timestamp: impl Into<String>,
    ) -> Self {
        Self {
            entity_id: entity_id.into(),
            operation,
            timestamp: timestamp.into(),
            source: None,
            correlation_id: None,
            kind: None,
            schema_version: None,
            data: None,
            event_id: None,
            removed: Vec::new(),
        }
    }

    /// With these user fields (replacing any set before).
    #[must_use]
    pub fn data(mut self, data: Map<String, Value>) -> Self {
        self.data = Some(data);
        self
    }

    /// With one more user field.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data
            .get_or_insert_with(Map::new)
            .insert(name.into(), value.into());
        self
    }

    /// With this writer.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// With this correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// With this Datastore kind.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// With this schema version.
    #[must_use]
    pub fn schema_version(mut self, version: i64) -> Self {
        self.schema_version = Some(version);
        self
    }

    /// With the writer's id for the change.
    #[must_use]
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// With one more removed field.
    #[must_use]
    pub fn removed(mut self, name: impl Into<String>) -> Self {
        self.removed.push(name.into());
        self
    }

    /// The event as a JSON value.
    pub fn to_json(&self) -> Value {
        to_json(self)
    }

    /// The message data to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_event, parse_timestamp, ValidationLimits};

    fn full() -> EventMessage {
        EventMessage::new("e1", Operation::Update, "2025-07-23T10:15:30.123456")
            .source("crm")
            .correlation_id("c-1")
            .kind("Product")
            .schema_version(1)
            .field("name", "n")
            .event_id("ev-1")
            .removed("colour")
    }

    #[test]
    fn the_field_names_are_the_ones_written() {
        let Value::Object(written) = full().to_json() else {
            panic!("an object");
        };
        let mut names: Vec<&str> = written.keys().map(String::as_str).collect();
        let mut want = field::ALL.to_vec();
        names.sort_unstable();
        want.sort_unstable();
        assert_eq!(names, want);
    }

    #[test]
    fn unset_fields_are_left_out_and_read_back_as_unset() {
        let delete = EventMessage::new("e1", Operation::Delete, "2025-07-23T10:00:00");
        assert_eq!(
            delete.to_json().to_string(),
            r#"{"entity_id":"e1","operation":"delete","timestamp":"2025-07-23T10:00:00"}"#
        );
        for m in [delete, full()] {
            let back: EventMessage = serde_json::from_slice(&m.to_bytes()).expect("reads back");
            assert_eq!(back, m);
        }
    }

    #[test]
    fn what_it_writes_is_what_the_core_parses() {
        let now = parse_timestamp("2025-07-23T10:16:00").expect("clock");
        let e = parse_event(&full().to_bytes(), "m1", &ValidationLimits::default(), now)
            .expect("valid");
        assert_eq!(e.entity_id.as_str(), "e1");
        assert_eq!(e.operation, Operation::Update);
        assert_eq!(e.source, "crm");
        assert_eq!(e.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(e.kind.as_deref(), Some("Product"));
        assert_eq!(e.data["name"], "n");
        assert_eq!(e.event_id, "ev-1", "the event's own id, not the message id");
        assert_eq!(e.removed, ["colour"]);
    }

    #[test]
    fn an_unknown_operation_does_not_read() {
        let text = r#"{"entity_id":"e","operation":"upsert","timestamp":"t"}"#;
        assert!(serde_json::from_str::<EventMessage>(text).is_err());
    }
}
