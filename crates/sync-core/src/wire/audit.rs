//! The audit function's entries, as Cloud Logging structured-log JSON.
//!
//! Every entry is a [`LogEntry`]: `severity`, `message`, `time` and
//! `logging.googleapis.com/labels`, which Cloud Logging lifts into the entry;
//! the record's own fields, which land in `jsonPayload`; and the trace
//! fields when the request carried a trace. Fields copied from the event are
//! kept as received (an event the sync function refuses is still audited, so
//! they need not have the recipe's types); an event of an older schema
//! version also records what upcasting made of it ([`SchemaRecord`]).

use super::{to_json, SYSTEM};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `labels.entity_type` of event and malformed entries.
pub const ENTITY_TYPE: &str = "sync_entity";
/// `labels.operation` (and `operation`) when the event names none.
pub const UNKNOWN_OPERATION: &str = "unknown";
/// `compliance_event` and `labels.compliance` of a delete's compliance entry.
pub const DATA_DELETION: &str = "data_deletion";

/// Cloud Logging's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Every readable event.
    Info,
    /// The compliance entry of a delete.
    Notice,
    /// A malformed message.
    Warning,
}

/// `event_type` of the entries that have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A readable event ([`EventRecord`]).
    DataSynchronization,
    /// A message that is no event ([`MalformedRecord`]).
    MalformedEvent,
}

/// One structured log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry<L, R> {
    /// The entry's severity.
    pub severity: Severity,
    /// One line for people.
    pub message: String,
    /// The entry's timestamp (the audit function's clock), RFC 3339.
    pub time: String,
    /// Labels Logging queries select on.
    #[serde(rename = "logging.googleapis.com/labels")]
    pub labels: L,
    /// The record (`jsonPayload`).
    #[serde(flatten)]
    pub record: R,
    /// Trace correlation, when the request carried a trace and the project is known.
    #[serde(flatten)]
    pub trace: Option<Trace>,
}

impl<L: Serialize, R: Serialize> LogEntry<L, R> {
    /// The entry as a JSON object.
    pub fn to_json(&self) -> Value {
        to_json(self)
    }
}

/// The entry for a readable event.
pub type EventEntry = LogEntry<EntityLabels, EventRecord>;
/// The second entry for a delete.
pub type ComplianceEntry = LogEntry<ComplianceLabels, ComplianceRecord>;
/// The entry for a message that is no event.
pub type MalformedEntry = LogEntry<EntityLabels, MalformedRecord>;

/// Labels of event and malformed entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityLabels {
    /// Always [`SYSTEM`].
    pub component: String,
    /// The event's operation.
    pub operation: String,
    /// Always [`ENTITY_TYPE`].
    pub entity_type: String,
}

impl EntityLabels {
    /// The labels of an entry about `operation`.
    pub fn new(operation: impl Into<String>) -> Self {
        Self {
            component: SYSTEM.into(),
            operation: operation.into(),
            entity_type: ENTITY_TYPE.into(),
        }
    }
}

/// Labels of a compliance entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceLabels {
    /// Always [`SYSTEM`].
    pub component: String,
    /// Always [`DATA_DELETION`].
    pub compliance: String,
    /// `gdpr`.
    pub regulation: String,
}

impl ComplianceLabels {
    /// The labels of a data deletion.
    pub fn data_deletion() -> Self {
        Self {
            component: SYSTEM.into(),
            compliance: DATA_DELETION.into(),
            regulation: "gdpr".into(),
        }
    }
}

/// The trace fields Logging correlates entries with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// `projects/P/traces/T`.
    #[serde(rename = "logging.googleapis.com/trace")]
    pub trace: String,
    /// Span id, when the header had one.
    #[serde(
        rename = "logging.googleapis.com/spanId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub span_id: Option<String>,
    /// Whether the trace was sampled.
    #[serde(rename = "logging.googleapis.com/trace_sampled")]
    pub sampled: bool,
}

/// How the delivery reached the function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingMetadata {
    /// The audit function's name (the recipe's is `audit_logger`).
    pub function_name: String,
    /// The subscription (or CloudEvent source), when known.
    pub subscription: Option<String>,
    /// Delivery attempt, 1 when the sender does not say.
    pub delivery_attempt: u32,
    /// The delivery form (`pubsub_push`, …).
    pub delivery_form: String,
    /// When Pub/Sub accepted the message, RFC 3339.
    pub publish_time: Option<String>,
}

/// Why the sync function refuses an event that is still audited as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationFailure {
    /// The validation code.
    pub error_code: String,
    /// The reason.
    pub error_message: String,
}

