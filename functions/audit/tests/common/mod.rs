//! What the audit function's tests share: the router with a fixed clock and a
//! memory sink, and the sink's lines parsed back.
#![allow(dead_code)] // each test binary uses only some of these helpers

use audit_function::{router, AppState, AuditConfig, MemorySink};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-07-23T10:16:00.5Z")
        .expect("clock")
        .with_timezone(&Utc)
}

/// The audit function configured from `vars` alone, and the sink it writes to.
pub fn make_app(vars: &[(&str, &str)]) -> (Router, MemorySink) {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = AuditConfig::from_lookup(|k| map.get(k).cloned()).expect("config");
    let sink = MemorySink::default();
    let state = AppState {
        config: Arc::new(config),
        sink: Arc::new(sink.clone()),
        clock: Arc::new(now),
    };
    (router(state), sink)
}

/// Every line the sink holds, each parsed as one JSON object.
pub fn parsed(sink: &MemorySink) -> Vec<Value> {
    sink.lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}
