//! The recipe's change event, parsed and validated.
//!
//! [`parse_event`] reads the fields named in [`crate::wire::event::field`]
//! by hand rather than through serde's [`crate::wire::EventMessage`], so that
//! each refusal keeps its stable code and the order of the checks (see that
//! module). [`parse_event_with`] first upcasts an event of an older
//! `schema_version` through a [`SchemaHistory`], at the point where the
//! version is checked, so its data is validated in the current form.
//!
//! Two optional fields go beyond the recipe. `event_id` is the writer's id
//! for the change: when present it takes the Pub/Sub message id's place in
//! the order key, so the same change published twice (two message ids) is
//! one event. `removed` lists the top-level fields an update removed: the
//! merge deletes each of them (see [`mod@crate::merge`]).

use super::limits::{self, ValidationLimits, MAX_EVENT_ID_BYTES};
use super::schema::{SchemaHistory, Upcast};
use crate::error::ValidationError;
use crate::value::{check_fields, check_name, fields_size, RESERVED_FIELDS};
use crate::wire::event::field;
use crate::wire::operation::Operation;
use crate::wire::timestamp::{format_timestamp, parse_timestamp};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::fmt;

/// A Datastore key name: non-empty, at most 1500 bytes, not `__*__`.
///
/// Built only through [`EntityId::parse`], so an invalid id cannot exist.
///
/// ```
/// use sync_core::EntityId;
/// assert_eq!(EntityId::parse("test-entity-001")?.as_str(), "test-entity-001");
/// assert!(EntityId::parse("__scatter__").is_err());
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(String);

impl EntityId {
    /// Validates a key name.
    ///
    /// # Errors
    /// [`ValidationError::InvalidEntityId`] when the name breaks Datastore's rules.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_name(s).map_err(ValidationError::InvalidEntityId)?;
        Ok(Self(s.to_string()))
    }

    /// The key name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Source recorded when an event names none (as the recipe's audit does).
pub const UNKNOWN_SOURCE: &str = "unknown";

/// A validated change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Key name of the entity.
    pub entity_id: EntityId,
    /// create, update or delete.
    pub operation: Operation,
    /// User fields (empty for deletes).
    pub data: Map<String, Value>,
    /// When the writer says the change happened, UTC, microseconds kept.
    pub timestamp: DateTime<Utc>,
    /// The writer (`unknown` when absent).
    pub source: String,
    /// Traced through logs, announcements and audit.
    pub correlation_id: Option<String>,
    /// Datastore kind override; the configured kind when absent.
    pub kind: Option<String>,
    /// The `schema_version` received and the one after upcasting (the
    /// current one); `data` is the upcast data.
    pub schema: Upcast,
    /// The last part of the order key, the change's identity: the event's
    /// own `event_id` when it has one, else the Pub/Sub message id.
    pub event_id: String,
    /// Top-level fields the update removed: sorted, distinct, none of them
    /// in `data` (empty for creates and deletes).
    pub removed: Vec<String>,
}

/// Parses and validates a message's data bytes into a [`ChangeEvent`].
///
/// `message_id` is the Pub/Sub message id, the event's id unless it carries
/// its own `event_id`; `now` is the receiving clock, used only for the
/// clock-skew check.
///
/// # Errors
/// Any [`ValidationError`]; each is permanent.
///
/// ```
/// use sync_core::{parse_event, parse_timestamp, ValidationLimits, Operation};
/// let data = br#"{"entity_id":"test-entity-001","operation":"create",
///   "timestamp":"2025-07-23T10:15:30.123456","source":"data_publisher",
///   "correlation_id":"c-1","data":{"name":"Test Product"}}"#;
/// let now = parse_timestamp("2025-07-23T10:16:00")?;
/// let event = parse_event(data, "msg-1", &ValidationLimits::default(), now)?;
/// assert_eq!(event.operation, Operation::Create);
/// assert_eq!(event.data["name"], "Test Product");
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
pub fn parse_event(
    data: &[u8],
    message_id: &str,
    limits: &ValidationLimits,
    now: DateTime<Utc>,
) -> Result<ChangeEvent, ValidationError> {
    parse_event_with(data, message_id, limits, &SchemaHistory::default(), now)
}

