//! Handler tests for unwrapped push (`pushConfig.noWrapper`), with and without
//! write-metadata: the router with in-memory ports, one request at a time.

mod common;
use common::*;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use sync_http::unwrapped::{derived_event_id, SUBSCRIPTION_HEADER};
use sync_testkit::request::unwrapped;

/// An unwrapped push with write-metadata, as Pub/Sub sends it.
fn with_metadata(body: &[u8], message_id: &str, attributes: &[(&str, &str)]) -> Request<Body> {
    let request = unwrapped(body)
        .metadata(message_id, SUBSCRIPTION, "2025-07-23T10:15:59.5Z")
        .header("user-agent", "CloudPubSub-Google");
    attributes
        .iter()
        .fold(request, |r, (k, v)| r.header(k, v))
        .request()
}

/// An unwrapped push without metadata, as the emulator sends it.
fn bare(body: &[u8]) -> Request<Body> {
    unwrapped(body).request()
}

#[tokio::test]
async fn poison_with_metadata_is_dead_lettered_with_its_code_id_and_attributes() {
    let h = harness(&[]);
    let poison = event(
        "e1",
        "create",
        "2025-07-23T10:15:00",
        json!({"version": 99}),
    );
    let status = send(
        &h.app,
        with_metadata(
            &poison,
            "4242",
            &[("origin", "crm"), ("x-forwarded-for", "1.2.3.4")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let dead = h.publisher.sent_to(DLQ);
    assert_eq!(dead.len(), 1);
    let attrs = &dead[0].attributes;
    assert_eq!(attrs["error_code"], "reserved_field");
    assert_eq!(attrs["original_message_id"], "4242");
    assert_eq!(attrs["original_subscription"], SUBSCRIPTION);
    assert_eq!(attrs["origin"], "crm", "the original attribute is kept");
    assert!(
        !attrs.contains_key("x-forwarded-for"),
        "proxy noise is not an attribute"
    );
    assert!(!attrs.contains_key("user-agent"));
    assert_eq!(dead[0].data, poison, "the data goes on byte for byte");
    assert!(h.store.is_empty());
}

#[tokio::test]
async fn poison_without_metadata_is_dead_lettered_under_its_derived_id() {
    for (body, code) in [
        (&b"{oops"[..], "invalid_json"),
        (b"plain text", "invalid_json"),
        (
            br#"{"entity_id":"e1","operation":"create"}"#,
            "missing_field",
        ),
    ] {
        let h = harness(&[]);
        assert_eq!(send(&h.app, bare(body)).await, StatusCode::NO_CONTENT);
        let dead = h.publisher.sent_to(DLQ);
        assert_eq!(dead.len(), 1, "{code}");
        assert_eq!(dead[0].attributes["error_code"], code);
        assert_eq!(
            dead[0].attributes["original_message_id"],
            derived_event_id(body)
        );
        assert!(!dead[0].attributes.contains_key("original_subscription"));
        assert_eq!(dead[0].data, body);
        assert!(h.store.is_empty());
    }
}

#[tokio::test]
async fn without_a_dead_letter_topic_unwrapped_poison_is_400() {
    let h = harness(&[("DEAD_LETTER_TOPIC", "")]);
    assert_eq!(send(&h.app, bare(b"{oops")).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(&h.app, with_metadata(b"{oops", "1", &[])).await,
        StatusCode::BAD_REQUEST
    );
    assert!(h.publisher.sent().is_empty());
}

#[tokio::test]
async fn byte_identical_bodies_without_metadata_are_one_event() {
    let h = harness(&[]);
    let first = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    for _ in 0..3 {
        assert_eq!(send(&h.app, bare(&first)).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(h.store.get(None, "e1").expect("entity").version(), 1);
    assert_eq!(
        h.publisher.sent().len(),
        1,
        "redeliveries announce nothing new"
    );
    // A different body is a different event.
    let second = event("e1", "update", "2025-07-23T10:15:01", json!({"a": 2}));
    assert_eq!(send(&h.app, bare(&second)).await, StatusCode::NO_CONTENT);
    assert_eq!(h.store.get(None, "e1").expect("entity").version(), 2);
}

#[tokio::test]
async fn with_metadata_the_message_id_decides_duplicates() {
    let h = harness(&[]);
    let body = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    for _ in 0..2 {
        assert_eq!(
            send(&h.app, with_metadata(&body, "77", &[])).await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(h.store.get(None, "e1").expect("entity").version(), 1);
    assert_eq!(h.publisher.sent_to("external-sync-create").len(), 1);
}

#[tokio::test]
async fn ambiguous_requests_are_refused_or_dead_lettered_never_applied() {
    let h = harness(&[]);
    // `{}` and envelope members without `message`: 400, nothing touched.
    for body in [&b"{}"[..], br#"{"subscription":"s"}"#] {
        assert_eq!(send(&h.app, bare(body)).await, StatusCode::BAD_REQUEST);
    }
    // Declared JSON but not an object: a broken envelope, 400.
    let request = Request::post("/")
        .header("content-type", "application/json")
        .body(Body::from("not json"))
        .expect("request");
    assert_eq!(send(&h.app, request).await, StatusCode::BAD_REQUEST);
    // An envelope under a non-JSON content type: 415.
    let envelope = br#"{"message":{"messageId":"1","data":"e30="}}"#;
    assert_eq!(
        send(&h.app, bare(envelope)).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    // Metadata headers without a message id: 400.
    let request = Request::post("/")
        .header(SUBSCRIPTION_HEADER, SUBSCRIPTION)
        .body(Body::from(event(
            "e1",
            "create",
            "2025-07-23T10:15:00",
            json!({}),
        )))
        .expect("request");
    assert_eq!(send(&h.app, request).await, StatusCode::BAD_REQUEST);
    assert!(h.publisher.sent().is_empty());
    assert!(h.store.is_empty());
    // Metadata headers and an envelope-shaped body: the body is the data, which
    // is no event, so it is dead-lettered with its code, not unwrapped twice.
    let inner = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    let wrapped_as_data = sync_testkit::push(&inner, "inner")
        .body()
        .to_string()
        .into_bytes();
    assert_eq!(
        send(&h.app, with_metadata(&wrapped_as_data, "outer", &[])).await,
        StatusCode::NO_CONTENT
    );
    let dead = h.publisher.sent_to(DLQ);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["error_code"], "missing_field");
    assert_eq!(dead[0].attributes["original_message_id"], "outer");
    assert!(h.store.is_empty());
}
