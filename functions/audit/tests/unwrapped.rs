//! Audit entries for unwrapped push (`pushConfig.noWrapper`), with and without
//! write-metadata, parsed back field by field.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use sync_http::unwrapped::{derived_event_id, SUBSCRIPTION_HEADER};
use sync_testkit::request::unwrapped;
use sync_testkit::{event, fixture};

mod common;
use common::*;

const SUBSCRIPTION: &str = "projects/p/subscriptions/audit-logger";

fn with_metadata(body: &[u8], id: &str) -> Request<Body> {
    unwrapped(body)
        .metadata(id, SUBSCRIPTION, "2025-07-23T10:15:30.412Z")
        .header("origin", "crm")
        .request()
}

fn bare(body: &[u8]) -> Request<Body> {
    unwrapped(body).request()
}

#[tokio::test]
async fn unwrapped_fixtures_give_the_recipe_entry_with_their_metadata() {
    for (name, message_id, form, subscription, publish_time) in [
        (
            "push_unwrapped_emulator.json",
            "1".to_string(),
            "pubsub_unwrapped",
            json!("projects/capture-proj/subscriptions/meta"),
            json!("2026-12-01T19:55:44.714000Z"),
        ),
        (
            "push_unwrapped_docs.json",
            "13566281437204714".to_string(),
            "pubsub_unwrapped",
            json!("projects/datastore-sync-demo/subscriptions/sync-processor"),
            json!("2025-07-23T10:15:30.412000Z"),
        ),
        (
            "push_unwrapped_emulator_no_metadata.json",
            derived_event_id(br#"{"entity_id": "test-entity-001", "operation": "create", "timestamp": "2025-07-23T10:15:30.123456", "source": "data_publisher", "correlation_id": "5f0c6d1e-8a7b-4c3d-9e2f-1a2b3c4d5e6f", "data": {"name": "Test Product", "description": "Demo product for sync testing", "status": "active"}}"#),
            "pubsub_unwrapped_no_metadata",
            Value::Null,
            Value::Null,
        ),
    ] {
        let (app, sink) = make_app(&[]);
        assert_eq!(send(&app, fixture(name).request()).await, StatusCode::NO_CONTENT, "{name}");
        let entries = parsed(&sink);
        assert_eq!(entries.len(), 1, "{name}");
        let e = &entries[0];
        assert_eq!(e["severity"], "INFO", "{name}");
        assert_eq!(e["event_type"], "data_synchronization");
        assert_eq!(e["entity_id"], "test-entity-001");
        assert_eq!(e["operation"], "create");
        assert_eq!(e["source_system"], "data_publisher");
        assert_eq!(e["message_id"], json!(message_id), "{name}");
        assert_eq!(e["data_snapshot"]["name"], "Test Product");
        let meta = &e["processing_metadata"];
        assert_eq!(meta["delivery_form"], form, "{name}");
        assert_eq!(meta["subscription"], subscription, "{name}");
        assert_eq!(meta["publish_time"], publish_time, "{name}");
        assert_eq!(meta["delivery_attempt"], 1);
    }
}

#[tokio::test]
async fn the_delivery_attempt_header_is_the_entrys_delivery_attempt() {
    let body = event("e1", "update", "2025-07-23T10:15:00")
        .data(json!({"n": 1}))
        .to_bytes();
    for (request, attempt) in [
        (
            unwrapped(&body)
                .metadata("61", SUBSCRIPTION, "2025-07-23T10:15:30.412Z")
                .delivery_attempt(3)
                .request(),
            3,
        ),
        (with_metadata(&body, "62"), 1),
        (
            unwrapped(b"{oops")
                .metadata("63", SUBSCRIPTION, "2025-07-23T10:15:30.412Z")
                .delivery_attempt(5)
                .request(),
            5,
        ),
    ] {
        let (app, sink) = make_app(&[]);
        assert_eq!(send(&app, request).await, StatusCode::NO_CONTENT);
        let entries = parsed(&sink);
        let meta = &entries[0]["processing_metadata"];
        assert_eq!(meta["delivery_attempt"], attempt, "{:#}", entries[0]);
        assert_eq!(meta["delivery_form"], "pubsub_unwrapped");
        assert!(
            entries[0]["attributes"]
                .as_object()
                .is_none_or(|a| a.keys().all(|k| !k.starts_with("x-goog-"))),
            "metadata is not an attribute"
        );
    }
}

#[tokio::test]
async fn unwrapped_delete_adds_the_compliance_entry() {
    let (app, sink) = make_app(&[]);
    let body = event("e9", "delete", "2025-07-23T10:15:00")
        .data(json!({}))
        .to_value()
        .to_string();
    assert_eq!(
        send(&app, bare(body.as_bytes())).await,
        StatusCode::NO_CONTENT
    );
    let entries = parsed(&sink);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["severity"], "NOTICE");
    assert_eq!(entries[1]["compliance_event"], "data_deletion");
    assert_eq!(
        entries[1]["message_id"],
        json!(derived_event_id(body.as_bytes()))
    );
}

#[tokio::test]
async fn malformed_unwrapped_data_is_a_warning_with_raw_payload_and_attributes() {
    let (app, sink) = make_app(&[]);
    assert_eq!(
        send(&app, with_metadata(b"{oops", "55")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, bare(b"plain text")).await,
        StatusCode::NO_CONTENT
    );
    let entries = parsed(&sink);
    assert_eq!(entries.len(), 2);
    let (meta, bare_entry) = (&entries[0], &entries[1]);
    assert_eq!(meta["severity"], "WARNING");
    assert_eq!(meta["event_type"], "malformed_event");
    assert_eq!(meta["error_code"], "invalid_json");
    assert_eq!(meta["message_id"], "55");
    assert_eq!(meta["raw_payload"], "{oops");
    assert_eq!(meta["attributes"], json!({"origin": "crm"}));
    assert_eq!(meta["processing_metadata"]["subscription"], SUBSCRIPTION);
    assert_eq!(bare_entry["error_code"], "invalid_json");
    assert_eq!(bare_entry["raw_payload"], "plain text");
    assert_eq!(
        bare_entry["message_id"],
        json!(derived_event_id(b"plain text"))
    );
    assert_eq!(bare_entry["attributes"], json!({}));
    assert_eq!(
        bare_entry["processing_metadata"]["delivery_form"],
        "pubsub_unwrapped_no_metadata"
    );
}

#[tokio::test]
async fn a_refused_unwrapped_event_is_audited_with_the_reason() {
    let (app, sink) = make_app(&[]);
    let body = event("e1", "update", "2025-07-23T10:15:00")
        .data(json!({"version": 3}))
        .to_value()
        .to_string();
    assert_eq!(
        send(&app, with_metadata(body.as_bytes(), "8")).await,
        StatusCode::NO_CONTENT
    );
    let entries = parsed(&sink);
    assert_eq!(entries[0]["severity"], "INFO");
    assert_eq!(
        entries[0]["validation_error"]["error_code"],
        "reserved_field"
    );
}

#[tokio::test]
async fn ambiguous_unwrapped_requests_are_refused_and_write_nothing() {
    let (app, sink) = make_app(&[]);
    assert_eq!(send(&app, bare(b"{}")).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(&app, bare(br#"{"message":{"messageId":"1"}}"#)).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let no_id = Request::post("/")
        .header(SUBSCRIPTION_HEADER, SUBSCRIPTION)
        .body(Body::from("{}"))
        .expect("request");
    assert_eq!(send(&app, no_id).await, StatusCode::BAD_REQUEST);
    assert!(sink.lines().is_empty());
}
