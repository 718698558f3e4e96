//! The merge state of one entity and its stored form.
//!
//! An entity is stored with its user fields at the top level and the recipe's
//! `version`, `last_modified`, `sync_status` and `conflict_resolved`; everything
//! the merge needs besides the visible values (per-field order keys, candidates
//! kept aside by `max`/`min`/`priority`, the delete key, the last version
//! announced downstream) is one JSON text in [`BOOKKEEPING_PROPERTY`].

use crate::event::Operation;
use crate::order::OrderKey;
use crate::value::compare_values;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// Name of the unindexed property holding the merge bookkeeping.
pub const BOOKKEEPING_PROPERTY: &str = "_sync";

/// Property names user data may not set.
pub const RESERVED_FIELDS: [&str; 5] = [
    "version",
    "last_modified",
    "sync_status",
    "conflict_resolved",
    BOOKKEEPING_PROPERTY,
];

/// One write of one field: its value and where it stands in the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Order key of the event that wrote it.
    pub key: OrderKey,
    /// The value written.
    pub value: Value,
}

/// What the merge knows about one field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldState {
    /// Rules `lww`, `max`, `min`, `priority`: the candidates no other candidate
    /// beats on both recency and rank, newest first. The winner is the one of
    /// highest rank; under `lww` there is only ever one.
    Ranked(Vec<Candidate>),
    /// Rule `union`: distinct elements in value order, each with the newest key
    /// that added it.
    Union(Vec<Candidate>),
}

/// Everything the merge knows about one entity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityState {
    /// Number of effective changes this store has applied to the key.
    pub version: i64,
    /// Order key of the event behind the last effective change: a redelivery
    /// of that event repeats the announcement (see [`crate::MergeOutcome::announcement`]).
    pub changed_by: Option<OrderKey>,
    /// Newest event timestamp merged.
    pub last_modified: Option<DateTime<Utc>>,
    /// Whether the last effective change lost any field to a better value.
    pub conflict_resolved: bool,
    /// What the last effective change did to the entity (for announcements).
    pub last_operation: Option<Operation>,
    /// Correlation id of the event behind the last effective change.
    pub last_correlation_id: Option<String>,
    /// Newest create/update key, kept only while it is newer than `deleted`.
    pub present: Option<OrderKey>,
    /// Newest delete key (the tombstone).
    pub deleted: Option<OrderKey>,
    /// Per-field state, by field name.
    pub fields: BTreeMap<String, FieldState>,
}

/// The storage-neutral form of an entity, as adapters read and write it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredEntity {
    /// Whether the entity is visible in its kind (else only a tombstone is kept).
    pub exists: bool,
    /// Visible user fields (empty when `exists` is false).
    pub fields: Map<String, Value>,
    /// The recipe's `version`.
    pub version: i64,
    /// The recipe's `last_modified`.
    pub last_modified: Option<DateTime<Utc>>,
    /// The recipe's `conflict_resolved`.
    pub conflict_resolved: bool,
    /// Bookkeeping JSON text, stored unindexed in [`BOOKKEEPING_PROPERTY`].
    /// Empty for an entity written by something other than this project.
    pub bookkeeping: String,
}

/// A change to announce to downstream systems.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// create (entity came into existence), update, or delete (it disappeared).
    pub operation: Operation,
    /// The version this announcement carries.
    pub version: i64,
    /// The entity's fields after the change (empty for deletes).
    pub data: Map<String, Value>,
    /// The entity's `last_modified`.
    pub last_modified: Option<DateTime<Utc>>,
    /// Correlation id of the event behind the change.
    pub correlation_id: Option<String>,
}

impl Announcement {
    /// The JSON message published downstream (the recipe's external-sync shape,
    /// plus version, last_modified and correlation id).
    pub fn payload(&self, entity_id: &str) -> Value {
        crate::wire::AnnouncementMessage {
            entity_id: entity_id.into(),
            operation: self.operation,
            data: self.data.clone(),
            version: self.version,
            last_modified: self
                .last_modified
                .as_ref()
                .map(crate::event::format_timestamp),
            source: crate::wire::SYSTEM.into(),
            correlation_id: self.correlation_id.clone(),
        }
        .to_json()
    }
}

