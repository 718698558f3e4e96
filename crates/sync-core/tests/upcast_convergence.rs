//! Property tests: with a schema history, a random mix of version-1 and
//! version-2 events for one entity (version-1 events carrying the old and the
//! new name of a rename at once among them) reaches the same stored state in
//! any delivery order and with redeliveries, and that state is the one their
//! upcast forms, published as version-2 events, give. Updates of both
//! versions also remove fields (`removed`), which are upcast with the data.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sync_core::{
    merge, parse_event_with, parse_timestamp, ChangeEvent, EntityState, EventMessage, MergePolicy,
    Operation, SchemaHistory, ValidationLimits,
};

/// The documented example (docs/semantics.md) history.
const HISTORY: &str = include_str!("../../../scripts/testdata/schema_history.toml");

/// Paths a version-1 publisher writes (`title` too: the both-names case).
const V1_PATHS: [&str; 8] = [
    "name",
    "title",
    "price",
    "street",
    "city",
    "fax",
    "dimensions.weight",
    "dimensions.width",
];
/// Paths a version-2 publisher writes.
const V2_PATHS: [&str; 7] = [
    "title",
    "price",
    "currency",
    "address.street",
    "address.city",
    "weight",
    "dimensions.width",
];
/// Top-level fields a version-1 update may remove (`street` and `city` move
/// into an object: their removal cannot be upcast).
const V1_REMOVABLE: [&str; 5] = ["name", "title", "price", "fax", "dimensions"];
/// Top-level fields a version-2 update may remove.
const V2_REMOVABLE: [&str; 6] = [
    "title",
    "price",
    "currency",
    "address",
    "weight",
    "dimensions",
];
const SOURCES: [&str; 3] = ["crm", "web", "batch"];

fn history() -> SchemaHistory {
    SchemaHistory::from_toml(HISTORY).expect("the documented example")
}

fn policies() -> Vec<MergePolicy> {
    vec![
        MergePolicy::default(),
        MergePolicy::from_json(
            r#"{"fields":{"price":"max","title":"priority","weight":"min"},"source_priority":["crm","web"]}"#,
        )
        .expect("mixed policy"),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..5).prop_map(Value::from),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(Value::from),
        Just(Value::Null),
    ]
}

#[derive(Debug, Clone)]
struct Spec {
    version: i64,
    operation: Operation,
    second: u32,
    source: usize,
    /// (index into the version's paths, value).
    data: Vec<(usize, Value)>,
    /// Indexes into the version's removable fields (updates only).
    removed: Vec<usize>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        1i64..=2,
        prop::sample::select(vec![
            Operation::Create,
            Operation::Update,
            Operation::Update,
            Operation::Delete,
        ]),
        0u32..6, // few distinct instants, so ties on timestamp are common
        0usize..SOURCES.len(),
        prop::collection::vec((0usize..8, value()), 0..5),
        prop::collection::vec(0usize..6, 0..3),
    )
        .prop_map(|(version, operation, second, source, data, removed)| Spec {
            version,
            operation,
            second,
            source,
            data,
            removed,
        })
}

/// `value` at the dotted `path` of `data`, creating the objects on the way.
fn set(data: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            data.insert(path.to_string(), value);
        }
        Some((first, rest)) => {
            let child = data.entry(first.to_string()).or_insert_with(|| json!({}));
            if let Value::Object(child) = child {
                set(child, rest, value);
            }
        }
    }
}

fn message(s: &Spec) -> EventMessage {
    let paths: &[&str] = if s.version == 1 { &V1_PATHS } else { &V2_PATHS };
    let mut data = Map::new();
    for (i, v) in &s.data {
        set(&mut data, paths[i % paths.len()], v.clone());
    }
    let removable: &[&str] = if s.version == 1 {
        &V1_REMOVABLE
    } else {
        &V2_REMOVABLE
    };
    let mut m = EventMessage::new(
        "e",
        s.operation,
        format!("2025-07-23T10:00:0{}.000001", s.second),
    )
    .source(SOURCES[s.source])
    .schema_version(s.version);
    if s.operation == Operation::Update {
        for i in &s.removed {
            let name = removable[i % removable.len()];
            if !data.contains_key(name) {
                m = m.removed(name);
            }
        }
    }
    m.data(data)
}