/// The record of a readable event: the recipe's audit fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When it was audited (the recipe's `timestamp`).
    pub timestamp: String,
    /// [`EventType::DataSynchronization`].
    pub event_type: EventType,
    /// The event's entity id (always a string: an event without one is malformed).
    pub entity_id: String,
    /// The event's operation, [`UNKNOWN_OPERATION`] when it is not text.
    pub operation: String,
    /// The event's `source` as received, `unknown` when absent.
    pub source_system: Value,
    /// Pub/Sub message id.
    pub message_id: String,
    /// The event's `correlation_id` as received.
    pub correlation_id: Value,
    /// The event's `timestamp` as received.
    pub event_timestamp: Value,
    /// The event's `data`, redacted.
    pub data_snapshot: Value,
    /// How it was delivered.
    pub processing_metadata: ProcessingMetadata,
    /// Why the sync function refuses it, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_error: Option<ValidationFailure>,
    /// Its schema version as received and after upcasting; absent when the
    /// history does not know the version (then `validation_error` says
    /// `unsupported_schema_version`) or it is not an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaRecord>,
}

/// What upcasting did to an audited event (see [`crate::schema`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaRecord {
    /// The event's `schema_version` (1 when absent).
    pub received_version: i64,
    /// The version after upcasting: the configured history's current one.
    pub version: i64,
    /// Whether upcasting changed the data.
    pub changed: bool,
    /// The data after upcasting, redacted as `data_snapshot` is; only when
    /// upcasting changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upcast_data_snapshot: Option<Value>,
}

/// The record of a delete's compliance entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceRecord {
    /// [`DATA_DELETION`].
    pub compliance_event: String,
    /// The deleted entity.
    pub entity_id: String,
    /// When it was audited.
    pub deletion_timestamp: String,
    /// `applied`.
    pub retention_policy: String,
    /// `gdpr_compliance`.
    pub regulatory_context: String,
    /// Pub/Sub message id.
    pub message_id: String,
    /// The event's `correlation_id` as received.
    pub correlation_id: Value,
}

impl ComplianceRecord {
    /// The record of the deletion of `entity_id`, audited at `deletion_timestamp`.
    pub fn data_deletion(
        entity_id: String,
        deletion_timestamp: String,
        message_id: String,
        correlation_id: Value,
    ) -> Self {
        Self {
            compliance_event: DATA_DELETION.into(),
            entity_id,
            deletion_timestamp,
            retention_policy: "applied".into(),
            regulatory_context: "gdpr_compliance".into(),
            message_id,
            correlation_id,
        }
    }
}

/// The record of a message that is no event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MalformedRecord {
    /// When it was audited.
    pub timestamp: String,
    /// [`EventType::MalformedEvent`].
    pub event_type: EventType,
    /// Pub/Sub message id.
    pub message_id: String,
    /// Stable code (`invalid_base64`, `invalid_json`, `missing_field`, …).
    pub error_code: String,
    /// Human explanation.
    pub error_message: String,
    /// The data as text, capped (redacted, or withheld when it cannot be).
    pub raw_payload: String,
    /// Size of the data, in bytes.
    pub raw_payload_bytes: usize,
    /// Whether `raw_payload` was cut.
    pub raw_payload_truncated: bool,
    /// The message attributes.
    pub attributes: BTreeMap<String, String>,
    /// How it was delivered.
    pub processing_metadata: ProcessingMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> ProcessingMetadata {
        ProcessingMetadata {
            function_name: "audit_logger".into(),
            subscription: None,
            delivery_attempt: 1,
            delivery_form: "pubsub_push".into(),
            publish_time: None,
        }
    }

    #[test]
    fn entries_read_back_with_and_without_a_trace() {
        let trace = Trace {
            trace: "projects/p/traces/t".into(),
            span_id: Some("s".into()),
            sampled: true,
        };
        for trace in [None, Some(trace)] {
            let entry = MalformedEntry {
                severity: Severity::Warning,
                message: "m".into(),
                time: "t".into(),
                labels: EntityLabels::new(UNKNOWN_OPERATION),
                record: MalformedRecord {
                    timestamp: "t".into(),
                    event_type: EventType::MalformedEvent,
                    message_id: "1".into(),
                    error_code: "invalid_json".into(),
                    error_message: "no".into(),
                    raw_payload: "{".into(),
                    raw_payload_bytes: 1,
                    raw_payload_truncated: false,
                    attributes: BTreeMap::new(),
                    processing_metadata: metadata(),
                },
                trace,
            };
            let json = entry.to_json();
            assert_eq!(json["severity"], "WARNING");
            assert_eq!(json["event_type"], "malformed_event");
            assert_eq!(
                json["logging.googleapis.com/labels"]["component"],
                "datastore-sync"
            );
            let back: MalformedEntry = serde_json::from_value(json).expect("reads back");
            assert_eq!(back, entry);
        }
    }

    #[test]
    fn a_compliance_entry_reads_back() {
        let entry = ComplianceEntry {
            severity: Severity::Notice,
            message: "m".into(),
            time: "t".into(),
            labels: ComplianceLabels::data_deletion(),
            record: ComplianceRecord::data_deletion(
                "e".into(),
                "t".into(),
                "1".into(),
                Value::Null,
            ),
            trace: None,
        };
        let back: ComplianceEntry = serde_json::from_value(entry.to_json()).expect("reads back");
        assert_eq!(back, entry);
    }
}
