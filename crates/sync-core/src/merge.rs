//! The convergent merge: one event into one entity's state.
//!
//! Each field keeps the set of candidate writes that no other candidate beats on
//! both recency (order key) and rank (the field's rule, see [`crate::policy`]);
//! the visible value is the candidate of highest rank. A delete with key `D`
//! drops every candidate older than `D` and refuses every later-arriving write
//! older than `D`. Both steps are functions of the set of events seen, so any
//! order and any repetition of the same events give the same state; the tests
//! check this on random event sets.
//!
//! What may differ between orders is the *history*: `version` counts the
//! effective changes this store saw, and `conflict_resolved` describes the last
//! one.

use crate::event::{ChangeEvent, Operation};
use crate::order::OrderKey;
use crate::policy::{FieldRule, MergePolicy};
use crate::state::{Candidate, EntityState, FieldState};
use crate::value::{canonical, compare_values};
use serde_json::Value;
use std::cmp::Ordering;

/// What an event did to its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reader sees a difference: written, `version` + 1, announced.
    Applied,
    /// Only bookkeeping moved (newer keys, same values): written, not announced.
    Refreshed,
    /// Already merged (a redelivery): nothing to write.
    Duplicate,
    /// Entirely beaten by what is stored: nothing to write.
    Stale,
}

impl Outcome {
    /// Whether the new state must be written.
    pub fn needs_write(self) -> bool {
        matches!(self, Self::Applied | Self::Refreshed)
    }

    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Refreshed => "refreshed",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
        }
    }
}

/// Why a write lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// `lww`: a newer write holds the field.
    OlderThanWinner,
    /// `max`: a larger value holds the field.
    SmallerValue,
    /// `min`: a smaller value holds the field.
    LargerValue,
    /// `priority`: a higher-priority (or equal-priority, newer) source holds it.
    LowerPriority,
    /// The entity was deleted after this write.
    DeletedLater,
}

impl LossReason {
    /// Stable name for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OlderThanWinner => "older_than_winner",
            Self::SmallerValue => "smaller_value",
            Self::LargerValue => "larger_value",
            Self::LowerPriority => "lower_priority",
            Self::DeletedLater => "deleted_later",
        }
    }
}

/// One field of an event that did not become visible.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// The rule that decided.
    pub rule: FieldRule,
    /// Why the incoming write lost.
    pub reason: LossReason,
    /// The value that stayed visible (`None` when the entity is deleted).
    pub winner_value: Option<Value>,
    /// Order key of the value that stayed (or of the delete).
    pub winner_key: OrderKey,
    /// The incoming value that lost.
    pub loser_value: Value,
    /// Order key of the incoming write.
    pub loser_key: OrderKey,
}

/// The result of merging one event.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// What happened.
    pub outcome: Outcome,
    /// The state after the event (equal to the input unless `needs_write`).
    pub state: EntityState,
    /// Fields of the event that lost, with both sides.
    pub conflicts: Vec<FieldConflict>,
}

