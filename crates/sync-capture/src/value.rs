//! Datastore values as the JSON of a change event's `data`.
//!
//! Each Datastore type becomes the JSON that the sync function stores back as
//! the same type where JSON has one (null, boolean, integer, double, string,
//! array, embedded entity). The others become the JSON the sync store itself
//! reads them as (`sync-store`'s `mapping` module), so a captured value and
//! a value read back from the synced store look alike:
//!
//! - timestamp → RFC 3339 text, UTC, microseconds (`2025-07-23T10:15:30.123456Z`);
//! - key → `{"namespace": ns (only when not the default), "path": [{"kind": k,
//!   "name": n} | {"kind": k, "id": i}, …]}` (project and database left out);
//! - geo point → `{"latitude": f, "longitude": f}`;
//! - blob → standard base64 text;
//! - a double that is NaN or infinite (JSON has none) → null;
//! - a value with no type set → null.
//!
//! An embedded entity loses its key, if it had one. `exclude_from_indexes`
//! and `meaning` are not carried: the sync function decides indexing itself
//! (it leaves only strings over 1500 bytes unindexed). `docs/capture.md`
//! lists what cannot round-trip.

use crate::proto::{Entity, IdType, Key, Value, ValueType};
use base64::Engine as _;
use chrono::DateTime;
use serde_json::{Map, Number, Value as Json};
use std::collections::BTreeMap;
use sync_core::format_timestamp;

/// The JSON of one Datastore value (see the module docs).
///
/// ```
/// use sync_capture::proto::{Value, ValueType};
/// use sync_capture::value::to_json;
/// let blob = Value { value_type: Some(ValueType::BlobValue(b"hi".to_vec())), ..Value::default() };
/// assert_eq!(to_json(&blob), serde_json::json!("aGk="));
/// ```
pub fn to_json(value: &Value) -> Json {
    let Some(value_type) = &value.value_type else {
        return Json::Null;
    };
    match value_type {
        ValueType::NullValue(_) => Json::Null,
        ValueType::BooleanValue(b) => Json::Bool(*b),
        ValueType::IntegerValue(i) => Json::from(*i),
        ValueType::DoubleValue(f) => double(*f),
        ValueType::TimestampValue(ts) => u32::try_from(ts.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
            .map_or(Json::Null, |t| Json::String(format_timestamp(&t))),
        ValueType::KeyValue(key) => key_to_json(key),
        ValueType::StringValue(s) => Json::String(s.clone()),
        ValueType::BlobValue(bytes) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        ValueType::GeoPointValue(point) => {
            let mut obj = Map::new();
            obj.insert("latitude".into(), double(point.latitude));
            obj.insert("longitude".into(), double(point.longitude));
            Json::Object(obj)
        }
        ValueType::EntityValue(entity) => Json::Object(entity_to_json(entity)),
        ValueType::ArrayValue(array) => Json::Array(array.values.iter().map(to_json).collect()),
    }
}

/// The JSON object of an entity's properties (its key left out).
pub fn entity_to_json(entity: &Entity) -> Map<String, Json> {
    properties_to_json(&entity.properties)
}

fn properties_to_json(properties: &BTreeMap<String, Value>) -> Map<String, Json> {
    properties
        .iter()
        .map(|(name, v)| (name.clone(), to_json(v)))
        .collect()
}

fn double(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn key_to_json(key: &Key) -> Json {
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
        .map(|element| {
            let mut el = Map::new();
            el.insert("kind".into(), Json::String(element.kind.clone()));
            match &element.id_type {
                Some(IdType::Name(n)) => {
                    el.insert("name".into(), Json::String(n.clone()));
                }
                Some(IdType::Id(i)) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ArrayValue, LatLng, PartitionId, PathElement};
    use prost_types::Timestamp;
    use serde_json::json;

    fn v(value_type: ValueType) -> Value {
        Value {
            value_type: Some(value_type),
            ..Value::default()
        }
    }

    #[test]
    fn types_with_a_json_twin_keep_their_type() {
        assert_eq!(to_json(&v(ValueType::NullValue(0))), Json::Null);
        assert_eq!(to_json(&v(ValueType::BooleanValue(true))), json!(true));
        assert_eq!(
            to_json(&v(ValueType::IntegerValue(i64::MIN))),
            json!(i64::MIN)
        );
        assert_eq!(
            to_json(&v(ValueType::StringValue("é€".into()))),
            json!("é€")
        );
        // A whole double stays a double: it is written with a fraction, so
        // the sync function reads it back as a double, not an integer.
        let whole = to_json(&v(ValueType::DoubleValue(2.0)));
        assert_eq!(whole.to_string(), "2.0");
        assert!(whole.is_f64());
        assert_eq!(to_json(&v(ValueType::DoubleValue(-0.5))), json!(-0.5));
        let list = v(ValueType::ArrayValue(ArrayValue {
            values: vec![v(ValueType::IntegerValue(1)), v(ValueType::NullValue(0))],
        }));
        assert_eq!(to_json(&list), json!([1, null]));
        let mut inner = Entity::default();
        inner
            .properties
            .insert("a".into(), v(ValueType::BooleanValue(false)));
        inner.key = Some(Key::default());
        assert_eq!(
            to_json(&v(ValueType::EntityValue(inner))),
            json!({"a": false})
        );
    }

    #[test]
    fn doubles_json_cannot_hold_become_null() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(to_json(&v(ValueType::DoubleValue(f))), Json::Null, "{f}");
        }
        assert_eq!(to_json(&Value::default()), Json::Null);
    }

    #[test]
    fn types_without_a_json_twin_follow_the_documented_shapes() {
        let ts = v(ValueType::TimestampValue(Timestamp {
            seconds: 1_753_265_730,
            nanos: 123_456_789,
        }));
        assert_eq!(to_json(&ts), json!("2025-07-23T10:15:30.123456Z"));
        let bad_ts = v(ValueType::TimestampValue(Timestamp {
            seconds: 0,
            nanos: -1,
        }));
        assert_eq!(to_json(&bad_ts), Json::Null);
        let blob = v(ValueType::BlobValue(vec![0xff, 0x00, 0x10]));
        assert_eq!(to_json(&blob), json!("/wAQ"));
        let geo = v(ValueType::GeoPointValue(LatLng {
            latitude: 52.5,
            longitude: -0.25,
        }));
        assert_eq!(to_json(&geo), json!({"latitude": 52.5, "longitude": -0.25}));
        let key = v(ValueType::KeyValue(Key {
            partition_id: Some(PartitionId {
                project_id: "p".into(),
                database_id: "db".into(),
                namespace_id: "shop".into(),
            }),
            path: vec![
                PathElement {
                    kind: "Store".into(),
                    id_type: Some(IdType::Name("north".into())),
                },
                PathElement {
                    kind: "Shelf".into(),
                    id_type: Some(IdType::Id(7)),
                },
            ],
        }));
        assert_eq!(
            to_json(&key),
            json!({"namespace": "shop", "path": [{"kind": "Store", "name": "north"}, {"kind": "Shelf", "id": 7}]})
        );
        let default_ns = v(ValueType::KeyValue(Key {
            partition_id: Some(PartitionId::default()),
            path: vec![PathElement {
                kind: "K".into(),
                id_type: None,
            }],
        }));
        assert_eq!(to_json(&default_ns), json!({"path": [{"kind": "K"}]}));
    }
}
