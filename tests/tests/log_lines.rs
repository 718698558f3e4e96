//! Every line both functions write fits one Cloud Logging entry, end to
//! end: both run as processes logging JSON (as on Cloud Run), on the
//! emulators, and receive legal events of 600 KB and 900 KB, a conflict
//! between two 400 KB values, a 900 KB poison message, a 3 MB event too
//! large for Datastore, a 700 KB malformed payload and a delete. Every line
//! on their stdout is one JSON object within the budget; every delivery has
//! its audit entry (two for the delete); where an entry had to be shortened
//! it carries the length and SHA-256 of the full snapshot (or payload),
//! which the test recomputes from what it sent; the conflict line carries
//! both values' digests.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::time::Duration;
use sync_core::logline::LINE_BUDGET_BYTES;
use sync_core::wire::audit::{ConflictLine, EventEntry, MalformedEntry};
use sync_testkit::harness::{sync_env, Clients, FunctionProcess, Topology};
use sync_testkit::{event, poll_until, pull_until, Emulators, TEST_PROJECT};

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every line `process` has printed in full, each checked to be one JSON
/// object within the budget (a line being written as the file is read is
/// left for the next read).
fn checked_lines(process: &FunctionProcess) -> Result<Vec<Value>> {
    let text = process.log_text();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut lines = Vec::new();
    for (n, line) in complete.lines().enumerate() {
        ensure!(
            line.len() <= LINE_BUDGET_BYTES,
            "line {n} of {} is {} bytes: {}…",
            process.log.display(),
            line.len(),
            line.chars().take(300).collect::<String>()
        );
        let value: Value = serde_json::from_str(line).with_context(|| {
            format!(
                "line {n} of {} is not JSON: {}…",
                process.log.display(),
                line.chars().take(300).collect::<String>()
            )
        })?;
        ensure!(value.is_object(), "line {n} is not an object: {line}");
        lines.push(value);
    }
    Ok(lines)
}

/// What the test sent in one message.
struct Sent {
    label: &'static str,
    data: Vec<u8>,
    /// The event's `data`, when the message is an event.
    snapshot: Option<Value>,
}

fn create(entity_id: &str, timestamp: &str, data: Value) -> Sent {
    Sent {
        label: "",
        data: event(entity_id, "create", timestamp)
            .source("log-lines")
            .data(data.clone())
            .to_bytes(),
        snapshot: Some(data),
    }
}

