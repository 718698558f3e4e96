//! The sync function binary against both emulators, requests POSTed directly:
//! every delivery form lands in Datastore and is announced; every bad-input
//! class is dead-lettered with its code; nothing else is touched.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use sync_core::MergePolicy;
use sync_http::fixture::CapturedRequest;
use sync_pubsub::{PubSubAdmin, PubSubPuller};
use sync_tests::*;

async fn post(url: &str, req: &CapturedRequest) -> Result<u16> {
    let client = reqwest::Client::new();
    let mut builder = client.post(format!("{}{}", url.trim_end_matches('/'), req.path));
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    Ok(builder
        .body(req.body.clone())
        .send()
        .await?
        .status()
        .as_u16())
}

fn fixture(name: &str) -> Result<CapturedRequest> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Ok(CapturedRequest::from_json(
        &std::fs::read_to_string(&path).with_context(|| path.clone())?,
    )?)
}

fn push_body(data: &[u8], message_id: &str) -> CapturedRequest {
    use std::fmt::Write;
    // Standard base64, written out here to keep the test independent of the decoder.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                let _ = write!(b64, "{}", ALPHABET.get(idx).map_or('A', |c| char::from(*c)));
            } else {
                b64.push('=');
            }
        }
    }
    let body = json!({"message": {"data": b64, "messageId": message_id, "attributes": {"origin": "it"}}, "subscription": "projects/datastore-sync-test/subscriptions/sync-processor"});
    CapturedRequest {
        description: String::new(),
        method: "POST".into(),
        path: "/".into(),
        headers: [("content-type".to_string(), "application/json".to_string())].into(),
        body: body.to_string().into_bytes(),
    }
}

#[tokio::test]
async fn every_delivery_form_is_applied_and_announced() -> Result<()> {
    let (ps, ds) = hosts().await?;
    let config = pubsub_config().await?;
    let admin = PubSubAdmin::connect(&config).await?;
    let puller = PubSubPuller::connect(&config).await?;
    for name in [
        "cloudevent_binary.json",
        "cloudevent_structured.json",
        "push_plain.json",
        "push_emulator.json",
    ] {
        let t = Topology::new("forms");
        t.create_base(&admin).await?;
        let sync = FunctionProcess::start("sync-function", sync_env(&t, &ps, &ds)).await?;
        let status = post(&sync.url(), &fixture(name)?).await?;
        ensure!(
            status == 204,
            "{name}: status {status}; log:\n{}",
            sync.log_text()
        );
        let store = store(&ds, &t.namespace).await?;
        let (_, state) = store
            .get(None, "test-entity-001")
            .await?
            .context("entity written")?;
        ensure!(state.version() == 1 && state.exists(), "{name}");
        ensure!(
            state.visible_fields(&MergePolicy::default())["name"] == "Test Product",
            "{name}"
        );
        let announced = pull_at_least(
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
        ensure!(post(&sync.url(), &fixture(name)?).await? == 204);
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
    let (ps, ds) = hosts().await?;
    let config = pubsub_config().await?;
    let admin = PubSubAdmin::connect(&config).await?;
    let puller = PubSubPuller::connect(&config).await?;
    let t = Topology::new("badinput");
    t.create_base(&admin).await?;
    let sync = FunctionProcess::start("sync-function", sync_env(&t, &ps, &ds)).await?;
    let store = store(&ds, &t.namespace).await?;
    let ts = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let ev = |id: &str, op: &str, ts: &str, data: Value| {
        json!({"entity_id": id, "operation": op, "timestamp": ts, "data": data})
            .to_string()
            .into_bytes()
    };
    ensure!(
        post(
            &sync.url(),
            &push_body(&ev("other", "create", &ts, json!({"a": 1})), "ok-1")
        )
        .await?
            == 204
    );

    let mut bad_base64 = push_body(b"x", "bad-b64");
    bad_base64.body = br#"{"message":{"data":"%%%","messageId":"bad-b64","attributes":{"origin":"it"}},"subscription":"projects/datastore-sync-test/subscriptions/sync-processor"}"#.to_vec();
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
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
    let dead = pull_at_least(
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
async fn requests_that_are_not_deliveries_get_4xx_from_the_binary() -> Result<()> {
    let (ps, ds) = hosts().await?;
    let t = Topology::new("notdelivery");
    let sync = FunctionProcess::start("sync-function", sync_env(&t, &ps, &ds)).await?;
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
