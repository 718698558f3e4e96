//! The merge state of one entity: what the merge knows besides the visible
//! values, and the accessors that read it.
//!
//! Only the merge ([`mod@crate::merge`]) and the stored form
//! ([`mod@crate::merge::stored`]) change an [`EntityState`], so its invariants (a
//! field's candidates are the undominated ones, newest first; a union's
//! elements are distinct and sorted; the newest write is kept only while it is
//! newer than the tombstone, and so is a field's removal key; no candidate is
//! older than its field's removal; `version` and the last change's
//! description move together) hold for every state a caller can see.

use super::announcement::Announcement;
use super::order::OrderKey;
use super::policy::MergePolicy;
use super::rank::{Candidate, Rank};
use crate::wire::operation::Operation;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
///
/// Built empty ([`EntityState::default`]), by [`crate::merge()`] or from the
/// stored form ([`EntityState::from_stored`]); read through its accessors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityState {
    /// Number of effective changes this store has applied to the key.
    pub(crate) version: i64,
    /// Order key of the event behind the last effective change: a redelivery
    /// of that event repeats the announcement (see [`crate::MergeOutcome::announcement`]).
    pub(crate) changed_by: Option<OrderKey>,
    /// Newest event timestamp merged.
    pub(crate) last_modified: Option<DateTime<Utc>>,
    /// Whether the last effective change lost any field to a better value.
    pub(crate) conflict_resolved: bool,
    /// What the last effective change did to the entity (for announcements).
    pub(crate) last_operation: Option<Operation>,
    /// Correlation id of the event behind the last effective change.
    pub(crate) last_correlation_id: Option<String>,
    /// Newest create/update key, kept only while it is newer than `deleted_by`.
    pub(crate) written_by: Option<OrderKey>,
    /// Newest delete key (the tombstone).
    pub(crate) deleted_by: Option<OrderKey>,
    /// Per field, the newest removal key (an update's `removed`), kept only
    /// while it is newer than `deleted_by`: a field's tombstone.
    pub(crate) removed_by: BTreeMap<String, OrderKey>,
    /// Per-field state, by field name.
    pub(crate) fields: BTreeMap<String, FieldState>,
}

impl FieldState {
    /// The value readers see: the winner under `rank`, or the sorted set.
    pub(crate) fn visible(&self, rank: Rank<'_>) -> Value {
        match self {
            Self::Ranked(c) => rank
                .winner(c)
                .and_then(|w| c.get(w))
                .map_or(Value::Null, |c| c.value.clone()),
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
    /// Number of effective changes applied to the entity (the recipe's
    /// `version`).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Order key of the event behind the last effective change, `None` before
    /// the first one (and for an adopted entity).
    pub fn changed_by(&self) -> Option<&OrderKey> {
        self.changed_by.as_ref()
    }

    /// Newest event timestamp merged.
    pub fn last_modified(&self) -> Option<DateTime<Utc>> {
        self.last_modified
    }

    /// Whether the last effective change lost any field to a better value.
    pub fn conflict_resolved(&self) -> bool {
        self.conflict_resolved
    }

    /// Order key of the newest create/update, while it is newer than the
    /// newest delete.
    pub fn written_by(&self) -> Option<&OrderKey> {
        self.written_by.as_ref()
    }

    /// Order key of the newest delete (the tombstone).
    pub fn deleted_by(&self) -> Option<&OrderKey> {
        self.deleted_by.as_ref()
    }

    /// Per field, the order key of its newest removal newer than the newest
    /// delete: writes of the field older than it are refused.
    pub fn removed_by(&self) -> &BTreeMap<String, OrderKey> {
        &self.removed_by
    }

    /// Per-field state, by field name.
    pub fn fields(&self) -> &BTreeMap<String, FieldState> {
        &self.fields
    }

    /// Whether the entity is visible: a create/update newer than any delete.
    pub fn exists(&self) -> bool {
        match (&self.written_by, &self.deleted_by) {
            (Some(w), Some(d)) => w > d,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The announcement of the current version, or `None` before the first
    /// effective change (a tombstone of an entity never seen, an adopted entity).
    pub fn announcement(&self, policy: &MergePolicy) -> Option<Announcement> {
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
    pub fn visible_fields(&self, policy: &MergePolicy) -> Map<String, Value> {
        if !self.exists() {
            return Map::new();
        }
        self.fields
            .iter()
            .map(|(name, f)| (name.clone(), f.visible(Rank::of(policy, name))))
            .collect()
    }
}
