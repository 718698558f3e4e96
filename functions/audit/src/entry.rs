//! The audit entries of one delivery, as Cloud Logging structured-log JSON
//! objects: the types are `sync_core::wire::audit`'s, filled here. Cloud Run
//! lifts `severity`, `message`, the labels and the trace of each line into the
//! log entry; everything else lands in `jsonPayload`.
//!
//! Events are validated and upcast with the schema history the sync function
//! reads: an entry keeps the data as received and records what upcasting made
//! of it. An entry over [`LINE_BUDGET_BYTES`](sync_core::logline::LINE_BUDGET_BYTES)
//! is shortened here ([`sync_core::logline::fit`]), largest values first, and
//! says what it left out, so every delivery keeps its entry whatever its size.

use crate::config::AuditConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use sync_core::ingest::change::UNKNOWN_SOURCE;
use sync_core::logline::{self, Digest, Mode, Phase, Size};
use sync_core::wire::audit::{
    ComplianceEntry, ComplianceLabels, ComplianceRecord, EntityLabels, EventEntry, EventRecord,
    EventType, LogEntry, MalformedEntry, MalformedRecord, ProcessingMetadata, SchemaRecord,
    Severity, SnapshotDigest, Trace, ValidationFailure, DATA_SNAPSHOT_POINTER, RAW_PAYLOAD_POINTER,
    REMOVED_POINTER, UNKNOWN_OPERATION, UPCAST_DATA_SNAPSHOT_POINTER,
};
use sync_core::wire::event::field;
use sync_core::{Classify, Upcast};
use sync_http::Delivery;

/// Replacement for redacted values.
pub const REDACTED: &str = "[REDACTED]";

/// What the audit function learned from a delivery.
pub enum Audited {
    /// A readable event (it may still be one the sync function refuses).
    Event {
        /// The event object as received (before redaction).
        event: Map<String, Value>,
        /// The sync function's validation code when it would refuse the event.
        validation_error: Option<(&'static str, String)>,
        /// What upcasting did, and the upcast data when it changed; `None`
        /// when the version is unknown or not an integer.
        schema: Option<(Upcast, Option<Value>)>,
    },
    /// The data is not an event at all.
    Malformed {
        /// Stable code (`invalid_base64`, `invalid_json`, `missing_field`, …).
        code: &'static str,
        /// Human explanation.
        message: String,
    },
}

/// Classifies a delivery's data, validating it as the sync function does
/// with `config`'s schema history.
pub fn classify(config: &AuditConfig, delivery: &Delivery, now: DateTime<Utc>) -> Audited {
    let data = match delivery.data() {
        Ok(d) => d,
        Err(e) => {
            return Audited::Malformed {
                code: e.code(),
                message: e.to_string(),
            }
        }
    };
    // The sync function's own validation, with no skew limit: the audit trail
    // records what was sent, whenever it claims to be from.
    let limits = sync_core::ValidationLimits {
        max_clock_skew_secs: i64::MAX / 2,
        ..sync_core::ValidationLimits::default()
    };
    let verdict =
        sync_core::parse_event_with(data, &delivery.message_id, &limits, &config.schema, now);
    match (serde_json::from_slice::<Value>(data), verdict) {
        (Ok(Value::Object(event)), Ok(_)) => Audited::Event {
            schema: upcast(config, &event),
            event,
            validation_error: None,
        },
        (Ok(Value::Object(event)), Err(e)) => match e {
            sync_core::ValidationError::MissingField(_)
            | sync_core::ValidationError::WrongType { .. }
            | sync_core::ValidationError::InvalidJson(_) => Audited::Malformed {
                code: e.code(),
                message: e.to_string(),
            },
            other => Audited::Event {
                schema: upcast(config, &event),
                event,
                validation_error: Some((other.code(), other.to_string())),
            },
        },
        (_, Err(e)) => Audited::Malformed {
            code: e.code(),
            message: e.to_string(),
        },
        (_, Ok(_)) => Audited::Malformed {
            code: "invalid_json",
            message: "message data is not a JSON object".into(),
        },
    }
}

/// What upcasting makes of the event as received, and its upcast data when
/// that differs (the parsed event's data is not it for a delete, and not
/// there for a refused event).
fn upcast(config: &AuditConfig, event: &Map<String, Value>) -> Option<(Upcast, Option<Value>)> {
    let mut copy = event.clone();
    let upcast = config.schema.upcast_event(&mut copy).ok()?;
    let data = upcast.changed.then(|| copy.remove(field::DATA)).flatten();
    Some((upcast, data))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The event's field `name` as received (`null` when absent).
fn received(event: &Map<String, Value>, name: &str) -> Value {
    event.get(name).cloned().unwrap_or(Value::Null)
}

/// The event's field `name` as received, when it is there and not `null`.
fn present(event: &Map<String, Value>, name: &str) -> Option<Value> {
    event.get(name).filter(|v| !v.is_null()).cloned()
}

/// The event's field `name` when it is text.
fn text<'a>(event: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    event.get(name).and_then(Value::as_str)
}

/// Replaces the value of every key named in `fields`, at any depth.
pub fn redact(value: &mut Value, fields: &[String]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if fields.iter().any(|f| f == k) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact(v, fields);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, fields)),
        _ => {}
    }
}

