//! The merge itself: one event into one entity's state ([`merge`]), or
//! several in one pass ([`merge_group`]), each field under its rule.

use super::conflict::{FieldConflict, LossReason};
use super::order::OrderKey;
use super::outcome::{MergeOutcome, Outcome};
use super::policy::{FieldRule, MergePolicy};
use super::rank::{Candidate, Rank};
use super::state::{EntityState, FieldState};
use crate::ingest::change::ChangeEvent;
use crate::value::compare_values;
use crate::wire::operation::Operation;
use serde_json::Value;

/// Merges `event` into `state` under `policy`.
///
/// ```
/// use sync_core::{merge, parse_event, parse_timestamp, EntityState, ValidationLimits, MergePolicy, Outcome};
/// let now = parse_timestamp("2025-07-23T11:00:00")?;
/// let create = parse_event(br#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T10:00:00","data":{"name":"a"}}"#, "m1", &ValidationLimits::default(), now)?;
/// let policy = MergePolicy::default();
/// let first = merge(&EntityState::default(), &create, &policy);
/// assert_eq!(first.outcome, Outcome::Applied);
/// assert_eq!(first.version(), 1);
/// let again = merge(&first.state, &create, &policy);
/// assert_eq!(again.outcome, Outcome::Duplicate);
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
pub fn merge(state: &EntityState, event: &ChangeEvent, policy: &MergePolicy) -> MergeOutcome {
    merge_state(state, event, policy).announcing(event, policy)
}

/// Merges `events`, in order, into `state` in one pass: what applying them one
/// by one with [`merge`] gives, each event's [`MergeOutcome`] (its outcome,
/// conflicts, announcement and the state after it), and the final state to
/// write. A store's group commit writes that final state and every event's
/// conflicts in one transaction.
///
/// ```
/// use sync_core::{merge, merge_group, parse_event, parse_timestamp, EntityState, ValidationLimits, MergePolicy};
/// let now = parse_timestamp("2025-07-23T11:00:00")?;
/// let event = |body: &str, id| parse_event(body.as_bytes(), id, &ValidationLimits::default(), now);
/// let a = event(r#"{"entity_id":"e","operation":"create","timestamp":"2025-07-23T10:00:00","data":{"n":1}}"#, "m1")?;
/// let b = event(r#"{"entity_id":"e","operation":"update","timestamp":"2025-07-23T10:00:01","data":{"n":2}}"#, "m2")?;
/// let policy = MergePolicy::default();
/// let (last, outcomes) = merge_group(&EntityState::default(), [&a, &b, &a], &policy);
/// let first = merge(&EntityState::default(), &a, &policy);
/// assert_eq!(outcomes[0], first);
/// assert_eq!(outcomes[1], merge(&first.state, &b, &policy));
/// assert_eq!(last.version(), 2);
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
pub fn merge_group<'a>(
    state: &EntityState,
    events: impl IntoIterator<Item = &'a ChangeEvent>,
    policy: &MergePolicy,
) -> (EntityState, Vec<MergeOutcome>) {
    let (last, results) = merge_group_checked(state, events, policy, |_, _| {
        Ok::<(), std::convert::Infallible>(())
    });
    (last, results.into_iter().flatten().collect())
}

/// [`merge_group`] where `accept` may refuse the state an event leads to (a
/// store's size and index limits): a refused event gets `accept`'s error and
/// leaves the state as it was, as if it had been applied alone and rolled
/// back, and the next event merges into the state before it. `accept` sees
/// only outcomes that need a write (see [`Outcome::needs_write`]); the others
/// change nothing to refuse.
pub fn merge_group_checked<'a, E>(
    state: &EntityState,
    events: impl IntoIterator<Item = &'a ChangeEvent>,
    policy: &MergePolicy,
    mut accept: impl FnMut(&ChangeEvent, &MergeOutcome) -> Result<(), E>,
) -> (EntityState, Vec<Result<MergeOutcome, E>>) {
    let mut results: Vec<Result<MergeOutcome, E>> = Vec::new();
    // The outcome whose state is the current one (`None`: the initial state).
    let mut current: Option<usize> = None;
    for event in events {
        let base = match current.and_then(|i| results.get(i)) {
            Some(Ok(outcome)) => &outcome.state,
            _ => state,
        };
        let merged = merge(base, event, policy);
        let result = if merged.outcome.needs_write() {
            accept(event, &merged).map(|()| merged)
        } else {
            Ok(merged)
        };
        if result.as_ref().is_ok_and(|m| m.outcome.needs_write()) {
            current = Some(results.len());
        }
        results.push(result);
    }
    let last = match current.and_then(|i| results.get(i)) {
        Some(Ok(outcome)) => outcome.state.clone(),
        _ => state.clone(),
    };
    (last, results)
}

