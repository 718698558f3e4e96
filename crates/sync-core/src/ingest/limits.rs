//! Datastore's production limits that the emulator does not (fully) enforce,
//! computed the way Google documents them ("Limits", "Storage size
//! calculations"), so an event production would refuse is refused here before
//! anything is written: nesting depth, index entries, key size, entity size,
//! and the [`ValidationLimits`] an event is validated against.

use crate::error::ValidationError;
use serde_json::{Map, Value};

/// The limits an event is validated against (see [`parse_event`](super::parse_event)).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationLimits {
    /// How far ahead of the receiving clock a timestamp may be, in seconds.
    pub max_clock_skew_secs: i64,
    /// Largest encoded entity accepted, in bytes (Datastore's limit by default).
    pub max_entity_bytes: usize,
    /// Deepest nesting of embedded entities accepted ([`MAX_NESTING_DEPTH`]).
    pub max_depth: usize,
    /// Most index entries per stored entity ([`MAX_INDEX_ENTRIES`]).
    pub max_index_entries: usize,
    /// Largest key, in bytes ([`MAX_KEY_BYTES`]).
    pub max_key_bytes: usize,
    /// Most fields one event may list in `removed` ([`MAX_REMOVED_FIELDS`]).
    pub max_removed_fields: usize,
    /// Namespace and kinds of the keys the store writes, for the key size.
    pub keys: KeyLayout,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        Self {
            max_clock_skew_secs: 300,
            max_entity_bytes: MAX_ENTITY_BYTES,
            max_depth: MAX_NESTING_DEPTH,
            max_index_entries: MAX_INDEX_ENTRIES,
            max_key_bytes: MAX_KEY_BYTES,
            max_removed_fields: MAX_REMOVED_FIELDS,
            keys: KeyLayout::default(),
        }
    }
}

/// Datastore's maximum entity size, in bytes.
pub const MAX_ENTITY_BYTES: usize = 1_048_572;

/// Maximum depth of nested entity values.
pub const MAX_NESTING_DEPTH: usize = 20;

/// Maximum number of index entries of one entity.
pub const MAX_INDEX_ENTRIES: usize = 20_000;

/// Maximum size of an entity key, in bytes (6 KiB).
pub const MAX_KEY_BYTES: usize = 6 * 1024;

/// Most fields one event may remove. Every removal is remembered in the
/// entity's bookkeeping (its name and an order key, 40 bytes and more), so
/// no entity within Datastore's size limit could keep more than about
/// 25,000; the entity's 20,000 index entries bound how many indexed fields
/// it can have to remove.
pub const MAX_REMOVED_FIELDS: usize = 20_000;

/// Longest event id accepted, in bytes: a key name's limit, so the conflict
/// record named by it keeps within Datastore's key size.
pub const MAX_EVENT_ID_BYTES: usize = 1500;

/// Longest string Datastore indexes, in bytes; longer ones are stored unindexed.
pub const MAX_INDEXED_BYTES: usize = 1500;

/// Indexed properties the stored entity carries besides the user fields:
/// `version`, `last_modified`, `sync_status`, `conflict_resolved` (the
/// bookkeeping property `_sync` is unindexed).
pub const BOOKKEEPING_INDEX_ENTRIES: usize = 4;

/// Kind of entities whose events name none, unless configured otherwise.
pub const DEFAULT_KIND: &str = "SyncEntity";
/// Kind of delete tombstones, unless configured otherwise.
pub const DEFAULT_TOMBSTONE_KIND: &str = "SyncTombstone";
/// Kind of conflict records, unless configured otherwise.
pub const DEFAULT_CONFLICT_KIND: &str = "SyncConflict";
/// Key name of every tombstone (one per entity, a child of its key).
pub const TOMBSTONE_NAME: &str = "tombstone";
/// Kind of the key the store probes its transaction support on: read and
/// deleted, never written.
pub const PROBE_KIND: &str = "SyncProbe";

/// Where the keys of an event's entity live: the namespace and the kinds the
/// store uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// Namespace; empty for the default namespace.
    pub namespace: String,
    /// Kind of entities whose events name none.
    pub default_kind: String,
    /// Kind of tombstones (children of the entity key, named [`TOMBSTONE_NAME`]).
    pub tombstone_kind: String,
    /// Kind of conflict records (children of the entity key, named by
    /// [`conflict_name`] of the event id).
    pub conflict_kind: String,
}

impl Default for KeyLayout {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            default_kind: DEFAULT_KIND.into(),
            tombstone_kind: DEFAULT_TOMBSTONE_KIND.into(),
            conflict_kind: DEFAULT_CONFLICT_KIND.into(),
        }
    }
}

