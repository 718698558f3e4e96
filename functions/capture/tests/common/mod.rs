//! What the capture function's handler tests share: the fixtures of
//! `crates/sync-capture/fixtures` as requests, and the router on an
//! in-memory publisher.
#![allow(dead_code)] // each test binary uses only some of these helpers

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use capture_function::{router, AppState, CaptureConfig};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use sync_core::memory::MemoryPublisher;
use tower::ServiceExt;

pub const EVENTS: &str = "data-sync-events";
pub const DLQ: &str = "sync-dead-letters";
/// The trace id every fixture's `traceparent` names.
pub const FIXTURE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

pub struct Fixture {
    pub name: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub expect: Value,
}

pub fn fixtures() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/sync-capture/fixtures");
    let mut out: Vec<Fixture> = std::fs::read_dir(&dir)
        .expect("the fixtures")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let name = name.strip_suffix(".json")?.to_string();
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).ok()?;
            let sidecar: Value = serde_json::from_str(&text).expect("sidecar JSON");
            let body = std::fs::read(dir.join(sidecar["body"].as_str()?)).expect("body");
            let headers = serde_json::from_value(sidecar["headers"].clone()).expect("headers");
            Some(Fixture {
                name,
                headers,
                body,
                expect: sidecar["expect"].clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 20, "{} fixtures", out.len());
    out
}

pub fn request(f: &Fixture) -> Request<Body> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/?__GCP_CloudEventsMode=CE_PUBSUB_BINDING");
    for (k, v) in &f.headers {
        builder = builder.header(k, v);
    }
    builder.body(Body::from(f.body.clone())).expect("request")
}

pub fn app(vars: &[(&str, &str)]) -> (Router, MemoryPublisher, AppState) {
    let mut map: HashMap<&str, &str> = HashMap::from([
        ("GOOGLE_CLOUD_PROJECT", "demo-project"),
        ("DEAD_LETTER_TOPIC", DLQ),
        ("MEMORY_LIMIT_MIB", "256"),
    ]);
    for (k, v) in vars {
        if v.is_empty() {
            map.remove(k);
        } else {
            map.insert(k, v);
        }
    }
    let config = CaptureConfig::from_lookup(|k| map.get(k).map(|v| v.to_string())).expect("config");
    let publisher = MemoryPublisher::default();
    let state = AppState::new(Arc::new(config), Arc::new(publisher.clone()));
    (router(state.clone()), publisher, state)
}

pub async fn send(app: &Router, request: Request<Body>) -> StatusCode {
    app.clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status()
}

/// The fixture named `name`.
pub fn fixture(name: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .expect("a fixture")
}