fn merge_state(state: &EntityState, event: &ChangeEvent, policy: &MergePolicy) -> MergeOutcome {
    let key = event.order_key();
    let mut next = state.clone();
    let mut conflicts = Vec::new();
    let mut lost_any = false;

    match event.operation {
        Operation::Create | Operation::Update => {
            if let Some(deleted) = state.deleted_by.as_ref().filter(|d| key < **d) {
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
                return MergeOutcome::new(Outcome::Stale, next, conflicts);
            }
            if next.written_by.as_ref().is_none_or(|p| key > *p) {
                next.written_by = Some(key.clone());
            } else if next.written_by.as_ref() != Some(&key) {
                lost_any = true;
            }
            for (field, value) in &event.data {
                let rank = Rank::of(policy, field);
                // Not newer than the field's removal: lost to it, whatever
                // its rank (at an equal key too, so the order of two events
                // sharing a key cannot matter).
                if let Some(removed) = next.removed_by.get(field).filter(|r| key <= **r) {
                    lost_any = true;
                    conflicts.push(FieldConflict {
                        field: field.clone(),
                        rule: rank.rule(),
                        reason: LossReason::RemovedLater,
                        winner_value: None,
                        winner_key: removed.clone(),
                        loser_value: value.clone(),
                        loser_key: key.clone(),
                    });
                    continue;
                }
                match insert(rank, next.fields.get_mut(field), &key, value) {
                    Insert::New(state) => {
                        next.fields.insert(field.clone(), state);
                    }
                    Insert::Changed | Insert::Unchanged => {}
                    Insert::Lost { winner, reason } => {
                        lost_any = true;
                        conflicts.push(FieldConflict {
                            field: field.clone(),
                            rule: rank.rule(),
                            reason,
                            winner_value: Some(winner.value),
                            winner_key: winner.key,
                            loser_value: value.clone(),
                            loser_key: key.clone(),
                        });
                    }
                }
            }
            remove_fields(&mut next, &event.removed, &key);
        }
        Operation::Delete => {
            if let Some(d) = &state.deleted_by {
                if key <= *d {
                    let outcome = if key == *d {
                        Outcome::Duplicate
                    } else {
                        Outcome::Stale
                    };
                    return MergeOutcome::new(outcome, next, conflicts);
                }
            }
            next.fields.retain(|_, f| {
                match f {
                    FieldState::Ranked(c) | FieldState::Union(c) => c.retain(|c| c.key > key),
                }
                !f.is_empty()
            });
            if next.written_by.as_ref().is_some_and(|p| *p < key) {
                next.written_by = None;
            }
            // The tombstone refuses every older write: older removals are
            // no longer needed.
            next.removed_by.retain(|_, r| *r > key);
            next.deleted_by = Some(key.clone());
        }
    }

    if next == *state {
        let outcome = if lost_any {
            Outcome::Stale
        } else {
            Outcome::Duplicate
        };
        return MergeOutcome::new(outcome, next, conflicts);
    }

    if next.last_modified.is_none_or(|t| event.timestamp > t) {
        next.last_modified = Some(event.timestamp);
    }
    // Only now, past the early returns of redeliveries and stale events.
    let before = state.visible_fields(policy);
    let existed = state.exists();
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
        next.changed_by = Some(key);
        Outcome::Applied
    } else {
        Outcome::Refreshed
    };
    MergeOutcome::new(outcome, next, conflicts)
}

/// Removes `fields` as of `key`: like a delete of those fields alone, every
/// candidate older than `key` goes, and the field remembers `key` so that
/// later-arriving older writes are refused. A field left without candidates
/// is gone: not visible, not stored. The key is kept only while newer than
/// the tombstone, which refuses older writes by itself.
fn remove_fields(state: &mut EntityState, fields: &[String], key: &OrderKey) {
    if state.deleted_by.as_ref().is_some_and(|d| key <= d) {
        return;
    }
    for field in fields {
        if state.removed_by.get(field).is_some_and(|r| r >= key) {
            continue;
        }
        state.removed_by.insert(field.clone(), key.clone());
        if let Some(f) = state.fields.get_mut(field) {
            match f {
                FieldState::Ranked(c) | FieldState::Union(c) => c.retain(|c| c.key > *key),
            }
            if f.is_empty() {
                state.fields.remove(field);
            }
        }
    }
}

enum Insert {
    /// The field did not exist: here is its state.
    New(FieldState),
    /// The field's state changed.
    Changed,
    /// Nothing changed: this exact write is already there, or it adds no
    /// element to a set.
    Unchanged,
    /// Beaten (now or for the moment) by `winner`.
    Lost {
        winner: Candidate,
        reason: LossReason,
    },
}