impl KeyLayout {
    /// The largest key written for an event on `(kind, entity_id)` with
    /// `event_id`: which one it is and its size in bytes.
    ///
    /// ```
    /// use sync_core::ingest::limits::KeyLayout;
    /// // Google's example sizes: kind `Task` 5 bytes, name `my_task_id` 11, key 16.
    /// let layout = KeyLayout::default();
    /// // A Pub/Sub message id of 17 digits names the conflict record.
    /// let (which, bytes) = layout.largest_key(Some("Task"), "my_task_id", "12345678901234567");
    /// assert_eq!(which, "conflict record");
    /// assert_eq!(bytes, 5 + 11 + 16 + "SyncConflict".len() + 1 + 18);
    /// // A short one leaves the tombstone's key the largest.
    /// let (which, bytes) = layout.largest_key(Some("Task"), "my_task_id", "1");
    /// assert_eq!(which, "tombstone");
    /// assert_eq!(bytes, 5 + 11 + 16 + "SyncTombstone".len() + 1 + "tombstone".len() + 1);
    /// ```
    pub fn largest_key(
        &self,
        kind: Option<&str>,
        entity_id: &str,
        event_id: &str,
    ) -> (&'static str, usize) {
        let kind = kind.unwrap_or(&self.default_kind);
        let entity = key_size(&self.namespace, &[(kind, entity_id)]);
        let child = |k: &str, name: &str| entity + string_size(k) + string_size(name);
        let tombstone = child(&self.tombstone_kind, TOMBSTONE_NAME);
        let conflict = child(&self.conflict_kind, &conflict_name(event_id));
        [
            ("entity", entity),
            ("tombstone", tombstone),
            ("conflict record", conflict),
        ]
        .into_iter()
        .fold(("entity", 0), |best, k| if k.1 > best.1 { k } else { best })
    }
}

/// Longest namespace, in characters (Datastore's `PartitionId` rules).
pub const MAX_NAMESPACE_CHARS: usize = 100;

/// Checks a namespace against Datastore's rules: 1 to 100 of `A-Z a-z 0-9 . - _`,
/// not of the reserved form `__*__` (empty means the default namespace).
///
/// ```
/// use sync_core::ingest::limits::check_namespace;
/// assert!(check_namespace("tenant_1.eu-west").is_ok());
/// assert!(check_namespace("a b").is_err());
/// ```
///
/// # Errors
/// Why the namespace would be refused.
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.len() > MAX_NAMESPACE_CHARS {
        return Err(format!(
            "is {} characters, over the limit of {MAX_NAMESPACE_CHARS}",
            namespace.len()
        ));
    }
    if let Some(c) = namespace
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, `.`, `-` and `_` are allowed"
        ));
    }
    if namespace.is_empty() {
        return Ok(());
    }
    crate::value::check_name(namespace)
}

/// Datastore's string size: UTF-8 bytes + 1.
fn string_size(s: &str) -> usize {
    s.len() + 1
}

/// Size of a key of named path elements `(kind, name)` in `namespace` (empty:
/// the default namespace), as Google's storage-size rules count it.
///
/// ```
/// use sync_core::ingest::limits::key_size;
/// assert_eq!(key_size("", &[("Task", "my_task_id")]), 32);
/// assert_eq!(key_size("my_name_space", &[("Task", "my_task_id")]), 46);
/// ```
pub fn key_size(namespace: &str, path: &[(&str, &str)]) -> usize {
    let namespace = if namespace.is_empty() {
        0
    } else {
        string_size(namespace)
    };
    namespace
        + path
            .iter()
            .map(|(kind, name)| string_size(kind) + string_size(name))
            .sum::<usize>()
        + 16
}

/// Key name of the conflict record of event `event_id`: the event id, or (for
/// an id Datastore cannot use as a key name) a stable hash of it.
///
/// ```
/// use sync_core::ingest::limits::conflict_name;
/// assert_eq!(conflict_name("123456"), "123456");
/// assert_eq!(conflict_name(""), "event-cbf29ce484222325");
/// ```
pub fn conflict_name(event_id: &str) -> String {
    if crate::value::check_name(event_id).is_ok() {
        return event_id.to_string();
    }
    // FNV-1a: stable across processes, so redeliveries hit the same record.
    let hash = event_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("event-{hash:016x}")
}

