//! Ready means connected: the sync function served through its `Startup`,
//! in-process on the emulators, listens at once, answers 503 on `/healthz`
//! (and to deliveries) until the Datastore and Pub/Sub clients have answered
//! a first call, 200 afterwards; `/livez` is 200 throughout.

use anyhow::{ensure, Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use sync_function::{Config, Startup};
use sync_testkit::harness::{sync_env, Clients, InProcess, Topology};
use sync_testkit::raw_event::now_timestamp;
use sync_testkit::{event, free_port, poll_until, post, push, Emulators};

/// The function's settings from `env`, with `overrides` replacing entries.
fn config(env: &[(String, String)], overrides: &[(&str, String)]) -> Result<Config> {
    let mut vars: HashMap<String, String> = env.iter().cloned().collect();
    for (k, v) in overrides {
        vars.insert((*k).to_string(), v.clone());
    }
    Config::from_lookup(
        |k| vars.get(k).cloned(),
        |p: &str| std::fs::read_to_string(p),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The status of `GET path` on `server`.
async fn get(server: &InProcess, path: &str) -> Result<u16> {
    let url = format!("{}{}", server.url(), path.trim_start_matches('/'));
    Ok(reqwest::get(&url).await?.status().as_u16())
}

/// A create of `entity_id`, as a wrapped push.
async fn post_create(server: &InProcess, entity_id: &str) -> Result<u16> {
    let data = event(entity_id, "create", &now_timestamp())
        .data(json!({"name": "ready"}))
        .to_bytes();
    post(
        &server.url(),
        &push(&data, &format!("ready-{entity_id}")).build(),
    )
    .await
}

/// Forwards every connection to `port` on loopback to `target`, until dropped:
/// a Datastore that becomes reachable.
struct Forward(tokio::task::JoinHandle<()>);

impl Forward {
    async fn start(port: u16, target: String) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        Ok(Self(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })))
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Until Datastore is reachable the function is not ready; once it is,
/// `/healthz` turns 200 and the first event is applied.
#[tokio::test]
async fn healthz_is_503_until_the_backends_answer_then_200_and_the_first_event_is_applied(
) -> Result<()> {
    let e = Emulators::shared().await?;
    let Clients { admin, .. } = Clients::connect(&e).await?;
    let t = Topology::new("ready");
    t.create_base(&admin).await?;
    let port = free_port()?;
    let startup = Startup::begin(config(
        &sync_env(&t, &e),
        &[("DATASTORE_EMULATOR_HOST", format!("127.0.0.1:{port}"))],
    )?);
    let sync = InProcess::serve(startup.router()).await?;

    // Nothing listens on the port yet: attempts fail and are retried.
    poll_until(Duration::from_secs(30), "two warm-up attempts", || async {
        Ok((startup.attempts() >= 2).then_some(()))
    })
    .await?;
    ensure!(
        get(&sync, "/healthz").await? == 503,
        "not ready without Datastore"
    );
    ensure!(get(&sync, "/livez").await? == 200, "live all the same");
    ensure!(
        post_create(&sync, "early").await? == 503,
        "a delivery is nacked"
    );
    ensure!(!startup.is_ready() && startup.app().is_none());

    let _datastore = Forward::start(port, e.datastore.clone()).await?;
    poll_until(
        Duration::from_secs(30),
        "/healthz to answer 200",
        || async { Ok((get(&sync, "/healthz").await? == 200).then_some(())) },
    )
    .await?;
    ensure!(startup.is_ready() && startup.app().is_some());
    ensure!(get(&sync, "/livez").await? == 200);

    ensure!(
        post_create(&sync, "first").await? == 204,
        "the first event is applied"
    );
    let (_, state) = e
        .admin(&t.namespace)
        .await?
        .get(None, "first")
        .await?
        .context("the first event's entity")?;
    ensure!(state.exists() && state.version() == 1);
    Ok(())
}

/// Topics that do not exist yet (`deploy/up.sh` creates them after the
/// services) are an answer: the function becomes ready without them.
#[tokio::test]
async fn missing_topics_do_not_keep_the_function_unready() -> Result<()> {
    let e = Emulators::shared().await?;
    let t = Topology::new("notopics");
    let startup = Startup::begin(config(&sync_env(&t, &e), &[])?);
    let sync = InProcess::serve(startup.router()).await?;
    poll_until(
        Duration::from_secs(30),
        "/healthz to answer 200",
        || async { Ok((get(&sync, "/healthz").await? == 200).then_some(())) },
    )
    .await?;
    ensure!(startup.attempts() == 1, "ready on the first attempt");
    Ok(())
}

/// With a Datastore nothing listens on, the warm-up keeps retrying: `/healthz`
/// stays 503 (and deliveries are nacked) while `/livez` answers 200.
#[tokio::test]
async fn with_an_unreachable_datastore_healthz_stays_503_and_livez_is_200() -> Result<()> {
    let e = Emulators::shared().await?;
    let Clients { admin, .. } = Clients::connect(&e).await?;
    let t = Topology::new("unready");
    t.create_base(&admin).await?;
    let nowhere = format!("127.0.0.1:{}", free_port()?);
    let startup = Startup::begin(config(
        &sync_env(&t, &e),
        &[
            ("DATASTORE_EMULATOR_HOST", nowhere),
            ("READY_TIMEOUT_SECS", "1".into()),
        ],
    )?);
    let sync = InProcess::serve(startup.router()).await?;

    poll_until(
        Duration::from_secs(30),
        "three warm-up attempts",
        || async { Ok((startup.attempts() >= 3).then_some(())) },
    )
    .await?;
    ensure!(get(&sync, "/healthz").await? == 503);
    ensure!(get(&sync, "/livez").await? == 200);
    ensure!(post_create(&sync, "never").await? == 503);
    ensure!(!startup.is_ready());
    Ok(())
}
