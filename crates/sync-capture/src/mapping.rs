//! What the capture function does with a decoded entity event: forward it as
//! the recipe's change event, or not ([`decide`]).
//!
//! In order, and each step only when the one before let the event through:
//!
//! 1. **Operation and snapshot.** `created`, `updated` and `deleted` say the
//!    operation; `written` is a create when only `value` is present, an
//!    update when both `value` and `old_value` are, a delete when only
//!    `old_value` is. The snapshot read is `value`, or `old_value` for a
//!    delete; an event without it is refused (`missing_snapshot`).
//! 2. **Kind.** The key's last path element's kind; a kind the
//!    [`CaptureFilter`] does not admit is [`Decision::Ignored`].
//! 3. **Echo.** A snapshot carrying the sync function's bookkeeping property
//!    ([`BOOKKEEPING_PROPERTY`]) is the sync function's own write:
//!    [`Decision::Echo`], never forwarded.
//! 4. **Key.** `entity_id` is the last element's name, or its numeric id in
//!    decimal. A key with ancestors is refused (`ancestor_key`): the synced
//!    store keys entities by `(kind, entity_id)` alone, so two children of
//!    different parents with the same id would silently become one entity.
//! 5. **Commit time.** `timestamp` is the snapshot's `update_time` (the
//!    commit time of the write) for a create or update, and the CloudEvent
//!    `time` for a delete, whose only snapshot is older than it; the
//!    CloudEvent `time` also stands in for a missing `update_time`.
//! 6. **Data.** A create carries every property; an update only the
//!    top-level properties its `update_mask` names (a nested path
//!    `a.b` names `a`, sent whole), so the per-field merge takes exactly
//!    what the writer changed. A masked property absent from `value` was
//!    removed: it is listed in the change event's `removed`, not sent in
//!    `data` (a `null` there would store a null). An update without a mask
//!    falls back to comparing `old_value` with `value`.
//!    A property with a name the sync function reserves is refused
//!    (`reserved_field`), as the sync function would refuse it.
//!
//! `source` is [`source_name`] of the event's database and namespace; the
//! correlation id and the change event's `event_id` are the CloudEvent id,
//! so every delivery of one change is the same event.

use crate::event::{Change, EntityEvent, EventType, DEFAULT_NAME};
use crate::filter::CaptureFilter;
use crate::proto::{Entity, EntityEventData, EntityResult, IdType, Key, PathElement};
use crate::value::{entity_to_json, to_json};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use std::collections::BTreeSet;
use sync_core::wire::EventMessage;
use sync_core::{format_timestamp, Classify};
use sync_core::{Disposition, Operation, ValidationError, BOOKKEEPING_PROPERTY, RESERVED_FIELDS};
use thiserror::Error;

/// What to do with an entity event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Publish this change event.
    Forward(Box<CapturedChange>),
    /// The sync function's own write: drop it.
    Echo {
        /// The entity's kind.
        kind: String,
    },
    /// A kind the filter does not admit: drop it.
    Ignored {
        /// The entity's kind.
        kind: String,
    },
}

/// A Datastore change as the pipeline's change event.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedChange {
    /// The change event to publish on the events topic: its `event_id` is
    /// the CloudEvent id, its `removed` the properties an update removed.
    pub message: EventMessage,
}

impl CapturedChange {
    /// The CloudEvent id: every delivery of one change has the same, so it
    /// is the id a redelivery must be recognised by.
    pub fn event_id(&self) -> &str {
        self.message.event_id.as_deref().unwrap_or_default()
    }

    /// Properties the update removed (masked, absent from `value`), sorted.
    pub fn removed(&self) -> &[String] {
        &self.message.removed
    }
}

/// Why an entity event cannot become a change event. Every variant is
/// permanent.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MapError {
    /// The snapshot the event type needs is absent.
    #[error("a `{event_type}` event without `{needed}`")]
    MissingSnapshot {
        /// The event's type.
        event_type: EventType,
        /// What it lacks.
        needed: &'static str,
    },
    /// The snapshot has no entity, or its entity no key path.
    #[error("the entity snapshot has no key")]
    MissingKey,
    /// The key's last element has neither a name nor an id.
    #[error("the key of kind `{kind}` has neither a name nor an id")]
    IncompleteKey {
        /// The kind.
        kind: String,
    },
    /// The key has ancestors.
    #[error("the key {path} has ancestors; only root keys are captured, since the synced store keys entities by kind and id alone")]
    AncestorKey {
        /// The key's path, `Kind:name/Kind:id…`.
        path: String,
    },
    /// Nothing tells when the change was committed.
    #[error("a {operation} without a commit time (no update_time and no CloudEvent time)")]
    MissingCommitTime {
        /// The operation.
        operation: Operation,
    },
    /// The change carries what the sync function refuses.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

