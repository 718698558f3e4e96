//! The audit function's entries, as Cloud Logging structured-log JSON.
//!
//! Every entry is a [`LogEntry`]: `severity`, `message`, `time` and the labels,
//! which Cloud Logging lifts into the entry, then the record's own fields (kept
//! as received: a refused event is audited too) and the trace fields. The
//! fields a line carries when it had to be shortened to fit
//! [`crate::logline::LINE_BUDGET_BYTES`] are defined here too, once
//! ([`SnapshotDigest`], [`Shortened`], [`LineDigest`], and the sync function's
//! [`ConflictLine`]).

use super::json::to_json;
use super::topology::SYSTEM;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `labels.entity_type` of event and malformed entries.
pub const ENTITY_TYPE: &str = "sync_entity";
/// `labels.operation` (and `operation`) when the event names none.
pub const UNKNOWN_OPERATION: &str = "unknown";
/// `compliance_event` and `labels.compliance` of a delete's compliance entry.
pub const DATA_DELETION: &str = "data_deletion";

/// JSON Pointer of `data_snapshot` in an event entry.
pub const DATA_SNAPSHOT_POINTER: &str = "/data_snapshot";
/// JSON Pointer of `schema.upcast_data_snapshot` in an event entry.
pub const UPCAST_DATA_SNAPSHOT_POINTER: &str = "/schema/upcast_data_snapshot";
/// JSON Pointer of `removed` in an event entry.
pub const REMOVED_POINTER: &str = "/removed";
/// JSON Pointer of `raw_payload` in a malformed entry.
pub const RAW_PAYLOAD_POINTER: &str = "/raw_payload";

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
    /// The event's `event_id` as received, when it has one: the change's
    /// own id, which the sync function orders and deduplicates by in place
    /// of the message id (two entries with one `event_id` and two message
    /// ids are one change published twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Value>,
    /// The event's `removed` as received, when it has one: the fields the
    /// update removed (names only, so never redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Value>,
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
    /// What `data_snapshot` was in full, when the entry had to be shortened.
    #[serde(flatten)]
    pub snapshot_digest: Option<SnapshotDigest>,
    /// What was left out or cut, when the entry had to be shortened.
    #[serde(flatten)]
    pub shortened: Option<Shortened>,
}

/// The full `data_snapshot` of an event entry that had to be shortened to
/// fit one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDigest {
    /// Whether `data_snapshot` itself was shortened (an entry can also be
    /// shortened elsewhere, e.g. in the derived `schema.upcast_data_snapshot`).
    pub data_snapshot_truncated: bool,
    /// Length in bytes of the full snapshot, serialized as below.
    pub data_snapshot_bytes: usize,
    /// Lower-case hex SHA-256 of the full snapshot serialized as compact
    /// JSON: exactly the bytes an unshortened entry holds at
    /// `data_snapshot` (redacted values as `"[REDACTED]"`; no whitespace;
    /// object keys in byte order; only `"`, `\` and control characters
    /// escaped, as `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` or
    /// `\u00XX`; numbers as written by serde_json).
    pub data_snapshot_sha256: String,
}

/// What an entry or line that had to be shortened left out or cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortened {
    /// JSON Pointers (RFC 6901) of the values left out or cut, in the order
    /// they were shortened (largest first within each part); as many as fit
    /// in 16 KiB.
    pub shortened_fields: Vec<String>,
    /// How many values were left out or cut in all (more than listed when
    /// the list was too long).
    pub shortened_field_count: usize,
}

/// A line a writer's last guard had to shorten: no builder of that line
/// made it fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDigest {
    /// Always `true`.
    pub log_line_truncated: bool,
    /// Length in bytes of the line as it was (newline excluded).
    pub log_line_bytes: usize,
    /// Lower-case hex SHA-256 of the line as it was (newline excluded).
    pub log_line_sha256: String,
}

/// What upcasting did to an audited event (see [`crate::ingest::schema`]).
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
    /// What was left out or cut, when the entry had to be shortened.
    #[serde(flatten)]
    pub shortened: Option<Shortened>,
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
            shortened: None,
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
    /// When `raw_payload` was cut: lower-case hex SHA-256 of the whole
    /// payload it begins: the message data as delivered (after base64
    /// decoding), or with `AUDIT_REDACT_FIELDS` the whole redacted JSON
    /// text; absent when the payload was withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_payload_sha256: Option<String>,
    /// The message attributes.
    pub attributes: BTreeMap<String, String>,
    /// How it was delivered.
    pub processing_metadata: ProcessingMetadata,
    /// What was left out or cut, when the entry had to be shortened.
    #[serde(flatten)]
    pub shortened: Option<Shortened>,
}