fn insert(
    rank: Rank<'_>,
    existing: Option<&mut FieldState>,
    key: &OrderKey,
    value: &Value,
) -> Insert {
    if rank.rule() == FieldRule::Union {
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
                    Insert::Unchanged
                } else {
                    Insert::New(FieldState::Union(elems))
                }
            }
            Some(slot) => {
                let mut elems = match slot {
                    FieldState::Union(e) => std::mem::take(e),
                    FieldState::Ranked(c) => ranked_to_union(rank, std::mem::take(c)),
                };
                let changed = add_elements(&mut elems, additions, key);
                *slot = FieldState::Union(elems);
                if changed {
                    Insert::Changed
                } else {
                    Insert::Unchanged
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
        Insert::Unchanged
    } else {
        // Dominated by a kept candidate: lost for good, and nothing to keep.
        let dominated = cands.iter().any(|c| rank.dominates(c, &incoming));
        if !dominated {
            cands.retain(|c| !rank.dominates(&incoming, c));
            cands.push(incoming);
            cands.sort_by(|a, b| b.key.cmp(&a.key));
        }
        match rank.winner(&cands).and_then(|w| cands.get(w)) {
            Some(w) if w.key != *key => Insert::Lost {
                winner: w.clone(),
                reason: rank.loss_reason(),
            },
            _ => Insert::Changed,
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
fn ranked_to_union(rank: Rank<'_>, cands: Vec<Candidate>) -> Vec<Candidate> {
    let Some(winner) = rank.winner(&cands).and_then(|w| cands.into_iter().nth(w)) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{parse_event, ValidationLimits};
    use crate::wire::parse_timestamp;
    use serde_json::json;

    fn ev(id: &str, op: &str, ts: &str, source: &str, data: Value) -> ChangeEvent {
        let body = json!({"entity_id": "e1", "operation": op, "timestamp": ts, "source": source, "data": data, "correlation_id": format!("c-{id}")});
        let now = parse_timestamp("2030-01-01T00:00:00").expect("clock");
        parse_event(
            body.to_string().as_bytes(),
            id,
            &ValidationLimits::default(),
            now,
        )
        .expect("valid test event")
    }

    fn upd(id: &str, ts: &str, data: Value) -> ChangeEvent {
        ev(id, "update", ts, "app", data)
    }

    fn del(id: &str, ts: &str) -> ChangeEvent {
        ev(id, "delete", ts, "app", Value::Null)
    }

    fn fold(events: &[&ChangeEvent], policy: &MergePolicy) -> (EntityState, Vec<MergeOutcome>) {
        let mut state = EntityState::default();
        let mut outs = Vec::new();
        for e in events {
            let out = merge(&state, e, policy);
            state = out.state.clone();
            outs.push(out);
        }
        (state, outs)
    }

    fn visible(state: &EntityState, policy: &MergePolicy) -> Value {
        Value::Object(state.visible_fields(policy))
    }

    #[test]
    fn recipe_create_then_update_gives_version_two() {
        let p = MergePolicy::default();
        let create = ev(
            "m1",
            "create",
            "2025-07-23T10:00:00.000001",
            "data_publisher",
            json!({"name": "Test Product", "description": "Demo product for sync testing", "status": "active"}),
        );
        let update = ev(
            "m2",
            "update",
            "2025-07-23T10:00:05",
            "data_publisher",
            json!({"description": "Updated product description"}),
        );
        let (state, outs) = fold(&[&create, &update], &p);
        assert_eq!(outs[0].outcome, Outcome::Applied);
        assert_eq!(outs[1].outcome, Outcome::Applied);
        assert_eq!(state.version, 2);
        assert!(!state.conflict_resolved);
        assert_eq!(
            visible(&state, &p),
            json!({"name": "Test Product", "description": "Updated product description", "status": "active"})
        );
        assert_eq!(state.last_modified, Some(update.timestamp));
        let ann = outs[1].announcement.as_ref().expect("owed");
        assert_eq!((ann.operation, ann.version), (Operation::Update, 2));
        assert_eq!(ann.correlation_id.as_deref(), Some("c-m2"));
    }

    #[test]
    fn only_a_redelivery_of_the_latest_change_announces_again() {
        let p = MergePolicy::from_json(r#"{"fields":{"score":"max"}}"#).expect("policy");
        let a = upd("m1", "2025-07-23T10:00:00", json!({"score": 10}));
        let b = upd(
            "m2",
            "2025-07-23T10:00:01",
            json!({"score": 5, "name": "x"}),
        );
        let (state, outs) = fold(&[&a, &b], &p);
        assert_eq!(state.changed_by, Some(b.order_key()));
        assert_eq!(outs[0].announcement.as_ref().map(|x| x.version), Some(1));
        // b lost `score` but changed `name`: applied, with a conflict.
        assert_eq!(outs[1].outcome, Outcome::Applied);
        // Redelivering b repeats version 2; redelivering a, which version 2
        // already covers, announces nothing.
        let again_b = merge(&state, &b, &p);
        assert!(!again_b.outcome.needs_write());
        assert_eq!(again_b.announcement.as_ref().map(|x| x.version), Some(2));
        let again_a = merge(&state, &a, &p);
        assert!(!again_a.outcome.needs_write());
        assert!(again_a.announcement.is_none());
        // A new event that only moves bookkeeping announces nothing either.
        let same = upd("m3", "2025-07-23T10:00:02", json!({"name": "x"}));
        let refreshed = merge(&state, &same, &p);
        assert_eq!(refreshed.outcome, Outcome::Refreshed);
        assert!(refreshed.announcement.is_none());
        // ...and does not take the latest change away from b.
        assert_eq!(refreshed.state.changed_by, Some(b.order_key()));

        // Under lww, a late event that wins one field and loses another is
        // stale when redelivered, and still repeats its announcement.
        let lww = MergePolicy::default();
        let newer = upd("m5", "2025-07-23T10:00:05", json!({"x": 1}));
        let late = upd("m4", "2025-07-23T10:00:04", json!({"x": 0, "y": 1}));
        let (state, _) = fold(&[&newer, &late], &lww);
        let again = merge(&state, &late, &lww);
        assert_eq!(again.outcome, Outcome::Stale);
        assert_eq!(again.announcement.as_ref().map(|x| x.version), Some(2));
    }

    #[test]
    fn redelivery_is_a_duplicate_and_bumps_nothing() {
        let p = MergePolicy::default();
        let e = upd("m1", "2025-07-23T10:00:00", json!({"a": 1}));
        let (state, _) = fold(&[&e], &p);
        let again = merge(&state, &e, &p);
        assert_eq!(again.outcome, Outcome::Duplicate);
        assert_eq!(again.state, state);
        assert!(!again.outcome.needs_write());
    }

    #[test]
    fn older_write_loses_and_reports_both_sides() {
        let p = MergePolicy::default();
        let newer = upd("m2", "2025-07-23T10:00:05", json!({"a": "new", "b": 1}));
        let older = upd("m1", "2025-07-23T10:00:00", json!({"a": "old"}));
        let (state, outs) = fold(&[&newer, &older], &p);
        assert_eq!(outs[1].outcome, Outcome::Stale);
        let c = &outs[1].conflicts[0];
        assert_eq!(c.field, "a");
        assert_eq!(c.reason, LossReason::OlderThanWinner);
        assert_eq!(c.winner_value, Some(json!("new")));
        assert_eq!(c.loser_value, json!("old"));
        assert_eq!(c.winner_key, newer.order_key());
        assert_eq!(c.loser_key, older.order_key());
        assert_eq!(state.version, 1);
    }

    #[test]
    fn partly_stale_event_applies_the_rest_and_marks_conflict_resolved() {
        let p = MergePolicy::default();
        let newer = upd("m2", "2025-07-23T10:00:05", json!({"a": "new"}));
        let older = upd(
            "m1",
            "2025-07-23T10:00:00",
            json!({"a": "old", "b": "only-here"}),
        );
        let (state, outs) = fold(&[&newer, &older], &p);
        assert_eq!(outs[1].outcome, Outcome::Applied);
        assert!(state.conflict_resolved);
        assert_eq!(visible(&state, &p), json!({"a": "new", "b": "only-here"}));
        assert_eq!(state.last_modified, Some(newer.timestamp));
    }

    #[test]
    fn same_timestamp_is_decided_by_source_then_event_id() {
        let p = MergePolicy::default();
        let a = ev(
            "m9",
            "update",
            "2025-07-23T10:00:00",
            "alpha",
            json!({"x": "alpha"}),
        );
        let b = ev(
            "m1",
            "update",
            "2025-07-23T10:00:00",
            "beta",
            json!({"x": "beta"}),
        );
        for order in [[&a, &b], [&b, &a]] {
            let (state, _) = fold(&order, &p);
            assert_eq!(visible(&state, &p), json!({"x": "beta"}));
        }
        let c = ev(
            "m2",
            "update",
            "2025-07-23T10:00:00",
            "beta",
            json!({"x": "beta-2"}),
        );
        for order in [[&b, &c], [&c, &b]] {
            let (state, _) = fold(&order, &p);
            assert_eq!(visible(&state, &p), json!({"x": "beta-2"}));
        }
    }

    #[test]
    fn newer_identical_values_refresh_without_a_version() {
        let p = MergePolicy::default();
        let a = upd("m1", "2025-07-23T10:00:00", json!({"x": 1}));
        let b = upd("m2", "2025-07-23T10:00:01", json!({"x": 1}));
        let (state, outs) = fold(&[&a, &b], &p);
        assert_eq!(outs[1].outcome, Outcome::Refreshed);
        assert_eq!(state.version, 1);
        assert_eq!(state.last_modified, Some(b.timestamp));
    }

    #[test]
    fn delete_then_older_update_stays_deleted() {
        let p = MergePolicy::default();
        let create = upd("m1", "2025-07-23T10:00:00", json!({"x": 1}));
        let delete = del("m3", "2025-07-23T10:00:10");
        let late = upd("m2", "2025-07-23T10:00:05", json!({"x": 2, "y": 3}));
        let (state, outs) = fold(&[&create, &delete, &late], &p);
        assert_eq!(outs[1].outcome, Outcome::Applied);
        assert_eq!(outs[2].outcome, Outcome::Stale);
        assert!(outs[2]
            .conflicts
            .iter()
            .all(|c| c.reason == LossReason::DeletedLater && c.winner_value.is_none()));
        assert!(!state.exists());
        assert_eq!(state.version, 2);
        let ann = state.announcement(&p).expect("delete announced");
        assert_eq!(ann.operation, Operation::Delete);
        assert!(ann.data.is_empty());
    }

    #[test]
    fn update_after_delete_recreates_with_only_newer_fields_and_continues_version() {
        let p = MergePolicy::default();
        let create = upd("m1", "2025-07-23T10:00:00", json!({"x": 1, "y": 1}));
        let delete = del("m2", "2025-07-23T10:00:10");
        let again = ev(
            "m3",
            "create",
            "2025-07-23T10:00:20",
            "app",
            json!({"z": 1}),
        );
        let (state, outs) = fold(&[&create, &delete, &again], &p);
        assert!(state.exists());
        assert_eq!(visible(&state, &p), json!({"z": 1}));
        assert_eq!(state.version, 3);
        assert_eq!(state.last_operation, Some(Operation::Create));
        assert_eq!(outs[2].outcome, Outcome::Applied);
    }

    #[test]
    fn delete_keeps_fields_newer_than_itself() {
        let p = MergePolicy::default();
        let old = upd("m1", "2025-07-23T10:00:00", json!({"x": 1}));
        let new = upd("m3", "2025-07-23T10:00:20", json!({"y": 2}));
        let delete = del("m2", "2025-07-23T10:00:10");
        let (state, outs) = fold(&[&old, &new, &delete], &p);
        assert!(state.exists());
        assert_eq!(visible(&state, &p), json!({"y": 2}));
        assert_eq!(outs[2].outcome, Outcome::Applied);
        assert_eq!(state.last_operation, Some(Operation::Update));
    }

    #[test]
    fn delete_of_unknown_entity_keeps_only_a_tombstone_and_owes_nothing() {
        let p = MergePolicy::default();
        let (state, outs) = fold(&[&del("m1", "2025-07-23T10:00:00")], &p);
        assert_eq!(outs[0].outcome, Outcome::Refreshed);
        assert_eq!(state.version, 0);
        assert!(state.deleted_by.is_some());
        assert!(outs[0].announcement.is_none());
        let again = merge(&state, &del("m1", "2025-07-23T10:00:00"), &p);
        assert_eq!(again.outcome, Outcome::Duplicate);
        assert!(again.announcement.is_none());
        let older = merge(&state, &del("m0", "2025-07-23T09:00:00"), &p);
        assert_eq!(older.outcome, Outcome::Stale);
    }

    #[test]
    fn max_rule_keeps_the_largest_and_reports_smaller_newer_writes() {
        let p = MergePolicy::from_json(r#"{"fields":{"score":"max"}}"#).expect("policy");
        let a = upd("m1", "2025-07-23T10:00:00", json!({"score": 10}));
        let b = upd("m2", "2025-07-23T10:00:01", json!({"score": 5}));
        let c = upd("m3", "2025-07-23T10:00:02", json!({"score": 12}));
        let (state, outs) = fold(&[&a, &b, &c], &p);
        assert_eq!(outs[1].conflicts[0].reason, LossReason::SmallerValue);
        assert_eq!(outs[1].outcome, Outcome::Refreshed);
        assert_eq!(visible(&state, &p), json!({"score": 12}));
        let (state, _) = fold(&[&c, &b, &a], &p);
        assert_eq!(visible(&state, &p), json!({"score": 12}));
    }

    #[test]
    fn max_rule_surfaces_a_newer_smaller_value_when_a_delete_removes_the_larger() {
        let p = MergePolicy::from_json(r#"{"fields":{"score":"max"}}"#).expect("policy");
        let big_old = upd("m1", "2025-07-23T10:00:00", json!({"score": 10}));
        let small_new = upd("m3", "2025-07-23T10:00:20", json!({"score": 5}));
        let delete = del("m2", "2025-07-23T10:00:10");
        let (s1, _) = fold(&[&big_old, &small_new, &delete], &p);
        let (s2, _) = fold(&[&delete, &big_old, &small_new], &p);
        assert_eq!(visible(&s1, &p), json!({"score": 5}));
        assert_eq!(visible(&s2, &p), json!({"score": 5}));
    }

    #[test]
    fn min_rule_keeps_the_smallest() {
        let p = MergePolicy::from_json(r#"{"fields":{"stock":"min"}}"#).expect("policy");
        let a = upd("m1", "2025-07-23T10:00:00", json!({"stock": 3}));
        let b = upd("m2", "2025-07-23T10:00:01", json!({"stock": 7}));
        let (state, outs) = fold(&[&a, &b], &p);
        assert_eq!(visible(&state, &p), json!({"stock": 3}));
        assert_eq!(outs[1].conflicts[0].reason, LossReason::LargerValue);
    }

    #[test]
    fn union_rule_merges_arrays_as_sorted_sets() {
        let p = MergePolicy::from_json(r#"{"fields":{"tags":"union"}}"#).expect("policy");
        let a = upd("m1", "2025-07-23T10:00:00", json!({"tags": ["b", "a"]}));
        let b = upd("m2", "2025-07-23T09:00:00", json!({"tags": ["c", "a"]}));
        let c = upd("m3", "2025-07-23T11:00:00", json!({"tags": "d"}));
        for order in [[&a, &b, &c], [&c, &b, &a], [&b, &c, &a]] {
            let (state, outs) = fold(&order, &p);
            assert_eq!(visible(&state, &p), json!({"tags": ["a", "b", "c", "d"]}));
            assert!(outs.iter().all(|o| o.conflicts.is_empty()));
        }
        let empty = upd("m4", "2025-07-23T12:00:00", json!({"tags": []}));
        let (state, _) = fold(&[&empty], &p);
        assert_eq!(
            visible(&state, &p),
            json!({}),
            "an empty set is an absent field"
        );
    }

    #[test]
    fn priority_rule_prefers_listed_sources_over_newer_writes() {
        let p = MergePolicy::from_json(
            r#"{"fields":{"owner":"priority"},"source_priority":["crm","web"]}"#,
        )
        .expect("policy");
        let crm = ev(
            "m1",
            "update",
            "2025-07-23T10:00:00",
            "crm",
            json!({"owner": "from-crm", "note": "crm"}),
        );
        let web = ev(
            "m2",
            "update",
            "2025-07-23T10:00:05",
            "web",
            json!({"owner": "from-web", "note": "web"}),
        );
        let batch = ev(
            "m3",
            "update",
            "2025-07-23T10:00:09",
            "batch",
            json!({"owner": "from-batch"}),
        );
        for order in [[&crm, &web, &batch], [&batch, &web, &crm]] {
            let (state, _) = fold(&order, &p);
            assert_eq!(
                visible(&state, &p),
                json!({"owner": "from-crm", "note": "web"})
            );
        }
        let (_, outs) = fold(&[&crm, &web], &p);
        assert_eq!(outs[1].conflicts.len(), 1);
        assert_eq!(outs[1].conflicts[0].reason, LossReason::LowerPriority);
    }

    #[test]
    fn stored_form_round_trips_for_every_rule() {
        let p = MergePolicy::from_json(
            r#"{"fields":{"s":"max","t":"union","o":"priority"},"source_priority":["crm"]}"#,
        )
        .expect("policy");
        let events = [
            ev(
                "m1",
                "update",
                "2025-07-23T10:00:00",
                "crm",
                json!({"s": 10, "t": ["x"], "o": "crm", "n": {"deep": [1, {"k": null}]}}),
            ),
            ev(
                "m2",
                "update",
                "2025-07-23T10:00:05",
                "web",
                json!({"s": 4, "t": ["y"], "o": "web"}),
            ),
            ev("m3", "delete", "2025-07-23T10:00:02", "web", Value::Null),
        ];
        let refs: Vec<&ChangeEvent> = events.iter().collect();
        let (state, _) = fold(&refs, &p);
        let stored = state.to_stored(&p).expect("storable");
        assert!(stored.exists);
        assert_eq!(
            stored.fields["s"],
            json!(4),
            "the 10 was deleted; the newer 4 surfaces"
        );
        let back = EntityState::from_stored(&stored).expect("readable");
        assert_eq!(back, state);
    }

    #[test]
    fn foreign_entities_are_adopted_and_lose_to_real_events() {
        let stored = crate::StoredEntity {
            exists: true,
            fields: json!({"name": "initialization", "status": "active"})
                .as_object()
                .cloned()
                .expect("object"),
            version: 1,
            last_modified: None,
            conflict_resolved: false,
            bookkeeping: None,
        };
        let p = MergePolicy::default();
        let state = EntityState::from_stored(&stored).expect("adopted");
        assert!(state.exists());
        assert!(state.announcement(&p).is_none());
        let out = merge(
            &state,
            &upd(
                "m1",
                "2025-07-23T10:00:00",
                json!({"status": "synced-by-us"}),
            ),
            &p,
        );
        assert_eq!(out.state.version, 2);
        assert_eq!(
            visible(&out.state, &p),
            json!({"name": "initialization", "status": "synced-by-us"})
        );
    }

    /// An update at `ts` from `app` setting `data` and removing `removed`.
    fn removal(id: &str, ts: &str, data: Value, removed: &[&str]) -> ChangeEvent {
        let body = json!({"entity_id": "e1", "operation": "update", "timestamp": ts,
            "source": "app", "data": data, "removed": removed});
        let now = parse_timestamp("2030-01-01T00:00:00").expect("clock");
        parse_event(
            body.to_string().as_bytes(),
            id,
            &ValidationLimits::default(),
            now,
        )
        .expect("valid test event")
    }

    /// Every permutation of `events` gives `want` visible (and one state).
    fn every_order_gives(events: &[&ChangeEvent], policy: &MergePolicy, want: &Value) {
        fn permutations<'a>(items: &[&'a ChangeEvent]) -> Vec<Vec<&'a ChangeEvent>> {
            if items.len() <= 1 {
                return vec![items.to_vec()];
            }
            let mut out = Vec::new();
            for i in 0..items.len() {
                let mut rest = items.to_vec();
                let first = rest.remove(i);
                for mut p in permutations(&rest) {
                    p.insert(0, first);
                    out.push(p);
                }
            }
            out
        }
        let (reference, _) = fold(events, policy);
        for order in permutations(events) {
            let (state, _) = fold(&order, policy);
            assert_eq!(&visible(&state, policy), want, "order {order:?}");
            assert_eq!(state.fields, reference.fields);
            assert_eq!(state.removed_by, reference.removed_by);
        }
    }

    #[test]
    fn a_removed_field_disappears_and_an_older_write_cannot_bring_it_back() {
        let p = MergePolicy::default();
        let create = ev(
            "m1",
            "create",
            "2025-07-23T10:00:00",
            "app",
            json!({"a": 1, "b": 2}),
        );
        let remove = removal("m3", "2025-07-23T10:00:02", json!({}), &["a"]);
        let late = upd("m2", "2025-07-23T10:00:01", json!({"a": 5}));
        let (state, outs) = fold(&[&create, &remove, &late], &p);
        assert_eq!(outs[1].outcome, Outcome::Applied);
        assert_eq!(outs[1].announcement.as_ref().map(|a| a.version), Some(2));
        assert_eq!(
            outs[1]
                .announcement
                .as_ref()
                .map(|a| Value::Object(a.data.clone())),
            Some(json!({"b": 2})),
            "the announcement's data lacks the removed field"
        );
        assert_eq!(outs[2].outcome, Outcome::Stale);
        let c = &outs[2].conflicts[0];
        assert_eq!(
            (c.field.as_str(), c.reason, c.winner_value.as_ref()),
            ("a", LossReason::RemovedLater, None)
        );
        assert_eq!(c.winner_key, remove.order_key());
        assert_eq!(visible(&state, &p), json!({"b": 2}));
        assert_eq!(state.version, 2);
        assert_eq!(state.removed_by["a"], remove.order_key());
        // Not stored as null: not stored at all.
        let stored = state.to_stored(&p).expect("storable");
        assert!(!stored.fields.contains_key("a"), "{:?}", stored.fields);
        every_order_gives(&[&create, &remove, &late], &p, &json!({"b": 2}));
    }

    #[test]
    fn a_newer_write_brings_a_removed_field_back() {
        let p = MergePolicy::default();
        let create = upd("m1", "2025-07-23T10:00:00", json!({"a": 1}));
        let remove = removal("m2", "2025-07-23T10:00:01", json!({}), &["a"]);
        let newer = upd("m3", "2025-07-23T10:00:02", json!({"a": 3}));
        let (state, outs) = fold(&[&create, &remove, &newer], &p);
        assert_eq!(outs[2].outcome, Outcome::Applied);
        assert_eq!(visible(&state, &p), json!({"a": 3}));
        assert_eq!(state.version, 3);
        every_order_gives(&[&create, &remove, &newer], &p, &json!({"a": 3}));
        // A removal older than the visible value changes nothing a reader
        // sees, and loses nothing: like a delete older than a field.
        let (state, outs) = fold(&[&newer, &remove], &p);
        assert_eq!(outs[1].outcome, Outcome::Refreshed);
        assert!(outs[1].conflicts.is_empty());
        assert_eq!(visible(&state, &p), json!({"a": 3}));
        assert_eq!(state.version, 1);
    }

    #[test]
    fn a_removal_redelivered_is_a_duplicate_and_a_removal_of_nothing_announces_nothing() {
        let p = MergePolicy::default();
        let create = upd("m1", "2025-07-23T10:00:00", json!({"a": 1, "b": 1}));
        let remove = removal("m2", "2025-07-23T10:00:01", json!({}), &["a"]);
        let (state, _) = fold(&[&create, &remove], &p);
        let again = merge(&state, &remove, &p);
        assert_eq!(again.outcome, Outcome::Duplicate);
        assert_eq!(again.state, state);
        // It was the change behind the current version: announced again.
        assert_eq!(again.announcement.as_ref().map(|a| a.version), Some(2));
        let nothing = removal("m3", "2025-07-23T10:00:02", json!({}), &["zzz"]);
        let out = merge(&state, &nothing, &p);
        assert_eq!(out.outcome, Outcome::Refreshed);
        assert!(out.announcement.is_none());
        assert_eq!(out.state.version, 2);
    }

    #[test]
    fn the_same_change_published_twice_with_its_event_id_is_one_event() {
        let p = MergePolicy::default();
        let now = parse_timestamp("2030-01-01T00:00:00").expect("clock");
        let parse = |message_id: &str, ts: &str, value: i64| {
            let body = json!({"entity_id": "e1", "operation": "update", "timestamp": ts,
                "source": "datastore/(default)/(default)", "event_id": "ce-1",
                "data": {"a": value}});
            parse_event(
                body.to_string().as_bytes(),
                message_id,
                &ValidationLimits::default(),
                now,
            )
            .expect("valid")
        };
        let first = parse("m1", "2025-07-23T10:00:00", 1);
        let republished = parse("m2", "2025-07-23T10:00:00", 1);
        let (state, outs) = fold(&[&first, &republished], &p);
        assert_eq!(outs[1].outcome, Outcome::Duplicate);
        assert!(outs[1].conflicts.is_empty());
        assert_eq!(state.version, 1);
        // Without the event id the two message ids make two events: the one
        // that sorts lower loses, a spurious conflict, and the keys move.
        let plain = |message_id: &str| {
            let body = json!({"entity_id": "e1", "operation": "update",
                "timestamp": "2025-07-23T10:00:00", "data": {"a": 1}});
            parse_event(
                body.to_string().as_bytes(),
                message_id,
                &ValidationLimits::default(),
                now,
            )
            .expect("valid")
        };
        let (_, outs) = fold(&[&plain("m2"), &plain("m1")], &p);
        assert_eq!(outs[1].outcome, Outcome::Stale);
        assert_eq!(outs[1].conflicts.len(), 1);
    }

    #[test]
    fn a_removal_surfaces_what_max_min_and_priority_kept_aside() {
        let p = MergePolicy::from_json(
            r#"{"fields":{"s":"max","m":"min","o":"priority"},"source_priority":["crm"]}"#,
        )
        .expect("policy");
        let old = ev(
            "m1",
            "update",
            "2025-07-23T10:00:00",
            "crm",
            json!({"s": 10, "m": 1, "o": "crm"}),
        );
        let newer = ev(
            "m3",
            "update",
            "2025-07-23T10:00:02",
            "web",
            json!({"s": 5, "m": 7, "o": "web"}),
        );
        let remove = removal("m2", "2025-07-23T10:00:01", json!({}), &["s", "m", "o"]);
        let (before, _) = fold(&[&old, &newer], &p);
        assert_eq!(visible(&before, &p), json!({"s": 10, "m": 1, "o": "crm"}));
        // The removal drops the older winners; the newer values kept aside surface.
        let want = json!({"s": 5, "m": 7, "o": "web"});
        every_order_gives(&[&old, &newer, &remove], &p, &want);
        // A removal newer than everything leaves nothing.
        let last = removal("m4", "2025-07-23T10:00:03", json!({}), &["s", "m", "o"]);
        every_order_gives(&[&old, &newer, &last], &p, &json!({}));
    }

    #[test]
    fn a_removal_takes_the_elements_of_a_set_added_before_it() {
        let p = MergePolicy::from_json(r#"{"fields":{"tags":"union"}}"#).expect("policy");
        let a = upd("m1", "2025-07-23T10:00:00", json!({"tags": ["x", "y"]}));
        let b = upd("m3", "2025-07-23T10:00:02", json!({"tags": ["y", "z"]}));
        let remove = removal("m2", "2025-07-23T10:00:01", json!({}), &["tags"]);
        let late = upd("m0", "2025-07-23T09:00:00", json!({"tags": ["w"]}));
        every_order_gives(&[&a, &b, &remove, &late], &p, &json!({"tags": ["y", "z"]}));
    }

    #[test]
    fn removals_and_deletes_converge_and_the_tombstone_absorbs_older_removals() {
        let p = MergePolicy::default();
        let create = upd("m1", "2025-07-23T10:00:00", json!({"a": 1, "b": 1}));
        let remove = removal("m2", "2025-07-23T10:00:01", json!({"b": 2}), &["a"]);
        let delete = del("m3", "2025-07-23T10:00:02");
        let late = upd("m0", "2025-07-23T09:59:59", json!({"a": 0}));
        let (state, _) = fold(&[&create, &remove, &delete], &p);
        assert!(!state.exists());
        assert!(state.removed_by.is_empty(), "the delete covers the removal");
        every_order_gives(&[&create, &remove, &delete, &late], &p, &json!({}));
        // A removal after the delete brings the entity back (it is an
        // update), without the removed field, and refuses its older writes.
        let again = removal("m4", "2025-07-23T10:00:03", json!({"c": 3}), &["a"]);
        let between = upd("m5", "2025-07-23T10:00:02.5", json!({"a": 9, "d": 4}));
        let want = json!({"c": 3, "d": 4});
        every_order_gives(&[&create, &remove, &delete, &again, &between], &p, &want);
        let (state, _) = fold(&[&create, &delete, &again], &p);
        assert!(state.exists());
        assert_eq!(state.removed_by.len(), 1);
    }

    #[test]
    fn removal_keys_round_trip_and_bookkeeping_without_them_still_reads() {
        let p = MergePolicy::default();
        let create = upd("m1", "2025-07-23T10:00:00", json!({"a": 1, "b": 1}));
        let remove = removal("m2", "2025-07-23T10:00:01", json!({}), &["a"]);
        let (state, _) = fold(&[&create, &remove], &p);
        let stored = state.to_stored(&p).expect("storable");
        let text = stored.bookkeeping.as_deref().expect("bookkeeping");
        assert!(text.contains(r#""rm":{"a":"#), "{text}");
        assert_eq!(EntityState::from_stored(&stored).expect("readable"), state);
        // What the layout before removals wrote (no `rm`) reads as before.
        let (plain, _) = fold(&[&create], &p);
        let old = plain.to_stored(&p).expect("storable");
        assert!(!old.bookkeeping.as_deref().unwrap_or("").contains("\"rm\""));
        let older = crate::StoredEntity {
            bookkeeping: Some(
                r#"{"v":1,"ver":1,"by":{"t":1753264800000000,"s":"app","e":"m1"},"op":"create","cr":false,"lm":1753264800000000,"pre":{"t":1753264800000000,"s":"app","e":"m1"},"f":{"a":{"k":{"t":1753264800000000,"s":"app","e":"m1"}},"b":{"k":{"t":1753264800000000,"s":"app","e":"m1"}}}}"#
                    .into(),
            ),
            ..old
        };
        let read = EntityState::from_stored(&older).expect("the earlier layout reads");
        assert!(read.removed_by().is_empty());
        assert_eq!(visible(&read, &p), json!({"a": 1, "b": 1}));
        let out = merge(&read, &remove, &p);
        assert_eq!(visible(&out.state, &p), json!({"b": 1}));
    }

    #[test]
    fn corrupt_bookkeeping_is_an_error_not_a_panic() {
        let stored = crate::StoredEntity {
            bookkeeping: Some("{not json".into()),
            ..Default::default()
        };
        assert!(EntityState::from_stored(&stored).is_err());
        let stored = crate::StoredEntity {
            bookkeeping: Some(r#"{"v":1,"ver":1,"f":{"x":{"k":{"t":0,"s":"","e":""}}}}"#.into()),
            ..Default::default()
        };
        let err = EntityState::from_stored(&stored).expect_err("a field key without its value");
        assert!(
            err.to_string().contains("has bookkeeping but no value"),
            "{err}"
        );
    }
}