#[tokio::test]
async fn every_line_fits_one_log_entry_and_every_delivery_is_audited() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("lines");
    t.create_base(&c.admin).await?;
    let mut env = sync_env(&t, &e);
    env.retain(|(k, _)| k != "LOG_FORMAT");
    env.push(("LOG_FORMAT".into(), "json".into()));
    let sync = FunctionProcess::start("sync-function", env).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    let audit = FunctionProcess::start(
        "audit-function",
        vec![
            ("GOOGLE_CLOUD_PROJECT".into(), TEST_PROJECT.into()),
            ("LOG_FORMAT".into(), "json".into()),
        ],
    )
    .await?;
    t.subscribe_audit(&c.admin, &audit.url()).await?;
    let store = e.admin(&t.namespace).await?;

    let now = chrono::Utc::now();
    let at = |secs: i64| {
        (now + chrono::TimeDelta::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string()
    };
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let publish = |label: &'static str, s: Sent| {
        let (c, topic) = (&c, &t.topic);
        async move {
            let id = c.publish(topic, s.data.clone()).await?;
            anyhow::Ok((id, Sent { label, ..s }))
        }
    };

    // The conflict first: the newer 400 KB value is applied, then the older
    // one arrives and loses.
    let newer = json!({"doc": "N".repeat(400_000)});
    let older = json!({"doc": "O".repeat(400_000)});
    let (id, s) = publish("conflict winner", create("lines-conflict", &at(-10), newer)).await?;
    sent.insert(id, s);
    poll_until(
        Duration::from_secs(60),
        "the newer value applied",
        || async { Ok(store.get(None, "lines-conflict").await?) },
    )
    .await
    .with_context(|| sync.log_tail(5))?;
    for (label, s) in [
        ("conflict loser", create("lines-conflict", &at(-20), older)),
        (
            "600 KB",
            create(
                "lines-600k",
                &at(-5),
                json!({"name": "six", "blob": "6".repeat(600_000)}),
            ),
        ),
        (
            "900 KB",
            create(
                "lines-900k",
                &at(-5),
                json!({"name": "nine", "blob": "9".repeat(900_000)}),
            ),
        ),
        (
            "large poison",
            create(
                "lines-poison",
                &at(-5),
                json!({"version": 3, "blob": "p".repeat(900_000)}),
            ),
        ),
        (
            "3 MB too large",
            create("lines-3mb", &at(-5), json!({"blob": "3".repeat(3_000_000)})),
        ),
        (
            "700 KB malformed",
            Sent {
                label: "",
                data: format!("{{\"entity_id\": \"lines-bad\", {}", "m".repeat(700_000))
                    .into_bytes(),
                snapshot: None,
            },
        ),
        (
            "delete",
            Sent {
                label: "",
                data: event("lines-600k", "delete", &at(-1))
                    .source("log-lines")
                    .to_bytes(),
                snapshot: Some(json!({})),
            },
        ),
    ] {
        let (id, s) = publish(label, s).await?;
        sent.insert(id, s);
    }
    let id_of = |label: &str| {
        sent.iter()
            .find(|(_, s)| s.label == label)
            .map(|(id, _)| id.clone())
            .context("sent")
    };

    // The sync function: three dead letters, the rest processed.
    let dead = pull_until(&c.puller, &t.dlq_subscription, 3, Duration::from_secs(120))
        .await
        .with_context(|| sync.log_tail(10))?;
    let codes: BTreeMap<String, String> = dead
        .iter()
        .map(|m| {
            (
                m.attributes["original_message_id"].clone(),
                m.attributes["error_code"].clone(),
            )
        })
        .collect();
    ensure!(
        codes
            == BTreeMap::from([
                (id_of("large poison")?, "reserved_field".to_string()),
                (id_of("3 MB too large")?, "entity_too_large".to_string()),
                (id_of("700 KB malformed")?, "invalid_json".to_string()),
            ]),
        "{codes:?}"
    );
    for m in &dead {
        let original = &sent[&m.attributes["original_message_id"]];
        ensure!(
            m.data == original.data,
            "{}: dead-lettered as sent",
            original.label
        );
    }
    let processed = |lines: &[Value], id: &str| {
        lines
            .iter()
            .any(|l| l["message"] == "event processed" && l["span"]["message_id"] == id)
    };
    let sync_lines = poll_until(
        Duration::from_secs(120),
        "the sync function to process every event",
        || async {
            let lines = checked_lines(&sync)?;
            let done = [
                "conflict winner",
                "conflict loser",
                "600 KB",
                "900 KB",
                "delete",
            ]
            .iter()
            .all(|label| id_of(label).is_ok_and(|id| processed(&lines, &id)));
            Ok(done.then_some(lines))
        },
    )
    .await
    .with_context(|| sync.log_tail(10))?;
    ensure!(store.get(None, "lines-900k").await?.is_some());

    // The conflict line: both values cut, each with its whole text's digest.
    let conflict: ConflictLine = sync_lines
        .iter()
        .find(|l| l["message"] == "conflict: incoming value lost")
        .map(|l| serde_json::from_value(l.clone()))
        .context("a conflict line")??;
    for (value, text, truncated, bytes, digest) in [
        (
            "N",
            &conflict.winner_value,
            conflict.winner_value_truncated,
            conflict.winner_value_bytes,
            &conflict.winner_value_sha256,
        ),
        (
            "O",
            &conflict.loser_value,
            conflict.loser_value_truncated,
            conflict.loser_value_bytes,
            &conflict.loser_value_sha256,
        ),
    ] {
        let whole = serde_json::to_string(&value.repeat(400_000))?;
        ensure!(
            truncated && whole.starts_with(text.as_str()),
            "{value}: cut"
        );
        ensure!(bytes == Some(whole.len()), "{value}: {bytes:?}");
        ensure!(
            digest.as_deref() == Some(sha256(whole.as_bytes()).as_str()),
            "{value}: digest"
        );
    }

    // The audit function: every delivery has its entries.
    let audit_lines = poll_until(
        Duration::from_secs(120),
        "an audit entry for every message",
        || async {
            let lines = checked_lines(&audit)?;
            let all = sent
                .keys()
                .all(|id| lines.iter().any(|l| l["message_id"] == id.as_str()));
            Ok(all.then_some(lines))
        },
    )
    .await
    .with_context(|| audit.log_tail(5))?;
    for (id, s) in &sent {
        let entries: Vec<&Value> = audit_lines
            .iter()
            .filter(|l| l["message_id"] == id.as_str())
            .collect();
        let main: Vec<&&Value> = entries
            .iter()
            .filter(|l| l.get("compliance_event").is_none())
            .collect();
        let compliance = entries.len() - main.len();
        ensure!(!main.is_empty(), "{}: no entry", s.label);
        if s.label == "delete" {
            ensure!(compliance == main.len(), "{}: {entries:#?}", s.label);
        } else {
            ensure!(compliance == 0, "{}: {entries:#?}", s.label);
        }
        for entry in main {
            match &s.snapshot {
                Some(snapshot) => {
                    let e: EventEntry = serde_json::from_value((*entry).clone())
                        .with_context(|| format!("{}: an event entry", s.label))?;
                    let full = serde_json::to_vec(snapshot)?;
                    let shortened = full.len() > LINE_BUDGET_BYTES / 2;
                    match &e.record.snapshot_digest {
                        Some(d) => {
                            ensure!(shortened, "{}: shortened although small", s.label);
                            ensure!(d.data_snapshot_truncated, "{}", s.label);
                            ensure!(d.data_snapshot_bytes == full.len(), "{}", s.label);
                            ensure!(d.data_snapshot_sha256 == sha256(&full), "{}", s.label);
                            // One large value, cut; the small ones whole.
                            let cut = e.record.shortened.as_ref().map(|x| &x.shortened_fields);
                            ensure!(
                                cut.is_some_and(
                                    |c| c.len() == 1 && c[0].starts_with("/data_snapshot/")
                                ),
                                "{}: {cut:?}",
                                s.label
                            );
                        }
                        None => ensure!(
                            !shortened && e.record.data_snapshot == *snapshot,
                            "{}: whole",
                            s.label
                        ),
                    }
                    ensure!(e.record.entity_id.starts_with("lines-"), "{}", s.label);
                    ensure!(e.record.source_system == "log-lines", "{}", s.label);
                }
                None => {
                    let m: MalformedEntry = serde_json::from_value((*entry).clone())
                        .with_context(|| format!("{}: a malformed entry", s.label))?;
                    let r = &m.record;
                    ensure!(r.error_code == "invalid_json", "{}", s.label);
                    ensure!(r.raw_payload_truncated && r.raw_payload_bytes == s.data.len());
                    ensure!(r.raw_payload_sha256.as_deref() == Some(sha256(&s.data).as_str()));
                }
            }
        }
    }
    let refused = audit_lines
        .iter()
        .find(|l| l["message_id"] == id_of("3 MB too large").unwrap_or_default().as_str())
        .context("the 3 MB event's entry")?;
    ensure!(refused["validation_error"]["error_code"] == "entity_too_large");
    Ok(())
}