/// Merges `event` into `state` under `policy`.
///
/// ```
/// use sync_core::{merge, parse_event, parse_timestamp, EntityState, Limits, MergePolicy, Outcome};
/// let now = parse_timestamp("2025-07-23T11:00:00")?;
/// let create = parse_event(br#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T10:00:00","data":{"name":"a"}}"#, "m1", &Limits::default(), now)?;
/// let policy = MergePolicy::default();
/// let first = merge(&EntityState::default(), &create, &policy);
/// assert_eq!(first.outcome, Outcome::Applied);
/// assert_eq!(first.state.version, 1);
/// let again = merge(&first.state, &create, &policy);
/// assert_eq!(again.outcome, Outcome::Duplicate);
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
pub fn merge(state: &EntityState, event: &ChangeEvent, policy: &MergePolicy) -> MergeOutcome {
    let key = event.order_key();
    let before = state.visible_fields(policy);
    let existed = state.exists();
    let mut next = state.clone();
    let mut conflicts = Vec::new();
    let mut lost_any = false;

    match event.operation {
        Operation::Create | Operation::Update => {
            if let Some(deleted) = state.deleted.as_ref().filter(|d| key < **d) {
                // Older than the tombstone: every field lost to the delete.
                for (field, value) in &event.data {
                    conflicts.push(FieldConflict {
                        field: field.clone(),
                        rule: policy.rule_for(field),
                        reason: LossReason::DeletedLater,
                        winner_value: None,
                        winner_key: deleted.clone(),
                        loser_value: value.clone(),
                        loser_key: key.clone(),
                    });
                }
                return MergeOutcome {
                    outcome: Outcome::Stale,
                    state: next,
                    conflicts,
                };
            }
            if next.present.as_ref().is_none_or(|p| key > *p) {
                next.present = Some(key.clone());
            } else if next.present.as_ref() != Some(&key) {
                lost_any = true;
            }
            for (field, value) in &event.data {
                let rule = policy.rule_for(field);
                match insert(policy, field, rule, next.fields.get_mut(field), &key, value) {
                    Insert::New(state) => {
                        next.fields.insert(field.clone(), state);
                    }
                    Insert::Changed | Insert::Present => {}
                    Insert::Lost { winner, reason } => {
                        lost_any = true;
                        conflicts.push(FieldConflict {
                            field: field.clone(),
                            rule,
                            reason,
                            winner_value: Some(winner.value),
                            winner_key: winner.key,
                            loser_value: value.clone(),
                            loser_key: key.clone(),
                        });
                    }
                }
            }
        }
        Operation::Delete => {
            if let Some(d) = &state.deleted {
                if key <= *d {
                    let outcome = if key == *d {
                        Outcome::Duplicate
                    } else {
                        Outcome::Stale
                    };
                    return MergeOutcome {
                        outcome,
                        state: next,
                        conflicts,
                    };
                }
            }
            next.fields.retain(|_, f| {
                match f {
                    FieldState::Ranked(c) | FieldState::Union(c) => c.retain(|c| c.key > key),
                }
                !f.is_empty()
            });
            if next.present.as_ref().is_some_and(|p| *p < key) {
                next.present = None;
            }
            next.deleted = Some(key.clone());
        }
    }

    if next == *state {
        let outcome = if lost_any {
            Outcome::Stale
        } else {
            Outcome::Duplicate
        };
        return MergeOutcome {
            outcome,
            state: next,
            conflicts,
        };
    }

    if next.last_modified.is_none_or(|t| event.timestamp > t) {
        next.last_modified = Some(event.timestamp);
    }
    let exists = next.exists();
    let after = next.visible_fields(policy);
    let outcome = if exists != existed || after != before {
        next.version += 1;
        next.conflict_resolved = !conflicts.is_empty();
        next.last_operation = Some(match (existed, exists) {
            (false, true) => Operation::Create,
            (_, false) => Operation::Delete,
            (true, true) => Operation::Update,
        });
        next.last_correlation_id = event.correlation_id.clone();
        Outcome::Applied
    } else {
        Outcome::Refreshed
    };
    MergeOutcome {
        outcome,
        state: next,
        conflicts,
    }
}

enum Insert {
    /// The field did not exist: here is its state.
    New(FieldState),
    /// The field's state changed.
    Changed,
    /// This exact write is already there.
    Present,
    /// Beaten (now or for the moment) by `winner`.
    Lost {
        winner: Candidate,
        reason: LossReason,
    },
}

fn insert(
    policy: &MergePolicy,
    field: &str,
    rule: FieldRule,
    existing: Option<&mut FieldState>,
    key: &OrderKey,
    value: &Value,
) -> Insert {
    if rule == FieldRule::Union {
        let additions = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        return match existing {
            None => {
                let mut elems = Vec::new();
                add_elements(&mut elems, additions, key);
                // An empty set is an absent field: creating it would make the
                // result depend on whether a delete came first.
                if elems.is_empty() {
                    Insert::Present
                } else {
                    Insert::New(FieldState::Union(elems))
                }
            }
            Some(slot) => {
                let mut elems = match slot {
                    FieldState::Union(e) => std::mem::take(e),
                    FieldState::Ranked(c) => ranked_to_union(policy, field, std::mem::take(c)),
                };
                let changed = add_elements(&mut elems, additions, key);
                *slot = FieldState::Union(elems);
                if changed {
                    Insert::Changed
                } else {
                    Insert::Present
                }
            }
        };
    }

    let incoming = Candidate {
        key: key.clone(),
        value: value.clone(),
    };
    let Some(slot) = existing else {
        return Insert::New(FieldState::Ranked(vec![incoming]));
    };
    let mut cands = match slot {
        FieldState::Ranked(c) => std::mem::take(c),
        FieldState::Union(e) => union_to_ranked(std::mem::take(e)),
    };
    let outcome = if cands.iter().any(|c| c.key == *key) {
        Insert::Present
    } else if cands
        .iter()
        .any(|c| c.key > *key && outranks(policy, field, rule, c, &incoming))
    {
        let w = winner_index(policy, field, &cands);
        Insert::Lost {
            winner: cands[w].clone(),
            reason: reason_for(rule),
        }
    } else {
        cands.retain(|c| !(*key > c.key && outranks(policy, field, rule, &incoming, c)));
        cands.push(incoming);
        cands.sort_by(|a, b| b.key.cmp(&a.key));
        let w = winner_index(policy, field, &cands);
        if cands[w].key == *key {
            Insert::Changed
        } else {
            Insert::Lost {
                winner: cands[w].clone(),
                reason: reason_for(rule),
            }
        }
    };
    *slot = FieldState::Ranked(cands);
    outcome
}