/// [`parse_event`] for events of any version `schema` knows: the data is
/// upcast to the current version before it is validated.
///
/// # Errors
/// Any [`ValidationError`]; each is permanent. A version `schema` does not
/// know is [`ValidationError::UnsupportedSchemaVersion`].
///
/// ```
/// use sync_core::{parse_event_with, parse_timestamp, ValidationLimits, SchemaHistory};
/// let schema = SchemaHistory::from_json(
///     r#"{"current":2,"upcast":[{"from":1,"rename":{"name":"title"}}]}"#,
/// )?;
/// let data = br#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T10:00:00",
///   "data":{"name":"Lamp"}}"#;
/// let now = parse_timestamp("2025-07-23T10:16:00")?;
/// let event = parse_event_with(data, "m1", &ValidationLimits::default(), &schema, now)?;
/// assert_eq!(event.data["title"], "Lamp");
/// assert_eq!((event.schema.received_version, event.schema.version), (1, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_event_with(
    data: &[u8],
    message_id: &str,
    limits: &ValidationLimits,
    schema: &SchemaHistory,
    now: DateTime<Utc>,
) -> Result<ChangeEvent, ValidationError> {
    let value: Value =
        serde_json::from_slice(data).map_err(|e| ValidationError::InvalidJson(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(ValidationError::InvalidJson(
            "the top level is not an object".into(),
        ));
    };

    let raw_id = required_str(&obj, field::ENTITY_ID)?;
    let raw_kind = optional_str(&obj, field::KIND)?;
    let event_id = match optional_str(&obj, field::EVENT_ID)? {
        Some(id) => check_event_id(id)?,
        None => message_id,
    }
    .to_string();
    // The whole key first: a key over 6 KiB is refused as such, even when a
    // part of it also breaks the 1500-byte limit on names (with parts within
    // that limit, the keys written here stay below 6 KiB).
    let (key, bytes) = limits.keys.largest_key(raw_kind, raw_id, &event_id);
    if bytes > limits.max_key_bytes {
        return Err(ValidationError::KeyTooLarge {
            key,
            bytes,
            limit: limits.max_key_bytes,
        });
    }
    let entity_id = EntityId::parse(raw_id)?;
    let operation = Operation::parse(required_str(&obj, field::OPERATION)?)?;
    let timestamp = parse_timestamp(required_str(&obj, field::TIMESTAMP)?)?;
    let source = optional_str(&obj, field::SOURCE)?
        .unwrap_or(UNKNOWN_SOURCE)
        .to_string();
    let correlation_id = optional_str(&obj, field::CORRELATION_ID)?.map(str::to_string);
    let kind = match raw_kind {
        Some(k) => {
            check_name(k).map_err(ValidationError::InvalidKind)?;
            Some(k.to_string())
        }
        None => None,
    };
    // Checked as received, against the data as received; upcast below.
    let mut removed = removed_fields(&obj, operation, limits)?;
    // The data is checked below in its current form.
    let upcast = schema.upcast_event(&mut obj)?;

    let data = match obj.remove(field::DATA) {
        None | Some(Value::Null) => {
            if operation == Operation::Delete {
                Map::new()
            } else {
                return Err(ValidationError::MissingField(field::DATA));
            }
        }
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ValidationError::WrongType {
                field: field::DATA,
                expected: "a JSON object",
            })
        }
    };
    // A delete's data is ignored: deletes remove fields, they never set any.
    let data = if operation == Operation::Delete {
        Map::new()
    } else {
        data
    };
    for name in data.keys() {
        if RESERVED_FIELDS.contains(&name.as_str()) {
            return Err(ValidationError::ReservedField(name.clone()));
        }
    }
    check_fields(&data, "")?;
    if !removed.is_empty() {
        schema.upcast_removed(upcast.received_version, &mut removed)?;
        // Where the history maps a removal onto a field the event also
        // sets, the data wins, as the new name wins for data.
        removed.retain(|name| !data.contains_key(name));
    }
    let depth = limits::nesting_depth(&data);
    if depth > limits.max_depth {
        return Err(ValidationError::TooDeep {
            path: limits::deepest_path(&data),
            depth,
            limit: limits.max_depth,
        });
    }
    // What this event's data alone would take; the merged entity is checked
    // again by the store (fields of several events add up).
    limits::check_index_entries(&data, limits.max_index_entries)?;
    // Each removal is remembered in the entity's bookkeeping, by name.
    let removal_bytes: usize = removed.iter().map(|name| name.len() + 1).sum();
    let bytes = entity_id.as_str().len() + fields_size(&data) + removal_bytes;
    if bytes > limits.max_entity_bytes {
        return Err(ValidationError::EntityTooLarge {
            bytes,
            limit: limits.max_entity_bytes,
        });
    }

    let ahead = timestamp.signed_duration_since(now).num_seconds();
    if ahead > limits.max_clock_skew_secs {
        return Err(ValidationError::ClockSkew {
            timestamp: format_timestamp(&timestamp),
            ahead_secs: ahead,
            limit_secs: limits.max_clock_skew_secs,
        });
    }

    Ok(ChangeEvent {
        entity_id,
        operation,
        data,
        timestamp,
        source,
        correlation_id,
        kind,
        schema: upcast,
        event_id,
        removed,
    })
}

