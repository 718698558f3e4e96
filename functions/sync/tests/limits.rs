//! Handler tests for Datastore's production limits (depth, index entries, key
//! size): each refusal is dead-lettered at once with its code, and nothing is
//! stored or announced. In-memory ports; the emulator-backed twin is
//! `tests/tests/limits.rs`.

mod common;
use common::*;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sync_core::ingest::limits::{BOOKKEEPING_INDEX_ENTRIES, MAX_INDEX_ENTRIES, MAX_NESTING_DEPTH};
use sync_core::MergePolicy;
use sync_testkit::event as change_event;

fn update(entity_id: &str, ts: &str, data: Value) -> Vec<u8> {
    change_event(entity_id, "update", ts)
        .source("test")
        .data(data)
        .to_bytes()
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |inner, _| json!({ "n": inner }))
}

/// The one message published, which must be a dead letter with `code` for
/// `message_id` carrying the original data.
fn only_dead_letter(h: &Harness, code: &str, message_id: &str, data: &[u8]) {
    let sent = h.publisher.sent();
    assert_eq!(sent.len(), 1, "{code}: exactly one message published");
    let (topic, message) = &sent[0];
    assert_eq!(topic, DLQ, "{code}");
    assert_eq!(message.attributes["error_code"], code);
    assert_eq!(message.attributes["original_message_id"], message_id);
    assert_eq!(message.data, data, "{code}: original data kept");
}

#[tokio::test]
async fn each_limit_is_dead_lettered_with_its_code_and_nothing_is_stored() {
    let room = MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES;
    let cases = [
        (
            "too_deep",
            update(
                "e",
                "2025-07-23T10:00:00",
                json!({ "d": nested(MAX_NESTING_DEPTH + 1) }),
            ),
        ),
        (
            "too_many_index_entries",
            update(
                "e",
                "2025-07-23T10:00:00",
                json!({ "v": vec![1; room + 1] }),
            ),
        ),
        (
            "key_too_large",
            update(
                &"k".repeat(6 * 1024),
                "2025-07-23T10:00:00",
                json!({"a": 1}),
            ),
        ),
    ];
    for (code, data) in cases {
        let p = harness(&[]);
        assert_eq!(
            p.deliver(&data, "m-1").await,
            StatusCode::NO_CONTENT,
            "{code}"
        );
        only_dead_letter(&p, code, "m-1", &data);
        assert!(p.store.is_empty(), "{code}: nothing stored");
    }
}

#[tokio::test]
async fn events_at_each_limit_are_applied() {
    let room = MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES;
    let cases = [
        ("e1", json!({ "d": nested(MAX_NESTING_DEPTH) })),
        ("e2", json!({ "v": vec![1; room] })),
    ];
    let p = harness(&[]);
    for (id, data) in cases {
        let status = p
            .deliver(&update(id, "2025-07-23T10:00:00", data), id)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{id}");
        assert_eq!(p.store.get(None, id).expect("stored").version(), 1, "{id}");
    }
    // A 1500-byte id (Datastore's longest name) makes a key well within 6 KiB.
    let long_id = "k".repeat(1500);
    let status = p
        .deliver(
            &update(&long_id, "2025-07-23T10:00:00", json!({"a": 1})),
            "e3",
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(p.store.get(None, &long_id).is_some());
    assert!(p.publisher.sent_to(DLQ).is_empty(), "nothing dead-lettered");
}

/// Two events each within the limit merge into an entity over it: the second
/// is dead-lettered with the same code and the entity stays as the first left it.
#[tokio::test]
async fn merged_entity_over_the_index_limit_dead_letters_the_event_that_tips_it() {
    let half = (MAX_INDEX_ENTRIES - BOOKKEEPING_INDEX_ENTRIES) / 2 + 1;
    let p = harness(&[]);
    let first = update("e", "2025-07-23T10:00:00", json!({ "a": vec![1; half] }));
    let second = update("e", "2025-07-23T10:00:01", json!({ "b": vec![2; half] }));
    assert_eq!(p.deliver(&first, "m-1").await, StatusCode::NO_CONTENT);
    let announced = p.publisher.sent();
    assert_eq!(announced.len(), 1, "the first is applied and announced");
    assert_eq!(p.deliver(&second, "m-2").await, StatusCode::NO_CONTENT);
    let sent = p.publisher.sent();
    assert_eq!(sent.len(), 2, "one dead letter added, no announcement");
    let (topic, dead) = &sent[1];
    assert_eq!(topic, DLQ);
    assert_eq!(dead.attributes["error_code"], "too_many_index_entries");
    assert_eq!(dead.attributes["original_message_id"], "m-2");
    let state = p.store.get(None, "e").expect("entity");
    assert_eq!(state.version(), 1);
    let fields = state.visible_fields(&MergePolicy::default());
    assert!(fields.contains_key("a") && !fields.contains_key("b"));
}

/// The key is sized in the configured namespace: an id whose key fits in the
/// default namespace (refused only for its own length) is too large in a
/// 100-character one.
#[tokio::test]
async fn key_size_counts_the_configured_namespace() {
    let namespace = "n".repeat(100);
    // Default namespace: "SyncEntity" (11) + id + 16, plus the tombstone's
    // "SyncTombstone" (14) and "tombstone" (10) = id + 52 bytes.
    let id = "k".repeat(6 * 1024 - 52 - 50);
    let data = update(&id, "2025-07-23T10:00:00", json!({"a": 1}));
    let plain = harness(&[]);
    assert_eq!(plain.deliver(&data, "1").await, StatusCode::NO_CONTENT);
    only_dead_letter(&plain, "invalid_entity_id", "1", &data);
    let spaced = harness(&[("DATASTORE_NAMESPACE", namespace.as_str())]);
    assert_eq!(spaced.deliver(&data, "1").await, StatusCode::NO_CONTENT);
    only_dead_letter(&spaced, "key_too_large", "1", &data);
    assert!(spaced.store.is_empty());
}
