//! The sync function counts its own RPCs: after N events POSTed to it
//! in-process on the emulators, `GET /debug/counters` (on with
//! `SYNC_DEBUG_ENDPOINTS=true`) says what the code did: without contention,
//! per event one lookup (beginning the transaction, so no `BeginTransaction`,
//! where the emulator allows), one commit and one announcement, plus the
//! store's probe before the first event.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use sync_testkit::event::now_timestamp;
use sync_testkit::harness::{sync_env, sync_in_process, Clients, Topology};
use sync_testkit::{event, post, push, Emulators};

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
    let before: Value = serde_json::from_str(&body)?;
    ensure!(
        before["deliveries"] == 0 && before["datastore"]["total"] == 0,
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
    let ds = &c["datastore"];
    let in_lookup = ds["begins_in_lookup"]
        .as_bool()
        .context("the probe decided how transactions begin")?;
    ensure!(c["deliveries"] == n, "{c}");
    // Before the first event, the probe: one lookup beginning a transaction
    // and its commit (rolled back when it fails).
    ensure!(ds["lookup"] == n + 1, "{c}");
    if in_lookup {
        ensure!(ds["begin_transaction"] == 0, "{c}");
        ensure!(ds["commit"] == n + 1 && ds["rollback"] == 0, "{c}");
        ensure!(ds["total"] == 2 * n + 2, "{c}");
    } else {
        ensure!(ds["begin_transaction"] == n, "{c}");
        let commits = ds["commit"].as_u64().context("commit")?;
        let rollbacks = ds["rollback"].as_u64().context("rollback")?;
        ensure!(commits - rollbacks == n, "{c}");
    }
    let ps = &c["pubsub"];
    ensure!(
        ps["messages_handed"] == n && ps["confirmed"] == n && ps["failed"] == 0,
        "{c}"
    );
    Ok(())
}