fn parse(message: &EventMessage, id: &str, h: &SchemaHistory) -> ChangeEvent {
    let now = parse_timestamp("2030-01-01T00:00:00").expect("clock");
    parse_event_with(
        &message.to_bytes(),
        id,
        &ValidationLimits::default(),
        h,
        now,
    )
    .expect("generated events are valid")
}

fn build(specs: &[Spec], h: &SchemaHistory) -> Vec<ChangeEvent> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| parse(&message(s), &format!("msg-{i:03}"), h))
        .collect()
}

/// The event as a version-2 publisher would have sent it: its upcast data.
fn upcast_form(e: &ChangeEvent, h: &SchemaHistory) -> ChangeEvent {
    let m = EventMessage::new(
        e.entity_id.as_str(),
        e.operation,
        sync_core::format_timestamp(&e.timestamp),
    )
    .source(e.source.clone())
    .schema_version(h.current())
    .data(e.data.clone());
    let m = e.removed.iter().fold(m, |m, name| m.removed(name.clone()));
    parse(&m, &e.event_id, h)
}

fn fold<'a>(events: impl IntoIterator<Item = &'a ChangeEvent>, p: &MergePolicy) -> EntityState {
    let mut state = EntityState::default();
    for e in events {
        let out = merge(&state, e, p);
        let stored = out.state.to_stored(p).expect("our own state is storable");
        state = EntityState::from_stored(&stored).expect("our own bookkeeping reads back");
    }
    state
}

/// The order-independent part of a state: fields, existence, tombstone.
fn converged(s: &EntityState, p: &MergePolicy) -> (Map<String, Value>, bool, String) {
    (
        s.visible_fields(p),
        s.exists(),
        format!("{:?} {:?} {:?}", s.fields(), s.deleted_by(), s.removed_by()),
    )
}

/// Events, and a delivery order: every event once, some again, shuffled.
fn deliveries() -> impl Strategy<Value = (Vec<Spec>, Vec<usize>)> {
    prop::collection::vec(spec(), 1..12).prop_flat_map(|specs| {
        let n = specs.len();
        let order = prop::collection::vec(0..n, 0..6)
            .prop_map(move |again| (0..n).chain(again).collect::<Vec<_>>())
            .prop_shuffle();
        (Just(specs), order)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn mixed_versions_converge_to_their_upcast_forms(
        (specs, order) in deliveries(),
        policy_index in 0usize..2,
    ) {
        let h = history();
        let policy = &policies()[policy_index];
        let events = build(&specs, &h);
        for e in &events {
            prop_assert_eq!(e.schema.version, 2);
            // No old name survives an upcast.
            for old in ["name", "street", "city", "fax"] {
                prop_assert!(!e.data.contains_key(old), "{} in {:?}", old, e.data);
            }
            // Nor in a removal, but for `fax`, which no current field takes
            // over: its removal removes what older events stored.
            for old in ["name", "street", "city"] {
                prop_assert!(!e.removed.iter().any(|r| r == old), "{} in {:?}", old, e.removed);
            }
            prop_assert!(e.removed.iter().all(|r| !e.data.contains_key(r)));
        }
        let reference = fold(&events, policy);
        let shuffled = fold(order.iter().map(|&i| &events[i]), policy);
        prop_assert_eq!(converged(&reference, policy), converged(&shuffled, policy));

        // The upcast form of each event is a current event upcasting leaves
        // alone, and merging those gives the same state.
        let forms: Vec<ChangeEvent> = events.iter().map(|e| upcast_form(e, &h)).collect();
        for (e, f) in events.iter().zip(&forms) {
            prop_assert!(!f.schema.changed);
            prop_assert_eq!(&e.data, &f.data);
            prop_assert_eq!(&e.removed, &f.removed);
            prop_assert_eq!(e.order_key(), f.order_key());
        }
        let from_forms = fold(forms.iter().rev(), policy);
        prop_assert_eq!(converged(&reference, policy), converged(&from_forms, policy));
    }
}
