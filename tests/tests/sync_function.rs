//! The sync function against both emulators, in-process on port 0, requests
//! POSTed directly: every delivery form lands in Datastore and is announced;
//! every bad-input class is dead-lettered with its code; nothing else is
//! touched.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use sync_core::MergePolicy;
use sync_testkit::harness::{sync_env, sync_in_process, Clients, Topology};
use sync_testkit::raw_event::{now_timestamp, timestamp_in};
use sync_testkit::{
    drain, event, fixture, post, pull_until, push, CapturedRequest, Emulators, PushEnvelope,
};

/// A wrapped push of `data` as the emulator would send it for this suite.
fn envelope(data: &[u8], message_id: &str) -> PushEnvelope {
    push(data, message_id)
        .attribute("origin", "it")
        .subscription("projects/datastore-sync-test/subscriptions/sync-processor")
}

fn push_body(data: &[u8], message_id: &str) -> CapturedRequest {
    envelope(data, message_id).build()
}

#[tokio::test]
async fn every_delivery_form_is_applied_and_announced() -> Result<()> {
    let e = Emulators::shared().await?;
    let Clients { admin, puller, .. } = Clients::connect(&e).await?;
    for name in sync_testkit::fixture::WRAPPED {
        let t = Topology::new("forms");
        t.create_base(&admin).await?;
        let sync = sync_in_process(&sync_env(&t, &e)).await?;
        let status = post(&sync.url(), &fixture(name)).await?;
        ensure!(status == 204, "{name}: status {status}");
        let store = e.admin(&t.namespace).await?;
        let (_, state) = store
            .get(None, "test-entity-001")
            .await?
            .context("entity written")?;
        ensure!(state.version() == 1 && state.exists(), "{name}");
        ensure!(
            state.visible_fields(&MergePolicy::default())["name"] == "Test Product",
            "{name}"
        );
        let announced = pull_until(
            &puller,
            &t.external_subscription("create"),
            1,
            Duration::from_secs(30),
        )
        .await?;
        ensure!(announced.len() == 1, "{name}: one announcement");
        let payload: Value = serde_json::from_slice(&announced[0].data)?;
        ensure!(
            payload["entity_id"] == "test-entity-001" && payload["version"] == 1,
            "{name}: {payload}"
        );
        ensure!(announced[0].attributes.get("operation").map(String::as_str) == Some("create"));
        // A redelivery of the same request changes and announces nothing.
        ensure!(post(&sync.url(), &fixture(name)).await? == 204);
        ensure!(
            store
                .get(None, "test-entity-001")
                .await?
                .context("entity")?
                .1
                .version()
                == 1
        );
        ensure!(
            drain(
                &puller,
                &t.external_subscription("create"),
                Duration::from_millis(500)
            )
            .await?
            .is_empty(),
            "{name}: no second announcement"
        );
    }
    Ok(())
}

#[tokio::test]
async fn each_bad_input_class_is_dead_lettered_and_touches_nothing() -> Result<()> {
    let e = Emulators::shared().await?;
    let Clients { admin, puller, .. } = Clients::connect(&e).await?;
    let t = Topology::new("badinput");
    t.create_base(&admin).await?;
    let sync = sync_in_process(&sync_env(&t, &e)).await?;
    let store = e.admin(&t.namespace).await?;
    let ts = now_timestamp();
    let ev = |id: &str, op: &str, ts: &str, data: Value| event(id, op, ts).data(data).to_bytes();
    ensure!(
        post(
            &sync.url(),
            &push_body(&ev("other", "create", &ts, json!({"a": 1})), "ok-1")
        )
        .await?
            == 204
    );

    let bad_base64 = envelope(b"", "bad-b64").raw_data("%%%").build();
    let future = timestamp_in(3600 * 1000);
    let cases = vec![
        ("invalid_base64", bad_base64),
        ("invalid_json", push_body(b"nope", "bad-json")),
        (
            "missing_field",
            push_body(
                br#"{"entity_id":"other","operation":"update"}"#,
                "bad-missing",
            ),
        ),
        (
            "invalid_operation",
            push_body(&ev("other", "rename", &ts, json!({})), "bad-op"),
        ),
        (
            "invalid_timestamp",
            push_body(&ev("other", "update", "soon", json!({})), "bad-ts"),
        ),
        (
            "invalid_entity_id",
            push_body(&ev("", "update", &ts, json!({})), "bad-id"),
        ),
        (
            "reserved_field",
            push_body(
                &ev("other", "update", &ts, json!({"sync_status": "hacked"})),
                "bad-reserved",
            ),
        ),
        (
            "invalid_field_name",
            push_body(&ev("other", "update", &ts, json!({"__x__": 1})), "bad-name"),
        ),
        (
            "unsupported_value",
            push_body(
                &ev("other", "update", &ts, json!({"a": [[1]]})),
                "bad-value",
            ),
        ),
        (
            "clock_skew",
            push_body(&ev("other", "update", &future, json!({"a": 2})), "bad-skew"),
        ),
        (
            "entity_too_large",
            push_body(
                &ev("other", "update", &ts, json!({"a": "x".repeat(1_100_000)})),
                "bad-large",
            ),
        ),
    ];
    for (code, req) in &cases {
        let status = post(&sync.url(), req).await?;
        ensure!(status == 204, "{code}: status {status}");
    }
    let dead = pull_until(
        &puller,
        &t.dlq_subscription,
        cases.len(),
        Duration::from_secs(30),
    )
    .await?;
    ensure!(dead.len() == cases.len(), "{} dead letters", dead.len());
    for (code, req) in &cases {
        let id = serde_json::from_slice::<Value>(&req.body)?["message"]["messageId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let m = dead
            .iter()
            .find(|m| m.attributes.get("original_message_id") == Some(&id))
            .with_context(|| format!("{code} not dead-lettered"))?;
        ensure!(
            m.attributes.get("error_code").map(String::as_str) == Some(*code),
            "{code}: {:?}",
            m.attributes
        );
        ensure!(
            m.attributes.get("origin").map(String::as_str) == Some("it"),
            "{code}: original attributes kept"
        );
        ensure!(m
            .attributes
            .get("error_message")
            .is_some_and(|e| !e.is_empty()));
    }
    let rows = store.query_kind("SyncEntity").await?;
    ensure!(
        rows.len() == 1 && rows[0].0 == "other",
        "only the good entity exists: {rows:?}"
    );
    ensure!(
        rows[0].1["a"] == 1 && rows[0].1["version"] == 1,
        "{:?}",
        rows[0].1
    );
    Ok(())
}

#[tokio::test]
async fn requests_that_are_not_deliveries_get_4xx_from_the_function() -> Result<()> {
    let e = Emulators::shared().await?;
    let t = Topology::new("notdelivery");
    let sync = sync_in_process(&sync_env(&t, &e)).await?;
    let client = reqwest::Client::new();
    let status = client
        .post(sync.url())
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?
        .status();
    ensure!(status.as_u16() == 400, "{status}");
    let status = client.get(sync.url()).send().await?.status();
    ensure!(status.as_u16() == 405, "{status}");
    Ok(())
}