/// The stored bookkeeping could not be read.
#[derive(Debug, Error)]
#[error("stored bookkeeping is unreadable: {0}")]
pub struct StateError(pub String);

impl FieldState {
    /// The value readers see: the winner under `rank`, or the sorted set.
    pub(crate) fn visible(&self, winner: impl Fn(&[Candidate]) -> usize) -> Value {
        match self {
            Self::Ranked(c) => c.get(winner(c)).map_or(Value::Null, |c| c.value.clone()),
            Self::Union(e) => Value::Array(e.iter().map(|c| c.value.clone()).collect()),
        }
    }

    /// Whether no candidate is left.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::Ranked(c) | Self::Union(c) => c.is_empty(),
        }
    }
}

impl EntityState {
    /// Whether the entity is visible: a create/update newer than any delete.
    pub fn exists(&self) -> bool {
        match (&self.present, &self.deleted) {
            (Some(p), Some(d)) => p > d,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The announcement of the current version, or `None` before the first
    /// effective change (a tombstone of an entity never seen, an adopted entity).
    pub fn announcement(&self, policy: &crate::MergePolicy) -> Option<Announcement> {
        // Set by every effective change (so version > 0), never by adoption.
        self.changed_by.as_ref()?;
        let operation = self.last_operation.unwrap_or(if self.exists() {
            Operation::Update
        } else {
            Operation::Delete
        });
        Some(Announcement {
            operation,
            version: self.version,
            data: self.visible_fields(policy),
            last_modified: self.last_modified,
            correlation_id: self.last_correlation_id.clone(),
        })
    }

    /// The user fields a reader sees (empty when the entity does not exist).
    pub fn visible_fields(&self, policy: &crate::MergePolicy) -> Map<String, Value> {
        if !self.exists() {
            return Map::new();
        }
        self.fields
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    f.visible(|c| crate::merge::winner_index(policy, name, c)),
                )
            })
            .collect()
    }

    /// The stored form of this state under `policy`.
    pub fn to_stored(&self, policy: &crate::MergePolicy) -> StoredEntity {
        let mut book = Book {
            format: 1,
            version: self.version,
            changed_by: self.changed_by.clone(),
            operation: self.last_operation.map(|o| o.as_str().to_string()),
            correlation_id: self.last_correlation_id.clone(),
            conflict_resolved: self.conflict_resolved,
            last_modified: self.last_modified.map(|t| t.timestamp_micros()),
            present: self.present.clone(),
            deleted: self.deleted.clone(),
            fields: BTreeMap::new(),
        };
        for (name, field) in &self.fields {
            let entry = match field {
                FieldState::Ranked(cands) => {
                    let w = crate::merge::winner_index(policy, name, cands);
                    BookField {
                        key: cands.get(w).map(|c| c.key.clone()),
                        others: cands
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != w)
                            .map(|(_, c)| BookCandidate {
                                key: c.key.clone(),
                                value: c.value.clone(),
                            })
                            .collect(),
                        union: Vec::new(),
                    }
                }
                FieldState::Union(elems) => BookField {
                    key: None,
                    others: Vec::new(),
                    union: elems.iter().map(|c| c.key.clone()).collect(),
                },
            };
            book.fields.insert(name.clone(), entry);
        }
        StoredEntity {
            exists: self.exists(),
            fields: self.visible_fields(policy),
            version: self.version,
            last_modified: self.last_modified,
            conflict_resolved: self.conflict_resolved,
            bookkeeping: serde_json::to_string(&book).unwrap_or_default(),
        }
    }

    /// Rebuilds the state from its stored form.
    ///
    /// An entity without bookkeeping (written by the recipe or by hand) is
    /// adopted: each field becomes a write at its `last_modified` (or the epoch)
    /// with an empty source and event id, so any real event beats it.
    ///
    /// # Errors
    /// [`StateError`] when the bookkeeping is not ours or contradicts the fields.
    pub fn from_stored(stored: &StoredEntity) -> Result<Self, StateError> {
        if stored.bookkeeping.is_empty() {
            return Ok(Self::adopt(stored));
        }
        let book: Book =
            serde_json::from_str(&stored.bookkeeping).map_err(|e| StateError(e.to_string()))?;
        if book.format != 1 {
            return Err(StateError(format!(
                "bookkeeping format {} is not supported",
                book.format
            )));
        }
        let mut fields = BTreeMap::new();
        for (name, entry) in book.fields {
            let visible = stored.fields.get(&name);
            let state = if let Some(key) = entry.key {
                let value = visible.cloned().ok_or_else(|| {
                    StateError(format!("field `{name}` has bookkeeping but no value"))
                })?;
                let mut cands = vec![Candidate { key, value }];
                cands.extend(entry.others.into_iter().map(|c| Candidate {
                    key: c.key,
                    value: c.value,
                }));
                cands.sort_by(|a, b| b.key.cmp(&a.key));
                FieldState::Ranked(cands)
            } else {
                let Some(Value::Array(items)) = visible else {
                    return Err(StateError(format!(
                        "union field `{name}` is not stored as an array"
                    )));
                };
                if items.len() != entry.union.len() {
                    return Err(StateError(format!(
                        "union field `{name}` has {} elements but {} keys",
                        items.len(),
                        entry.union.len()
                    )));
                }
                let mut elems: Vec<Candidate> = items
                    .iter()
                    .cloned()
                    .zip(entry.union)
                    .map(|(value, key)| Candidate { key, value })
                    .collect();
                elems.sort_by(|a, b| compare_values(&a.value, &b.value));
                FieldState::Union(elems)
            };
            fields.insert(name, state);
        }
        Ok(Self {
            version: book.version,
            changed_by: book.changed_by,
            last_modified: book.last_modified.and_then(DateTime::from_timestamp_micros),
            conflict_resolved: book.conflict_resolved,
            last_operation: book
                .operation
                .as_deref()
                .and_then(|o| Operation::parse(o).ok()),
            last_correlation_id: book.correlation_id,
            present: book.present,
            deleted: book.deleted,
            fields,
        })
    }

    fn adopt(stored: &StoredEntity) -> Self {
        let at = stored.last_modified.unwrap_or(DateTime::UNIX_EPOCH);
        let key = OrderKey::new(at, "", "");
        let fields = stored
            .fields
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    FieldState::Ranked(vec![Candidate {
                        key: key.clone(),
                        value: value.clone(),
                    }]),
                )
            })
            .collect();
        Self {
            version: stored.version,
            // What a foreign writer made was never ours to announce.
            changed_by: None,
            last_modified: stored.last_modified,
            conflict_resolved: stored.conflict_resolved,
            last_operation: None,
            last_correlation_id: None,
            present: stored.exists.then_some(key),
            deleted: None,
            fields,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Book {
    #[serde(rename = "v")]
    format: u32,
    #[serde(rename = "ver")]
    version: i64,
    #[serde(rename = "by", default, skip_serializing_if = "Option::is_none")]
    changed_by: Option<OrderKey>,
    #[serde(rename = "op", default, skip_serializing_if = "Option::is_none")]
    operation: Option<String>,
    #[serde(rename = "cid", default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(rename = "cr", default)]
    conflict_resolved: bool,
    #[serde(rename = "lm", default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<i64>,
    #[serde(rename = "pre", default, skip_serializing_if = "Option::is_none")]
    present: Option<OrderKey>,
    #[serde(rename = "del", default, skip_serializing_if = "Option::is_none")]
    deleted: Option<OrderKey>,
    #[serde(rename = "f", default)]
    fields: BTreeMap<String, BookField>,
}

#[derive(Serialize, Deserialize)]
struct BookField {
    /// Key of the visible (winning) value, for ranked rules.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    key: Option<OrderKey>,
    /// Candidates kept aside (not visible), for ranked rules.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    others: Vec<BookCandidate>,
    /// Keys of the visible array's elements, in order, for `union`.
    #[serde(rename = "u", default, skip_serializing_if = "Vec::is_empty")]
    union: Vec<OrderKey>,
}

#[derive(Serialize, Deserialize)]
struct BookCandidate {
    #[serde(rename = "k")]
    key: OrderKey,
    #[serde(rename = "v")]
    value: Value,
}
