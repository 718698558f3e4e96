//! Property tests: the merge converges whatever the delivery order and however
//! often each event is delivered (also republished: the same change under a
//! new message id, with its `event_id`), with updates that remove fields, and
//! merging a group of events in one pass gives what merging them one by one
//! does.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use sync_core::{
    merge, merge_group, merge_group_checked, parse_event, parse_timestamp, ChangeEvent,
    EntityState, EventMessage, FieldState, MergePolicy, Operation, OrderKey, Outcome,
    ValidationLimits,
};

const FIELDS: [&str; 4] = ["a", "b", "c", "d"];
const SOURCES: [&str; 3] = ["crm", "web", "batch"];

fn policies() -> Vec<MergePolicy> {
    vec![
        MergePolicy::default(),
        MergePolicy::from_json(r#"{"fields":{"a":"max","b":"min","c":"union","d":"priority"},"source_priority":["crm","web"]}"#)
            .expect("mixed policy"),
        MergePolicy::from_json(r#"{"default":"union"}"#).expect("union policy"),
        MergePolicy::from_json(r#"{"default":"priority","source_priority":["web"]}"#).expect("priority policy"),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..5).prop_map(Value::from),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(Value::from),
        prop::collection::vec(0i64..4, 0..3).prop_map(|v| json!(v)),
        Just(Value::Null),
        (0i64..3).prop_map(|n| json!({ "n": n })),
    ]
}

#[derive(Debug, Clone)]
struct Spec {
    delete: bool,
    second: u32,
    source: usize,
    data: Vec<(usize, Value)>,
    /// Fields an update removes (those it also sets are left out).
    removed: Vec<usize>,
    /// Whether the event carries its own `event_id`.
    own_id: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::bool::weighted(0.2),
        0u32..6, // few distinct instants, so ties on timestamp are common
        0usize..SOURCES.len(),
        prop::collection::vec((0usize..FIELDS.len(), value()), 0..4),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(0usize..FIELDS.len(), 1..3),
        ],
        prop::bool::weighted(0.5),
    )
        .prop_map(|(delete, second, source, data, removed, own_id)| Spec {
            delete,
            second,
            source,
            data,
            removed,
            own_id,
        })
}

/// The message of spec `i`: its own event id (when it has one) is unique
/// and sorts unlike the message ids, so ties are decided both ways.
fn message(i: usize, s: &Spec) -> EventMessage {
    let data: serde_json::Map<String, Value> = s
        .data
        .iter()
        .map(|(f, v)| (FIELDS[*f].to_string(), v.clone()))
        .collect();
    let operation = if s.delete {
        Operation::Delete
    } else {
        Operation::Update
    };
    let timestamp = format!("2025-07-23T10:00:0{}.000001", s.second);
    let mut m = EventMessage::new("e", operation, timestamp).source(SOURCES[s.source]);
    if !s.delete {
        for f in &s.removed {
            if !data.contains_key(FIELDS[*f]) {
                m = m.removed(FIELDS[*f]);
            }
        }
    }
    if s.own_id {
        m = m.event_id(format!("ce-{:03}", (i * 37) % 101));
    }
    m.data(data)
}

fn parse(m: &EventMessage, message_id: &str) -> ChangeEvent {
    let now = parse_timestamp("2030-01-01T00:00:00").expect("clock");
    parse_event(&m.to_bytes(), message_id, &ValidationLimits::default(), now)
        .expect("generated events are valid")
}

fn build(specs: &[Spec]) -> Vec<ChangeEvent> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| parse(&message(i, s), &format!("msg-{i:03}")))
        .collect()
}

/// The events of `specs` that carry an `event_id`, published again: the
/// same bytes under new message ids, as a capture retrying a publish sends
/// them. The n-th republish of spec `i` is `(i, event)`.
fn republished(specs: &[Spec], picks: &[prop::sample::Index]) -> Vec<ChangeEvent> {
    let own: Vec<usize> = (0..specs.len()).filter(|&i| specs[i].own_id).collect();
    if own.is_empty() {
        return Vec::new();
    }
    picks
        .iter()
        .enumerate()
        .map(|(n, pick)| {
            let i = *pick.get(&own);
            parse(&message(i, &specs[i]), &format!("re-{n:03}"))
        })
        .collect()
}

