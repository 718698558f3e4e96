//! A stand-in for Eventarc, for local runs: the entity event Eventarc would
//! deliver for a change, built from the entity's snapshots before and after
//! it, as a Datastore lookup returned them.
//!
//! No emulator emits Datastore entity events, so the tests and the demo
//! write an entity to the emulator as an application would, read it back,
//! and deliver what [`entity_event`] builds with [`EntityEvent::to_request`].
//! The snapshots are genuine (Datastore's own `EntityResult`, whose field
//! numbers [`crate::proto`] shares); what is made up here is what only a real
//! trigger knows: the headers' exact spelling (modelled on the fixtures,
//! `crates/sync-capture/fixtures`) and the update mask, which is worked out
//! by comparing the snapshots property by property, top-level names only.
//! Like a real trigger, it emits nothing for a write that changed nothing.
//!
//! It does no I/O either; the production function never calls it.

use crate::event::{Change, EntityEvent, EventType, DEFAULT_NAME};
use crate::proto::{ArrayValue, Entity, EntityEventData, EntityResult, IdType, Key, PropertyMask};
use crate::proto::{Value, ValueType};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Where the events come from, as Eventarc names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The project.
    pub project: String,
    /// The database id; [`DEFAULT_NAME`] for the default database.
    pub database: String,
    /// The namespace; [`DEFAULT_NAME`] for the default namespace.
    pub namespace: String,
    /// The trigger's location.
    pub location: String,
}

impl Origin {
    /// `project`'s default database, in `namespace` (`None` or empty: the
    /// default namespace), in `us-central1`.
    pub fn new(project: impl Into<String>, namespace: Option<&str>) -> Self {
        Self {
            project: project.into(),
            database: DEFAULT_NAME.to_string(),
            namespace: namespace
                .filter(|ns| !ns.is_empty())
                .unwrap_or(DEFAULT_NAME)
                .to_string(),
            location: "us-central1".to_string(),
        }
    }
}

/// The event of a change from `before` to `after` (either absent: a create
/// or a delete), with CloudEvent id `id`, type `event_type` (a `written`
/// trigger's type is Eventarc's for every change), at `time` (the commit
/// time). `None` when the change is none Eventarc reports: nothing before
/// and after, a write that changed no property, or a type the change is not
/// (`updated` for a create, say).
///
/// ```
/// use sync_capture::emulate::{entity_event, Origin};
/// use sync_capture::event::{Change, EventType};
/// use sync_capture::proto::{Entity, EntityResult, IdType, Key, PathElement};
/// let key = Key { partition_id: None, path: vec![PathElement { kind: "Product".into(), id_type: Some(IdType::Name("p-1".into())) }] };
/// let after = EntityResult { entity: Some(Entity { key: Some(key), properties: Default::default() }), version: 1, ..Default::default() };
/// let written = EventType::parse("google.cloud.datastore.entity.v1.written").expect("a type");
/// let e = entity_event(&Origin::new("p", None), "ev-1", written, None, Some(after), chrono::Utc::now())
///     .expect("a create is reported");
/// assert_eq!(e.entity.as_deref(), Some("Product/p-1"));
/// assert_eq!(sync_capture::decide(&e, &sync_capture::CaptureFilter::every_kind(sync_capture::OwnKinds::new("SyncEntity")))
///     .map(|d| matches!(d, sync_capture::Decision::Forward(_))), Ok(true));
/// ```
pub fn entity_event(
    origin: &Origin,
    id: impl Into<String>,
    event_type: EventType,
    before: Option<EntityResult>,
    after: Option<EntityResult>,
    time: DateTime<Utc>,
) -> Option<EntityEvent> {
    let change = match (&before, &after) {
        (None, None) => return None,
        (None, Some(_)) => Change::Created,
        (Some(_), Some(_)) => Change::Updated,
        (Some(_), None) => Change::Deleted,
    };
    if event_type.change != Change::Written && event_type.change != change {
        return None;
    }
    let update_mask = match (&before, &after) {
        (Some(b), Some(a)) => {
            let changed = changed_properties(b, a);
            if changed.is_empty() {
                return None;
            }
            Some(PropertyMask {
                property_paths: changed.into_iter().collect(),
            })
        }
        _ => None,
    };
    let key = after
        .as_ref()
        .or(before.as_ref())
        .and_then(|r| r.entity.as_ref())
        .and_then(|e| e.key.as_ref());
    let path = key.map(entity_path);
    let id = id.into();
    Some(EntityEvent {
        source: format!(
            "//firestore.googleapis.com/projects/{}/databases/{}",
            origin.project, origin.database
        ),
        subject: path.as_ref().map(|p| format!("entities/{p}")),
        entity: path,
        time: Some(time),
        database: Some(origin.database.clone()),
        namespace: Some(origin.namespace.clone()),
        project: Some(origin.project.clone()),
        location: Some(origin.location.clone()),
        auth_type: event_type
            .with_auth_context
            .then(|| "service_account".to_string()),
        auth_id: event_type
            .with_auth_context
            .then(|| format!("app@{}.iam.gserviceaccount.com", origin.project)),
        event_type,
        id,
        data: EntityEventData {
            value: after,
            old_value: before,
            update_mask,
        },
    })
}

