//! Handler tests: the router with in-memory ports, one request at a time
//! (`oneshot`), for every delivery form and every error class.

mod common;
use common::*;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use sync_core::MergePolicy;
use sync_testkit::fixture;

#[tokio::test]
async fn every_delivery_form_applies_the_recipe_create() {
    for name in fixture::all() {
        let h = harness(&[]);
        let req = fixture(name).request();
        assert_eq!(send(&h.app, req).await, StatusCode::NO_CONTENT, "{name}");
        let state = h
            .store
            .get(None, "test-entity-001")
            .unwrap_or_else(|| panic!("{name}: entity missing"));
        assert_eq!(state.version(), 1, "{name}");
        let fields = state.visible_fields(&MergePolicy::default());
        assert_eq!(fields["name"], "Test Product", "{name}");
        assert_eq!(fields["status"], "active", "{name}");
        let sent = h.publisher.sent_to("external-sync-create");
        assert_eq!(sent.len(), 1, "{name}: one announcement");
        let m = &sent[0];
        assert_eq!(m.ordering_key, None, "{name}: ordering keys are opt-in");
        assert_eq!(m.attributes["operation"], "create");
        assert_eq!(m.attributes["version"], "1");
        let payload: Value = serde_json::from_slice(&m.data).expect("announcement is JSON");
        assert_eq!(payload["entity_id"], "test-entity-001");
        assert_eq!(payload["data"]["name"], "Test Product");
        assert_eq!(payload["source"], "datastore-sync");
        assert_eq!(payload["version"], 1);
        assert!(
            h.publisher.sent_to(DLQ).is_empty(),
            "{name}: nothing dead-lettered"
        );
    }
}

#[tokio::test]
async fn announcements_carry_the_entity_id_as_ordering_key_when_opted_in() {
    let h = harness(&[("ANNOUNCE_ORDERING_KEYS", "true")]);
    let req = fixture(fixture::all().next().expect("a fixture")).request();
    assert_eq!(send(&h.app, req).await, StatusCode::NO_CONTENT);
    let sent = h.publisher.sent_to("external-sync-create");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].ordering_key.as_deref(), Some("test-entity-001"));
}

#[tokio::test]
async fn recipe_create_then_update_gives_version_two_and_two_announcements() {
    let h = harness(&[]);
    let create = event(
        "test-entity-001",
        "create",
        "2025-07-23T10:15:00",
        json!({"name": "Test Product", "description": "Demo product for sync testing", "status": "active"}),
    );
    let update = event(
        "test-entity-001",
        "update",
        "2025-07-23T10:15:10",
        json!({"description": "Updated product description"}),
    );
    assert_eq!(
        send(&h.app, push(&create, "1")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&h.app, push(&update, "2")).await,
        StatusCode::NO_CONTENT
    );
    let state = h.store.get(None, "test-entity-001").expect("entity");
    assert_eq!(state.version(), 2);
    assert_eq!(
        state.visible_fields(&MergePolicy::default())["description"],
        "Updated product description"
    );
    assert_eq!(h.publisher.sent_to("external-sync-create").len(), 1);
    assert_eq!(h.publisher.sent_to("external-sync-update").len(), 1);
}

