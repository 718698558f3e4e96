//! Every audit entry kind, produced by the router and parsed back field by field.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sync_core::logline::LINE_BUDGET_BYTES;
use sync_core::wire::audit::{
    ComplianceEntry, EventEntry, MalformedEntry, Shortened, SnapshotDigest,
};
use sync_testkit::{event, fixture};

mod common;
use common::*;

fn push(data: &[u8], id: &str, extra_headers: &[(&str, &str)]) -> Request<Body> {
    let envelope = sync_testkit::push(data, id)
        .attribute("k", "v")
        .subscription("projects/p/subscriptions/audit-logger")
        .delivery_attempt(2);
    extra_headers
        .iter()
        .fold(envelope, |e, (k, v)| e.header(k, v))
        .request()
}

async fn lines(app: &Router, req: Request<Body>, sink: &MemorySink) -> Vec<Value> {
    assert_eq!(send(app, req).await, StatusCode::NO_CONTENT);
    parsed(sink)
}

#[tokio::test]
async fn create_gives_one_info_entry_with_the_recipe_fields() {
    for name in fixture::WRAPPED {
        let (app, sink) = make_app(&[]);
        let out = lines(&app, fixture(name).request(), &sink).await;
        assert_eq!(out.len(), 1, "{name}");
        let e = &out[0];
        assert_eq!(e["severity"], "INFO");
        assert_eq!(
            e["logging.googleapis.com/labels"],
            json!({"component": "datastore-sync", "operation": "create", "entity_type": "sync_entity"})
        );
        assert_eq!(e["event_type"], "data_synchronization");
        assert_eq!(e["entity_id"], "test-entity-001");
        assert_eq!(e["operation"], "create");
        assert_eq!(e["source_system"], "data_publisher");
        assert!(
            e["message_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}"
        );
        assert!(
            e["correlation_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}"
        );
        assert_eq!(
            e["data_snapshot"]["name"], "Test Product",
            "objects stay objects"
        );
        assert_eq!(e["data_snapshot"]["status"], "active");
        assert_eq!(e["timestamp"], "2025-07-23T10:16:00.500000Z");
        assert_eq!(e["processing_metadata"]["function_name"], "audit_logger");
        assert!(
            e["processing_metadata"]["subscription"].is_string(),
            "{name}"
        );
        assert!(e["processing_metadata"]["delivery_attempt"]
            .as_u64()
            .is_some_and(|n| n >= 1));
        assert!(e["message"]
            .as_str()
            .is_some_and(|m| m.contains("test-entity-001")));
    }
}

#[tokio::test]
async fn delete_adds_a_notice_compliance_entry() {
    let (app, sink) = make_app(&[]);
    let data = event("e9", "delete", "2025-07-23T10:00:00")
        .source("crm")
        .correlation_id("c9")
        .to_bytes();
    let out = lines(&app, push(&data, "m1", &[]), &sink).await;
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["severity"], "INFO");
    assert_eq!(out[0]["processing_metadata"]["delivery_attempt"], 2);
    assert_eq!(
        out[0]["processing_metadata"]["subscription"],
        "projects/p/subscriptions/audit-logger"
    );
    let c = &out[1];
    assert_eq!(c["severity"], "NOTICE");
    assert_eq!(c["compliance_event"], "data_deletion");
    assert_eq!(c["entity_id"], "e9");
    assert_eq!(c["deletion_timestamp"], "2025-07-23T10:16:00.500000Z");
    assert_eq!(c["retention_policy"], "applied");
    assert_eq!(c["regulatory_context"], "gdpr_compliance");
    assert_eq!(
        c["logging.googleapis.com/labels"]["compliance"],
        "data_deletion"
    );
    assert_eq!(c["logging.googleapis.com/labels"]["regulation"], "gdpr");
}

#[tokio::test]
async fn malformed_messages_are_audited_as_warnings_and_acked() {
    let cases: Vec<(Request<Body>, &str, &str)> = vec![
        (
            sync_testkit::push(b"", "m-b64").raw_data("%%%").request(),
            "invalid_base64",
            "%%%",
        ),
        (
            push(b"{not json", "m-json", &[]),
            "invalid_json",
            "{not json",
        ),
        (
            push(br#"{"operation":"create"}"#, "m-missing", &[]),
            "missing_field",
            r#"{"operation":"create"}"#,
        ),
    ];
    for (req, code, raw) in cases {
        let (app, sink) = make_app(&[]);
        let out = lines(&app, req, &sink).await;
        assert_eq!(out.len(), 1, "{code}");
        let e = &out[0];
        assert_eq!(e["severity"], "WARNING");
        assert_eq!(e["event_type"], "malformed_event");
        assert_eq!(e["error_code"], code);
        assert!(e["error_message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(e["message_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("m-")));
        assert_eq!(e["raw_payload"], raw);
        assert_eq!(e["raw_payload_truncated"], false);
        assert_eq!(
            e["logging.googleapis.com/labels"]["component"],
            "datastore-sync"
        );
    }
}

#[tokio::test]
async fn raw_payload_is_capped() {
    let (app, sink) = make_app(&[("AUDIT_MAX_RAW_BYTES", "16")]);
    let out = lines(&app, push("x".repeat(100).as_bytes(), "m", &[]), &sink).await;
    assert_eq!(out[0]["raw_payload"].as_str().map(str::len), Some(16));
    assert_eq!(out[0]["raw_payload_bytes"], 100);
    assert_eq!(out[0]["raw_payload_truncated"], true);
}

#[tokio::test]
async fn configured_fields_are_redacted_at_any_depth() {
    let (app, sink) = make_app(&[("AUDIT_REDACT_FIELDS", "email,phone")]);
    let data = event("e", "update", "2025-07-23T10:00:00")
        .data(json!({"email": "a@b.c", "name": "n", "contact": {"phone": "123"}}))
        .to_bytes();
    let out = lines(&app, push(&data, "m", &[]), &sink).await;
    let snap = &out[0]["data_snapshot"];
    assert_eq!(snap["email"], "[REDACTED]");
    assert_eq!(snap["contact"]["phone"], "[REDACTED]");
    assert_eq!(snap["name"], "n");
    assert!(!sink.lines()[0].contains("a@b.c"));
    let out = lines(&app, push(b"{raw secret", "m2", &[]), &sink).await;
    assert!(out[1]["raw_payload"]
        .as_str()
        .is_some_and(|s| s.starts_with("[WITHHELD")));
}

#[tokio::test]
async fn trace_header_correlates_when_the_project_is_known() {
    let (app, sink) = make_app(&[("GOOGLE_CLOUD_PROJECT", "proj")]);
    let data = event("e", "update", "2025-07-23T10:00:00")
        .data(json!({}))
        .to_bytes();
    let header = [(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )];
    let out = lines(&app, push(&data, "m", &header), &sink).await;
    assert_eq!(
        out[0]["logging.googleapis.com/trace"],
        "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(out[0]["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
    let (app, sink) = make_app(&[]);
    let out = lines(&app, push(&data, "m", &header), &sink).await;
    assert!(
        out[0].get("logging.googleapis.com/trace").is_none(),
        "no project, no trace resource name"
    );
}

#[tokio::test]
async fn events_the_sync_function_refuses_are_audited_with_the_reason() {
    let (app, sink) = make_app(&[]);
    let data = event("e", "update", "2025-07-23T10:00:00")
        .data(json!({"version": 3}))
        .to_bytes();
    let out = lines(&app, push(&data, "m", &[]), &sink).await;
    assert_eq!(out[0]["severity"], "INFO");
    assert_eq!(out[0]["validation_error"]["error_code"], "reserved_field");
}

#[tokio::test]
async fn requests_that_are_not_deliveries_are_refused_and_write_nothing() {
    let (app, sink) = make_app(&[]);
    let req = Request::post("/")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    let status = send(&app, req).await;
    assert!(status.is_client_error());
    assert!(sink.lines().is_empty());
}

/// Lower-case hex SHA-256, computed here from what the test sent.
fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every line the sink holds is within the budget and one JSON object.
fn assert_within_budget(sink: &MemorySink) {
    for line in sink.lines() {
        assert!(
            line.len() <= LINE_BUDGET_BYTES,
            "a line of {} bytes",
            line.len()
        );
        assert!(serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object()));
    }
}

#[tokio::test]
async fn a_large_event_keeps_every_field_but_the_snapshot_and_the_snapshots_digest() {
    for size in [600_000, 900_000] {
        let (app, sink) = make_app(&[]);
        let data = json!({"name": "Big", "status": "active", "blob": "b".repeat(size)});
        let message = event("big-1", "create", "2025-07-23T10:00:00")
            .source("crm")
            .correlation_id("c-big")
            .data(data.clone())
            .to_bytes();
        let out = lines(&app, push(&message, "m-big", &[]), &sink).await;
        assert_within_budget(&sink);
        assert_eq!(out.len(), 1, "one entry");
        let entry: EventEntry = serde_json::from_value(out[0].clone()).expect("an event entry");
        let r = &entry.record;
        assert_eq!(
            (r.entity_id.as_str(), r.operation.as_str()),
            ("big-1", "create")
        );
        assert_eq!(r.message_id, "m-big");
        assert_eq!(r.source_system, "crm");
        assert_eq!(r.correlation_id, "c-big");
        assert_eq!(r.event_timestamp, "2025-07-23T10:00:00");
        assert_eq!(r.processing_metadata.delivery_attempt, 2);
        assert_eq!(r.data_snapshot["name"], "Big", "small fields stay");
        assert_eq!(r.data_snapshot["status"], "active");
        let blob = r.data_snapshot["blob"].as_str().expect("cut, not left out");
        assert!(blob.len() < size && blob.len() > 100_000, "{}", blob.len());
        let full = serde_json::to_vec(&data).expect("JSON");
        assert_eq!(
            r.snapshot_digest,
            Some(SnapshotDigest {
                data_snapshot_truncated: true,
                data_snapshot_bytes: full.len(),
                data_snapshot_sha256: sha256(&full),
            })
        );
        assert_eq!(
            r.shortened,
            Some(Shortened {
                shortened_fields: vec!["/data_snapshot/blob".into()],
                shortened_field_count: 1,
            })
        );
        assert_eq!(out[0]["data_snapshot_truncated"], true, "flat field names");
    }
}

#[tokio::test]
async fn the_event_id_and_the_removed_fields_are_recorded_as_received() {
    let update = || {
        event("e1", "update", "2025-07-23T10:00:00")
            .source("datastore/(default)/(default)")
            .event_id("ce-7")
            .removed(json!(["colour", "size"]))
            .data(json!({"price": 3}))
    };
    // The same change published twice: two entries, one event id.
    for message_id in ["m-1", "m-2"] {
        let (app, sink) = make_app(&[]);
        let out = lines(&app, push(&update().to_bytes(), message_id, &[]), &sink).await;
        assert_eq!(out.len(), 1);
        let entry: EventEntry = serde_json::from_value(out[0].clone()).expect("an event entry");
        let r = &entry.record;
        assert_eq!(r.message_id, message_id);
        assert_eq!(r.event_id, Some(json!("ce-7")));
        assert_eq!(r.removed, Some(json!(["colour", "size"])));
        assert_eq!(r.data_snapshot, json!({"price": 3}));
        assert!(r.validation_error.is_none());
    }
    // Refused by the sync function, still recorded whole, with the code.
    let (app, sink) = make_app(&[]);
    let refused = update().removed(json!(["price"])).to_bytes();
    let out = lines(&app, push(&refused, "m-3", &[]), &sink).await;
    assert_eq!(
        out[0]["validation_error"]["error_code"],
        "removed_field_in_data"
    );
    assert_eq!(out[0]["removed"], json!(["price"]));
    assert_eq!(out[0]["event_id"], "ce-7");
    // Redaction is of values: the names removed stay.
    let (app, sink) = make_app(&[("AUDIT_REDACT_FIELDS", "colour")]);
    let out = lines(&app, push(&update().to_bytes(), "m-4", &[]), &sink).await;
    assert_eq!(out[0]["removed"], json!(["colour", "size"]));
    // An event without them has neither member, as before.
    let (app, sink) = make_app(&[]);
    let plain = event("e1", "update", "2025-07-23T10:00:00")
        .data(json!({"a": 1}))
        .to_bytes();
    let out = lines(&app, push(&plain, "m-5", &[]), &sink).await;
    assert!(out[0].get("event_id").is_none() && out[0].get("removed").is_none());
}

#[tokio::test]
async fn a_long_list_of_removed_fields_is_left_out_to_fit() {
    let (app, sink) = make_app(&[]);
    let names: Vec<String> = (0..300)
        .map(|i| format!("{i:04}{}", "n".repeat(1400)))
        .collect();
    let message = event("e1", "update", "2025-07-23T10:00:00")
        .event_id("ce-long")
        .removed(json!(names))
        .data(json!({"a": 1}))
        .to_bytes();
    let out = lines(&app, push(&message, "m-long", &[]), &sink).await;
    assert_within_budget(&sink);
    let entry: EventEntry = serde_json::from_value(out[0].clone()).expect("an event entry");
    let r = &entry.record;
    assert_eq!(r.event_id, Some(json!("ce-long")));
    assert_eq!(r.data_snapshot, json!({"a": 1}), "the small snapshot stays");
    let shortened = r.shortened.as_ref().expect("shortened");
    assert!(
        shortened
            .shortened_fields
            .iter()
            .any(|f| f.starts_with("/removed")),
        "{shortened:?}"
    );
}

#[tokio::test]
async fn an_entry_that_fits_is_unchanged() {
    let (app, sink) = make_app(&[]);
    let data = event("e", "update", "2025-07-23T10:00:00")
        .data(json!({"blob": "b".repeat(150_000)}))
        .to_bytes();
    let out = lines(&app, push(&data, "m", &[]), &sink).await;
    assert_eq!(
        out[0]["data_snapshot"]["blob"].as_str().map(str::len),
        Some(150_000)
    );
    for field in [
        "data_snapshot_truncated",
        "shortened_fields",
        "data_snapshot_sha256",
    ] {
        assert!(out[0].get(field).is_none(), "{field}");
    }
}

#[tokio::test]
async fn a_large_delete_still_has_both_entries() {
    let (app, sink) = make_app(&[]);
    let data = event("gone", "delete", "2025-07-23T10:00:00")
        .correlation_id(&"c".repeat(400_000))
        .to_bytes();
    let out = lines(&app, push(&data, "m-del", &[]), &sink).await;
    assert_within_budget(&sink);
    assert_eq!(out.len(), 2, "the event and its compliance entry");
    assert_eq!(out[0]["operation"], "delete");
    assert_eq!(out[1]["compliance_event"], "data_deletion");
    assert_eq!(out[1]["message_id"], "m-del");
    for e in &out {
        assert_eq!(e["shortened_fields"], json!(["/correlation_id"]), "{e:#}");
        assert!(e["correlation_id"]
            .as_str()
            .is_some_and(|c| c.starts_with("ccc")));
    }
    let entry: EventEntry = serde_json::from_value(out[0].clone()).expect("an event entry");
    let digest = entry.record.snapshot_digest.expect("shortened");
    assert!(
        !digest.data_snapshot_truncated,
        "the snapshot itself is whole"
    );
    let compliance: ComplianceEntry = serde_json::from_value(out[1].clone()).expect("compliance");
    assert_eq!(
        compliance.record.shortened.map(|s| s.shortened_field_count),
        Some(1)
    );
}

#[tokio::test]
async fn a_refused_event_of_3_mb_keeps_its_reason_and_digest() {
    let (app, sink) = make_app(&[]);
    let data = json!({"blob": "z".repeat(3_000_000)});
    let message = event("huge", "create", "2025-07-23T10:00:00")
        .data(data.clone())
        .to_bytes();
    let out = lines(&app, push(&message, "m-huge", &[]), &sink).await;
    assert_within_budget(&sink);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["validation_error"]["error_code"], "entity_too_large");
    let full = serde_json::to_vec(&data).expect("JSON");
    assert_eq!(out[0]["data_snapshot_bytes"], full.len());
    assert_eq!(out[0]["data_snapshot_sha256"], sha256(&full));
    assert_eq!(out[0]["data_snapshot_truncated"], true);
}

#[tokio::test]
async fn a_large_malformed_payload_is_capped_with_its_digest() {
    let (app, sink) = make_app(&[]);
    let raw = format!("{{\"entity_id\": \"m\", {}", "y".repeat(700_000));
    let out = lines(&app, push(raw.as_bytes(), "m-bad", &[]), &sink).await;
    assert_within_budget(&sink);
    let entry: MalformedEntry = serde_json::from_value(out[0].clone()).expect("malformed entry");
    let r = &entry.record;
    assert_eq!(r.error_code, "invalid_json");
    assert_eq!(r.raw_payload.len(), 8192);
    assert!(raw.starts_with(&r.raw_payload));
    assert_eq!(r.raw_payload_bytes, raw.len());
    assert!(r.raw_payload_truncated);
    assert_eq!(r.raw_payload_sha256, Some(sha256(raw.as_bytes())));
    assert_eq!(r.shortened, None, "the cap made it fit");
}

#[tokio::test]
async fn a_redacted_payload_digest_is_of_the_redacted_text() {
    let (app, sink) = make_app(&[
        ("AUDIT_REDACT_FIELDS", "secret"),
        ("AUDIT_MAX_RAW_BYTES", "64"),
    ]);
    let raw = json!({"secret": "s3cr3t", "operation": "create", "pad": "p".repeat(500)});
    let out = lines(&app, push(raw.to_string().as_bytes(), "m-r", &[]), &sink).await;
    let redacted =
        json!({"secret": "[REDACTED]", "operation": "create", "pad": "p".repeat(500)}).to_string();
    assert_eq!(out[0]["error_code"], "missing_field");
    assert_eq!(out[0]["raw_payload_truncated"], true);
    assert_eq!(out[0]["raw_payload_sha256"], sha256(redacted.as_bytes()));
    assert!(redacted.starts_with(out[0]["raw_payload"].as_str().unwrap_or("?")));
    assert!(!sink.lines()[0].contains("s3cr3t"));
}

#[tokio::test]
async fn attributes_that_do_not_fit_are_cut_largest_first() {
    let (app, sink) = make_app(&[]);
    let mut envelope = sync_testkit::push(b"{not json", "m-attrs");
    for i in 0..100 {
        envelope = envelope.attribute(&format!("a{i:02}"), &"v".repeat(3_000 + i));
    }
    let out = lines(&app, envelope.request(), &sink).await;
    assert_within_budget(&sink);
    let entry: MalformedEntry = serde_json::from_value(out[0].clone()).expect("malformed entry");
    let shortened = entry.record.shortened.expect("shortened");
    assert_eq!(
        shortened.shortened_fields[0], "/attributes/a99",
        "largest first"
    );
    assert_eq!(
        entry.record.attributes.len(),
        100,
        "every attribute is kept"
    );
    assert_eq!(entry.record.raw_payload, "{not json");
}
