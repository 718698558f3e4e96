//! The protobuf body of a Datastore entity event,
//! `google.events.cloud.datastore.v1.EntityEventData`, declared for prost.
//!
//! The declarations follow the field numbers Google publishes for the
//! package (googleapis/google-cloudevents,
//! `proto/google/events/cloud/datastore/v1/data.proto`); the names are that
//! file's, the comments are ours. The entity messages (`Entity`, `Key`,
//! `Value`, …) carry the same numbers as `google.datastore.v1`, so a value
//! encoded by a Datastore client decodes here unchanged. They are declared by
//! hand with `#[derive(prost::Message)]`: no build script, no `protoc`.
//!
//! prost ignores fields it does not know and keeps decoding, so a field
//! Google adds later does not break the decoder. Every message here also
//! encodes, which is how tests build events (`prost::Message::encode_to_vec`).

use prost_types::Timestamp;
use std::collections::BTreeMap;

/// The body of every Datastore entity event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntityEventData {
    /// The entity after the change. Absent when the change is a delete.
    #[prost(message, optional, tag = "1")]
    pub value: Option<EntityResult>,
    /// The entity before the change. Present for updates and deletes only.
    #[prost(message, optional, tag = "2")]
    pub old_value: Option<EntityResult>,
    /// Which properties the change touched. Present for updates only.
    #[prost(message, optional, tag = "3")]
    pub update_mask: Option<PropertyMask>,
}

/// Paths of the properties a change touched.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PropertyMask {
    /// One path per property: names joined by `.`, a name holding `.` or `\`
    /// escaped (see [`crate::mapping`] for how they are read).
    #[prost(string, repeated, tag = "1")]
    pub property_paths: Vec<String>,
}

/// A snapshot of one entity, with its version and times.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntityResult {
    /// The entity: key and properties.
    #[prost(message, optional, tag = "1")]
    pub entity: Option<Entity>,
    /// Grows with every change of the entity.
    #[prost(int64, tag = "4")]
    pub version: i64,
    /// When the entity was created.
    #[prost(message, optional, tag = "6")]
    pub create_time: Option<Timestamp>,
    /// When the entity last changed: the commit time of the write that made
    /// this snapshot.
    #[prost(message, optional, tag = "5")]
    pub update_time: Option<Timestamp>,
    /// A query cursor; empty in events.
    #[prost(bytes = "vec", tag = "3")]
    pub cursor: Vec<u8>,
}

/// Where a key lives: project, database and namespace (empty for the
/// defaults).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionId {
    /// The project.
    #[prost(string, tag = "2")]
    pub project_id: String,
    /// The database; empty for the default one.
    #[prost(string, tag = "3")]
    pub database_id: String,
    /// The namespace; empty for the default one.
    #[prost(string, tag = "4")]
    pub namespace_id: String,
}

/// An entity's key: its partition and its path from the root entity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Key {
    /// Project, database and namespace.
    #[prost(message, optional, tag = "1")]
    pub partition_id: Option<PartitionId>,
    /// The ancestors first, the entity itself last.
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<PathElement>,
}

/// One step of a key's path: a kind and an id or a name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathElement {
    /// The kind.
    #[prost(string, tag = "1")]
    pub kind: String,
    /// The numeric id or the name; neither in an incomplete key.
    #[prost(oneof = "IdType", tags = "2, 3")]
    pub id_type: Option<IdType>,
}

/// How a path element identifies its entity.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum IdType {
    /// A numeric id (Datastore allocates them).
    #[prost(int64, tag = "2")]
    Id(i64),
    /// A name the writer chose.
    #[prost(string, tag = "3")]
    Name(String),
}

/// A list value. Its elements are never lists themselves.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The elements, in order.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// One property value, of any Datastore type, and how it is indexed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The type and the value; `None` when the sender set none.
    #[prost(oneof = "ValueType", tags = "11, 1, 2, 3, 10, 5, 17, 18, 8, 6, 9")]
    pub value_type: Option<ValueType>,
    /// A legacy meaning code (kept by Datastore for old clients).
    #[prost(int32, tag = "14")]
    pub meaning: i32,
    /// Whether the value is left out of every index.
    #[prost(bool, tag = "19")]
    pub exclude_from_indexes: bool,
}

