//! What the audit function's tests share: the router with a fixed clock and
//! the testkit's memory sink, whose lines are parsed back.
#![allow(dead_code)] // each test binary uses only some of these helpers

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;
pub use sync_testkit::harness::MemorySink;
use tower::ServiceExt;

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-07-23T10:16:00.5Z")
        .expect("clock")
        .with_timezone(&Utc)
}

/// The audit function configured from `vars` alone, and the sink it writes to.
pub fn make_app(vars: &[(&str, &str)]) -> (Router, MemorySink) {
    let (state, sink) = sync_testkit::harness::audit_state(vars, now);
    (audit_function::router(state), sink)
}

/// Every line the sink holds, each parsed as one JSON object.
pub fn parsed(sink: &MemorySink) -> Vec<Value> {
    sink.entries()
}

/// Sends one request and returns its status.
pub async fn send(app: &Router, req: Request<Body>) -> StatusCode {
    app.clone().oneshot(req).await.expect("infallible").status()
}