/// The sync function's `conflict: incoming value lost` line, as it reaches
/// Cloud Logging: `tracing-stackdriver` writes event fields in camelCase
/// (`winner_value` in the code is `winnerValue` here). Values are compact
/// JSON text, cut to fit the line; a cut one comes with the length and
/// SHA-256 of its whole text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictLine {
    /// `conflict: incoming value lost`.
    pub message: String,
    /// The field.
    pub field: String,
    /// The rule that decided.
    pub rule: String,
    /// Why the incoming value lost.
    pub reason: String,
    /// The value that stayed (`(deleted)` when the entity is deleted).
    pub winner_value: String,
    /// Its order key.
    pub winner_key: String,
    /// The incoming value.
    pub loser_value: String,
    /// Its order key.
    pub loser_key: String,
    /// Whether `winnerValue` was cut.
    #[serde(default)]
    pub winner_value_truncated: bool,
    /// Bytes of the whole winner value's text, when cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner_value_bytes: Option<usize>,
    /// SHA-256 of the whole winner value's text, when cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner_value_sha256: Option<String>,
    /// Whether `loserValue` was cut.
    #[serde(default)]
    pub loser_value_truncated: bool,
    /// Bytes of the whole loser value's text, when cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loser_value_bytes: Option<usize>,
    /// SHA-256 of the whole loser value's text, when cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loser_value_sha256: Option<String>,
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
                    raw_payload_sha256: None,
                    attributes: BTreeMap::new(),
                    processing_metadata: metadata(),
                    shortened: None,
                },
                trace,
            };
            let json = entry.to_json();
            assert_eq!(json.pointer(RAW_PAYLOAD_POINTER), Some(&Value::from("{")));
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
    fn the_pointers_name_the_fields_they_shorten() {
        let entry = EventEntry {
            severity: Severity::Info,
            message: "m".into(),
            time: "t".into(),
            labels: EntityLabels::new("create"),
            record: EventRecord {
                timestamp: "t".into(),
                event_type: EventType::DataSynchronization,
                entity_id: "e".into(),
                operation: "create".into(),
                source_system: "s".into(),
                message_id: "1".into(),
                event_id: Some("ce-1".into()),
                removed: Some(serde_json::json!(["c"])),
                correlation_id: Value::Null,
                event_timestamp: "t".into(),
                data_snapshot: serde_json::json!({"a": 1}),
                processing_metadata: metadata(),
                validation_error: None,
                schema: Some(SchemaRecord {
                    received_version: 1,
                    version: 2,
                    changed: true,
                    upcast_data_snapshot: Some(serde_json::json!({"b": 2})),
                }),
                snapshot_digest: Some(SnapshotDigest {
                    data_snapshot_truncated: true,
                    data_snapshot_bytes: 7,
                    data_snapshot_sha256: "ab".into(),
                }),
                shortened: Some(Shortened {
                    shortened_fields: vec![DATA_SNAPSHOT_POINTER.into()],
                    shortened_field_count: 1,
                }),
            },
            trace: None,
        };
        let json = entry.to_json();
        assert_eq!(
            json.pointer(DATA_SNAPSHOT_POINTER),
            Some(&serde_json::json!({"a": 1}))
        );
        assert_eq!(
            json.pointer(UPCAST_DATA_SNAPSHOT_POINTER),
            Some(&serde_json::json!({"b": 2}))
        );
        assert_eq!(
            json.pointer(REMOVED_POINTER),
            Some(&serde_json::json!(["c"]))
        );
        assert_eq!(json["event_id"], "ce-1");
        assert_eq!(json["data_snapshot_truncated"], true, "flat fields");
        assert_eq!(json["shortened_field_count"], 1);
        let back: EventEntry = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, entry);
        let mut plain = entry;
        plain.record.snapshot_digest = None;
        plain.record.shortened = None;
        plain.record.event_id = None;
        plain.record.removed = None;
        let json = plain.to_json();
        assert!(json.get("data_snapshot_truncated").is_none());
        assert!(json.get("event_id").is_none() && json.get("removed").is_none());
        let back: EventEntry = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, plain, "absent when not shortened");
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
