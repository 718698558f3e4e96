//! JSON ↔ Datastore values, and entities ↔ [`StoredEntity`].
//!
//! Writing, each JSON type has one Datastore type: string → string, integer
//! (i64) → integer, other numbers → double, boolean → boolean, null → null,
//! array → array (each element mapped), object → embedded entity without key.
//! Strings longer than 1500 bytes are unindexed (Datastore refuses longer
//! indexed strings), wherever they occur: at the top level, as array elements,
//! inside embedded entities. The bookkeeping property is always unindexed.
//!
//! Reading, Datastore types without a JSON twin become:
//! - timestamp → RFC 3339 string, UTC, microseconds (`2025-07-23T10:15:30.123456Z`);
//! - key → `{"namespace": ns (only when not default), "path": [{"kind": k,
//!   "name": n} | {"kind": k, "id": i}, ...]}`;
//! - geo point → `{"latitude": f, "longitude": f}`;
//! - blob → standard base64 string;
//! - a double that is NaN or infinite (JSON has none) → null;
//! - a value with no type set → null.
//!
//! Entity layout (recipe-compatible, what the recipe's `query_datastore.py`
//! prints): key `(kind, entity_id)` in the namespace; user fields at the top
//! level; `version` (integer), `last_modified` (timestamp), `sync_status`
//! (string `synced`), `conflict_resolved` (boolean), `_sync` (unindexed JSON
//! text). Tombstones carry `_sync`, `version`, `last_modified`, `deleted_at`
//! and `expire_at` only.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use gcloud_sdk::prost_types::Timestamp;
use serde_json::{Map, Number, Value as Json};
use std::collections::HashMap;
use sync_core::format_timestamp;
use sync_core::value::fields_size;
use sync_core::{StoredEntity, BOOKKEEPING_PROPERTY, RESERVED_FIELDS};

use ds::value::ValueType;

use sync_core::ingest::limits::MAX_INDEXED_BYTES;

// Property names of the recipe's bookkeeping, defined once in `sync-core`.
use sync_core::value::{
    CONFLICT_RESOLVED_PROPERTY as CONFLICT_RESOLVED, LAST_MODIFIED_PROPERTY as LAST_MODIFIED,
    SYNC_STATUS_PROPERTY as SYNC_STATUS, VERSION_PROPERTY as VERSION,
};
/// Property names of a tombstone's own.
pub(crate) const DELETED_AT: &str = "deleted_at";
pub(crate) const EXPIRE_AT: &str = "expire_at";

/// The value of `sync_status` on every entity this store writes.
pub(crate) const SYNCED: &str = "synced";

/// A value for [`crate::DatastoreAdmin::put_raw`]: JSON, or a Datastore
/// timestamp (which JSON cannot express; the recipe's `created_at` is one).
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// Mapped like a user field.
    Json(Json),
    /// Stored as a Datastore timestamp.
    Timestamp(DateTime<Utc>),
}

impl From<Json> for RawValue {
    fn from(v: Json) -> Self {
        Self::Json(v)
    }
}

impl From<DateTime<Utc>> for RawValue {
    fn from(t: DateTime<Utc>) -> Self {
        Self::Timestamp(t)
    }
}

fn typed(value_type: ValueType, exclude_from_indexes: bool) -> ds::Value {
    ds::Value {
        meaning: 0,
        exclude_from_indexes,
        value_type: Some(value_type),
    }
}

/// A string value, unindexed when `unindexed` or too long to index.
pub(crate) fn string_value(s: &str, unindexed: bool) -> ds::Value {
    typed(
        ValueType::StringValue(s.to_string()),
        unindexed || s.len() > MAX_INDEXED_BYTES,
    )
}

pub(crate) fn integer_value(i: i64) -> ds::Value {
    typed(ValueType::IntegerValue(i), false)
}

pub(crate) fn boolean_value(b: bool) -> ds::Value {
    typed(ValueType::BooleanValue(b), false)
}

pub(crate) fn null_value() -> ds::Value {
    typed(ValueType::NullValue(0), false)
}

pub(crate) fn timestamp_value(t: DateTime<Utc>) -> ds::Value {
    typed(
        ValueType::TimestampValue(Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_micros() * 1000).unwrap_or(0),
        }),
        false,
    )
}

pub(crate) fn array_value(values: Vec<ds::Value>) -> ds::Value {
    // An array value itself must not set `exclude_from_indexes`: its elements do.
    typed(ValueType::ArrayValue(ds::ArrayValue { values }), false)
}

