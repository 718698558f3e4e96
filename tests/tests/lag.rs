//! `syncctl lag` on a real run: the sync function runs as a process logging
//! Cloud Logging JSON (`LOG_FORMAT=json`, as in production) and the Pub/Sub
//! emulator pushes events to it; `syncctl lag --log` on what it printed counts
//! each message once, in order of percentiles. This is what the demo shows at
//! its end, and it checks that the function's log carries the entry and the
//! field that `syncctl lag` and `deploy/`'s log-based metric read.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use sync_testkit::harness::*;
use sync_testkit::raw_event::timestamp_in;
use sync_testkit::{event, poll_until, Emulators};

const EVENTS: usize = 20;

#[tokio::test]
async fn syncctl_lag_gives_the_percentiles_of_a_json_logging_run() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("lag");
    t.create_base(&c.admin).await?;
    let env: Vec<(String, String)> = sync_env(&t, &e)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "LOG_FORMAT" => (k, "json".to_string()),
            _ => (k, v),
        })
        .collect();
    let sync = FunctionProcess::start("sync-function", env).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    for i in 0..EVENTS {
        let data = event(&format!("lag-{i}"), "create", &timestamp_in(0))
            .data(json!({ "name": format!("entity {i}") }))
            .to_bytes();
        c.publish(&t.topic, data).await?;
    }

    let log = sync.log.display().to_string();
    let lag = |args: &[&str]| {
        let mut all = vec!["lag".to_string(), "--log".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        syncctl_async(all, &e, &t.namespace)
    };
    let summary: Value = poll_until(
        Duration::from_secs(60),
        "the sync function to log every event",
        || async {
            // Until the first event is processed, `syncctl lag` fails: there
            // is nothing to summarise.
            let Ok(out) = lag(&[&log, "--json"]).await else {
                return Ok(None);
            };
            let v: Value = serde_json::from_str(&out).context("syncctl lag --json")?;
            Ok((v["count"] == EVENTS).then_some(v))
        },
    )
    .await
    .with_context(|| format!("sync function log tail:\n{}", sync.log_tail(20)))?;

    let ms = |key: &str| {
        summary[key]
            .as_f64()
            .with_context(|| format!("{key} in {summary}"))
    };
    let (p50, p90, p99, max) = (ms("p50_ms")?, ms("p90_ms")?, ms("p99_ms")?, ms("max_ms")?);
    ensure!(
        0.0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "percentiles out of order: {summary}"
    );
    ensure!(
        summary["not_json_lines"] == 0 && summary["without_latency"] == 0,
        "every line JSON, every processed delivery with a publish time: {summary}"
    );
    ensure!(
        summary["lines"].as_u64().unwrap_or(0) > EVENTS as u64,
        "start-up lines are read too: {summary}"
    );

    let text = lag(&[&log]).await?;
    ensure!(
        text.contains(&format!("over {EVENTS} messages")) && text.contains(&format!("max {max}")),
        "text output: {text}"
    );

    // A redelivery's line (the first processed line again, as Pub/Sub's
    // second delivery of that message would log it) is not counted again,
    // and a line that is not JSON is skipped.
    let captured = sync.log_text();
    let first = captured
        .lines()
        .find(|l| l.contains("\"event processed\""))
        .context("a processed line")?;
    let mut counts = Vec::new();
    for (name, text) in [
        ("as-logged", captured.clone()),
        ("redelivered", format!("{captured}{first}\nnot json\n")),
    ] {
        let path = std::env::temp_dir().join(format!("{}-{name}.log", t.namespace));
        std::fs::write(&path, text)?;
        let v: Value = serde_json::from_str(&lag(&[&path.display().to_string(), "--json"]).await?)?;
        std::fs::remove_file(&path)?;
        counts.push(
            ["count", "repeated_lines", "not_json_lines"]
                .map(|k| v[k].as_u64().unwrap_or(u64::MAX)),
        );
    }
    let [before, after] = [counts[0], counts[1]];
    ensure!(
        before[0] == EVENTS as u64 && after == [before[0], before[1] + 1, before[2] + 1],
        "count, repeated and non-JSON lines as logged {before:?}, with a redelivery {after:?}"
    );
    Ok(())
}