impl MapError {
    /// Stable machine code, the dead letter's `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSnapshot { .. } => "missing_snapshot",
            Self::MissingKey => "missing_key",
            Self::IncompleteKey { .. } => "incomplete_key",
            Self::AncestorKey { .. } => "ancestor_key",
            Self::MissingCommitTime { .. } => "missing_commit_time",
            Self::Invalid(e) => e.code(),
        }
    }

    /// Always [`Disposition::Permanent`].
    pub fn disposition(&self) -> Disposition {
        Disposition::Permanent
    }
}

/// The change event's `source` for a change in `database` and `namespace`,
/// as Eventarc names them (`(default)` for the defaults):
/// `datastore/<database>/<namespace>`. Neither name can hold a `/`.
///
/// ```
/// assert_eq!(sync_capture::mapping::source_name("(default)", "shop"), "datastore/(default)/shop");
/// ```
pub fn source_name(database: &str, namespace: &str) -> String {
    format!("datastore/{database}/{namespace}")
}

/// Decides what `event` becomes under `filter` (see the module docs).
///
/// # Errors
/// A [`MapError`] for an event that can never be forwarded.
pub fn decide(event: &EntityEvent, filter: &CaptureFilter) -> Result<Decision, MapError> {
    let data = &event.data;
    let missing = |needed| MapError::MissingSnapshot {
        event_type: event.event_type,
        needed,
    };
    let (operation, snapshot) = match event.event_type.change {
        Change::Created => (
            Operation::Create,
            data.value.as_ref().ok_or(missing("value"))?,
        ),
        Change::Updated => (
            Operation::Update,
            data.value.as_ref().ok_or(missing("value"))?,
        ),
        Change::Deleted => (
            Operation::Delete,
            data.old_value.as_ref().ok_or(missing("old_value"))?,
        ),
        Change::Written => match (&data.value, &data.old_value) {
            (Some(value), None) => (Operation::Create, value),
            (Some(value), Some(_)) => (Operation::Update, value),
            (None, Some(old)) => (Operation::Delete, old),
            (None, None) => return Err(missing("value or old_value")),
        },
    };
    let entity = snapshot.entity.as_ref().ok_or(MapError::MissingKey)?;
    let key = entity.key.as_ref().ok_or(MapError::MissingKey)?;
    let last = key.path.last().ok_or(MapError::MissingKey)?;
    let kind = last.kind.clone();
    if !filter.admits(&kind) {
        return Ok(Decision::Ignored { kind });
    }
    if entity.properties.contains_key(BOOKKEEPING_PROPERTY) {
        return Ok(Decision::Echo { kind });
    }
    if key.path.len() > 1 {
        return Err(MapError::AncestorKey {
            path: describe_path(&key.path),
        });
    }
    let entity_id = match &last.id_type {
        Some(IdType::Name(name)) => name.clone(),
        Some(IdType::Id(id)) => id.to_string(),
        None => return Err(MapError::IncompleteKey { kind }),
    };
    let timestamp =
        commit_time(event, operation, snapshot).ok_or(MapError::MissingCommitTime { operation })?;

    let (database, namespace) = location(event, key);
    let mut message = EventMessage::new(entity_id, operation, format_timestamp(&timestamp))
        .source(source_name(&database, &namespace))
        .correlation_id(event.id.clone())
        .kind(kind)
        .event_id(event.id.clone());
    if operation != Operation::Delete {
        let (fields, gone) = match operation {
            Operation::Update => changed_properties(entity, data),
            _ => (entity_to_json(entity), Vec::new()),
        };
        if let Some(name) = fields
            .keys()
            .find(|name| RESERVED_FIELDS.contains(&name.as_str()))
        {
            return Err(ValidationError::ReservedField(name.clone()).into());
        }
        // Removing a reserved property is no change of user data.
        for name in gone {
            if !RESERVED_FIELDS.contains(&name.as_str()) {
                message = message.removed(name);
            }
        }
        message = message.data(fields);
    }
    Ok(Decision::Forward(Box::new(CapturedChange { message })))
}

