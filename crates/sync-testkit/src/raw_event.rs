//! The change event's JSON, as a publisher sends it, for every test that
//! builds one: `event(entity_id, operation, timestamp).data(..).source(..)`.
//!
//! Fields are written only when given, and the strings as given, so tests can
//! build invalid events too (a bad operation or timestamp, `data: null`),
//! which `sync_core::wire::EventMessage`, the publisher's typed form, cannot
//! write. The member names are that module's ([`field`]), so the two cannot
//! drift.

use serde_json::{Map, Value};
use sync_core::wire::event::field;

/// A change event under construction (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    entity_id: String,
    operation: String,
    timestamp: String,
    source: Option<String>,
    correlation_id: Option<String>,
    kind: Option<String>,
    data: Option<Value>,
    event_id: Option<String>,
    removed: Option<Value>,
}

/// An event with the three required fields; the others are added with the
/// builder methods.
pub fn event(entity_id: &str, operation: &str, timestamp: &str) -> Event {
    Event {
        entity_id: entity_id.to_string(),
        operation: operation.to_string(),
        timestamp: timestamp.to_string(),
        source: None,
        correlation_id: None,
        kind: None,
        data: None,
        event_id: None,
        removed: None,
    }
}

impl Event {
    /// The `data` member (`Value::Null` writes `"data": null`).
    #[must_use]
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The `source` member.
    #[must_use]
    pub fn source(mut self, source: &str) -> Self {
        self.source = Some(source.to_string());
        self
    }

    /// The `correlation_id` member.
    #[must_use]
    pub fn correlation_id(mut self, id: &str) -> Self {
        self.correlation_id = Some(id.to_string());
        self
    }

    /// The `kind` member (the entity kind the event targets).
    #[must_use]
    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_string());
        self
    }

    /// The `event_id` member (the writer's id for the change).
    #[must_use]
    pub fn event_id(mut self, id: &str) -> Self {
        self.event_id = Some(id.to_string());
        self
    }

    /// The `removed` member, as given (an array of field names, or anything
    /// a test wants refused).
    #[must_use]
    pub fn removed(mut self, removed: Value) -> Self {
        self.removed = Some(removed);
        self
    }

    /// The event as a JSON object.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        let text = |s: &str| Value::String(s.to_string());
        obj.insert(field::ENTITY_ID.into(), text(&self.entity_id));
        obj.insert(field::OPERATION.into(), text(&self.operation));
        obj.insert(field::TIMESTAMP.into(), text(&self.timestamp));
        for (name, value) in [
            (field::SOURCE, &self.source),
            (field::CORRELATION_ID, &self.correlation_id),
            (field::KIND, &self.kind),
            (field::EVENT_ID, &self.event_id),
        ] {
            if let Some(v) = value {
                obj.insert(name.into(), text(v));
            }
        }
        if let Some(data) = &self.data {
            obj.insert(field::DATA.into(), data.clone());
        }
        if let Some(removed) = &self.removed {
            obj.insert(field::REMOVED.into(), removed.clone());
        }
        Value::Object(obj)
    }

    /// The event as the bytes of a message's data.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }
}

/// Now, in the recipe's timestamp form (`%Y-%m-%dT%H:%M:%S%.6f`, no zone),
/// moved by `offset_ms`.
pub fn timestamp_in(offset_ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(offset_ms))
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// Now, in the recipe's timestamp form.
pub fn now_timestamp() -> String {
    timestamp_in(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_given_members_are_written() {
        let e = event("e1", "create", "2025-07-23T10:00:00").to_value();
        assert_eq!(
            e,
            json!({"entity_id": "e1", "operation": "create", "timestamp": "2025-07-23T10:00:00"})
        );
        let e = event("e1", "delete", "t")
            .source("s")
            .correlation_id("c")
            .data(Value::Null)
            .to_value();
        assert_eq!(e["source"], "s");
        assert_eq!(e["correlation_id"], "c");
        assert!(e.get("data").is_some_and(Value::is_null));
    }
}
