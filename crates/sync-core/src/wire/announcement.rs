//! The announcement the sync function publishes downstream after each
//! effective change, on `EXTERNAL_TOPIC_PREFIX` + operation.

use super::json::to_json;
use super::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The attributes an announcement carries beside its JSON, for subscription
/// filters and consumers that route before parsing.
pub mod attribute {
    /// The entity id (also the announcement's ordering key).
    pub const ENTITY_ID: &str = "entity_id";
    /// `create`, `update` or `delete`.
    pub const OPERATION: &str = "operation";
    /// The version announced.
    pub const VERSION: &str = "version";
    /// The entity's kind.
    pub const KIND: &str = "kind";
    /// The correlation id of the event behind the change, when it had one.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// `true` on an announcement `syncctl resync` republished from the stored state.
    pub const RESYNC: &str = "resync";
}

/// The recipe's external-sync message, plus `version`, `last_modified` and
/// the correlation id of the event behind the change.
///
/// ```
/// use sync_core::wire::AnnouncementMessage;
/// use sync_core::Operation;
/// let text = r#"{"correlation_id":null,"data":{},"entity_id":"e1","last_modified":null,
///   "operation":"delete","source":"datastore-sync","version":3}"#;
/// let a: AnnouncementMessage = serde_json::from_str(text)?;
/// assert_eq!((a.operation, a.version), (Operation::Delete, 3));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnouncementMessage {
    /// Key name of the entity.
    pub entity_id: String,
    /// create (the entity came into existence), update, or delete (it disappeared).
    pub operation: Operation,
    /// The entity's fields after the change (empty for deletes).
    pub data: Map<String, Value>,
    /// The version announced.
    pub version: i64,
    /// The entity's `last_modified`, RFC 3339 with microseconds.
    pub last_modified: Option<String>,
    /// Always [`SYSTEM`](super::SYSTEM).
    pub source: String,
    /// Correlation id of the event behind the change.
    pub correlation_id: Option<String>,
}

impl AnnouncementMessage {
    /// The message as a JSON value.
    pub fn to_json(&self) -> Value {
        to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_timestamp, Announcement};

    #[test]
    fn the_payload_is_the_recipes_shape_with_nulls_kept() {
        let mut a = Announcement {
            operation: Operation::Update,
            version: 2,
            data: Map::from_iter([("name".to_string(), Value::from("n"))]),
            last_modified: Some(parse_timestamp("2025-07-23T10:15:30.5").expect("time")),
            correlation_id: Some("c-1".into()),
        };
        assert_eq!(
            a.payload("e1").to_string(),
            r#"{"correlation_id":"c-1","data":{"name":"n"},"entity_id":"e1","last_modified":"2025-07-23T10:15:30.500000Z","operation":"update","source":"datastore-sync","version":2}"#
        );
        a.last_modified = None;
        a.correlation_id = None;
        let payload = a.payload("e1");
        assert_eq!(payload["last_modified"], Value::Null);
        assert_eq!(payload["correlation_id"], Value::Null);
        let back: AnnouncementMessage = serde_json::from_value(payload).expect("reads back");
        assert_eq!((back.entity_id.as_str(), back.version), ("e1", 2));
    }
}
