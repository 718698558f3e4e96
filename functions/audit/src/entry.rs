//! The audit entries, as Cloud Logging structured-log JSON objects.
//!
//! Cloud Run turns each JSON line on stdout into a log entry: `severity`,
//! `message`, `logging.googleapis.com/labels` and `logging.googleapis.com/trace`
//! are lifted into the entry, everything else lands in `jsonPayload`, objects
//! staying objects. So a Logging query such as
//! `labels.component="datastore-sync" AND jsonPayload.entity_id="test-entity-001"`
//! finds them. `time` sets the entry's timestamp; the recipe's own `timestamp`
//! field is kept too, as the recipe writes it.

use crate::config::AuditConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
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
    },
    /// The data is not an event at all.
    Malformed {
        /// Stable code (`invalid_base64`, `invalid_json`, `missing_field`, …).
        code: &'static str,
        /// Human explanation.
        message: String,
    },
}

/// Classifies a delivery's data.
pub fn classify(delivery: &Delivery, now: DateTime<Utc>) -> Audited {
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
    let verdict = sync_core::parse_event(data, &delivery.message_id, &limits, now);
    match (serde_json::from_slice::<Value>(data), verdict) {
        (Ok(Value::Object(event)), Ok(_)) => Audited::Event {
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

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn str_field(event: &Map<String, Value>, name: &str) -> Value {
    event.get(name).cloned().unwrap_or(Value::Null)
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

fn processing_metadata(config: &AuditConfig, delivery: &Delivery) -> Value {
    let subscription = delivery
        .subscription
        .clone()
        .or_else(|| delivery.cloud_event.as_ref().map(|c| c.source.clone()));
    json!({
        "function_name": config.function_name,
        "subscription": subscription,
        "delivery_attempt": delivery.delivery_attempt.unwrap_or(1),
        "delivery_form": delivery.form.as_str(),
        "publish_time": delivery.publish_time.map(rfc3339),
    })
}

fn with_trace(mut entry: Map<String, Value>, config: &AuditConfig, delivery: &Delivery) -> Value {
    if let (Some(t), Some(project)) = (&delivery.trace, &config.project_id) {
        entry.insert(
            "logging.googleapis.com/trace".into(),
            Value::String(t.resource_name(project)),
        );
        if let Some(span) = &t.span_id {
            entry.insert(
                "logging.googleapis.com/spanId".into(),
                Value::String(span.clone()),
            );
        }
        entry.insert(
            "logging.googleapis.com/trace_sampled".into(),
            Value::Bool(t.sampled),
        );
    }
    Value::Object(entry)
}

/// The entries for one delivery, in the order they are written.
pub fn entries(config: &AuditConfig, delivery: &Delivery, now: DateTime<Utc>) -> Vec<Value> {
    let stamp = rfc3339(now);
    match classify(delivery, now) {
        Audited::Event {
            event,
            validation_error,
        } => {
            let operation = event
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let entity_id = str_field(&event, "entity_id");
            let mut snapshot = event.get("data").cloned().unwrap_or_else(|| json!({}));
            redact(&mut snapshot, &config.redact_fields);
            let mut main = Map::new();
            main.insert("severity".into(), json!("INFO"));
            main.insert(
                "message".into(),
                json!(format!(
                    "audit: {operation} of {} from {}",
                    entity_id.as_str().unwrap_or("?"),
                    event
                        .get("source")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                )),
            );
            main.insert("time".into(), json!(stamp));
            main.insert(
                "logging.googleapis.com/labels".into(),
                json!({"component": "datastore-sync", "operation": operation, "entity_type": "sync_entity"}),
            );
            main.insert("timestamp".into(), json!(stamp));
            main.insert("event_type".into(), json!("data_synchronization"));
            main.insert("entity_id".into(), entity_id.clone());
            main.insert("operation".into(), json!(operation));
            main.insert(
                "source_system".into(),
                event
                    .get("source")
                    .cloned()
                    .unwrap_or_else(|| json!("unknown")),
            );
            main.insert("message_id".into(), json!(delivery.message_id));
            main.insert("correlation_id".into(), str_field(&event, "correlation_id"));
            main.insert("event_timestamp".into(), str_field(&event, "timestamp"));
            main.insert("data_snapshot".into(), snapshot);
            main.insert(
                "processing_metadata".into(),
                processing_metadata(config, delivery),
            );
            if let Some((code, message)) = validation_error {
                main.insert(
                    "validation_error".into(),
                    json!({"error_code": code, "error_message": message}),
                );
            }
            let mut out = vec![with_trace(main, config, delivery)];
            if operation == "delete" {
                let mut compliance = Map::new();
                compliance.insert("severity".into(), json!("NOTICE"));
                compliance.insert(
                    "message".into(),
                    json!(format!(
                        "compliance: data deletion of {}",
                        entity_id.as_str().unwrap_or("?")
                    )),
                );
                compliance.insert("time".into(), json!(stamp));
                compliance.insert(
                    "logging.googleapis.com/labels".into(),
                    json!({"component": "datastore-sync", "compliance": "data_deletion", "regulation": "gdpr"}),
                );
                compliance.insert("compliance_event".into(), json!("data_deletion"));
                compliance.insert("entity_id".into(), entity_id);
                compliance.insert("deletion_timestamp".into(), json!(stamp));
                compliance.insert("retention_policy".into(), json!("applied"));
                compliance.insert("regulatory_context".into(), json!("gdpr_compliance"));
                compliance.insert("message_id".into(), json!(delivery.message_id));
                compliance.insert("correlation_id".into(), str_field(&event, "correlation_id"));
                out.push(with_trace(compliance, config, delivery));
            }
            out
        }
        Audited::Malformed { code, message } => {
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
            let mut entry = Map::new();
            entry.insert("severity".into(), json!("WARNING"));
            entry.insert(
                "message".into(),
                json!(format!(
                    "audit: malformed message {} ({code})",
                    delivery.message_id
                )),
            );
            entry.insert("time".into(), json!(stamp));
            entry.insert(
                "logging.googleapis.com/labels".into(),
                json!({"component": "datastore-sync", "operation": "unknown", "entity_type": "sync_entity"}),
            );
            entry.insert("timestamp".into(), json!(stamp));
            entry.insert("event_type".into(), json!("malformed_event"));
            entry.insert("message_id".into(), json!(delivery.message_id));
            entry.insert("error_code".into(), json!(code));
            entry.insert("error_message".into(), json!(message));
            entry.insert("raw_payload".into(), json!(payload));
            entry.insert("raw_payload_bytes".into(), json!(raw.len()));
            entry.insert(
                "raw_payload_truncated".into(),
                json!(raw.len() > config.max_raw_bytes),
            );
            entry.insert("attributes".into(), json!(delivery.attributes));
            entry.insert(
                "processing_metadata".into(),
                processing_metadata(config, delivery),
            );
            vec![with_trace(entry, config, delivery)]
        }
    }
}
