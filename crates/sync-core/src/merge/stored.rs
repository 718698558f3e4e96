//! The stored form of an entity, and the bookkeeping JSON that lets the merge
//! rebuild its state from it.
//!
//! An entity is stored with its user fields at the top level and the recipe's
//! `version`, `last_modified`, `sync_status` and `conflict_resolved`; everything
//! the merge needs besides the visible values (per-field order keys, candidates
//! kept aside by `max`/`min`/`priority`, the delete key, per-field removal
//! keys, the last change) is one JSON text in
//! [`BOOKKEEPING_PROPERTY`](crate::value::BOOKKEEPING_PROPERTY). A removed
//! field has no value and so no property: only its removal key, in the
//! bookkeeping's `rm`, which bookkeeping written before removals existed
//! lacks and reads as empty (format 1 either way).
//! An entity without that property was written by someone else (the recipe's
//! initial entity, a hand edit) and is adopted on its first read.

use super::order::OrderKey;
use super::policy::MergePolicy;
use super::rank::{Candidate, Rank};
use super::state::{EntityState, FieldState};
use crate::value::compare_values;
use crate::wire::operation::Operation;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use thiserror::Error;

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
    /// Bookkeeping JSON text, stored unindexed in
    /// [`BOOKKEEPING_PROPERTY`](crate::value::BOOKKEEPING_PROPERTY); `None` for
    /// an entity without that property (written by something other than this
    /// project), which [`EntityState::from_stored`] adopts.
    pub bookkeeping: Option<String>,
}

/// The stored form and the merge state do not match.
#[derive(Debug, Error)]
pub enum StateError {
    /// The stored bookkeeping is not ours, or contradicts the stored fields.
    #[error("stored bookkeeping is unreadable: {0}")]
    Unreadable(String),
    /// The state could not be written as bookkeeping JSON.
    #[error("bookkeeping cannot be written: {0}")]
    Unwritable(#[source] serde_json::Error),
}

impl EntityState {
    /// The stored form of this state under `policy`.
    ///
    /// # Errors
    /// [`StateError::Unwritable`] when the bookkeeping cannot be serialised.
    pub fn to_stored(&self, policy: &MergePolicy) -> Result<StoredEntity, StateError> {
        let mut bookkeeping = Bookkeeping {
            format: 1,
            version: self.version,
            changed_by: self.changed_by.clone(),
            operation: self.last_operation.map(|o| o.as_str().to_string()),
            correlation_id: self.last_correlation_id.clone(),
            conflict_resolved: self.conflict_resolved,
            last_modified: self.last_modified.map(|t| t.timestamp_micros()),
            written_by: self.written_by.clone(),
            deleted_by: self.deleted_by.clone(),
            removed_by: self.removed_by.clone(),
            fields: BTreeMap::new(),
        };
        for (name, field) in &self.fields {
            let entry = match field {
                FieldState::Ranked(cands) => {
                    let w = Rank::of(policy, name).winner(cands);
                    FieldBookkeeping {
                        visible_key: w.and_then(|w| cands.get(w)).map(|c| c.key.clone()),
                        kept_aside: cands
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| Some(*i) != w)
                            .map(|(_, c)| KeptCandidate {
                                key: c.key.clone(),
                                value: c.value.clone(),
                            })
                            .collect(),
                        element_keys: Vec::new(),
                    }
                }
                FieldState::Union(elems) => FieldBookkeeping {
                    visible_key: None,
                    kept_aside: Vec::new(),
                    element_keys: elems.iter().map(|c| c.key.clone()).collect(),
                },
            };
            bookkeeping.fields.insert(name.clone(), entry);
        }
        Ok(StoredEntity {
            exists: self.exists(),
            fields: self.visible_fields(policy),
            version: self.version,
            last_modified: self.last_modified,
            conflict_resolved: self.conflict_resolved,
            bookkeeping: Some(serde_json::to_string(&bookkeeping).map_err(StateError::Unwritable)?),
        })
    }