fn processing_metadata(config: &AuditConfig, delivery: &Delivery) -> ProcessingMetadata {
    let subscription = delivery
        .subscription
        .clone()
        .or_else(|| delivery.cloud_event.as_ref().map(|c| c.source.clone()));
    ProcessingMetadata {
        function_name: config.function_name.clone(),
        subscription,
        delivery_attempt: delivery.delivery_attempt.unwrap_or(1),
        delivery_form: delivery.form.as_str().into(),
        publish_time: delivery.publish_time.map(rfc3339),
    }
}

/// The trace fields, when the request had a trace and the project is known.
fn trace(config: &AuditConfig, delivery: &Delivery) -> Option<Trace> {
    let (t, project) = (delivery.trace.as_ref()?, config.project_id.as_ref()?);
    Some(Trace {
        trace: t.resource_name(project),
        span_id: t.span_id.clone(),
        sampled: t.sampled,
    })
}

/// What entries are shortened to when they are over the budget: room is
/// kept for the digests and the list of what was shortened.
const TARGET_BYTES: usize = logline::LINE_BUDGET_BYTES - logline::RESERVED_BYTES;

/// `entry` as JSON within the line budget. When it is over, it is shortened
/// in `phases` (see [`logline::fit`]), read back as `T` and given what
/// `finish` says about the values shortened (their pointers, in order).
fn fitted<T: Serialize + DeserializeOwned>(
    entry: &T,
    phases: &[Phase<'_>],
    finish: impl FnOnce(&mut T, &[String]),
) -> Value {
    let mut json = serde_json::to_value(entry).unwrap_or(Value::Null);
    if Size::of(&json).fits(logline::LINE_BUDGET_BYTES) {
        return json;
    }
    let cuts = logline::fit(&mut json, TARGET_BYTES, phases);
    match serde_json::from_value::<T>(json.clone()) {
        Ok(mut shortened) => {
            finish(&mut shortened, &cuts);
            serde_json::to_value(&shortened).unwrap_or(json)
        }
        // Shortening keeps every type, so this is not expected; the entry
        // still says what was shortened.
        Err(_) => {
            logline::insert_fields(&mut json, &logline::shortened(&cuts));
            json
        }
    }
}

/// Every text of an entry's own fields, largest first.
const TEXT: Phase<'static> = Phase {
    pointer: "",
    mode: Mode::CutText,
};