/// When the change was committed (see the module docs).
fn commit_time(
    event: &EntityEvent,
    operation: Operation,
    snapshot: &EntityResult,
) -> Option<DateTime<Utc>> {
    let update_time = snapshot
        .update_time
        .as_ref()
        .and_then(|ts| DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?));
    match operation {
        Operation::Delete => event.time,
        Operation::Create | Operation::Update => update_time.or(event.time),
    }
}

/// The database and namespace as Eventarc names them: the event's
/// extensions, else the key's partition, else `(default)`.
fn location(event: &EntityEvent, key: &Key) -> (String, String) {
    let partition = key.partition_id.as_ref();
    let pick = |attribute: &Option<String>, from_key: Option<&str>| {
        attribute
            .clone()
            .or_else(|| from_key.filter(|s| !s.is_empty()).map(str::to_string))
            .unwrap_or_else(|| DEFAULT_NAME.to_string())
    };
    (
        pick(&event.database, partition.map(|p| p.database_id.as_str())),
        pick(&event.namespace, partition.map(|p| p.namespace_id.as_str())),
    )
}

/// The user fields an update sends and the properties it removed.
fn changed_properties(entity: &Entity, data: &EntityEventData) -> (Map<String, Json>, Vec<String>) {
    let after = &entity.properties;
    let before = data
        .old_value
        .as_ref()
        .and_then(|old| old.entity.as_ref())
        .map(|e| &e.properties);
    let names: BTreeSet<String> = match (&data.update_mask, before) {
        (Some(mask), _) => mask
            .property_paths
            .iter()
            .map(|path| {
                top_level_name(path, |name| {
                    after.contains_key(name) || before.is_some_and(|b| b.contains_key(name))
                })
            })
            .filter(|name| !name.is_empty())
            .collect(),
        // No mask: what differs between the two snapshots.
        (None, Some(before)) => after
            .iter()
            .filter(|(name, v)| before.get(*name) != Some(*v))
            .map(|(name, _)| name.clone())
            .chain(before.keys().filter(|n| !after.contains_key(*n)).cloned())
            .collect(),
        // Nothing to compare with: every property.
        (None, None) => after.keys().cloned().collect(),
    };
    let mut fields = Map::new();
    let mut removed = Vec::new();
    for name in names {
        match after.get(&name) {
            Some(value) => {
                fields.insert(name, to_json(value));
            }
            // Absent after the change: removed, if it was there before (a
            // masked name that neither snapshot holds changes nothing).
            None if before.is_none_or(|b| b.contains_key(&name)) => removed.push(name),
            None => {}
        }
    }
    (fields, removed)
}

/// The top-level property a mask path names. A path that is itself a
/// property name (`known`) is that property, whatever it contains;
/// otherwise its first segment: up to the first unescaped `.`, where `\`
/// escapes the next character, or a name quoted in backticks.
fn top_level_name(path: &str, known: impl Fn(&str) -> bool) -> String {
    if known(path) {
        return path.to_string();
    }
    let mut name = String::new();
    let mut chars = path.chars();
    let quoted = path.starts_with('`');
    if quoted {
        chars.next();
    }
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            '`' if quoted => break,
            '.' if !quoted => break,
            c => name.push(c),
        }
    }
    name
}

