//! The order key that makes the merge deterministic.

use crate::ingest::change::ChangeEvent;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Position of a write in the global order: `(timestamp, source, event id)`,
/// compared lexicographically.
///
/// The timestamp comes from the publisher, the source names the writer and the
/// event id is the event's own `event_id` when it carries one, else the
/// Pub/Sub message id, unique per published message and kept across
/// redeliveries. A redelivered message always has its original key, and so
/// does a change published twice with its `event_id` (two message ids, one
/// key: one event). Two events with the same key are one change: the first
/// merged counts, the others are duplicates, so a writer's event ids must be
/// unique among its events of one timestamp.
///
/// ```
/// use sync_core::{parse_timestamp, OrderKey};
/// let a = OrderKey::new(parse_timestamp("2025-07-12T10:00:00")?, "app-a", "1");
/// let b = OrderKey::new(parse_timestamp("2025-07-12T10:00:00")?, "app-b", "0");
/// assert!(a < b); // same instant: the source decides
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    /// When the writer says the change happened (UTC, microseconds).
    #[serde(rename = "t", with = "micros")]
    pub timestamp: DateTime<Utc>,
    /// The writer.
    #[serde(rename = "s")]
    pub source: String,
    /// The event's `event_id`, or its Pub/Sub message id.
    #[serde(rename = "e")]
    pub event_id: String,
}

impl OrderKey {
    /// Builds a key.
    pub fn new(
        timestamp: DateTime<Utc>,
        source: impl Into<String>,
        event_id: impl Into<String>,
    ) -> Self {
        Self {
            timestamp,
            source: source.into(),
            event_id: event_id.into(),
        }
    }
}

impl ChangeEvent {
    /// This event's position in the merge order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey::new(self.timestamp, self.source.clone(), self.event_id.clone())
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({}, {}, {})",
            self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.source,
            self.event_id
        )
    }
}

/// Timestamps as integer microseconds since the epoch: compact and exact.
pub(crate) mod micros {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_micros())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let us = i64::deserialize(d)?;
        DateTime::from_timestamp_micros(us)
            .ok_or_else(|| D::Error::custom("timestamp out of range"))
    }
}
