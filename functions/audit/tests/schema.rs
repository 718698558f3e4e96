//! Upcasting in the audit trail: with the sync function's schema history, an
//! entry keeps the data as received and records the received version, the
//! version after upcasting, and the upcast data when it changed.

use serde_json::{json, Value};
use sync_config::SCHEMA_HISTORY_FILE;
use sync_core::EventMessage;
use sync_core::Operation;

mod common;
use common::*;

/// The documented example (docs/semantics.md) history (versions 1 and 2).
const HISTORY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/testdata/schema_history.toml"
);

async fn audit(vars: &[(&str, &str)], event: &EventMessage) -> Value {
    let (app, sink) = make_app(vars);
    let request = sync_testkit::push(&event.to_bytes(), "m-1").request();
    assert_eq!(
        send(&app, request).await,
        axum::http::StatusCode::NO_CONTENT
    );
    let mut lines = parsed(&sink);
    assert!(!lines.is_empty(), "one entry at least");
    lines.swap_remove(0)
}

fn v1_create() -> EventMessage {
    EventMessage::new("e1", Operation::Create, "2025-07-23T10:00:00")
        .field("name", "Desk lamp")
        .field("street", "Main St 1")
        .field("fax", "0731")
}

#[tokio::test]
async fn an_old_event_records_both_versions_and_the_upcast_data() {
    let vars = [
        (SCHEMA_HISTORY_FILE, HISTORY),
        ("AUDIT_REDACT_FIELDS", "street"),
    ];
    let entry = audit(&vars, &v1_create()).await;
    assert_eq!(
        entry["data_snapshot"],
        json!({"name": "Desk lamp", "street": "[REDACTED]", "fax": "0731"}),
        "as received"
    );
    assert_eq!(
        entry["schema"],
        json!({
            "received_version": 1,
            "version": 2,
            "changed": true,
            "upcast_data_snapshot": {
                "title": "Desk lamp",
                "address": {"street": "[REDACTED]"},
                "currency": "EUR"
            }
        })
    );
    assert!(entry.get("validation_error").is_none(), "{entry}");
}

#[tokio::test]
async fn a_current_event_is_recorded_unchanged() {
    let current = EventMessage::new("e1", Operation::Update, "2025-07-23T10:00:00")
        .schema_version(2)
        .field("title", "Desk lamp");
    let entry = audit(&[(SCHEMA_HISTORY_FILE, HISTORY)], &current).await;
    assert_eq!(
        entry["schema"],
        json!({"received_version": 2, "version": 2, "changed": false})
    );
    // Without a history, version 1 is the current one.
    let entry = audit(&[], &v1_create()).await;
    assert_eq!(
        entry["schema"],
        json!({"received_version": 1, "version": 1, "changed": false})
    );
}

#[tokio::test]
async fn an_unknown_version_is_audited_as_the_sync_function_refuses_it() {
    let future = v1_create().schema_version(3);
    let entry = audit(&[(SCHEMA_HISTORY_FILE, HISTORY)], &future).await;
    assert_eq!(entry["event_type"], "data_synchronization");
    assert_eq!(
        entry["validation_error"]["error_code"],
        "unsupported_schema_version"
    );
    assert!(
        entry["validation_error"]["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("1 to 2")),
        "{entry}"
    );
    assert!(entry.get("schema").is_none(), "{entry}");
}

#[tokio::test]
async fn the_derived_upcast_snapshot_is_shortened_before_the_snapshot() {
    let vars = [(SCHEMA_HISTORY_FILE, HISTORY)];
    // `name` becomes `title`: both snapshots hold the 300 KB value.
    let event = EventMessage::new("e1", Operation::Create, "2025-07-23T10:00:00")
        .field("name", "n".repeat(300_000))
        .field("street", "Main St 1");
    let entry = audit(&vars, &event).await;
    assert!(entry.to_string().len() <= sync_core::logline::LINE_BUDGET_BYTES);
    assert_eq!(
        entry["shortened_fields"][0], "/schema/upcast_data_snapshot/title",
        "{:#}",
        entry["shortened_fields"]
    );
    // The derived copy could not give enough: all of it went, then the
    // snapshot's own value was cut.
    assert_eq!(entry["schema"]["upcast_data_snapshot"], json!({}));
    assert_eq!(entry["shortened_field_count"], 4);
    assert_eq!(entry["shortened_fields"][3], "/data_snapshot/name");
    assert_eq!(entry["data_snapshot"]["street"], "Main St 1");
    assert!(entry["data_snapshot"]["name"]
        .as_str()
        .is_some_and(|n| n.len() > 100_000));
    assert_eq!(entry["schema"]["received_version"], 1);
    assert_eq!(entry["data_snapshot_truncated"], true);
}
