//! A change to announce downstream, and the message that announces it.

use crate::wire::announcement::AnnouncementMessage;
use crate::wire::operation::Operation;
use crate::wire::timestamp::format_timestamp;
use crate::wire::topology::SYSTEM;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A change to announce to downstream systems.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// create (entity came into existence), update, or delete (it disappeared).
    pub operation: Operation,
    /// The version this announcement carries.
    pub version: i64,
    /// The entity's fields after the change (empty for deletes).
    pub data: Map<String, Value>,
    /// The entity's `last_modified`.
    pub last_modified: Option<DateTime<Utc>>,
    /// Correlation id of the event behind the change.
    pub correlation_id: Option<String>,
}

impl Announcement {
    /// The JSON message published downstream (the recipe's external-sync shape,
    /// plus version, last_modified and correlation id).
    pub fn payload(&self, entity_id: &str) -> Value {
        AnnouncementMessage {
            entity_id: entity_id.into(),
            operation: self.operation,
            data: self.data.clone(),
            version: self.version,
            last_modified: self.last_modified.as_ref().map(format_timestamp),
            source: SYSTEM.into(),
            correlation_id: self.correlation_id.clone(),
        }
        .to_json()
    }
}