/// An event id as received, if usable: not empty, at most
/// [`MAX_EVENT_ID_BYTES`] (it may name the conflict record).
fn check_event_id(id: &str) -> Result<&str, ValidationError> {
    if id.is_empty() {
        return Err(ValidationError::InvalidEventId("must not be empty".into()));
    }
    if id.len() > MAX_EVENT_ID_BYTES {
        return Err(ValidationError::InvalidEventId(format!(
            "is {} bytes, over the {MAX_EVENT_ID_BYTES}-byte limit",
            id.len()
        )));
    }
    Ok(id)
}

/// The event's `removed` list as received: an array of valid, unreserved
/// top-level field names, only on an update, none of them set in `data`,
/// at most `limits.max_removed_fields`; sorted, a name listed twice kept
/// once. Absent, `null` and `[]` are no removal, on any operation.
fn removed_fields(
    obj: &Map<String, Value>,
    operation: Operation,
    limits: &ValidationLimits,
) -> Result<Vec<String>, ValidationError> {
    let wrong = ValidationError::WrongType {
        field: field::REMOVED,
        expected: "an array of field names",
    };
    let items = match obj.get(field::REMOVED) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.is_empty() => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong),
    };
    if operation != Operation::Update {
        return Err(ValidationError::RemovalNotAllowed(operation.as_str()));
    }
    if items.len() > limits.max_removed_fields {
        return Err(ValidationError::TooManyRemoved {
            count: items.len(),
            limit: limits.max_removed_fields,
        });
    }
    let data = match obj.get(field::DATA) {
        Some(Value::Object(data)) => Some(data),
        _ => None,
    };
    let mut names = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::String(name) = item else {
            return Err(wrong);
        };
        check_name(name).map_err(|reason| ValidationError::InvalidFieldName {
            path: format!("{}[{i}]", field::REMOVED),
            reason,
        })?;
        if RESERVED_FIELDS.contains(&name.as_str()) {
            return Err(ValidationError::ReservedField(name.clone()));
        }
        if data.is_some_and(|d| d.contains_key(name)) {
            return Err(ValidationError::RemovedFieldInData(name.clone()));
        }
        names.push(name.clone());
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ValidationError> {
    optional_str(obj, field)?.ok_or(ValidationError::MissingField(field))
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;
    use crate::ingest::limits::{KeyLayout, MAX_ENTITY_BYTES};
    use crate::wire::EventMessage;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_timestamp("2025-07-23T10:00:00Z").expect("fixed clock")
    }

    fn parse(data: impl AsRef<[u8]>) -> Result<ChangeEvent, ValidationError> {
        parse_event(data.as_ref(), "m1", &ValidationLimits::default(), now())
    }

    fn ok() -> Vec<u8> {
        EventMessage::new("e1", Operation::Update, "2025-07-23T09:59:00.000001")
            .source("s")
            .correlation_id("c")
            .field("a", 1)
            .to_bytes()
    }

    #[test]
    fn recipe_event_parses_with_microseconds() {
        let e = parse(ok()).expect("valid");
        assert_eq!(e.entity_id.as_str(), "e1");
        assert_eq!(e.operation, Operation::Update);
        assert_eq!(e.timestamp.timestamp_subsec_micros(), 1);
        assert_eq!(e.source, "s");
        assert_eq!(e.correlation_id.as_deref(), Some("c"));
        assert_eq!((e.schema.received_version, e.schema.version), (1, 1));
        assert!(!e.schema.changed);
        assert_eq!(e.event_id, "m1");
    }

    #[test]
    fn defaults_for_optional_fields() {
        let delete = EventMessage::new("e", Operation::Delete, "2025-07-23T09:00:00");
        let e = parse(delete.to_bytes()).expect("valid delete");
        assert_eq!(e.source, UNKNOWN_SOURCE);
        assert!(e.data.is_empty());
        assert!(e.correlation_id.is_none());
    }

    /// One case per validation code: the input and the code it must produce.
    /// The inputs are JSON text, since most are no event `EventMessage` could write.
    #[test]
    fn every_validation_code() {
        let long = "x".repeat(1501);
        let skewed = r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T10:06:00Z","data":{}}"#;
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "invalid_json"),
            ("[1,2]".into(), "invalid_json"),
            (r#"{"operation":"create","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "missing_field"),
            (r#"{"entity_id":"e","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "missing_field"),
            (r#"{"entity_id":"e","operation":"create","data":{}}"#.into(), "missing_field"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00"}"#.into(), "missing_field"),
            (r#"{"entity_id":7,"operation":"create","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "wrong_type"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":[]}"#.into(), "wrong_type"),
            (r#"{"entity_id":"e","operation":"upsert","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "invalid_operation"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"yesterday","data":{}}"#.into(), "invalid_timestamp"),
            (r#"{"entity_id":"","operation":"create","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "invalid_entity_id"),
            (r#"{"entity_id":"__x__","operation":"create","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "invalid_entity_id"),
            (format!(r#"{{"entity_id":"{long}","operation":"create","timestamp":"2025-07-23T09:00:00","data":{{}}}}"#), "invalid_entity_id"),
            (r#"{"entity_id":"e","kind":"__k__","operation":"create","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "invalid_kind"),
            (r#"{"entity_id":"e","schema_version":2,"operation":"create","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "unsupported_schema_version"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{"version":9}}"#.into(), "reserved_field"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{"_sync":{}}}"#.into(), "reserved_field"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{"":1}}"#.into(), "invalid_field_name"),
            (format!(r#"{{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{{"{long}":1}}}}"#), "invalid_field_name"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{"a":[[1]]}}"#.into(), "unsupported_value"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{"a":18446744073709551615}}"#.into(), "unsupported_value"),
            (skewed.into(), "clock_skew"),
            (r#"{"entity_id":"e","event_id":7,"operation":"update","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "wrong_type"),
            (r#"{"entity_id":"e","event_id":"","operation":"update","timestamp":"2025-07-23T09:00:00","data":{}}"#.into(), "invalid_event_id"),
            (format!(r#"{{"entity_id":"e","event_id":"{long}","operation":"update","timestamp":"2025-07-23T09:00:00","data":{{}}}}"#), "invalid_event_id"),
            (r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{},"removed":"a"}"#.into(), "wrong_type"),
            (r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{},"removed":["a",1]}"#.into(), "wrong_type"),
            (r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T09:00:00","data":{},"removed":["a"]}"#.into(), "removal_not_allowed"),
            (r#"{"entity_id":"e","operation":"delete","timestamp":"2025-07-23T09:00:00","removed":["a"]}"#.into(), "removal_not_allowed"),
            (r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{},"removed":[""]}"#.into(), "invalid_field_name"),
            (r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{},"removed":["__key__"]}"#.into(), "invalid_field_name"),
            (format!(r#"{{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{{}},"removed":["{long}"]}}"#), "invalid_field_name"),
            (r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{},"removed":["_sync"]}"#.into(), "reserved_field"),
            (r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T09:00:00","data":{"a":1},"removed":["a"]}"#.into(), "removed_field_in_data"),
        ];
        for (input, code) in cases {
            let err = parse(&input).expect_err(&input[..input.len().min(80)]);
            assert_eq!(
                err.code(),
                code,
                "input {}: {err}",
                &input[..input.len().min(80)]
            );
            assert_eq!(err.disposition(), crate::Disposition::Permanent);
        }
    }

    #[test]
    fn entity_too_large() {
        let big = "y".repeat(MAX_ENTITY_BYTES);
        assert_eq!(
            parse(create_with("e", &json!({ "blob": big })))
                .expect_err("too large")
                .code(),
            "entity_too_large"
        );
        let small = ValidationLimits {
            max_entity_bytes: 10,
            ..ValidationLimits::default()
        };
        let err = parse_event(&ok(), "m", &small, now()).expect_err("limit 10");
        assert_eq!(err.code(), "entity_too_large");
    }

    fn create_with(entity_id: &str, data: &Value) -> Vec<u8> {
        let data = serde_json::from_value(data.clone()).expect("an object");
        EventMessage::new(entity_id, Operation::Create, "2025-07-23T09:00:00")
            .data(data)
            .to_bytes()
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!("leaf"), |inner, _| json!({ "n": inner }))
    }

    #[test]
    fn depth_at_the_limit_passes_and_one_over_is_too_deep() {
        let at = create_with("e", &json!({ "d": nested(limits::MAX_NESTING_DEPTH) }));
        assert!(parse(&at).is_ok());
        // Inside an array the objects nest just as deep.
        let in_array = create_with("e", &json!({ "d": [nested(limits::MAX_NESTING_DEPTH)] }));
        assert!(parse(&in_array).is_ok());
        let over = create_with("e", &json!({ "d": nested(limits::MAX_NESTING_DEPTH + 1) }));
        let err = parse(&over).expect_err("21 deep");
        assert_eq!(err.code(), "too_deep");
        assert!(err.to_string().contains("21"), "{err}");
        // The issue's case: 60 levels, which the emulator answers with Unknown.
        let sixty = create_with("e", &json!({ "d": nested(60) }));
        assert_eq!(parse(&sixty).expect_err("60 deep").code(), "too_deep");
    }

    #[test]
    fn index_entries_at_the_limit_pass_and_one_over_is_refused() {
        let room = limits::MAX_INDEX_ENTRIES - limits::BOOKKEEPING_INDEX_ENTRIES;
        // Split over an array and nested properties: every value counts.
        let data = |n: usize| json!({"tags": vec![1; n - 2], "o": {"a": "x", "b": null}});
        assert!(parse(create_with("e", &data(room))).is_ok());
        let err = parse(create_with("e", &data(room + 1))).expect_err("one over");
        assert_eq!(err.code(), "too_many_index_entries");
        // Strings too long to index count nothing.
        let long = "s".repeat(limits::MAX_INDEXED_BYTES + 1);
        let unindexed = json!({"tags": vec![1; room], "long": [long.clone(), long]});
        assert!(parse(create_with("e", &unindexed)).is_ok());
    }

    #[test]
    fn key_at_the_limit_passes_and_one_byte_over_is_too_large() {
        // With event id "m1" the tombstone's key is the largest: the entity
        // key + "SyncTombstone" (14) + "tombstone" (10).
        let limit = limits::MAX_KEY_BYTES;
        let overhead = limits::key_size("", &[(limits::DEFAULT_KIND, "")]) + 14 + 10;
        let small = ValidationLimits {
            max_key_bytes: 200,
            ..ValidationLimits::default()
        };
        let at = "k".repeat(200 - overhead);
        assert!(parse_event(&create_with(&at, &json!({})), "m1", &small, now()).is_ok());
        let over = "k".repeat(200 - overhead + 1);
        let err = parse_event(&create_with(&over, &json!({})), "m1", &small, now())
            .expect_err("one byte over");
        assert_eq!(err.code(), "key_too_large");
        assert!(err.to_string().contains("tombstone"), "{err}");
        // With Datastore's limit, an id at 1500 bytes fits; one that makes the
        // key exceed 6 KiB is `key_too_large`, not merely an invalid name.
        assert!(parse(create_with(&"k".repeat(1500), &json!({}))).is_ok());
        assert_eq!(
            parse(create_with(&"k".repeat(1501), &json!({})))
                .expect_err("name")
                .code(),
            "invalid_entity_id"
        );
        let at = "k".repeat(limit - overhead);
        let err = parse(create_with(&at, &json!({}))).expect_err("name over 1500");
        assert_eq!(err.code(), "invalid_entity_id");
        let over = "k".repeat(limit - overhead + 1);
        let err = parse(create_with(&over, &json!({}))).expect_err("key over 6 KiB");
        assert_eq!(err.code(), "key_too_large");
        // The namespace and the event's own kind count too.
        let spaced = ValidationLimits {
            keys: KeyLayout {
                namespace: "n".repeat(100),
                ..KeyLayout::default()
            },
            ..small
        };
        let at = "k".repeat(200 - overhead);
        let err = parse_event(&create_with(&at, &json!({})), "m1", &spaced, now())
            .expect_err("namespace adds 101 bytes");
        assert_eq!(err.code(), "key_too_large");
    }

    #[test]
    fn skew_limit_is_configurable_and_past_is_fine() {
        let update = |ts: &str| {
            EventMessage::new("e", Operation::Update, ts)
                .data(Map::new())
                .to_bytes()
        };
        let loose = ValidationLimits {
            max_clock_skew_secs: 3600,
            ..ValidationLimits::default()
        };
        let skewed = update("2025-07-23T10:06:00Z");
        assert!(parse_event(&skewed, "m", &loose, now()).is_ok());
        let old = update("1999-01-01T00:00:00");
        assert!(parse_event(&old, "m", &ValidationLimits::default(), now()).is_ok());
    }

    #[test]
    fn the_event_id_replaces_the_message_id_when_given() {
        let plain = EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00").field("a", 1);
        let own = plain.clone().event_id("ce-42");
        let e =
            parse_event(&own.to_bytes(), "m1", &ValidationLimits::default(), now()).expect("valid");
        assert_eq!(e.event_id, "ce-42");
        // Published again, under another message id: the same order key.
        let again =
            parse_event(&own.to_bytes(), "m2", &ValidationLimits::default(), now()).expect("valid");
        assert_eq!(again.order_key(), e.order_key());
        // Without one, the message id, as before.
        assert_eq!(parse(plain.to_bytes()).expect("valid").event_id, "m1");
        // null is absent.
        let null = r#"{"entity_id":"e","event_id":null,"operation":"update","timestamp":"2025-07-23T09:00:00","data":{}}"#;
        assert_eq!(parse(null).expect("valid").event_id, "m1");
        // At the limit it passes; any text will do, it is never a key name itself.
        let at = "x".repeat(MAX_EVENT_ID_BYTES);
        assert!(parse(plain.clone().event_id(at).to_bytes()).is_ok());
        assert!(parse(plain.event_id("__y__").to_bytes()).is_ok());
    }

    #[test]
    fn the_event_id_sizes_the_conflict_record_key() {
        // The conflict record is named by the event id, so the key check
        // counts it, not the message id.
        let small = ValidationLimits {
            max_key_bytes: 200,
            ..ValidationLimits::default()
        };
        let update = EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00").field("a", 1);
        assert!(parse_event(&update.to_bytes(), "m1", &small, now()).is_ok());
        let long = update.event_id("i".repeat(200));
        let err = parse_event(&long.to_bytes(), "m1", &small, now()).expect_err("200-byte id");
        assert_eq!(err.code(), "key_too_large");
        assert!(err.to_string().contains("conflict record"), "{err}");
    }

    #[test]
    fn removed_fields_are_sorted_and_a_name_listed_twice_counts_once() {
        let update = EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00")
            .field("kept", 1)
            .removed("b")
            .removed("a")
            .removed("b");
        let e = parse(update.to_bytes()).expect("valid");
        assert_eq!(e.removed, ["a", "b"]);
        assert_eq!(e.data["kept"], 1);
        // An update may remove and set nothing else.
        let only = EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00")
            .data(Map::new())
            .removed("a");
        assert_eq!(parse(only.to_bytes()).expect("valid").removed, ["a"]);
        // An empty list (or null) is no removal, on any operation.
        for op in ["create", "update", "delete"] {
            for removed in ["[]", "null"] {
                let text = format!(
                    r#"{{"entity_id":"e","operation":"{op}","timestamp":"2025-07-23T09:00:00","data":{{}},"removed":{removed}}}"#
                );
                assert!(parse(&text).expect(&text).removed.is_empty());
            }
        }
        // Nested names are not top-level fields, but a dotted name is a name.
        let dotted = EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00")
            .data(Map::new())
            .removed("a.b");
        assert_eq!(parse(dotted.to_bytes()).expect("valid").removed, ["a.b"]);
    }

    #[test]
    fn too_many_removed_fields_are_refused() {
        let limits = ValidationLimits {
            max_removed_fields: 2,
            ..ValidationLimits::default()
        };
        let update = |n: usize| {
            (0..n)
                .fold(
                    EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00")
                        .data(Map::new()),
                    |m, i| m.removed(format!("f{i}")),
                )
                .to_bytes()
        };
        assert!(parse_event(&update(2), "m", &limits, now()).is_ok());
        let err = parse_event(&update(3), "m", &limits, now()).expect_err("3 over 2");
        assert_eq!(err.code(), "too_many_removed");
        assert_eq!(
            ValidationLimits::default().max_removed_fields,
            limits::MAX_REMOVED_FIELDS
        );
        // Removals count towards the entity's size: their names are kept.
        let tight = ValidationLimits {
            max_entity_bytes: 12,
            ..ValidationLimits::default()
        };
        let long = EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00")
            .data(Map::new())
            .removed("x".repeat(20));
        let err = parse_event(&long.to_bytes(), "m", &tight, now()).expect_err("20-byte name");
        assert_eq!(err.code(), "entity_too_large");
    }

    #[test]
    fn removals_are_upcast_with_the_data() {
        let schema = SchemaHistory::from_toml(
            "current = 2\n[[upcast]]\nfrom = 1\nrename = { name = \"title\" }\nmove = { street = \"address.street\" }\n",
        )
        .expect("history");
        let limits = ValidationLimits::default();
        let v1 = |data: Value, removed: &[&str]| {
            let message = removed.iter().fold(
                EventMessage::new("e", Operation::Update, "2025-07-23T09:00:00")
                    .data(serde_json::from_value(data).expect("object")),
                |m, r| m.removed(*r),
            );
            parse_event_with(&message.to_bytes(), "m", &limits, &schema, now())
        };
        let e = v1(json!({"a": 1}), &["name"]).expect("renamed");
        assert_eq!(e.removed, ["title"]);
        // The new name set in the same event wins over the old one's removal.
        let e = v1(json!({"title": "new"}), &["name"]).expect("both names");
        assert!(e.removed.is_empty());
        assert_eq!(e.data["title"], "new");
        let err = v1(json!({}), &["street"]).expect_err("into an object");
        assert_eq!(err.code(), "unsupported_removal");
    }

    #[test]
    fn delete_ignores_data() {
        let delete = EventMessage::new("e", Operation::Delete, "2025-07-23T09:00:00").field("a", 1);
        let e = parse(delete.to_bytes()).expect("delete");
        assert!(e.data.is_empty());
    }
}