/// How deeply embedded entities (JSON objects) nest in `fields`, below the
/// entity itself: `{"a": 1}` is 0 deep, `{"a": {"b": 1}}` 1; arrays add no
/// level. The Datastore emulator counts the same way (20 commit, 21 are
/// refused).
///
/// ```
/// use serde_json::json;
/// use sync_core::ingest::limits::nesting_depth;
/// let data = json!({"flat": 1, "a": [{"b": {"c": 1}}]});
/// assert_eq!(nesting_depth(data.as_object().expect("object")), 2);
/// ```
pub fn nesting_depth(fields: &Map<String, Value>) -> usize {
    fields.values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(v: &Value) -> usize {
    match v {
        Value::Object(map) => 1 + nesting_depth(map),
        Value::Array(items) => items.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The dotted path of the most deeply nested property of `fields`, for the
/// error message (walked only when the depth is over the limit).
///
/// ```
/// use serde_json::json;
/// use sync_core::ingest::limits::deepest_path;
/// let data = json!({"flat": 1, "a": [{"b": {"c": 1}}]});
/// assert_eq!(deepest_path(data.as_object().expect("object")), "a.b.c");
/// ```
pub fn deepest_path(fields: &Map<String, Value>) -> String {
    let mut path: Vec<&str> = Vec::new();
    let mut map = Some(fields);
    while let Some(current) = map {
        let Some((name, value)) = current.iter().max_by_key(|(_, v)| value_depth(v)) else {
            break;
        };
        path.push(name);
        // Arrays add no level: follow their deepest element.
        let mut value = value;
        while let Value::Array(items) = value {
            match items.iter().max_by_key(|v| value_depth(v)) {
                Some(deepest) => value = deepest,
                None => break,
            }
        }
        map = match value {
            Value::Object(inner) => Some(inner),
            _ => None,
        };
    }
    path.join(".")
}

/// Index entries of `fields` as the adapter stores them: one per indexed
/// value (every scalar at any depth, each array element; a string over
/// [`MAX_INDEXED_BYTES`] is unindexed and counts nothing). The stored entity
/// adds [`BOOKKEEPING_INDEX_ENTRIES`]; this project defines no composite
/// index.
///
/// ```
/// use serde_json::json;
/// use sync_core::ingest::limits::index_entries;
/// let data = json!({"a": 1, "tags": ["x", "y"], "o": {"b": null}, "text": "t".repeat(1501)});
/// assert_eq!(index_entries(data.as_object().expect("object")), 4);
/// ```
pub fn index_entries(fields: &Map<String, Value>) -> usize {
    fn value_entries(v: &Value) -> usize {
        match v {
            Value::String(s) if s.len() > MAX_INDEXED_BYTES => 0,
            Value::Array(items) => items.iter().map(value_entries).sum(),
            Value::Object(map) => index_entries(map),
            _ => 1,
        }
    }
    fields.values().map(value_entries).sum()
}

/// Checks the user fields of an entity as it would be stored (after a merge)
/// against the index-entry limit, counting the bookkeeping's indexed
/// properties too.
///
/// # Errors
/// [`ValidationError::TooManyIndexEntries`] over `limit`.
///
/// ```
/// use serde_json::json;
/// use sync_core::ingest::limits::{check_index_entries, BOOKKEEPING_INDEX_ENTRIES, MAX_INDEX_ENTRIES};
/// let fields = json!({"tags": vec![1; MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES]});
/// assert!(check_index_entries(fields.as_object().expect("object"), MAX_INDEX_ENTRIES).is_ok());
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
pub fn check_index_entries(
    fields: &Map<String, Value>,
    limit: usize,
) -> Result<(), ValidationError> {
    let entries = index_entries(fields) + BOOKKEEPING_INDEX_ENTRIES;
    if entries > limit {
        return Err(ValidationError::TooManyIndexEntries { entries, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    /// `depth` objects nested inside each other, the innermost holding 1.
    pub(crate) fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |inner, _| json!({ "n": inner }))
    }

    #[test]
    fn depth_counts_nested_objects_not_arrays() {
        assert_eq!(nesting_depth(&obj(json!({}))), 0);
        assert_eq!(nesting_depth(&obj(json!({"a": 1}))), 0);
        assert_eq!(nesting_depth(&obj(json!({"a": {"b": 1}}))), 1);
        assert_eq!(nesting_depth(&obj(json!({"a": [{"b": 1}]}))), 1);
        assert_eq!(nesting_depth(&obj(json!({"a": [[1]]}))), 0);
        let fields = obj(json!({"x": 1, "a": {"b": {"c": {}}, "z": {}}}));
        assert_eq!(nesting_depth(&fields), 3);
        assert_eq!(deepest_path(&fields), "a.b.c");
        let fields = obj(json!({"l": [1, [], {"m": [{"n": {"o": 1}}]}]}));
        assert_eq!(nesting_depth(&fields), 3);
        assert_eq!(deepest_path(&fields), "l.m.n.o");
        assert_eq!(nesting_depth(&obj(json!({ "top": nested(20) }))), 20);
    }

    #[test]
    fn index_entries_count_every_indexed_value() {
        let long = "l".repeat(MAX_INDEXED_BYTES + 1);
        let edge = "e".repeat(MAX_INDEXED_BYTES);
        let fields = obj(json!({
            "s": "x", "n": null, "b": true, "i": 1, "f": 1.5,
            "arr": [1, 2, 3], "empty": [], "o": {"a": 1, "b": [1, {"c": 2}]},
            "long": long, "edge": edge, "mixed": [long, "short"]
        }));
        // 5 scalars + 3 elements + 0 + (1 + 2) + 0 + 1 + 1
        assert_eq!(index_entries(&fields), 13);
    }

    #[test]
    fn index_limit_counts_bookkeeping() {
        let at = obj(json!({"a": vec![0; MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES]}));
        assert!(check_index_entries(&at, MAX_INDEX_ENTRIES).is_ok());
        let over = obj(json!({"a": vec![0; MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES + 1]}));
        let err = check_index_entries(&over, MAX_INDEX_ENTRIES).expect_err("one over");
        assert_eq!(err.code(), "too_many_index_entries");
        assert!(err.to_string().contains("20001"), "{err}");
    }

    /// Each event is within the limit; the entity they merge into is not, which
    /// is why the stores check the merged entity too.
    #[test]
    fn merged_entity_can_exceed_what_each_event_fits() -> Result<(), ValidationError> {
        let now = crate::parse_timestamp("2025-07-23T10:00:00Z")?;
        let half = (MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES) / 2 + 1;
        let event = |field: &str, id: &str| {
            let body = json!({"entity_id": "e", "operation": "update",
                "timestamp": "2025-07-23T09:00:00", "data": {field: vec![1; half]}});
            crate::parse_event(
                body.to_string().as_bytes(),
                id,
                &crate::ValidationLimits::default(),
                now,
            )
        };
        let policy = crate::MergePolicy::default();
        let first = crate::merge(&crate::EntityState::default(), &event("a", "m1")?, &policy);
        let stored = first.state.to_stored(&policy).expect("storable");
        check_index_entries(&stored.fields, MAX_INDEX_ENTRIES)?;
        let second = crate::merge(&first.state, &event("b", "m2")?, &policy);
        let err = check_index_entries(
            &second.state.to_stored(&policy).expect("storable").fields,
            MAX_INDEX_ENTRIES,
        )
        .expect_err("two halves and one more");
        assert_eq!(err.code(), "too_many_index_entries");
        Ok(())
    }

    #[test]
    fn key_sizes_follow_googles_examples() {
        // "Task name:my_task_id" in the default namespace: 5 + 11 + 16.
        assert_eq!(key_size("", &[("Task", "my_task_id")]), 32);
        // In namespace my_name_space (14 bytes).
        assert_eq!(key_size("my_name_space", &[("Task", "my_task_id")]), 46);
        let layout = KeyLayout {
            namespace: "ns".into(),
            ..KeyLayout::default()
        };
        let entity = key_size("ns", &[("K", "id")]);
        // A long event id makes the conflict record's key the largest...
        let (which, bytes) = layout.largest_key(Some("K"), "id", "a-long-message-id");
        assert_eq!(which, "conflict record");
        assert_eq!(bytes, entity + 13 + 18);
        // ...a short one leaves the tombstone's ("SyncTombstone" + "tombstone").
        let (which, bytes) = layout.largest_key(Some("K"), "id", "7");
        assert_eq!(which, "tombstone");
        assert_eq!(bytes, entity + 14 + 10);
        // The default kind applies when the event names none.
        assert_eq!(
            layout.largest_key(None, "id", "7").1,
            layout.largest_key(Some(DEFAULT_KIND), "id", "7").1
        );
    }

    #[test]
    fn namespaces_follow_datastore_rules() {
        assert!(check_namespace("").is_ok());
        assert!(check_namespace(&"n".repeat(100)).is_ok());
        assert!(check_namespace(&"n".repeat(101)).is_err());
        assert!(check_namespace("ünï").is_err());
        assert!(check_namespace("a/b").is_err());
        assert!(check_namespace("__ns__").is_err());
        assert!(check_namespace("Tenant-1_eu.x").is_ok());
    }

    #[test]
    fn conflict_names_are_valid_and_stable() {
        assert_eq!(conflict_name("123456"), "123456");
        // Stable across processes and builds: FNV-1a of the empty input is its
        // offset basis (the published test vector).
        assert_eq!(conflict_name(""), "event-cbf29ce484222325");
        let long = "x".repeat(2000);
        assert!(crate::value::check_name(&conflict_name(&long)).is_ok());
        assert!(crate::value::check_name(&conflict_name("__x__")).is_ok());
        assert_ne!(conflict_name(""), conflict_name("__x__"));
    }
}
