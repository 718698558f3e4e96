//! What the sync function's handler tests share: the router on in-memory
//! ports with a fixed clock, and the testkit's requests and events with this
//! suite's subscription and attributes. Each test file uses a part of it.
#![allow(dead_code)] // each test binary uses only some of these helpers

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use sync_core::memory::{MemoryPublisher, MemoryStore};
use sync_core::{parse_timestamp, MergePolicy};
use sync_function::{router, AnnouncedLog, AppState, Config};
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

/// A wrapped push of `data` (base64-encoded) with `message_id`, this
/// suite's subscription and an `origin` attribute.
pub fn push(data: &[u8], message_id: &str) -> Request<Body> {
    envelope(data, message_id).request()
}

/// A wrapped push whose `data` field is `data_field` as given.
pub fn push_raw(data_field: &str, message_id: &str) -> Request<Body> {
    envelope(b"", message_id).raw_data(data_field).request()
}

fn envelope(data: &[u8], message_id: &str) -> sync_testkit::PushEnvelope {
    sync_testkit::push(data, message_id)
        .attribute("origin", "test")
        .subscription(SUBSCRIPTION)
}

/// A change event with this suite's source and correlation id.
pub fn event(entity: &str, op: &str, ts: &str, data: Value) -> Vec<u8> {
    sync_testkit::event(entity, op, ts)
        .source("test")
        .correlation_id("corr-1")
        .data(data)
        .to_bytes()
}