/// A JSON value as the Datastore value an application would write for it:
/// null, boolean, integer (a number beyond 64 bits, or with a fraction, a
/// double), string, array (each element so), object (an embedded entity
/// without a key). For tools that write entities from JSON (`syncctl
/// capture-write`).
///
/// ```
/// use sync_capture::emulate::value_from_json;
/// use sync_capture::value::to_json;
/// let v = serde_json::json!({"name": "Lamp", "price": 17.5, "tags": ["a", 1], "n": null});
/// assert_eq!(to_json(&value_from_json(&v)), v);
/// ```
pub fn value_from_json(json: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    let value_type = match json {
        Json::Null => ValueType::NullValue(0),
        Json::Bool(b) => ValueType::BooleanValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ValueType::IntegerValue(i),
            None => ValueType::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => ValueType::StringValue(s.clone()),
        Json::Array(items) => ValueType::ArrayValue(ArrayValue {
            values: items.iter().map(value_from_json).collect(),
        }),
        Json::Object(map) => ValueType::EntityValue(Entity {
            key: None,
            properties: map
                .iter()
                .map(|(k, v)| (k.clone(), value_from_json(v)))
                .collect(),
        }),
    };
    Value {
        value_type: Some(value_type),
        ..Value::default()
    }
}

/// The key's path as the `entity` attribute spells it: `Kind/name/Kind/name…`,
/// a numeric id as `__id<n>__` (the fixtures' form).
pub fn entity_path(key: &Key) -> String {
    key.path
        .iter()
        .map(|e| match &e.id_type {
            Some(IdType::Name(n)) => format!("{}/{n}", e.kind),
            Some(IdType::Id(i)) => format!("{}/__id{i}__", e.kind),
            None => e.kind.clone(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The top-level properties whose presence or value differ.
fn changed_properties(before: &EntityResult, after: &EntityResult) -> BTreeSet<String> {
    fn props(r: &EntityResult) -> Option<&BTreeMap<String, Value>> {
        r.entity.as_ref().map(|e| &e.properties)
    }
    let empty = BTreeMap::new();
    let (b, a) = (
        props(before).unwrap_or(&empty),
        props(after).unwrap_or(&empty),
    );
    a.iter()
        .filter(|(name, v)| b.get(*name) != Some(*v))
        .map(|(name, _)| name.clone())
        .chain(b.keys().filter(|n| !a.contains_key(*n)).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{decide, Decision};
    use crate::proto::PathElement;
    use crate::{CaptureFilter, OwnKinds};
    use sync_core::Operation;

    fn snapshot(version: i64, props: &[(&str, &str)]) -> EntityResult {
        EntityResult {
            entity: Some(Entity {
                key: Some(Key {
                    partition_id: None,
                    path: vec![PathElement {
                        kind: "Product".into(),
                        id_type: Some(IdType::Id(42)),
                    }],
                }),
                properties: props
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            Value {
                                value_type: Some(ValueType::StringValue(v.to_string())),
                                ..Value::default()
                            },
                        )
                    })
                    .collect(),
            }),
            version,
            ..EntityResult::default()
        }
    }

    fn written() -> EventType {
        EventType::parse("google.cloud.datastore.entity.v1.written").expect("a type")
    }

    fn forward(e: &EntityEvent) -> sync_core::wire::EventMessage {
        match decide(e, &CaptureFilter::every_kind(OwnKinds::new("SyncEntity"))) {
            Ok(Decision::Forward(c)) => c.message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_change_is_the_event_the_capture_reads_back() {
        let now = Utc::now();
        let o = Origin::new("p", Some("app"));
        let a = snapshot(1, &[("name", "Lamp"), ("colour", "red")]);
        let b = snapshot(2, &[("name", "Lamp"), ("price", "10")]);
        let create = entity_event(&o, "c", written(), None, Some(a.clone()), now).expect("create");
        assert_eq!(create.entity.as_deref(), Some("Product/__id42__"));
        assert_eq!(create.namespace.as_deref(), Some("app"));
        let m = forward(&create);
        assert_eq!(
            (m.operation, m.entity_id.as_str()),
            (Operation::Create, "42")
        );
        let update = entity_event(&o, "u", written(), Some(a.clone()), Some(b.clone()), now)
            .expect("update");
        assert_eq!(
            update
                .data
                .update_mask
                .as_ref()
                .map(|m| m.property_paths.clone()),
            Some(vec!["colour".to_string(), "price".to_string()])
        );
        let m = forward(&update);
        assert_eq!(m.removed, ["colour"]);
        assert_eq!(m.data.map(|d| d.len()), Some(1));
        let delete = entity_event(&o, "d", written(), Some(b), None, now).expect("delete");
        assert_eq!(forward(&delete).operation, Operation::Delete);
        // The request round-trips through the decoder.
        let (headers, body) = update.to_request().expect("headers");
        assert_eq!(crate::decode(&headers, &body), Ok(update));
    }

    #[test]
    fn nothing_is_reported_for_no_change_or_a_type_the_change_is_not() {
        let now = Utc::now();
        let o = Origin::new("p", None);
        let a = snapshot(1, &[("name", "Lamp")]);
        assert!(entity_event(&o, "x", written(), None, None, now).is_none());
        assert!(entity_event(&o, "x", written(), Some(a.clone()), Some(a.clone()), now).is_none());
        let updated = EventType::parse("google.cloud.datastore.entity.v1.updated").expect("type");
        assert!(entity_event(&o, "x", updated, None, Some(a.clone()), now).is_none());
        let auth = EventType::parse("google.cloud.datastore.entity.v1.created.withAuthContext")
            .expect("t");
        let e = entity_event(&o, "x", auth, None, Some(a), now).expect("created");
        assert!(e.auth_id.is_some() && e.auth_type.is_some());
    }
}