/// Whether `cuts` shortened the value at `pointer` or inside it.
fn touched(cuts: &[String], pointer: &str) -> bool {
    cuts.iter().any(|c| {
        c.strip_prefix(pointer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Entries of one delivery: they share its clock reading and trace.
struct Stamp {
    time: String,
    trace: Option<Trace>,
}

impl Stamp {
    fn entry<L, R>(
        &self,
        severity: Severity,
        message: String,
        labels: L,
        record: R,
    ) -> LogEntry<L, R> {
        LogEntry {
            severity,
            message,
            time: self.time.clone(),
            labels,
            record,
            trace: self.trace.clone(),
        }
    }
}

/// The entries for one delivery, in the order they are written.
pub fn entries(config: &AuditConfig, delivery: &Delivery, now: DateTime<Utc>) -> Vec<Value> {
    let stamp = Stamp {
        time: rfc3339(now),
        trace: trace(config, delivery),
    };
    match classify(config, delivery, now) {
        Audited::Event {
            event,
            validation_error,
            schema,
        } => event_entries(config, delivery, &stamp, &event, validation_error, schema),
        Audited::Malformed { code, message } => {
            vec![malformed_entry(config, delivery, &stamp, code, message)]
        }
    }
}

fn event_entries(
    config: &AuditConfig,
    delivery: &Delivery,
    stamp: &Stamp,
    event: &Map<String, Value>,
    validation_error: Option<(&'static str, String)>,
    schema: Option<(Upcast, Option<Value>)>,
) -> Vec<Value> {
    let operation = text(event, field::OPERATION).unwrap_or(UNKNOWN_OPERATION);
    // Always text here: an event without a textual entity_id is malformed.
    let entity_id = text(event, field::ENTITY_ID).unwrap_or("?");
    let mut snapshot = event
        .get(field::DATA)
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    redact(&mut snapshot, &config.redact_fields);
    let source = text(event, field::SOURCE).unwrap_or(UNKNOWN_SOURCE);
    let main: EventEntry = stamp.entry(
        Severity::Info,
        format!("audit: {operation} of {entity_id} from {source}"),
        EntityLabels::new(operation),
        EventRecord {
            timestamp: stamp.time.clone(),
            event_type: EventType::DataSynchronization,
            entity_id: entity_id.into(),
            operation: operation.into(),
            source_system: event
                .get(field::SOURCE)
                .cloned()
                .unwrap_or_else(|| UNKNOWN_SOURCE.into()),
            message_id: delivery.message_id.clone(),
            event_id: present(event, field::EVENT_ID),
            removed: present(event, field::REMOVED),
            correlation_id: received(event, field::CORRELATION_ID),
            event_timestamp: received(event, field::TIMESTAMP),
            data_snapshot: snapshot,
            processing_metadata: processing_metadata(config, delivery),
            validation_error: validation_error.map(|(code, message)| ValidationFailure {
                error_code: code.into(),
                error_message: message,
            }),
            schema: schema.map(|(upcast, data)| SchemaRecord {
                received_version: upcast.received_version,
                version: upcast.version,
                changed: upcast.changed,
                upcast_data_snapshot: data.map(|mut d| {
                    redact(&mut d, &config.redact_fields);
                    d
                }),
            }),
            snapshot_digest: None,
            shortened: None,
        },
    );
    let mut out = vec![fit_event(&main)];
    if operation == sync_core::Operation::Delete.as_str() {
        let compliance: ComplianceEntry = stamp.entry(
            Severity::Notice,
            format!("compliance: data deletion of {entity_id}"),
            ComplianceLabels::data_deletion(),
            ComplianceRecord::data_deletion(
                entity_id.into(),
                stamp.time.clone(),
                delivery.message_id.clone(),
                received(event, field::CORRELATION_ID),
            ),
        );
        out.push(fitted(&compliance, &[TEXT], |e, cuts| {
            e.record.shortened = Some(logline::shortened(cuts));
        }));
    }
    out
}

/// The event entry within the budget: the derived upcast snapshot is
/// shortened first, then the snapshot and the list of removed fields, the
/// larger of the two first, then (only for absurdly long ids and texts) any
/// text; a shortened entry carries the full snapshot's digest.
fn fit_event(entry: &EventEntry) -> Value {
    let mut digest = None;
    let leave_out = |pointer| Phase {
        pointer,
        mode: Mode::LeaveOut,
    };
    let removed = entry
        .record
        .removed
        .as_ref()
        .map(Size::of)
        .unwrap_or_default();
    let mut parts = [leave_out(DATA_SNAPSHOT_POINTER), leave_out(REMOVED_POINTER)];
    if removed.weight() > Size::of(&entry.record.data_snapshot).weight() {
        parts.reverse();
    }
    fitted(
        entry,
        &[
            leave_out(UPCAST_DATA_SNAPSHOT_POINTER),
            parts[0],
            parts[1],
            TEXT,
        ],
        |e, cuts| {
            let full = digest.get_or_insert_with(|| Digest::of_json(&entry.record.data_snapshot));
            e.record.snapshot_digest = Some(SnapshotDigest {
                data_snapshot_truncated: touched(cuts, DATA_SNAPSHOT_POINTER),
                data_snapshot_bytes: full.bytes,
                data_snapshot_sha256: full.sha256.clone(),
            });
            e.record.shortened = Some(logline::shortened(cuts));
        },
    )
}

/// The payload a malformed entry shows: its beginning (at most `max` bytes,
/// cut at a character boundary), whether that is not all of it, and the
/// full payload's digest when it is not (see `MalformedRecord`).
struct Payload {
    text: String,
    truncated: bool,
    digest: Option<Digest>,
}

/// The digest of the whole payload a malformed entry shows the beginning
/// of: the data as delivered, or its redacted JSON text; none when it is
/// withheld.
fn payload_digest(config: &AuditConfig, raw: &[u8]) -> Option<Digest> {
    if config.redact_fields.is_empty() {
        return Some(Digest::of_bytes(raw));
    }
    let mut v = serde_json::from_slice::<Value>(raw).ok()?;
    redact(&mut v, &config.redact_fields);
    Some(Digest::of_bytes(v.to_string().as_bytes()))
}

impl Payload {
    fn of(config: &AuditConfig, raw: &[u8]) -> Self {
        let max = config.max_raw_bytes;
        if config.redact_fields.is_empty() {
            let cap = raw.len().min(max);
            return Self {
                text: String::from_utf8_lossy(&raw[..cap]).into_owned(),
                truncated: raw.len() > max,
                digest: (raw.len() > max)
                    .then(|| payload_digest(config, raw))
                    .flatten(),
            };
        }
        // A payload that is JSON can be redacted; raw text cannot, so it is withheld.
        let Ok(mut v) = serde_json::from_slice::<Value>(raw) else {
            return Self {
                text: "[WITHHELD: not JSON, cannot be redacted]".into(),
                truncated: false,
                digest: None,
            };
        };
        redact(&mut v, &config.redact_fields);
        let text = v.to_string();
        if text.len() <= max {
            return Self {
                text,
                truncated: false,
                digest: None,
            };
        }
        let digest = Digest::of_bytes(text.as_bytes());
        Self {
            text: logline::prefix_within(&text, usize::MAX, max).to_string(),
            truncated: true,
            digest: Some(digest),
        }
    }
}

fn malformed_entry(
    config: &AuditConfig,
    delivery: &Delivery,
    stamp: &Stamp,
    code: &str,
    message: String,
) -> Value {
    let raw = delivery.original_data();
    let payload = Payload::of(config, raw);
    let entry: MalformedEntry = stamp.entry(
        Severity::Warning,
        format!("audit: malformed message {} ({code})", delivery.message_id),
        EntityLabels::new(UNKNOWN_OPERATION),
        MalformedRecord {
            timestamp: stamp.time.clone(),
            event_type: EventType::MalformedEvent,
            message_id: delivery.message_id.clone(),
            error_code: code.into(),
            error_message: message,
            raw_payload: payload.text,
            raw_payload_bytes: raw.len(),
            raw_payload_truncated: payload.truncated,
            raw_payload_sha256: payload.digest.map(|d| d.sha256),
            attributes: delivery.attributes.clone(),
            processing_metadata: processing_metadata(config, delivery),
            shortened: None,
        },
    );
    fitted(&entry, &[TEXT], |e, cuts| {
        if touched(cuts, RAW_PAYLOAD_POINTER) && !e.record.raw_payload_truncated {
            // Cut here although it was within AUDIT_MAX_RAW_BYTES: the
            // digest is of the whole payload, as when the cap cut it.
            e.record.raw_payload_truncated = true;
            e.record.raw_payload_sha256 = payload_digest(config, raw).map(|d| d.sha256);
        }
        e.record.shortened = Some(logline::shortened(cuts));
    })
}