/// `Kind:name/Kind:id…`, for messages.
fn describe_path(path: &[PathElement]) -> String {
    path.iter()
        .map(|e| match &e.id_type {
            Some(IdType::Name(n)) => format!("{}:{n:?}", e.kind),
            Some(IdType::Id(i)) => format!("{}:{i}", e.kind),
            None => format!("{}:?", e.kind),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use crate::filter::OwnKinds;
    use crate::proto::{PartitionId, PropertyMask, Value, ValueType};
    use prost_types::Timestamp;
    use serde_json::json;

    const CREATED: &str = "2025-07-23T10:15:30.123456Z";
    const UPDATED: &str = "2025-07-23T10:16:00.654321Z";
    const EVENT_TIME: &str = "2025-07-23T10:17:45.000001Z";

    fn time(text: &str) -> DateTime<Utc> {
        sync_core::parse_timestamp(text).expect("test time")
    }

    fn ts(text: &str) -> Timestamp {
        let t = time(text);
        Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).expect("nanos"),
        }
    }

    fn v(value_type: ValueType) -> Value {
        Value {
            value_type: Some(value_type),
            ..Value::default()
        }
    }

    fn s(text: &str) -> Value {
        v(ValueType::StringValue(text.into()))
    }

    fn key(path: &[(&str, IdType)]) -> Key {
        Key {
            partition_id: Some(PartitionId {
                project_id: "p".into(),
                ..PartitionId::default()
            }),
            path: path
                .iter()
                .map(|(kind, id)| PathElement {
                    kind: (*kind).into(),
                    id_type: Some(id.clone()),
                })
                .collect(),
        }
    }

    fn name(n: &str) -> IdType {
        IdType::Name(n.into())
    }

    fn entity(key: Key, properties: &[(&str, Value)]) -> Entity {
        Entity {
            key: Some(key),
            properties: properties
                .iter()
                .map(|(n, v)| ((*n).to_string(), v.clone()))
                .collect(),
        }
    }

    fn product(properties: &[(&str, Value)]) -> Entity {
        entity(key(&[("Product", name("p-1"))]), properties)
    }

    fn snapshot(entity: Entity, updated: &str) -> EntityResult {
        EntityResult {
            entity: Some(entity),
            version: 1,
            create_time: Some(ts(CREATED)),
            update_time: Some(ts(updated)),
            cursor: Vec::new(),
        }
    }

    fn event(change: Change, data: EntityEventData) -> EntityEvent {
        EntityEvent {
            id: "ce-1".into(),
            source: "//firestore.googleapis.com/projects/p/databases/(default)".into(),
            event_type: EventType {
                change,
                with_auth_context: false,
            },
            time: Some(time(EVENT_TIME)),
            subject: None,
            database: Some(DEFAULT_NAME.into()),
            namespace: Some(DEFAULT_NAME.into()),
            entity: None,
            project: None,
            location: None,
            auth_type: None,
            auth_id: None,
            data,
        }
    }

    fn created(e: Entity) -> EntityEventData {
        EntityEventData {
            value: Some(snapshot(e, CREATED)),
            ..EntityEventData::default()
        }
    }

    fn updated(before: Entity, after: Entity, mask: Option<&[&str]>) -> EntityEventData {
        EntityEventData {
            value: Some(snapshot(after, UPDATED)),
            old_value: Some(snapshot(before, CREATED)),
            update_mask: mask.map(|paths| PropertyMask {
                property_paths: paths.iter().map(|p| (*p).to_string()).collect(),
            }),
        }
    }

    fn deleted(before: Entity) -> EntityEventData {
        EntityEventData {
            old_value: Some(snapshot(before, UPDATED)),
            ..EntityEventData::default()
        }
    }

    fn filter() -> CaptureFilter {
        CaptureFilter::every_kind(OwnKinds::new("SyncEntity"))
    }

    fn forward(e: &EntityEvent) -> CapturedChange {
        match decide(e, &filter()) {
            Ok(Decision::Forward(c)) => *c,
            other => panic!("expected a change event, got {other:?}"),
        }
    }

    fn code(e: &EntityEvent) -> &'static str {
        decide(e, &filter()).expect_err("refused").code()
    }

    #[test]
    fn a_create_carries_every_property_at_its_commit_time() {
        let c = forward(&event(
            Change::Created,
            created(product(&[
                ("name", s("Lamp")),
                ("n", v(ValueType::IntegerValue(2))),
            ])),
        ));
        assert_eq!(
            c.message.to_json(),
            json!({
                "entity_id": "p-1", "operation": "create", "timestamp": CREATED,
                "source": "datastore/(default)/(default)", "correlation_id": "ce-1",
                "kind": "Product", "data": {"name": "Lamp", "n": 2}, "event_id": "ce-1"
            })
        );
        assert_eq!(c.event_id(), "ce-1");
        assert!(c.removed().is_empty());
    }

    #[test]
    fn an_update_sends_only_the_masked_properties_and_lists_the_removed_ones() {
        let before = product(&[("name", s("Lamp")), ("price", s("10")), ("old", s("x"))]);
        let after = product(&[("name", s("Lamp")), ("price", s("12")), ("new", s("y"))]);
        let c = forward(&event(
            Change::Updated,
            updated(before, after, Some(&["price", "old", "new"])),
        ));
        assert_eq!(c.message.operation, Operation::Update);
        assert_eq!(c.message.timestamp, UPDATED);
        assert_eq!(
            c.message.data.clone().map(Json::Object),
            Some(json!({"price": "12", "new": "y"}))
        );
        assert_eq!(c.removed(), ["old"]);
        assert_eq!(c.message.to_json()["removed"], json!(["old"]));
    }

    #[test]
    fn a_nested_mask_path_sends_its_top_level_property_whole() {
        let inner = |w: &str| {
            v(ValueType::EntityValue(Entity {
                key: None,
                properties: [("w".to_string(), s(w)), ("h".to_string(), s("1"))]
                    .into_iter()
                    .collect(),
            }))
        };
        let c = forward(&event(
            Change::Updated,
            updated(
                product(&[("dims", inner("1"))]),
                product(&[("dims", inner("2"))]),
                Some(&["dims.w"]),
            ),
        ));
        assert_eq!(
            c.message.data.clone().map(Json::Object),
            Some(json!({"dims": {"w": "2", "h": "1"}}))
        );
    }

    #[test]
    fn mask_paths_read_escaped_and_quoted_names() {
        let known = |n: &str| ["a.b", "plain"].contains(&n);
        assert_eq!(top_level_name("plain", known), "plain");
        assert_eq!(top_level_name("a.b", known), "a.b");
        assert_eq!(top_level_name("plain.inner.deeper", known), "plain");
        assert_eq!(top_level_name(r"x\.y.z", known), "x.y");
        assert_eq!(top_level_name(r"back\\slash.z", known), r"back\slash");
        assert_eq!(top_level_name("`q.r`.s", known), "q.r");
        assert_eq!(top_level_name(r"`t\`u`.v", known), "t`u");
    }

    #[test]
    fn an_update_without_a_mask_compares_the_snapshots() {
        let before = product(&[("same", s("1")), ("changed", s("a")), ("gone", s("g"))]);
        let after = product(&[("same", s("1")), ("changed", s("b")), ("added", s("n"))]);
        let c = forward(&event(Change::Updated, updated(before, after, None)));
        assert_eq!(
            c.message.data.clone().map(Json::Object),
            Some(json!({"changed": "b", "added": "n"}))
        );
        assert_eq!(c.removed(), ["gone"]);
    }

    #[test]
    fn a_masked_name_neither_snapshot_holds_changes_nothing() {
        let c = forward(&event(
            Change::Updated,
            updated(
                product(&[]),
                product(&[("a", s("1"))]),
                Some(&["a", "ghost", ""]),
            ),
        ));
        assert_eq!(
            c.message.data.clone().map(Json::Object),
            Some(json!({"a": "1"}))
        );
        assert!(c.removed().is_empty());
        // Without `old_value`, a masked name absent from `value` is a
        // removal; an empty path is still no name.
        let mut data = updated(product(&[]), product(&[]), Some(&["gone", ""]));
        data.old_value = None;
        let c = forward(&event(Change::Updated, data));
        assert_eq!(c.removed(), ["gone"]);
    }

    #[test]
    fn a_delete_has_no_data_and_the_event_time() {
        let c = forward(&event(Change::Deleted, deleted(product(&[("a", s("1"))]))));
        assert_eq!(
            c.message.to_json(),
            json!({
                "entity_id": "p-1", "operation": "delete", "timestamp": EVENT_TIME,
                "source": "datastore/(default)/(default)", "correlation_id": "ce-1",
                "kind": "Product", "event_id": "ce-1"
            })
        );
    }

    #[test]
    fn written_takes_its_operation_from_the_snapshots() {
        let cases = [
            (created(product(&[])), Operation::Create, CREATED),
            (
                updated(product(&[]), product(&[]), Some(&[])),
                Operation::Update,
                UPDATED,
            ),
            (deleted(product(&[])), Operation::Delete, EVENT_TIME),
        ];
        for (data, operation, timestamp) in cases {
            let c = forward(&event(Change::Written, data));
            assert_eq!(c.message.operation, operation);
            assert_eq!(c.message.timestamp, timestamp, "{operation}");
        }
        assert_eq!(
            code(&event(Change::Written, EntityEventData::default())),
            "missing_snapshot"
        );
    }

    #[test]
    fn the_type_names_the_snapshot_it_needs() {
        assert_eq!(
            code(&event(Change::Created, deleted(product(&[])))),
            "missing_snapshot"
        );
        assert_eq!(
            code(&event(Change::Updated, deleted(product(&[])))),
            "missing_snapshot"
        );
        assert_eq!(
            code(&event(Change::Deleted, created(product(&[])))),
            "missing_snapshot"
        );
    }

    #[test]
    fn a_numeric_id_is_its_decimal_text() {
        let e = entity(key(&[("Product", IdType::Id(5_629_499_534_213_120))]), &[]);
        let c = forward(&event(Change::Created, created(e)));
        assert_eq!(c.message.entity_id, "5629499534213120");
        let negative = entity(key(&[("Product", IdType::Id(-3))]), &[]);
        let c = forward(&event(Change::Created, created(negative)));
        assert_eq!(c.message.entity_id, "-3");
    }

    #[test]
    fn keys_with_ancestors_are_refused_naming_the_path() {
        let child = entity(
            key(&[("Store", name("north")), ("Product", IdType::Id(9))]),
            &[],
        );
        let err = decide(&event(Change::Created, created(child)), &filter()).expect_err("ancestor");
        assert_eq!(err.code(), "ancestor_key");
        assert!(
            err.to_string().contains(r#"Store:"north"/Product:9"#),
            "{err}"
        );
    }

    #[test]
    fn missing_and_incomplete_keys_are_refused() {
        let keyless = Entity::default();
        assert_eq!(
            code(&event(Change::Created, created(keyless))),
            "missing_key"
        );
        let empty_path = entity(Key::default(), &[]);
        assert_eq!(
            code(&event(Change::Created, created(empty_path))),
            "missing_key"
        );
        let mut incomplete = key(&[("Product", IdType::Id(1))]);
        incomplete.path[0].id_type = None;
        assert_eq!(
            code(&event(Change::Created, created(entity(incomplete, &[])))),
            "incomplete_key"
        );
    }

    #[test]
    fn the_sync_functions_writes_are_echoes() {
        let synced = product(&[("a", s("1")), (BOOKKEEPING_PROPERTY, s("{}"))]);
        for data in [
            created(synced.clone()),
            updated(product(&[]), synced.clone(), Some(&["a"])),
            deleted(synced.clone()),
        ] {
            assert_eq!(
                decide(&event(Change::Written, data), &filter()),
                Ok(Decision::Echo {
                    kind: "Product".into()
                })
            );
        }
        // An application overwriting a synced entity without `_sync` is forwarded.
        let c = forward(&event(
            Change::Updated,
            updated(
                synced,
                product(&[("a", s("2"))]),
                Some(&["a", BOOKKEEPING_PROPERTY]),
            ),
        ));
        assert_eq!(
            c.message.data.clone().map(Json::Object),
            Some(json!({"a": "2"}))
        );
        assert!(c.removed().is_empty(), "removing `_sync` is no user change");
    }

    #[test]
    fn kinds_the_filter_does_not_admit_are_ignored_before_anything_is_checked() {
        // A tombstone: an ancestor key that would otherwise be refused.
        let tombstone = entity(
            key(&[
                ("SyncEntity", name("e")),
                ("SyncTombstone", name("tombstone")),
            ]),
            &[],
        );
        assert_eq!(
            decide(&event(Change::Created, created(tombstone)), &filter()),
            Ok(Decision::Ignored {
                kind: "SyncTombstone".into()
            })
        );
        let only = CaptureFilter::only(["Order"], OwnKinds::new("SyncEntity")).expect("valid");
        assert_eq!(
            decide(&event(Change::Created, created(product(&[]))), &only),
            Ok(Decision::Ignored {
                kind: "Product".into()
            })
        );
    }

    #[test]
    fn reserved_names_are_refused_when_sent() {
        let with_version = product(&[("version", v(ValueType::IntegerValue(3)))]);
        assert_eq!(
            code(&event(Change::Created, created(with_version.clone()))),
            "reserved_field"
        );
        // Unchanged by the update: not sent, so not refused.
        let c = forward(&event(
            Change::Updated,
            updated(with_version.clone(), with_version, Some(&[])),
        ));
        assert_eq!(c.message.data.clone().map(Json::Object), Some(json!({})));
    }

    #[test]
    fn commit_time_falls_back_to_the_event_time_and_is_required() {
        let mut data = created(product(&[]));
        if let Some(v) = data.value.as_mut() {
            v.update_time = None;
        }
        let mut e = event(Change::Created, data);
        assert_eq!(forward(&e).message.timestamp, EVENT_TIME);
        e.time = None;
        assert_eq!(code(&e), "missing_commit_time");
        let mut delete = event(Change::Deleted, deleted(product(&[])));
        delete.time = None;
        assert_eq!(code(&delete), "missing_commit_time");
    }

    #[test]
    fn the_source_falls_back_to_the_keys_partition() {
        let mut k = key(&[("Order", name("o-1"))]);
        k.partition_id = Some(PartitionId {
            project_id: "p".into(),
            database_id: "inventory".into(),
            namespace_id: "shop".into(),
        });
        let mut e = event(Change::Created, created(entity(k, &[])));
        e.database = None;
        e.namespace = None;
        assert_eq!(
            forward(&e).message.source.as_deref(),
            Some("datastore/inventory/shop")
        );
        let mut bare = event(Change::Created, created(product(&[])));
        bare.database = None;
        bare.namespace = None;
        assert_eq!(
            forward(&bare).message.source.as_deref(),
            Some("datastore/(default)/(default)")
        );
    }

    /// Each value type's JSON, as the change event carries it and the sync
    /// function parses it back.
    #[test]
    fn each_value_type_reaches_the_sync_function_as_documented() {
        use crate::proto::{ArrayValue, LatLng};
        let props = [
            ("null", v(ValueType::NullValue(0)), json!(null)),
            ("bool", v(ValueType::BooleanValue(true)), json!(true)),
            ("int", v(ValueType::IntegerValue(-7)), json!(-7)),
            ("double", v(ValueType::DoubleValue(2.0)), json!(2.0)),
            ("nan", v(ValueType::DoubleValue(f64::NAN)), json!(null)),
            (
                "time",
                v(ValueType::TimestampValue(ts("2025-07-01T08:30:00.123456Z"))),
                json!("2025-07-01T08:30:00.123456Z"),
            ),
            (
                "ref",
                v(ValueType::KeyValue(key(&[("Store", IdType::Id(4))]))),
                json!({"path": [{"kind": "Store", "id": 4}]}),
            ),
            ("text", s("é"), json!("é")),
            (
                "blob",
                v(ValueType::BlobValue(vec![1, 2, 3])),
                json!("AQID"),
            ),
            (
                "geo",
                v(ValueType::GeoPointValue(LatLng {
                    latitude: 1.5,
                    longitude: 2.5,
                })),
                json!({"latitude": 1.5, "longitude": 2.5}),
            ),
            (
                "list",
                v(ValueType::ArrayValue(ArrayValue {
                    values: vec![s("a"), v(ValueType::IntegerValue(1))],
                })),
                json!(["a", 1]),
            ),
            (
                "embedded",
                v(ValueType::EntityValue(product(&[("x", s("y"))]))),
                json!({"x": "y"}),
            ),
            ("unset", Value::default(), json!(null)),
        ];
        let entity = product(
            &props
                .iter()
                .map(|(n, v, _)| (*n, v.clone()))
                .collect::<Vec<_>>(),
        );
        let c = forward(&event(Change::Created, created(entity)));
        let now = time("2025-07-23T10:20:00Z");
        let parsed = sync_core::parse_event(
            &c.message.to_bytes(),
            c.event_id(),
            &sync_core::ValidationLimits::default(),
            now,
        )
        .expect("the sync function accepts it");
        for (name, _, want) in &props {
            assert_eq!(parsed.data.get(*name), Some(want), "{name}");
        }
        assert!(
            parsed.data["double"].is_f64(),
            "a whole double stays a double"
        );
        assert_eq!(parsed.kind.as_deref(), Some("Product"));
        assert_eq!(parsed.correlation_id.as_deref(), Some("ce-1"));
        assert_eq!(parsed.timestamp, time(CREATED));
    }
}
