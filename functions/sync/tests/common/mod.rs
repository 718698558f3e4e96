//! What the sync function's handler tests share: the router on in-memory
//! ports with a fixed clock, requests in the wrapped push form, fixtures and
//! events. Each test file uses a part of it.
#![allow(dead_code)] // each test binary uses only some of these helpers

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use sync_core::memory::{MemoryPublisher, MemoryStore};
use sync_core::{parse_timestamp, MergePolicy};
use sync_function::{router, AnnouncedLog, AppState, Config};
use sync_http::fixture::CapturedRequest;
use tower::ServiceExt;

pub const DLQ: &str = "sync-dead-letters";
pub const SUBSCRIPTION: &str = "projects/test-project/subscriptions/sync-processor";

pub struct Harness {
    pub store: Arc<MemoryStore>,
    pub publisher: MemoryPublisher,
    pub app: Router,
    /// Builds another instance on the same store and publisher.
    pub state: AppState,
}

impl Harness {
    /// A second instance: same store and publisher, its own memory.
    pub fn other_instance(&self) -> Router {
        router(AppState {
            announced: Arc::new(AnnouncedLog::new(AnnouncedLog::DEFAULT_CAPACITY)),
            ..self.state.clone()
        })
    }

    /// Sends one request to this instance and returns its status.
    pub async fn send(&self, request: Request<Body>) -> StatusCode {
        send(&self.app, request).await
    }

    /// Delivers `data` as a wrapped push with `message_id`.
    pub async fn deliver(&self, data: &[u8], message_id: &str) -> StatusCode {
        self.send(push(data, message_id)).await
    }
}

pub fn now() -> DateTime<Utc> {
    parse_timestamp("2025-07-23T10:16:00Z").expect("fixed clock")
}

/// The function with a dead-letter topic and no retry budget; `vars` add or
/// override settings, and an empty value removes one.
pub fn harness(vars: &[(&str, &str)]) -> Harness {
    let mut map: HashMap<String, String> = HashMap::from([
        (
            "GOOGLE_CLOUD_PROJECT".to_string(),
            "test-project".to_string(),
        ),
        ("DEAD_LETTER_TOPIC".to_string(), DLQ.to_string()),
        ("RETRY_BUDGET_SECS".to_string(), "0".to_string()),
    ]);
    for (k, v) in vars {
        if v.is_empty() {
            map.remove(*k);
        } else {
            map.insert(k.to_string(), v.to_string());
        }
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
        app: router(state.clone()),
        state,
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> StatusCode {
    app.clone()
        .oneshot(request)
        .await
        .expect("router is infallible")
        .status()
}

pub fn fixture(name: &str) -> CapturedRequest {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    CapturedRequest::from_json(&text).expect("fixture parses")
}

pub fn base64_of(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A wrapped push of `data` (base64-encoded here).
pub fn push(data: &[u8], message_id: &str) -> Request<Body> {
    push_raw(&base64_of(data), message_id)
}

/// A wrapped push whose `data` field is `data_field` as given.
pub fn push_raw(data_field: &str, message_id: &str) -> Request<Body> {
    let body = json!({
        "message": {"data": data_field, "messageId": message_id, "attributes": {"origin": "test"}},
        "subscription": SUBSCRIPTION,
    });
    Request::post("/")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

pub fn event(entity: &str, op: &str, ts: &str, data: Value) -> Vec<u8> {
    json!({"entity_id": entity, "operation": op, "timestamp": ts, "source": "test", "correlation_id": "corr-1", "data": data})
        .to_string()
        .into_bytes()
}