/// What must converge: the state without its history (version and the last
/// change), as (fields, newest write, newest delete, removal keys, last
/// modified).
type Converging<'a> = (
    &'a BTreeMap<String, FieldState>,
    Option<&'a OrderKey>,
    Option<&'a OrderKey>,
    &'a BTreeMap<String, OrderKey>,
    Option<DateTime<Utc>>,
);

fn converged(s: &EntityState) -> Converging<'_> {
    (
        s.fields(),
        s.written_by(),
        s.deleted_by(),
        s.removed_by(),
        s.last_modified(),
    )
}

fn fold<'a>(
    events: impl IntoIterator<Item = &'a ChangeEvent>,
    policy: &MergePolicy,
    through_storage: bool,
) -> EntityState {
    let mut state = EntityState::default();
    for e in events {
        let out = merge(&state, e, policy);
        state = out.state;
        if through_storage {
            let stored = state.to_stored(policy).expect("our own state is storable");
            state = EntityState::from_stored(&stored).expect("our own bookkeeping reads back");
        }
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any permutation of the events, with any of them delivered again and
    /// those with an `event_id` also published again under new message ids,
    /// gives the same fields, existence, tombstone and removal keys.
    #[test]
    fn any_order_with_duplicates_converges(
        specs in prop::collection::vec(spec(), 1..12),
        policy_index in 0usize..4,
        order_seed in any::<u64>(),
        dup_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        republish_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let policy = &policies()[policy_index];
        let events = build(&specs);
        let reference = fold(&events, policy, false);
        let again = republished(&specs, &republish_picks);

        let mut delivered: Vec<&ChangeEvent> = events.iter().collect();
        for pick in &dup_picks {
            delivered.push(pick.get(&events));
        }
        delivered.extend(again.iter());
        // A deterministic shuffle from the seed (Fisher-Yates with an LCG).
        let mut x = order_seed | 1;
        for i in (1..delivered.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (x >> 33) as usize % (i + 1);
            delivered.swap(i, j);
        }
        let shuffled = fold(delivered.iter().copied(), policy, true);

        prop_assert_eq!(reference.visible_fields(policy), shuffled.visible_fields(policy));
        prop_assert_eq!(reference.exists(), shuffled.exists());
        prop_assert_eq!(reference.deleted_by(), shuffled.deleted_by());
        prop_assert_eq!(converged(&reference), converged(&shuffled));
        // version counts effective changes: never more than the distinct events.
        prop_assert!(shuffled.version() <= events.len() as i64);
        // No field is visible that the removals and deletes should hide: a
        // visible field has a write newer than its removal.
        for (name, removed) in shuffled.removed_by() {
            if let Some(FieldState::Ranked(c) | FieldState::Union(c)) = shuffled.fields().get(name) {
                prop_assert!(c.iter().all(|c| c.key > *removed), "{} older than its removal", name);
            }
            if let Some(d) = shuffled.deleted_by() {
                prop_assert!(removed > d, "removal key of {} kept under the tombstone", name);
            }
        }
    }

    /// The same change published twice (two message ids, one `event_id`)
    /// is one event: the second changes nothing, bumps nothing and loses
    /// nothing, wherever it arrives.
    #[test]
    fn a_change_published_twice_is_one_event(
        specs in prop::collection::vec(spec(), 1..10),
        policy_index in 0usize..4,
    ) {
        let policy = &policies()[policy_index];
        let events = build(&specs);
        let mut state = EntityState::default();
        for (i, e) in events.iter().enumerate() {
            let once = merge(&state, e, policy);
            if specs[i].own_id {
                let copy = parse(&message(i, &specs[i]), &format!("re-{i:03}"));
                prop_assert_eq!(copy.order_key(), e.order_key());
                let twice = merge(&once.state, &copy, policy);
                prop_assert_eq!(&twice.state, &once.state);
                prop_assert!(!twice.outcome.needs_write(), "republished: {:?}", twice.outcome);
                prop_assert_eq!(twice.state.version(), once.state.version());
                // At most it repeats the announcement of the current version.
                if let Some(a) = &twice.announcement {
                    prop_assert_eq!(a.version, once.state.version());
                }
                // Conflicts only where the first one had them: never against itself.
                prop_assert!(twice.conflicts.iter().all(|c| c.winner_key != e.order_key()));
            }
            state = once.state;
        }
    }

    /// Applying an event twice equals applying it once.
    #[test]
    fn applying_twice_equals_once(specs in prop::collection::vec(spec(), 1..10), policy_index in 0usize..4) {
        let policy = &policies()[policy_index];
        let events = build(&specs);
        let mut state = EntityState::default();
        for e in &events {
            let once = merge(&state, e, policy);
            let twice = merge(&once.state, e, policy);
            prop_assert_eq!(&twice.state, &once.state);
            prop_assert!(matches!(twice.outcome, Outcome::Duplicate | Outcome::Stale), "second delivery was {:?}", twice.outcome);
            state = once.state;
        }
    }

    /// After a delete, any update older than it leaves the entity deleted.
    #[test]
    fn delete_then_any_older_update_stays_deleted(
        before in prop::collection::vec(spec(), 0..6),
        late in prop::collection::vec(spec(), 1..6),
        policy_index in 0usize..4,
    ) {
        let policy = &policies()[policy_index];
        let mut all: Vec<Spec> = before.clone();
        // The delete is at second 7, after every generated timestamp.
        let delete_index = all.len();
        all.push(Spec { delete: true, second: 7, source: 0, data: vec![], removed: vec![], own_id: false });
        all.extend(late.iter().cloned().map(|mut s| { s.delete = false; s }));
        let events = build(&all);
        let mut state = fold(&events[..=delete_index], policy, false);
        prop_assert!(!state.exists());
        for e in &events[delete_index + 1..] {
            let out = merge(&state, e, policy);
            prop_assert_eq!(out.outcome, Outcome::Stale);
            state = out.state;
            prop_assert!(!state.exists());
            prop_assert!(state.visible_fields(policy).is_empty());
        }
    }

    /// One pass over a group of events for one entity (redeliveries, stale
    /// events, deletes) gives every outcome and the final state that merging
    /// them one by one gives, from any stored state.
    #[test]
    fn a_group_in_one_pass_equals_one_by_one(
        before in prop::collection::vec(spec(), 0..6),
        group in prop::collection::vec(spec(), 1..10),
        redelivered in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        policy_index in 0usize..4,
    ) {
        let policy = &policies()[policy_index];
        let mut specs = before.clone();
        specs.extend(group);
        let events = build(&specs);
        let (earlier, later) = events.split_at(before.len());
        let initial = fold(earlier, policy, true);
        let mut delivered: Vec<&ChangeEvent> = later.iter().collect();
        for (n, pick) in redelivered.iter().enumerate() {
            // Redeliveries of stored and of grouped events, anywhere in the group.
            let at = pick.index(delivered.len() + 1);
            delivered.insert(at, pick.get(&events));
            if n % 2 == 1 {
                if let Some(e) = delivered.get(at / 2).copied() {
                    delivered.push(e);
                }
            }
        }

        let mut state = initial.clone();
        let mut one_by_one = Vec::new();
        for e in &delivered {
            let out = merge(&state, e, policy);
            state = out.state.clone();
            one_by_one.push(out);
        }
        let (last, grouped) = merge_group(&initial, delivered.iter().copied(), policy);
        prop_assert_eq!(&grouped, &one_by_one);
        prop_assert_eq!(&last, &state);
    }

    /// With a limit refusing some states, a refused event leaves the state as
    /// it was and the group goes on from there: what one-by-one application
    /// with a rolled-back transaction for that event gives.
    #[test]
    fn a_refused_event_in_a_group_leaves_the_others_as_one_by_one(
        specs in prop::collection::vec(spec(), 1..12),
        max_fields in 0usize..4,
        policy_index in 0usize..4,
    ) {
        let policy = &policies()[policy_index];
        let events = build(&specs);
        let fits = |out: &sync_core::MergeOutcome| {
            if out.state.visible_fields(policy).len() <= max_fields {
                Ok(())
            } else {
                Err(out.version())
            }
        };
        let mut state = EntityState::default();
        let mut one_by_one = Vec::new();
        for e in &events {
            let out = merge(&state, e, policy);
            let result = if out.outcome.needs_write() { fits(&out).map(|()| out) } else { Ok(out) };
            if let Ok(out) = &result {
                state = out.state.clone();
            }
            one_by_one.push(result);
        }
        let (last, grouped) =
            merge_group_checked(&EntityState::default(), &events, policy, |_, out| fits(out));
        prop_assert_eq!(&grouped, &one_by_one);
        prop_assert_eq!(&last, &state);
    }
}
