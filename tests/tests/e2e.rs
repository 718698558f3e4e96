//! End to end through the real emulator push path: publish → Pub/Sub emulator
//! push → function → Datastore emulator (or the Firestore emulator in
//! Datastore mode: `scripts/test.sh` runs this suite on both), with
//! announcements and dead letters read back from pull subscriptions. The
//! functions run in-process on port 0, except where a test kills one or reads
//! what it logged (then the binary runs as a process). Every wait is a poll
//! with a deadline; the only sleeps are the durations of injected faults.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use sync_core::{EntityState, EventPublisher, MergePolicy, OutgoingMessage};
use sync_testkit::harness::*;
use sync_testkit::raw_event::{now_timestamp, timestamp_in};
use sync_testkit::{
    drain, event, poll_until, pull_until, Emulator, EmulatorKind, Emulators, TEST_PROJECT,
};

/// Clients, a fresh topology named after `label`, and a sync function
/// in-process on `e` behind its push subscription (5 delivery attempts).
async fn pipeline(label: &str, e: &Emulators) -> Result<(Clients, Topology, InProcess)> {
    let c = Clients::connect(e).await?;
    let t = Topology::new(label);
    t.create_base(&c.admin).await?;
    let sync = sync_in_process(&sync_env(&t, e)).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    Ok((c, t, sync))
}

fn recipe_event(entity: &str, op: &str, ts: &str, data: Value) -> Vec<u8> {
    event(entity, op, ts)
        .source("data_publisher")
        .correlation_id(&format!("corr-{entity}-{op}"))
        .data(data)
        .to_bytes()
}

/// The recipe's "Validation & Testing": create then update, through both functions.
#[tokio::test]
async fn recipe_flow_through_push_gives_version_two_audit_and_announcements() -> Result<()> {
    let e = Emulators::shared().await?;
    let (c, t, _sync) = pipeline("recipe", &e).await?;
    let (audit, audited) = audit_in_process().await?;
    t.subscribe_audit(&c.admin, &audit.url()).await?;

    c.publish(&t.topic, recipe_event("test-entity-001", "create", &timestamp_in(0), json!({"name": "Test Product", "description": "Demo product for sync testing", "status": "active"}))).await?;
    c.publish(
        &t.topic,
        recipe_event(
            "test-entity-001",
            "update",
            &timestamp_in(1),
            json!({"description": "Updated product description"}),
        ),
    )
    .await?;

    let store = e.admin(&t.namespace).await?;
    wait_for_version(&store, "test-entity-001", 2, Duration::from_secs(60)).await?;
    let rows = store.query_kind("SyncEntity").await?;
    ensure!(rows.len() == 1, "exactly the one entity: {rows:?}");
    let (key, props) = &rows[0];
    ensure!(key == "test-entity-001");
    ensure!(props["name"] == "Test Product" && props["status"] == "active");
    ensure!(props["description"] == "Updated product description");
    ensure!(
        props["version"] == 2 && props["sync_status"] == "synced",
        "{props:?}"
    );

    let created = pull_until(
        &c.puller,
        &t.external_subscription("create"),
        1,
        Duration::from_secs(30),
    )
    .await?;
    let updated = pull_until(
        &c.puller,
        &t.external_subscription("update"),
        1,
        Duration::from_secs(30),
    )
    .await?;
    ensure!(
        created.len() == 1 && updated.len() == 1,
        "one announcement each: {created:?} {updated:?}"
    );
    for op in ["create", "update"] {
        let more = drain(
            &c.puller,
            &t.external_subscription(op),
            Duration::from_millis(500),
        )
        .await?;
        ensure!(more.is_empty(), "a second {op} announcement: {more:?}");
    }
    let payload: Value = serde_json::from_slice(&updated[0].data)?;
    ensure!(
        payload["version"] == 2 && payload["data"]["description"] == "Updated product description",
        "{payload}"
    );
    ensure!(updated[0].attributes.get("entity_id").map(String::as_str) == Some("test-entity-001"));

    let entries = poll_until(Duration::from_secs(30), "two audit entries", || async {
        let lines = audited.entries();
        Ok((lines.len() >= 2).then_some(lines))
    })
    .await?;
    let ops: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    ensure!(
        ops.contains(&"create") && ops.contains(&"update"),
        "audit entries: {entries:?}"
    );
    ensure!(entries
        .iter()
        .all(
            |e| e["logging.googleapis.com/labels"]["component"] == "datastore-sync"
                && e["entity_id"] == "test-entity-001"
        ));
    Ok(())
}

