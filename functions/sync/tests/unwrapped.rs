//! Handler tests for unwrapped push (`pushConfig.noWrapper`), with and without
//! write-metadata: the router with in-memory ports, one request at a time.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use sync_core::memory::{MemoryPublisher, MemoryStore};
use sync_core::{parse_timestamp, MergePolicy};
use sync_function::{router, AnnouncedLog, AppState, Config};
use sync_http::fixture::CapturedRequest;
use sync_http::unwrapped::{
    derived_event_id, MESSAGE_ID_HEADER, PUBLISH_TIME_HEADER, SUBSCRIPTION_HEADER,
};
use tower::ServiceExt;

const DLQ: &str = "sync-dead-letters";
const SUBSCRIPTION: &str = "projects/test-project/subscriptions/sync-processor";

struct Harness {
    store: Arc<MemoryStore>,
    publisher: MemoryPublisher,
    app: Router,
}

fn now() -> DateTime<Utc> {
    parse_timestamp("2025-07-23T10:16:00Z").expect("fixed clock")
}

fn harness(dead_letter_topic: Option<&str>) -> Harness {
    let mut map: HashMap<String, String> = HashMap::from([
        (
            "GOOGLE_CLOUD_PROJECT".to_string(),
            "test-project".to_string(),
        ),
        ("RETRY_BUDGET_SECS".to_string(), "0".to_string()),
    ]);
    if let Some(t) = dead_letter_topic {
        map.insert("DEAD_LETTER_TOPIC".to_string(), t.to_string());
    }
    let config = Config::from_lookup(
        |k| map.get(k).cloned(),
        |_| Err(std::io::Error::other("no files in tests")),
    )
    .expect("test config");
    let store = Arc::new(MemoryStore::new(MergePolicy::default()));
    let publisher = MemoryPublisher::default();
    let state = AppState {
        store: store.clone(),
        publisher: Arc::new(publisher.clone()),
        config: Arc::new(config),
        clock: Arc::new(now),
        announced: Arc::new(AnnouncedLog::new(AnnouncedLog::DEFAULT_CAPACITY)),
    };
    Harness {
        store,
        publisher,
        app: router(state),
    }
}

async fn send(app: &Router, request: Request<Body>) -> StatusCode {
    app.clone()
        .oneshot(request)
        .await
        .expect("router is infallible")
        .status()
}

fn fixture(name: &str) -> Request<Body> {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    CapturedRequest::from_json(&text)
        .expect("fixture parses")
        .to_request()
        .expect("request")
}

/// An unwrapped push with write-metadata, as Pub/Sub sends it.
fn with_metadata(body: &[u8], message_id: &str, attributes: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::post("/")
        .header("content-type", "application/json")
        .header("user-agent", "CloudPubSub-Google")
        .header(MESSAGE_ID_HEADER, message_id)
        .header(SUBSCRIPTION_HEADER, SUBSCRIPTION)
        .header(PUBLISH_TIME_HEADER, "2025-07-23T10:15:59.5Z");
    for (k, v) in attributes {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_vec())).expect("request")
}

/// An unwrapped push without metadata, as the emulator sends it.
fn bare(body: &[u8]) -> Request<Body> {
    Request::post("/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_vec()))
        .expect("request")
}

fn event(entity: &str, op: &str, ts: &str, data: Value) -> Vec<u8> {
    json!({"entity_id": entity, "operation": op, "timestamp": ts, "source": "test", "data": data})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn every_unwrapped_fixture_applies_the_recipe_create() {
    for name in [
        "push_unwrapped_emulator.json",
        "push_unwrapped_emulator_no_metadata.json",
        "push_unwrapped_docs.json",
    ] {
        let h = harness(Some(DLQ));
        assert_eq!(
            send(&h.app, fixture(name)).await,
            StatusCode::NO_CONTENT,
            "{name}"
        );
        let state = h
            .store
            .get(None, "test-entity-001")
            .unwrap_or_else(|| panic!("{name}: entity missing"));
        assert_eq!(state.version, 1, "{name}");
        let fields = state.visible_fields(&MergePolicy::default());
        assert_eq!(fields["name"], "Test Product", "{name}");
        let sent = h.publisher.sent_to("external-sync-create");
        assert_eq!(sent.len(), 1, "{name}: one announcement");
        assert_eq!(sent[0].attributes["version"], "1");
        assert!(h.publisher.sent_to(DLQ).is_empty(), "{name}");
    }
}

#[tokio::test]
async fn poison_with_metadata_is_dead_lettered_with_its_code_id_and_attributes() {
    let h = harness(Some(DLQ));
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
        let h = harness(Some(DLQ));
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
    let h = harness(None);
    assert_eq!(send(&h.app, bare(b"{oops")).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(&h.app, with_metadata(b"{oops", "1", &[])).await,
        StatusCode::BAD_REQUEST
    );
    assert!(h.publisher.sent().is_empty());
}

#[tokio::test]
async fn byte_identical_bodies_without_metadata_are_one_event() {
    let h = harness(Some(DLQ));
    let first = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    for _ in 0..3 {
        assert_eq!(send(&h.app, bare(&first)).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(h.store.get(None, "e1").expect("entity").version, 1);
    assert_eq!(
        h.publisher.sent().len(),
        1,
        "redeliveries announce nothing new"
    );
    // A different body is a different event.
    let second = event("e1", "update", "2025-07-23T10:15:01", json!({"a": 2}));
    assert_eq!(send(&h.app, bare(&second)).await, StatusCode::NO_CONTENT);
    assert_eq!(h.store.get(None, "e1").expect("entity").version, 2);
}

#[tokio::test]
async fn with_metadata_the_message_id_decides_duplicates() {
    let h = harness(Some(DLQ));
    let body = event("e1", "create", "2025-07-23T10:15:00", json!({"a": 1}));
    for _ in 0..2 {
        assert_eq!(
            send(&h.app, with_metadata(&body, "77", &[])).await,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(h.store.get(None, "e1").expect("entity").version, 1);
    assert_eq!(h.publisher.sent_to("external-sync-create").len(), 1);
}

#[tokio::test]
async fn ambiguous_requests_are_refused_or_dead_lettered_never_applied() {
    let h = harness(Some(DLQ));
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
    let wrapped_as_data = json!({"message": {"messageId": "inner", "data": base64_of(&inner)}})
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

fn base64_of(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
