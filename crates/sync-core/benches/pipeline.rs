//! Cost of the core's work per event: parse + validate + merge, on a
//! recipe-shaped event into an entity that already has a few fields, and the
//! stored-form round trip an adapter adds around it.

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;
use sync_core::{merge, parse_event, parse_timestamp, EntityState, MergePolicy, ValidationLimits};

fn event(i: usize) -> Vec<u8> {
    json!({
        "entity_id": "test-entity-001",
        "operation": "update",
        "timestamp": format!("2025-07-23T10:{:02}:{:02}.123456", (i / 60) % 60, i % 60),
        "source": "data_publisher",
        "correlation_id": "6f1c2a9e-3b7d-4c55-9a0e-2f4d8b1c7e90",
        "data": {
            "name": "Test Product",
            "description": format!("Updated product description {i}"),
            "status": "active",
            "category": "demo",
            "price": 12.5,
            "tags": ["a", "b"],
        }
    })
    .to_string()
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let now = parse_timestamp("2025-07-23T12:00:00").expect("clock");
    let limits = ValidationLimits::default();
    let policy = MergePolicy::default();
    let events: Vec<Vec<u8>> = (0..64).map(event).collect();
    let mut base = EntityState::default();
    for (i, e) in events.iter().take(8).enumerate() {
        let ev = parse_event(e, &format!("seed-{i}"), &limits, now).expect("valid");
        base = merge(&base, &ev, &policy).state;
    }

    let mut i = 0usize;
    c.bench_function("parse_validate_merge", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            let ev = parse_event(black_box(&events[i]), "m-bench", &limits, now).expect("valid");
            black_box(merge(&base, &ev, &policy))
        })
    });

    let stored = base.to_stored(&policy).expect("storable");
    c.bench_function("parse_validate_merge_with_stored_round_trip", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            let state = EntityState::from_stored(black_box(&stored)).expect("readable");
            let ev = parse_event(black_box(&events[i]), "m-bench", &limits, now).expect("valid");
            let out = merge(&state, &ev, &policy);
            black_box(out.state.to_stored(&policy).expect("storable"))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
