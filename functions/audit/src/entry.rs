//! The audit entries, as Cloud Logging structured-log JSON objects.
//!
//! Cloud Run turns each JSON line on stdout into a log entry: `severity`,
//! `message`, `logging.googleapis.com/labels` and `logging.googleapis.com/trace`
//! are lifted into the entry, everything else lands in `jsonPayload`, objects
//! staying objects. So a Logging query such as
//! `labels.component="datastore-sync" AND jsonPayload.entity_id="test-entity-001"`
//! finds them. `time` sets the entry's timestamp; the recipe's own `timestamp`
//! field is kept too, as the recipe writes it.
//!
//! The entries' types are `sync_core::wire::audit`'s; this module fills them
//! from a delivery. Events are validated, and upcast, with the schema history
//! the sync function reads (`SCHEMA_HISTORY_FILE`): an entry keeps the data as
//! received in `data_snapshot` and records the received version, the version
//! after upcasting and, when upcasting changed the data, the upcast data
//! (`schema`).

use crate::config::AuditConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sync_core::event::UNKNOWN_SOURCE;
use sync_core::wire::audit::{
    ComplianceEntry, ComplianceLabels, ComplianceRecord, EntityLabels, EventEntry, EventRecord,
    EventType, LogEntry, MalformedEntry, MalformedRecord, ProcessingMetadata, SchemaRecord,
    Severity, Trace, ValidationFailure, UNKNOWN_OPERATION,
};
use sync_core::wire::event::field;
use sync_core::Upcast;
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
    let limits = sync_core::Limits {
        max_clock_skew_secs: i64::MAX / 2,
        ..sync_core::Limits::default()
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
            vec![malformed_entry(config, delivery, &stamp, code, message).to_json()]
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
        },
    );
    let mut out = vec![main.to_json()];
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
        out.push(compliance.to_json());
    }
    out
}

fn malformed_entry(
    config: &AuditConfig,
    delivery: &Delivery,
    stamp: &Stamp,
    code: &str,
    message: String,
) -> MalformedEntry {
    let raw = delivery.original_data();
    let cap = raw.len().min(config.max_raw_bytes);
    let mut payload = String::from_utf8_lossy(&raw[..cap]).into_owned();
    if !config.redact_fields.is_empty() {
        // A payload that is JSON can be redacted; raw text cannot, so it is withheld.
        payload = match serde_json::from_slice::<Value>(raw) {
            Ok(mut v) => {
                redact(&mut v, &config.redact_fields);
                let text = v.to_string();
                text.chars().take(config.max_raw_bytes).collect()
            }
            Err(_) => "[WITHHELD: not JSON, cannot be redacted]".into(),
        };
    }
    stamp.entry(
        Severity::Warning,
        format!("audit: malformed message {} ({code})", delivery.message_id),
        EntityLabels::new(UNKNOWN_OPERATION),
        MalformedRecord {
            timestamp: stamp.time.clone(),
            event_type: EventType::MalformedEvent,
            message_id: delivery.message_id.clone(),
            error_code: code.into(),
            error_message: message,
            raw_payload: payload,
            raw_payload_bytes: raw.len(),
            raw_payload_truncated: raw.len() > config.max_raw_bytes,
            attributes: delivery.attributes.clone(),
            processing_metadata: processing_metadata(config, delivery),
        },
    )
}
