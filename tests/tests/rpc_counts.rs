//! The sync function counts its own RPCs: after N events POSTed to it
//! in-process on the emulators, `GET /debug/counters` (on with
//! `SYNC_DEBUG_ENDPOINTS=true`) says what the code did: without contention,
//! per event one lookup (beginning the transaction, so no `BeginTransaction`,
//! where the emulator allows), one commit and one announcement; the store's
//! transaction probe runs once, while the function starts, before any event.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use sync_testkit::harness::{sync_env, sync_in_process, Clients, Topology};
use sync_testkit::raw_event::now_timestamp;
use sync_testkit::{event, poll_until, post, push, Emulators};

async fn counters(url: &str) -> Result<(u16, String)> {
    let response = reqwest::get(format!("{url}debug/counters")).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn counters_say_what_each_event_cost() -> Result<()> {
    let e = Emulators::shared().await?;
    let Clients { admin, .. } = Clients::connect(&e).await?;
    let t = Topology::new("rpc");
    t.create_base(&admin).await?;

    // Off by default.
    let off = sync_in_process(&sync_env(&t, &e)).await?;
    let (status, _) = counters(&off.url()).await?;
    ensure!(
        status == 404,
        "debug endpoint served without the flag: {status}"
    );
    drop(off);

    let mut env = sync_env(&t, &e);
    env.push(("SYNC_DEBUG_ENDPOINTS".into(), "true".into()));
    let sync = sync_in_process(&env).await?;
    let (status, body) = counters(&sync.url()).await?;
    ensure!(status == 200, "{status}: {body}");
    // The probe begins as soon as the store connects, before any event.
    let before: Value = poll_until(Duration::from_secs(30), "the probe to decide", || async {
        let (_, body) = counters(&sync.url()).await?;
        let c: Value = serde_json::from_str(&body)?;
        Ok(c["datastore"]["begins_in_lookup"].is_boolean().then_some(c))
    })
    .await?;
    ensure!(before["deliveries"] == 0, "{before}");
    // One lookup beginning a transaction and its commit (rolled back when it
    // fails); nothing else.
    ensure!(
        before["datastore"]["lookup"] == 1 && before["datastore"]["commit"] == 1,
        "{before}"
    );

    let n = 8u64;
    for i in 0..n {
        let data = event(&format!("rpc-{i}"), "create", &now_timestamp())
            .data(json!({"i": i}))
            .to_bytes();
        let status = post(&sync.url(), &push(&data, &format!("rpc-m{i}")).build()).await?;
        ensure!(status == 204, "event {i}: {status}");
    }
    let (_, body) = counters(&sync.url()).await?;
    let c: Value = serde_json::from_str(&body)?;
    eprintln!("after {n} events: {c:#}");
    let in_lookup = c["datastore"]["begins_in_lookup"]
        .as_bool()
        .context("the probe decided how transactions begin")?;
    ensure!(c["deliveries"] == n, "{c}");
    // The events' own RPCs: what was counted since the probe.
    let since = |name: &str| -> Result<u64> {
        let now = c["datastore"][name].as_u64().context("a count")?;
        let then = before["datastore"][name].as_u64().context("a count")?;
        Ok(now - then)
    };
    ensure!(since("lookup")? == n, "{c}");
    if in_lookup {
        ensure!(since("begin_transaction")? == 0, "{c}");
        ensure!(since("commit")? == n && since("rollback")? == 0, "{c}");
        ensure!(since("total")? == 2 * n, "{c}");
    } else {
        ensure!(since("begin_transaction")? == n, "{c}");
        ensure!(since("commit")? - since("rollback")? == n, "{c}");
    }
    let ps = &c["pubsub"];
    ensure!(
        ps["messages_handed"] == n && ps["confirmed"] == n && ps["failed"] == 0,
        "{c}"
    );
    Ok(())
}