/// Adds set elements, each remembering the newest key that added it. Returns
/// whether anything changed.
fn add_elements(elems: &mut Vec<Candidate>, additions: Vec<Value>, key: &OrderKey) -> bool {
    let mut changed = false;
    for item in additions {
        match elems.binary_search_by(|c| compare_values(&c.value, &item)) {
            Ok(i) => {
                if elems[i].key < *key {
                    elems[i].key = key.clone();
                    changed = true;
                }
            }
            Err(i) => {
                elems.insert(
                    i,
                    Candidate {
                        key: key.clone(),
                        value: item,
                    },
                );
                changed = true;
            }
        }
    }
    changed
}

/// Reinterprets a ranked field as a set after a policy change.
fn ranked_to_union(policy: &MergePolicy, field: &str, cands: Vec<Candidate>) -> Vec<Candidate> {
    let w = winner_index(policy, field, &cands);
    let Some(winner) = cands.into_iter().nth(w) else {
        return Vec::new();
    };
    let items = match winner.value {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut elems = Vec::new();
    add_elements(&mut elems, items, &winner.key);
    elems
}

/// Reinterprets a set as one ranked write after a policy change.
fn union_to_ranked(elems: Vec<Candidate>) -> Vec<Candidate> {
    let Some(key) = elems.iter().map(|c| c.key.clone()).max() else {
        return Vec::new();
    };
    vec![Candidate {
        key,
        value: Value::Array(elems.into_iter().map(|c| c.value).collect()),
    }]
}

fn reason_for(rule: FieldRule) -> LossReason {
    match rule {
        FieldRule::Lww | FieldRule::Union => LossReason::OlderThanWinner,
        FieldRule::Max => LossReason::SmallerValue,
        FieldRule::Min => LossReason::LargerValue,
        FieldRule::Priority => LossReason::LowerPriority,
    }
}

/// Compares two candidates by the rank of `rule`; the order key breaks ties, so
/// the order is total.
fn rank_cmp(policy: &MergePolicy, rule: FieldRule, a: &Candidate, b: &Candidate) -> Ordering {
    let primary = match rule {
        FieldRule::Lww | FieldRule::Union => Ordering::Equal,
        FieldRule::Max => compare_values(&a.value, &b.value),
        FieldRule::Min => compare_values(&b.value, &a.value),
        FieldRule::Priority => policy
            .source_rank(&a.key.source)
            .cmp(&policy.source_rank(&b.key.source)),
    };
    primary
        .then_with(|| a.key.cmp(&b.key))
        .then_with(|| canonical(&a.value).cmp(&canonical(&b.value)))
}

fn outranks(
    policy: &MergePolicy,
    _field: &str,
    rule: FieldRule,
    a: &Candidate,
    b: &Candidate,
) -> bool {
    rank_cmp(policy, rule, a, b) == Ordering::Greater
}

/// Index of the visible candidate of `field` among `cands` (0 when empty).
pub(crate) fn winner_index(policy: &MergePolicy, field: &str, cands: &[Candidate]) -> usize {
    let rule = policy.rule_for(field);
    let mut best = 0;
    for (i, c) in cands.iter().enumerate().skip(1) {
        if rank_cmp(policy, rule, c, &cands[best]) == Ordering::Greater {
            best = i;
        }
    }
    best
}