#[tokio::test]
async fn redelivery_is_acked_and_announces_nothing_new() {
    let h = harness(&[]);
    let create = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    for _ in 0..3 {
        assert_eq!(
            send(&h.app, push(&create, "same-id")).await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(h.store.get(None, "e1").expect("entity").version(), 1);
    assert_eq!(h.publisher.sent().len(), 1);
}

#[tokio::test]
async fn redelivery_to_another_instance_repeats_the_same_version() {
    let h = harness(&[]);
    let create = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    let older = event("e1", "update", "2025-07-23T10:14:00", json!({"a": 0}));
    for _ in 0..2 {
        assert_eq!(
            send(&h.app, push(&create, "m1")).await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        send(&h.app, push(&older, "m0")).await,
        StatusCode::NO_CONTENT
    );
    // The other instance cannot know version 1 went out: it repeats it for
    // the event behind it, and only for that one.
    let other = h.other_instance();
    assert_eq!(
        send(&other, push(&create, "m1")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&other, push(&older, "m0")).await,
        StatusCode::NO_CONTENT
    );
    let versions: Vec<String> = h
        .publisher
        .sent()
        .iter()
        .map(|(_, m)| m.attributes["version"].clone())
        .collect();
    assert_eq!(versions, ["1", "1"]);
}

#[tokio::test]
async fn deletes_are_announced() {
    let h = harness(&[]);
    assert_eq!(
        send(
            &h.app,
            push(
                &event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1})),
                "1"
            )
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(
            &h.app,
            push(
                &event("e1", "delete", "2025-07-23T10:15:01", Value::Null),
                "2"
            )
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let sent = h.publisher.sent_to("external-sync-delete");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attributes["version"], "2");
    assert!(!h.store.get(None, "e1").expect("tombstone").exists());
}

/// Every permanent class: dead-lettered with its code, acked, nothing applied.
#[tokio::test]
async fn poison_messages_are_dead_lettered_with_their_code() {
    let cases: Vec<(Request<Body>, &str)> = vec![
        (push_raw("%%%not base64%%%", "m-b64"), "invalid_base64"),
        (push(b"{not json", "m-json"), "invalid_json"),
        (
            push(
                br#"{"operation":"create","timestamp":"2025-07-23T10:00:00","data":{}}"#,
                "m-missing",
            ),
            "missing_field",
        ),
        (
            push(
                &event("e", "upsert", "2025-07-23T10:00:00", json!({})),
                "m-op",
            ),
            "invalid_operation",
        ),
        (
            push(&event("e", "create", "last tuesday", json!({})), "m-ts"),
            "invalid_timestamp",
        ),
        (
            push(
                &event("__e__", "create", "2025-07-23T10:00:00", json!({})),
                "m-id",
            ),
            "invalid_entity_id",
        ),
        (
            push(
                &event("e", "create", "2025-07-23T10:00:00", json!({"version": 99})),
                "m-reserved",
            ),
            "reserved_field",
        ),
        (
            push(
                &event("e", "create", "2025-07-23T10:00:00", json!({"": 1})),
                "m-name",
            ),
            "invalid_field_name",
        ),
        (
            push(
                &event("e", "create", "2025-07-23T10:00:00", json!({"m": [[1]]})),
                "m-value",
            ),
            "unsupported_value",
        ),
        (
            push(
                &event("e", "create", "2025-07-24T10:00:00", json!({})),
                "m-skew",
            ),
            "clock_skew",
        ),
        (
            push(
                &event(
                    "e",
                    "create",
                    "2025-07-23T10:00:00",
                    json!({"blob": "x".repeat(1_100_000)}),
                ),
                "m-large",
            ),
            "entity_too_large",
        ),
    ];
    // The message ids given to `push` above, in order.
    let ids = [
        "m-b64",
        "m-json",
        "m-missing",
        "m-op",
        "m-ts",
        "m-id",
        "m-reserved",
        "m-name",
        "m-value",
        "m-skew",
        "m-large",
    ];
    assert_eq!(cases.len(), ids.len());
    for ((request, code), message_id) in cases.into_iter().zip(ids) {
        let h = harness(&[]);
        assert_eq!(
            send(&h.app, request).await,
            StatusCode::NO_CONTENT,
            "{code}"
        );
        let dead = h.publisher.sent_to(DLQ);
        assert_eq!(dead.len(), 1, "{code}");
        let attrs = &dead[0].attributes;
        assert_eq!(attrs["error_code"], code);
        assert!(!attrs["error_message"].is_empty());
        assert_eq!(attrs["original_message_id"], message_id, "{code}");
        assert_eq!(
            attrs["original_subscription"],
            "projects/test-project/subscriptions/sync-processor"
        );
        assert_eq!(attrs["origin"], "test", "{code}: original attributes kept");
        assert!(h.store.is_empty(), "{code}: nothing applied");
        assert_eq!(h.publisher.sent().len(), 1, "{code}: nothing announced");
    }
}

#[tokio::test]
async fn dead_letter_keeps_the_original_data() {
    let h = harness(&[]);
    assert_eq!(
        send(&h.app, push_raw("%%%", "m")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.publisher.sent_to(DLQ)[0].data, b"%%%");
    let h = harness(&[]);
    assert_eq!(
        send(&h.app, push(b"{oops", "m")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.publisher.sent_to(DLQ)[0].data, b"{oops");
}

#[tokio::test]
async fn without_a_dead_letter_topic_poison_is_refused_with_400() {
    let h = harness(&[("DEAD_LETTER_TOPIC", "")]);
    assert_eq!(
        send(&h.app, push(b"{oops", "m")).await,
        StatusCode::BAD_REQUEST
    );
    assert!(h.publisher.sent().is_empty());
}

#[tokio::test]
async fn requests_that_are_not_deliveries_get_4xx() {
    let h = harness(&[("MAX_BODY_BYTES", "1024")]);
    let cases = vec![
        (
            Request::get("/").body(Body::empty()).expect("request"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Request::post("/")
                .header("content-type", "application/json")
                .body(Body::from("not json"))
                .expect("request"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::post("/")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"subscription":"s"}"#))
                .expect("request"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::post("/")
                .header("content-type", "application/json")
                .body(Body::from("x".repeat(2048)))
                .expect("request"),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, status) in cases {
        assert_eq!(send(&h.app, request).await, status);
    }
    assert!(h.publisher.sent().is_empty());
    assert!(h.store.is_empty());
}

#[tokio::test]
async fn store_outage_is_a_retry() {
    let h = harness(&[]);
    h.store.unavailable.store(true, Ordering::Relaxed);
    let create = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    assert_eq!(
        send(&h.app, push(&create, "1")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        h.publisher.sent().is_empty(),
        "a transient failure is not dead-lettered"
    );
    h.store.unavailable.store(false, Ordering::Relaxed);
    assert_eq!(
        send(&h.app, push(&create, "1")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.store.get(None, "e1").expect("entity").version(), 1);
}

/// Delivers a create of `e1` (message id 1) while Pub/Sub is down: applied,
/// not announced, answered 503. Pub/Sub is back on return.
async fn create_whose_announcement_fails(h: &Harness) -> Vec<u8> {
    h.publisher.unavailable.store(true, Ordering::Relaxed);
    let create = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    assert_eq!(
        send(&h.app, push(&create, "1")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.publisher.unavailable.store(false, Ordering::Relaxed);
    create
}

#[tokio::test]
async fn failed_announcement_is_retried_and_made_on_redelivery() {
    let h = harness(&[]);
    let create = create_whose_announcement_fails(&h).await;
    let state = h
        .store
        .get(None, "e1")
        .expect("applied before the publish failed");
    assert_eq!(state.version(), 1);
    assert!(h.publisher.sent().is_empty());
    assert_eq!(
        send(&h.app, push(&create, "1")).await,
        StatusCode::NO_CONTENT
    );
    let sent = h.publisher.sent_to("external-sync-create");
    assert_eq!(sent.len(), 1, "the redelivery announces what was owed");
    assert_eq!(sent[0].attributes["version"], "1");
    assert_eq!(h.store.get(None, "e1").expect("entity").version(), 1);
}

#[tokio::test]
async fn a_newer_change_covers_an_unannounced_one() {
    let h = harness(&[]);
    let create = create_whose_announcement_fails(&h).await;
    let update = event("e1", "update", "2025-07-23T10:16:00", json!({"b": 2}));
    assert_eq!(
        send(&h.app, push(&update, "2")).await,
        StatusCode::NO_CONTENT
    );
    // Version 2 carries the create's field too, so the create's redelivery
    // has nothing left to announce.
    assert_eq!(
        send(&h.app, push(&create, "1")).await,
        StatusCode::NO_CONTENT
    );
    let sent = h.publisher.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let payload: Value = serde_json::from_slice(&sent[0].1.data).expect("JSON");
    assert_eq!(payload["version"], 2);
    assert_eq!(payload["data"], json!({"a": 1, "b": 2}));
}

#[tokio::test]
async fn failed_dead_letter_publish_is_a_retry() {
    let h = harness(&[]);
    h.publisher.unavailable.store(true, Ordering::Relaxed);
    assert_eq!(
        send(&h.app, push(b"{oops", "m")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let h = harness(&[]);
    assert_eq!(
        send(
            &h.app,
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request")
        )
        .await,
        StatusCode::OK
    );
}