/// 2,000 events over 50 entities, published shuffled with 20 % duplicates.
#[tokio::test]
async fn shuffled_events_with_duplicates_converge_to_the_cores_merge() -> Result<()> {
    let e = Emulators::shared().await?;
    let (c, t, _sync) = pipeline("shuffle", &e).await?;
    let load = LoadRun::start(
        &t,
        &e,
        &[
            "--events",
            "2000",
            "--entities",
            "50",
            "--duplicates",
            "0.2",
            "--shuffle",
        ],
    );
    let messages = load.finish().await?;
    ensure!(
        messages.len() == 2400,
        "{} messages recorded",
        messages.len()
    );
    // Each message can bump its entity's version at most once.
    let mut per_entity: HashMap<String, i64> = HashMap::new();
    for (_, body) in &messages {
        let event: Value = serde_json::from_slice(body)?;
        let id = event["entity_id"].as_str().context("entity_id")?;
        *per_entity.entry(id.to_string()).or_default() += 1;
    }
    ensure!(per_entity.len() == 50, "the load used 50 entities");
    let actual = converges(&c, &t, &e, &messages, &String::new).await?;
    for (id, s) in &actual {
        let published = per_entity.get(id).copied().unwrap_or(0);
        ensure!(
            s.version() >= 1 && s.version() <= published,
            "{id}: version {} from {published} messages",
            s.version()
        );
    }
    Ok(())
}

/// Waits until the sync function has written some entity of `t`'s namespace.
async fn first_entity_written(e: &Emulators, t: &Topology) -> Result<()> {
    let store = e.admin(&t.namespace).await?;
    poll_until(
        Duration::from_secs(60),
        "a first entity written",
        || async {
            let rows = store.query_kind("SyncEntity").await?;
            Ok((!rows.is_empty()).then_some(()))
        },
    )
    .await
}

/// Waits until Datastore holds the core's merge of `messages`, and checks that
/// nothing was dead-lettered. Returns the entities' states. `sync_log` tells
/// what the sync function logged, where it runs as a process.
async fn converges(
    c: &Clients,
    t: &Topology,
    e: &Emulators,
    messages: &[(String, Vec<u8>)],
    sync_log: &dyn Fn() -> String,
) -> Result<HashMap<String, EntityState>> {
    let policy = MergePolicy::default();
    let expected = expected_states(messages, &policy)?;
    let store = e.admin(&t.namespace).await?;
    let actual = wait_for_states(&store, &expected, &policy, Duration::from_secs(240))
        .await
        .with_context(|| format!("sync log tail:\n{}", sync_log()))?;
    let dead = drain(&c.puller, &t.dlq_subscription, Duration::from_secs(1)).await?;
    ensure!(
        dead.is_empty(),
        "nothing dead-lettered: {} messages",
        dead.len()
    );
    Ok(actual)
}