pub(crate) fn entity_value(properties: HashMap<String, ds::Value>) -> ds::Value {
    typed(
        ValueType::EntityValue(ds::Entity {
            key: None,
            properties,
        }),
        false,
    )
}

/// The Datastore value of a JSON value.
pub(crate) fn to_value(v: &Json) -> ds::Value {
    match v {
        Json::Null => null_value(),
        Json::Bool(b) => boolean_value(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => integer_value(i),
            // Integers above i64::MAX are refused by validation; should one get
            // here, a double is the closest Datastore can hold.
            None => typed(
                ValueType::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
                false,
            ),
        },
        Json::String(s) => string_value(s, false),
        Json::Array(items) => array_value(items.iter().map(to_value).collect()),
        Json::Object(map) => entity_value(properties_of(map)),
    }
}

/// Datastore properties of a JSON object.
pub(crate) fn properties_of(map: &Map<String, Json>) -> HashMap<String, ds::Value> {
    map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()
}

/// The timestamp a Datastore value holds, if it is one.
pub(crate) fn timestamp_of(v: &ds::Value) -> Option<DateTime<Utc>> {
    match &v.value_type {
        Some(ValueType::TimestampValue(ts)) => from_timestamp(ts),
        _ => None,
    }
}

fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// The JSON value of a Datastore value (see the module docs for the types
/// JSON has no twin of).
pub(crate) fn from_value(v: &ds::Value) -> Json {
    let Some(value_type) = &v.value_type else {
        return Json::Null;
    };
    match value_type {
        ValueType::NullValue(_) => Json::Null,
        ValueType::BooleanValue(b) => Json::Bool(*b),
        ValueType::IntegerValue(i) => Json::from(*i),
        ValueType::DoubleValue(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        ValueType::TimestampValue(ts) => {
            from_timestamp(ts).map_or(Json::Null, |t| Json::String(format_timestamp(&t)))
        }
        ValueType::KeyValue(key) => key_to_json(key),
        ValueType::StringValue(s) => Json::String(s.clone()),
        ValueType::BlobValue(bytes) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        ValueType::GeoPointValue(p) => {
            let mut obj = Map::new();
            obj.insert(
                "latitude".into(),
                Number::from_f64(p.latitude).map_or(Json::Null, Json::Number),
            );
            obj.insert(
                "longitude".into(),
                Number::from_f64(p.longitude).map_or(Json::Null, Json::Number),
            );
            Json::Object(obj)
        }
        ValueType::EntityValue(e) => Json::Object(json_of_properties(&e.properties)),
        ValueType::ArrayValue(a) => Json::Array(a.values.iter().map(from_value).collect()),
    }
}

/// JSON object of Datastore properties.
pub(crate) fn json_of_properties(properties: &HashMap<String, ds::Value>) -> Map<String, Json> {
    properties
        .iter()
        .map(|(k, v)| (k.clone(), from_value(v)))
        .collect()
}

fn key_to_json(key: &ds::Key) -> Json {
    let mut obj = Map::new();
    if let Some(ns) = key
        .partition_id
        .as_ref()
        .map(|p| p.namespace_id.as_str())
        .filter(|ns| !ns.is_empty())
    {
        obj.insert("namespace".into(), Json::String(ns.to_string()));
    }
    let path = key
        .path
        .iter()
        .map(|e| {
            let mut el = Map::new();
            el.insert("kind".into(), Json::String(e.kind.clone()));
            match &e.id_type {
                Some(ds::key::path_element::IdType::Name(n)) => {
                    el.insert("name".into(), Json::String(n.clone()));
                }
                Some(ds::key::path_element::IdType::Id(i)) => {
                    el.insert("id".into(), Json::from(*i));
                }
                None => {}
            }
            Json::Object(el)
        })
        .collect();
    obj.insert("path".into(), Json::Array(path));
    Json::Object(obj)
}

/// The name (or numeric id, as text) of a key's last path element.
pub(crate) fn key_name(key: Option<&ds::Key>) -> String {
    match key
        .and_then(|k| k.path.last())
        .and_then(|e| e.id_type.as_ref())
    {
        Some(ds::key::path_element::IdType::Name(n)) => n.clone(),
        Some(ds::key::path_element::IdType::Id(i)) => i.to_string(),
        None => String::new(),
    }
}

/// The main entity for `stored`, under `key`.
///
/// `previous` is the entity as read, with its stored form ([`stored_of`]): a
/// field whose value did not change keeps its stored Datastore value, so types
/// JSON cannot express (a timestamp the recipe wrote, a key, a blob) survive
/// later updates of other fields.
pub(crate) fn main_entity(
    key: ds::Key,
    stored: &StoredEntity,
    previous: Option<(&ds::Entity, &StoredEntity)>,
) -> ds::Entity {
    let mut properties = common_properties(stored, stored.fields.len() + 5);
    for (name, value) in &stored.fields {
        let kept = previous
            .filter(|(_, before)| before.fields.get(name) == Some(value))
            .and_then(|(raw, _)| raw.properties.get(name))
            .cloned();
        properties.insert(name.clone(), kept.unwrap_or_else(|| to_value(value)));
    }
    properties.insert(SYNC_STATUS.into(), string_value(SYNCED, false));
    properties.insert(
        CONFLICT_RESOLVED.into(),
        boolean_value(stored.conflict_resolved),
    );
    ds::Entity {
        key: Some(key),
        properties,
    }
}

/// What the entity and its tombstone both carry: `version`, `last_modified`
/// and the bookkeeping (none for a foreign entity's stored form), in a map
/// with room for `capacity` properties.
fn common_properties(stored: &StoredEntity, capacity: usize) -> HashMap<String, ds::Value> {
    let mut properties = HashMap::with_capacity(capacity);
    properties.insert(VERSION.into(), integer_value(stored.version));
    properties.insert(
        LAST_MODIFIED.into(),
        stored
            .last_modified
            .map_or_else(null_value, timestamp_value),
    );
    if let Some(bookkeeping) = &stored.bookkeeping {
        properties.insert(BOOKKEEPING_PROPERTY.into(), string_value(bookkeeping, true));
    }
    properties
}

/// The tombstone for `stored` (an entity that does not exist), under `key`.
pub(crate) fn tombstone_entity(
    key: ds::Key,
    stored: &StoredEntity,
    deleted_at: Option<DateTime<Utc>>,
    expire_at: DateTime<Utc>,
) -> ds::Entity {
    let mut properties = common_properties(stored, 5);
    properties.insert(
        DELETED_AT.into(),
        deleted_at.map_or_else(null_value, timestamp_value),
    );
    properties.insert(EXPIRE_AT.into(), timestamp_value(expire_at));
    ds::Entity {
        key: Some(key),
        properties,
    }
}

/// The storage-neutral form of a main entity (`exists`) or a tombstone.
///
/// # Errors
/// A description of the first bookkeeping property of the wrong type.
pub(crate) fn stored_of(entity: &ds::Entity, exists: bool) -> Result<StoredEntity, String> {
    let props = &entity.properties;
    let version = match props.get(VERSION).and_then(|v| v.value_type.as_ref()) {
        None | Some(ValueType::NullValue(_)) => 0,
        Some(ValueType::IntegerValue(i)) => *i,
        Some(_) => return Err(format!("`{VERSION}` is not an integer")),
    };
    let last_modified = match props.get(LAST_MODIFIED) {
        None => None,
        Some(v) => match &v.value_type {
            None | Some(ValueType::NullValue(_)) => None,
            Some(ValueType::TimestampValue(_)) => timestamp_of(v),
            Some(ValueType::StringValue(s)) => sync_core::parse_timestamp(s).ok(),
            Some(_) => return Err(format!("`{LAST_MODIFIED}` is not a timestamp")),
        },
    };
    let conflict_resolved = matches!(
        props
            .get(CONFLICT_RESOLVED)
            .and_then(|v| v.value_type.as_ref()),
        Some(ValueType::BooleanValue(true))
    );
    let bookkeeping = match props
        .get(BOOKKEEPING_PROPERTY)
        .and_then(|v| v.value_type.as_ref())
    {
        // Written by someone else: adopted on read.
        None | Some(ValueType::NullValue(_)) => None,
        Some(ValueType::StringValue(s)) => Some(s.clone()),
        Some(_) => return Err(format!("`{BOOKKEEPING_PROPERTY}` is not a string")),
    };
    let fields = if exists {
        props
            .iter()
            .filter(|(name, _)| !RESERVED_FIELDS.contains(&name.as_str()))
            .map(|(name, v)| (name.clone(), from_value(v)))
            .collect()
    } else {
        Map::new()
    };
    Ok(StoredEntity {
        exists,
        fields,
        version,
        last_modified,
        conflict_resolved,
        bookkeeping,
    })
}

/// Estimated stored size of the main entity for `stored`, following
/// Datastore's storage-size rules closely enough to refuse what it would.
pub(crate) fn estimated_size(kind: &str, entity_id: &str, stored: &StoredEntity) -> usize {
    // Key: each path element's kind and name (+1 each), plus a fixed overhead.
    let key = kind.len() + 1 + entity_id.len() + 1 + 16;
    let fields = fields_size(&stored.fields);
    let bookkeeping = stored
        .bookkeeping
        .as_ref()
        .map_or(0, |b| BOOKKEEPING_PROPERTY.len() + 1 + b.len() + 1);
    let fixed = VERSION.len()
        + 1
        + 8
        + LAST_MODIFIED.len()
        + 1
        + 8
        + SYNC_STATUS.len()
        + 1
        + SYNCED.len()
        + 1
        + CONFLICT_RESOLVED.len()
        + 1
        + 1;
    // Entity overhead.
    key + fields + bookkeeping + fixed + 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: &Json) -> Json {
        from_value(&to_value(v))
    }

    #[test]
    fn every_json_type_round_trips() {
        let long = "l".repeat(2000);
        let v = json!({
            "s": "text", "long": long, "i": 42, "min": i64::MIN, "max": i64::MAX,
            "f": 1.5, "whole_double": 2.0, "t": true, "n": null,
            "mixed": [1, "a", 2.5, false, null],
            "objects": [{"a": 1}, {"b": [1, 2]}],
            "nested": {"inner": {"deep": "x"}, "list": []}
        });
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn long_strings_are_unindexed_everywhere() {
        let long = "é".repeat(800); // 1600 bytes
        let v = to_value(&json!({"top": long, "arr": [long, "short"], "obj": {"x": long}}));
        let Some(ValueType::EntityValue(e)) = v.value_type else {
            panic!("object maps to an embedded entity");
        };
        let top = e.properties.get("top").expect("top");
        assert!(top.exclude_from_indexes);
        let Some(ValueType::ArrayValue(arr)) = &e.properties.get("arr").expect("arr").value_type
        else {
            panic!("array maps to an array value");
        };
        assert!(!e.properties.get("arr").expect("arr").exclude_from_indexes);
        assert!(arr.values.first().expect("first").exclude_from_indexes);
        assert!(!arr.values.get(1).expect("second").exclude_from_indexes);
        let Some(ValueType::EntityValue(inner)) = &e.properties.get("obj").expect("obj").value_type
        else {
            panic!("nested object");
        };
        assert!(inner.properties.get("x").expect("x").exclude_from_indexes);
        assert!(!string_value(&"a".repeat(1500), false).exclude_from_indexes);
        assert!(string_value(&"a".repeat(1501), false).exclude_from_indexes);
    }

    #[test]
    fn foreign_types_read_as_documented_json() {
        let ts = timestamp_value(
            sync_core::parse_timestamp("2025-07-23T10:15:30.123456Z").expect("timestamp"),
        );
        assert_eq!(from_value(&ts), json!("2025-07-23T10:15:30.123456Z"));
        let blob = typed(ValueType::BlobValue(b"hi".to_vec()), false);
        assert_eq!(from_value(&blob), json!("aGk="));
        let geo = typed(
            ValueType::GeoPointValue(gcloud_sdk::google::r#type::LatLng {
                latitude: 1.5,
                longitude: -2.25,
            }),
            false,
        );
        assert_eq!(
            from_value(&geo),
            json!({"latitude": 1.5, "longitude": -2.25})
        );
        let key = typed(
            ValueType::KeyValue(ds::Key {
                partition_id: Some(ds::PartitionId {
                    project_id: "p".into(),
                    database_id: String::new(),
                    namespace_id: "ns".into(),
                }),
                path: vec![
                    ds::key::PathElement {
                        kind: "A".into(),
                        id_type: Some(ds::key::path_element::IdType::Name("a".into())),
                    },
                    ds::key::PathElement {
                        kind: "B".into(),
                        id_type: Some(ds::key::path_element::IdType::Id(7)),
                    },
                ],
            }),
            false,
        );
        assert_eq!(
            from_value(&key),
            json!({"namespace": "ns", "path": [{"kind": "A", "name": "a"}, {"kind": "B", "id": 7}]})
        );
        let nan = typed(ValueType::DoubleValue(f64::NAN), false);
        assert_eq!(from_value(&nan), Json::Null);
        assert_eq!(from_value(&ds::Value::default()), Json::Null);
    }

    #[test]
    fn main_entity_round_trips_through_stored() {
        let stored = StoredEntity {
            exists: true,
            fields: json!({"name": "Test Product", "n": 3})
                .as_object()
                .cloned()
                .expect("object"),
            version: 2,
            last_modified: Some(
                sync_core::parse_timestamp("2025-07-23T10:00:00.5").expect("timestamp"),
            ),
            conflict_resolved: true,
            bookkeeping: Some("{\"v\":1}".into()),
        };
        let entity = main_entity(ds::Key::default(), &stored, None);
        let sync = entity.properties.get(BOOKKEEPING_PROPERTY).expect("_sync");
        assert!(sync.exclude_from_indexes);
        assert_eq!(
            from_value(entity.properties.get(SYNC_STATUS).expect("status")),
            json!("synced")
        );
        assert_eq!(stored_of(&entity, true).expect("readable"), stored);
        let tomb = tombstone_entity(ds::Key::default(), &stored, None, Utc::now());
        let back = stored_of(&tomb, false).expect("readable");
        assert!(!back.exists && back.fields.is_empty());
        assert_eq!(back.version, 2);
        assert_eq!(back.bookkeeping, stored.bookkeeping);
    }

    #[test]
    fn unchanged_fields_keep_their_stored_type() {
        let created =
            timestamp_value(sync_core::parse_timestamp("2025-07-01T00:00:00Z").expect("ts"));
        let mut previous = ds::Entity::default();
        previous
            .properties
            .insert("created_at".into(), created.clone());
        let stored = stored_of(&previous, true).expect("readable");
        let written = main_entity(ds::Key::default(), &stored, Some((&previous, &stored)));
        assert_eq!(written.properties.get("created_at"), Some(&created));
    }

    #[test]
    fn wrong_bookkeeping_types_are_reported() {
        let mut e = ds::Entity::default();
        e.properties
            .insert(VERSION.into(), string_value("x", false));
        assert!(stored_of(&e, true)
            .expect_err("corrupt")
            .contains("version"));
        let mut e = ds::Entity::default();
        e.properties
            .insert(BOOKKEEPING_PROPERTY.into(), integer_value(1));
        assert!(stored_of(&e, true).expect_err("corrupt").contains("_sync"));
    }

    /// Index entries of a Datastore entity as written: every indexed value,
    /// each array element, embedded entities through their properties.
    fn written_index_entries(properties: &HashMap<String, ds::Value>) -> usize {
        fn entries(v: &ds::Value) -> usize {
            match &v.value_type {
                Some(ValueType::ArrayValue(a)) => a.values.iter().map(entries).sum(),
                Some(ValueType::EntityValue(e)) => written_index_entries(&e.properties),
                _ => usize::from(!v.exclude_from_indexes),
            }
        }
        properties.values().map(entries).sum()
    }

    /// The core's count (used before the write) is what the written entity has.
    #[test]
    fn core_index_count_matches_the_written_entity() {
        let long = "l".repeat(MAX_INDEXED_BYTES + 1);
        let edge = "e".repeat(MAX_INDEXED_BYTES);
        for fields in [
            json!({}),
            json!({"s": "x", "n": null, "b": false, "i": 3, "f": 2.5}),
            json!({"arr": [1, "a", null, long, edge], "empty": []}),
            json!({"o": {"a": 1, "deep": {"b": [1, {"c": long}, {"d": edge}]}}, "long": long}),
        ] {
            let stored = StoredEntity {
                exists: true,
                fields: fields.as_object().cloned().expect("object"),
                bookkeeping: Some("{\"v\":1}".into()),
                ..StoredEntity::default()
            };
            let entity = main_entity(ds::Key::default(), &stored, None);
            assert_eq!(
                written_index_entries(&entity.properties),
                sync_core::ingest::limits::index_entries(&stored.fields)
                    + sync_core::ingest::limits::BOOKKEEPING_INDEX_ENTRIES,
                "{fields}"
            );
        }
    }

    #[test]
    fn size_estimate_counts_fields_and_bookkeeping() {
        let mut stored = StoredEntity::default();
        let small = estimated_size("K", "id", &stored);
        stored
            .fields
            .insert("big".into(), Json::String("x".repeat(1000)));
        stored.bookkeeping = Some("y".repeat(500));
        assert!(estimated_size("K", "id", &stored) >= small + 1500);
    }
}