/// The value a [`Value`] holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ValueType {
    /// Null (the number is `google.protobuf.NullValue`, always 0).
    #[prost(enumeration = "prost_types::NullValue", tag = "11")]
    NullValue(i32),
    /// A boolean.
    #[prost(bool, tag = "1")]
    BooleanValue(bool),
    /// A 64-bit integer.
    #[prost(int64, tag = "2")]
    IntegerValue(i64),
    /// A 64-bit float.
    #[prost(double, tag = "3")]
    DoubleValue(f64),
    /// A point in time (Datastore keeps microseconds).
    #[prost(message, tag = "10")]
    TimestampValue(Timestamp),
    /// A key of another entity.
    #[prost(message, tag = "5")]
    KeyValue(Key),
    /// UTF-8 text.
    #[prost(string, tag = "17")]
    StringValue(String),
    /// Bytes.
    #[prost(bytes = "vec", tag = "18")]
    BlobValue(Vec<u8>),
    /// A latitude and longitude.
    #[prost(message, tag = "8")]
    GeoPointValue(LatLng),
    /// An embedded entity (its key, if any, is optional).
    #[prost(message, tag = "6")]
    EntityValue(Entity),
    /// A list.
    #[prost(message, tag = "9")]
    ArrayValue(ArrayValue),
}

/// An entity: a key and named property values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entity {
    /// The key; may be absent in an embedded entity.
    #[prost(message, optional, tag = "1")]
    pub key: Option<Key>,
    /// The properties, by name (sorted, so iteration is deterministic).
    #[prost(btree_map = "string, message", tag = "3")]
    pub properties: BTreeMap<String, Value>,
}

/// A point on Earth, in degrees (`google.type.LatLng`).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct LatLng {
    /// Latitude, -90 to 90.
    #[prost(double, tag = "1")]
    pub latitude: f64,
    /// Longitude, -180 to 180.
    #[prost(double, tag = "2")]
    pub longitude: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes written by hand from the protobuf encoding rules, not by prost:
    /// `EntityEventData { value: EntityResult { version: 3, entity: Entity {
    /// properties: {"n": Value { integer_value: 7 }} } } }`.
    #[test]
    fn decodes_hand_encoded_bytes() {
        let value = [0x10, 0x07]; // Value: field 2 (varint) = 7
        let entry = [
            &[0x0a, 0x01, b'n'][..],    // map key: field 1 = "n"
            &[0x12, value.len() as u8], // map value: field 2, length
            &value,
        ]
        .concat();
        let entity = [&[0x1a, entry.len() as u8][..], &entry].concat(); // properties: field 3
        let result = [&[0x0a, entity.len() as u8][..], &entity, &[0x20, 0x03]].concat(); // entity: 1, version: 4
        let body = [&[0x0a, result.len() as u8][..], &result].concat(); // value: field 1
        let event = EntityEventData::decode(body.as_slice()).expect("valid protobuf");
        let result = event.value.expect("value");
        assert_eq!(result.version, 3);
        let properties = result.entity.expect("entity").properties;
        assert_eq!(
            properties.get("n").and_then(|v| v.value_type.clone()),
            Some(ValueType::IntegerValue(7))
        );
        assert!(event.old_value.is_none() && event.update_mask.is_none());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // Field 15 (varint) is not declared; field 2 (old_value) is empty.
        let body = [0x78, 0x01, 0x12, 0x00];
        let event = EntityEventData::decode(body.as_slice()).expect("valid protobuf");
        assert_eq!(event.old_value, Some(EntityResult::default()));
    }

    #[test]
    fn truncated_bytes_do_not_decode() {
        let body = [0x0a, 0x05, 0x20];
        assert!(EntityEventData::decode(body.as_slice()).is_err());
    }
}