/// Each bad-input class goes to the dead-letter topic with its code, the rest is
/// untouched, and a fixed message replayed with syncctl is applied.
#[tokio::test]
async fn poison_is_dead_lettered_by_class_and_replay_applies_the_fix() -> Result<()> {
    let e = Emulators::shared().await?;
    let (c, t, _sync) = pipeline("poison", &e).await?;
    let store = e.admin(&t.namespace).await?;

    let ts = now_timestamp();
    c.publish(
        &t.topic,
        recipe_event("bystander", "create", &ts, json!({"name": "keep me"})),
    )
    .await?;
    wait_for_version(&store, "bystander", 1, Duration::from_secs(30)).await?;

    let future = timestamp_in(2 * 3600 * 1000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{this is not json".to_vec()),
        (
            "missing_field",
            br#"{"entity_id":"bystander","operation":"update","data":{"name":"x"}}"#.to_vec(),
        ),
        (
            "invalid_operation",
            recipe_event("bystander", "merge", &ts, json!({"name": "x"})),
        ),
        (
            "invalid_timestamp",
            recipe_event("bystander", "update", "not-a-time", json!({"name": "x"})),
        ),
        (
            "invalid_entity_id",
            recipe_event("__bystander__", "update", &ts, json!({"name": "x"})),
        ),
        (
            "reserved_field",
            recipe_event(
                "fixme",
                "create",
                &ts,
                json!({"name": "fixed later", "version": 7}),
            ),
        ),
        (
            "invalid_field_name",
            recipe_event("bystander", "update", &ts, json!({"__x__": 1})),
        ),
        (
            "unsupported_value",
            recipe_event("bystander", "update", &ts, json!({"m": [[1, 2]]})),
        ),
        (
            "clock_skew",
            recipe_event(
                "bystander",
                "update",
                &future,
                json!({"name": "from the future"}),
            ),
        ),
        (
            "entity_too_large",
            recipe_event(
                "bystander",
                "update",
                &ts,
                json!({"blob": "x".repeat(1_100_000)}),
            ),
        ),
    ];
    let mut by_message = BTreeMap::new();
    for (code, data) in &cases {
        let id = c.publish(&t.topic, data.clone()).await?;
        by_message.insert(id, *code);
    }
    let dead = pull_until(
        &c.puller,
        &t.dlq_subscription,
        cases.len(),
        Duration::from_secs(60),
    )
    .await?;
    let mut seen = BTreeMap::new();
    for m in &dead {
        let original = m
            .attributes
            .get("original_message_id")
            .context("original_message_id")?;
        let code = m.attributes.get("error_code").context("error_code")?;
        ensure!(
            by_message.get(original).copied() == Some(code.as_str()),
            "message {original} dead-lettered as {code}"
        );
        ensure!(m
            .attributes
            .get("original_subscription")
            .is_some_and(|s| s.ends_with(&t.sync_subscription)));
        seen.insert(code.clone(), m.clone());
    }
    ensure!(
        seen.len() == cases.len() && dead.len() == cases.len(),
        "every class dead-lettered once: {} letters, classes {:?}",
        dead.len(),
        seen.keys()
    );
    let (_, bystander) = store.get(None, "bystander").await?.context("bystander")?;
    ensure!(bystander.version() == 1, "bystander untouched");
    ensure!(bystander.visible_fields(&MergePolicy::default())["name"] == "keep me");
    ensure!(
        store.query_kind("SyncEntity").await?.len() == 1,
        "no other entity written"
    );

    // Put the reserved-field message back for replay, fixed.
    let fixed = String::from_utf8(recipe_event(
        "fixme",
        "create",
        &ts,
        json!({"name": "fixed later", "revision": 7}),
    ))?;
    let (tx, tp, td) = (
        t.topic.clone(),
        t.dead_letter_topic.clone(),
        t.dlq_subscription.clone(),
    );
    let dead_reserved = seen
        .get("reserved_field")
        .context("reserved_field")?
        .clone();
    c.publisher
        .publish(
            &tp,
            OutgoingMessage {
                data: dead_reserved.data.clone(),
                attributes: dead_reserved.attributes.clone(),
                ordering_key: None,
            },
        )
        .await?;
    let replay = [
        "dlq",
        "replay",
        "--subscription",
        &td,
        "--topic",
        &tx,
        "--error-code",
        "reserved_field",
        "--data",
        &fixed,
        "--wait-secs",
        "5",
    ];
    let out = syncctl_async(
        replay.iter().map(|s| s.to_string()).collect(),
        &e,
        &t.namespace,
    )
    .await?;
    ensure!(out.contains("1 replayed"), "{out}");
    let (_, fixme) = poll_until(Duration::from_secs(30), "fixme applied", || async {
        Ok(store.get(None, "fixme").await?)
    })
    .await?;
    ensure!(fixme.visible_fields(&MergePolicy::default())["revision"] == 7);
    Ok(())
}

/// Two sync function instances each receive every event (two push
/// subscriptions) for a few hot entities, so their transactions contend in
/// Datastore on the same keys: lock waits on the Firestore emulator, aborted
/// commits on the Datastore one. With production's retry settings every event
/// is applied once in effect and nothing is dead-lettered.
#[tokio::test]
async fn two_instances_contending_on_hot_entities_converge() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("contend");
    t.create_base(&c.admin).await?;
    // Processes: the test reads what each logged.
    let env = sync_env(&t, &e);
    let first = FunctionProcess::start("sync-function", env.clone()).await?;
    let second = FunctionProcess::start("sync-function", env).await?;
    t.subscribe_sync(&c.admin, &first.url(), 5).await?;
    let other_subscription = format!("{}-b", t.sync_subscription);
    t.subscribe_sync_as(&c.admin, &other_subscription, &second.url(), 5)
        .await?;

    let load = LoadRun::start(&t, &e, &["--events", "300", "--entities", "3", "--shuffle"]);
    let messages = load.finish().await?;
    ensure!(
        messages.len() == 300,
        "{} messages recorded",
        messages.len()
    );
    converges(&c, &t, &e, &messages, &|| first.log_tail(30))
        .await
        .with_context(|| format!("second instance log tail:\n{}", second.log_tail(30)))?;
    // Each instance really handled every event: the text log of each
    // processed delivery says `attempts=N`.
    let processed = |p: &FunctionProcess| -> Vec<u32> {
        p.log_text()
            .lines()
            .filter(|l| l.contains("event processed"))
            .filter_map(|l| logged_number(l, "attempts"))
            .collect()
    };
    poll_until(
        Duration::from_secs(120),
        "both instances to process all 300 events",
        || async {
            Ok((processed(&first).len() >= 300 && processed(&second).len() >= 300).then_some(()))
        },
    )
    .await?;
    let attempts: Vec<u32> = [&first, &second]
        .iter()
        .flat_map(|p| processed(p))
        .collect();
    eprintln!(
        "two instances, 300 events x 2 deliveries on 3 entities: {} applies logged, {} retried, max attempts {} ({:?})",
        attempts.len(),
        attempts.iter().filter(|&&n| n > 1).count(),
        attempts.iter().max().copied().unwrap_or(0),
        EmulatorKind::datastore_of_this_run()
    );
    Ok(())
}