    /// Rebuilds the state from its stored form.
    ///
    /// An entity without bookkeeping (written by the recipe or by hand) is
    /// adopted: each field becomes a write at its `last_modified` (or the epoch)
    /// with an empty source and event id, so any real event beats it.
    ///
    /// # Errors
    /// [`StateError::Unreadable`] when the bookkeeping is not ours or
    /// contradicts the fields.
    pub fn from_stored(stored: &StoredEntity) -> Result<Self, StateError> {
        let Some(text) = &stored.bookkeeping else {
            return Ok(Self::adopt(stored));
        };
        let unreadable = StateError::Unreadable;
        let bookkeeping: Bookkeeping =
            serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        if bookkeeping.format != 1 {
            return Err(unreadable(format!(
                "bookkeeping format {} is not supported",
                bookkeeping.format
            )));
        }
        let mut fields = BTreeMap::new();
        for (name, entry) in bookkeeping.fields {
            let visible = stored.fields.get(&name);
            let state = if let Some(key) = entry.visible_key {
                let value = visible.cloned().ok_or_else(|| {
                    unreadable(format!("field `{name}` has bookkeeping but no value"))
                })?;
                let mut cands = vec![Candidate { key, value }];
                cands.extend(entry.kept_aside.into_iter().map(|c| Candidate {
                    key: c.key,
                    value: c.value,
                }));
                cands.sort_by(|a, b| b.key.cmp(&a.key));
                FieldState::Ranked(cands)
            } else {
                let Some(Value::Array(items)) = visible else {
                    return Err(unreadable(format!(
                        "union field `{name}` is not stored as an array"
                    )));
                };
                if items.len() != entry.element_keys.len() {
                    return Err(unreadable(format!(
                        "union field `{name}` has {} elements but {} keys",
                        items.len(),
                        entry.element_keys.len()
                    )));
                }
                let mut elems: Vec<Candidate> = items
                    .iter()
                    .cloned()
                    .zip(entry.element_keys)
                    .map(|(value, key)| Candidate { key, value })
                    .collect();
                elems.sort_by(|a, b| compare_values(&a.value, &b.value));
                FieldState::Union(elems)
            };
            fields.insert(name, state);
        }
        Ok(Self {
            version: bookkeeping.version,
            changed_by: bookkeeping.changed_by,
            last_modified: bookkeeping
                .last_modified
                .and_then(DateTime::from_timestamp_micros),
            conflict_resolved: bookkeeping.conflict_resolved,
            last_operation: bookkeeping
                .operation
                .as_deref()
                .and_then(|o| Operation::parse(o).ok()),
            last_correlation_id: bookkeeping.correlation_id,
            written_by: bookkeeping.written_by,
            deleted_by: bookkeeping.deleted_by,
            removed_by: bookkeeping.removed_by,
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
            written_by: stored.exists.then_some(key),
            deleted_by: None,
            removed_by: BTreeMap::new(),
            fields,
        }
    }
}

/// The JSON in [`BOOKKEEPING_PROPERTY`](crate::value::BOOKKEEPING_PROPERTY).
/// The short names are the stored format: renaming one would make every
/// stored entity unreadable.
#[derive(Serialize, Deserialize)]
struct Bookkeeping {
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
    written_by: Option<OrderKey>,
    #[serde(rename = "del", default, skip_serializing_if = "Option::is_none")]
    deleted_by: Option<OrderKey>,
    /// Per-field removal keys; absent when none (and in bookkeeping written
    /// before removals existed).
    #[serde(rename = "rm", default, skip_serializing_if = "BTreeMap::is_empty")]
    removed_by: BTreeMap<String, OrderKey>,
    #[serde(rename = "f", default)]
    fields: BTreeMap<String, FieldBookkeeping>,
}

/// The bookkeeping of one field.
#[derive(Serialize, Deserialize)]
struct FieldBookkeeping {
    /// Key of the visible (winning) value, for ranked rules.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    visible_key: Option<OrderKey>,
    /// Candidates kept aside (not visible), for ranked rules.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    kept_aside: Vec<KeptCandidate>,
    /// Keys of the visible array's elements, in order, for `union`.
    #[serde(rename = "u", default, skip_serializing_if = "Vec::is_empty")]
    element_keys: Vec<OrderKey>,
}

/// A candidate kept aside, with its value (the visible one's value is the
/// stored field itself).
#[derive(Serialize, Deserialize)]
struct KeptCandidate {
    #[serde(rename = "k")]
    key: OrderKey,
    #[serde(rename = "v")]
    value: Value,
}