/// The number logged as `name=N` in a plain text log line.
fn logged_number(line: &str, name: &str) -> Option<u32> {
    let rest = line.split(&format!(" {name}=")).nth(1)?;
    rest.split(|ch: char| !ch.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Events flow while the Datastore emulator is frozen for 10 s: none is lost.
/// The frozen emulator is this test's own, of the run's flavour (the Firestore
/// one in the Firestore pass), stopped as a whole process group.
#[tokio::test]
async fn datastore_outage_of_ten_seconds_loses_nothing() -> Result<()> {
    let own = tokio::task::spawn_blocking(|| {
        Emulator::start(EmulatorKind::datastore_of_this_run(), TEST_PROJECT)
    })
    .await??;
    let e = Emulators::shared().await?.with_datastore(&own);
    eprintln!(
        "freezing a {:?} emulator on {}",
        EmulatorKind::datastore_of_this_run(),
        e.datastore
    );
    let (c, t, _sync) = pipeline("outage", &e).await?;

    let load = LoadRun::start(
        &t,
        &e,
        &["--events", "300", "--entities", "10", "--rate", "30"],
    );
    // Inject the fault once the stream is flowing.
    first_entity_written(&e, &t).await?;
    own.signal("STOP")?;
    // The fault lasts 10 s: this sleep is the outage, not a wait for anything.
    tokio::time::sleep(Duration::from_secs(10)).await;
    own.signal("CONT")?;
    let messages = load.finish().await?;
    ensure!(messages.len() == 300);
    converges(&c, &t, &e, &messages, &String::new).await?;
    Ok(())
}

/// The sync function is killed (SIGKILL) mid-stream and restarted: every event
/// is applied and every version announced.
#[tokio::test]
async fn sync_function_killed_mid_stream_loses_nothing() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("crash");
    t.create_base(&c.admin).await?;
    // A process: the test kills it.
    let mut sync = FunctionProcess::start("sync-function", sync_env(&t, &e)).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;

    let load = LoadRun::start(
        &t,
        &e,
        &["--events", "400", "--entities", "20", "--rate", "100"],
    );
    first_entity_written(&e, &t).await?;
    sync.restart().await?;
    let messages = load.finish().await?;
    ensure!(messages.len() == 400);
    let actual = converges(&c, &t, &e, &messages, &|| sync.log_tail(30)).await?;
    // Every entity's final version reached downstream, even where the crash
    // came between the write and the announcement (the redelivery repeats it).
    let announced: Mutex<HashMap<String, i64>> = Mutex::default();
    let missing_seen = Mutex::new(String::new());
    poll_until(
        Duration::from_secs(60),
        "every final version announced",
        || async {
            for op in ["create", "update", "delete"] {
                for m in drain(
                    &c.puller,
                    &t.external_subscription(op),
                    Duration::from_millis(500),
                )
                .await?
                {
                    let id = m.attributes.get("entity_id").cloned().unwrap_or_default();
                    let version: i64 = m
                        .attributes
                        .get("version")
                        .and_then(|v| v.parse().ok())
                        .context("announcement without a version")?;
                    let mut announced = announced.lock().expect("announced");
                    let best = announced.entry(id).or_default();
                    *best = (*best).max(version);
                }
            }
            let announced = announced.lock().expect("announced");
            let missing: Vec<(&String, i64, i64)> = actual
                .iter()
                .filter(|(_, s)| s.version() > 0)
                .map(|(id, s)| (id, s.version(), announced.get(id).copied().unwrap_or(0)))
                .filter(|(_, stored, seen)| seen < stored)
                .collect();
            *missing_seen.lock().expect("missing") = format!("{missing:?}");
            Ok(missing.is_empty().then_some(()))
        },
    )
    .await
    .with_context(|| {
        format!(
            "final versions never announced (entity, stored, announced): {}",
            missing_seen.lock().expect("missing")
        )
    })?;
    Ok(())
}
