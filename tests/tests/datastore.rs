//! The Datastore adapter on a real emulator: the Datastore emulator, or the
//! Firestore emulator in Datastore mode (`scripts/test.sh` runs this suite on
//! both; the Firestore one locks pessimistically, as production does).
//!
//! Every test has its own namespace, so tests run in parallel on one shared
//! emulator (`sync_testkit::Emulators::shared()`: the ones the test script
//! exported, or ones of the run's flavour started for this process).

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_core::{
    merge, parse_event, parse_timestamp, ChangeEvent, Classify, Disposition, EntityState,
    EntityStore, MergePolicy, Operation, Outcome, StoreError, ValidationLimits,
};
use sync_store::{DatastoreStore, RawValue, StoreConfig};
use sync_testkit::{event as change_event, unique_name, Emulators};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const KIND: &str = "SyncEntity";

/// A config for a fresh namespace on the shared emulator.
async fn config() -> Result<StoreConfig> {
    Ok(Emulators::shared().await?.store_config(&unique_name("ds")))
}

async fn store() -> Result<DatastoreStore> {
    Ok(DatastoreStore::connect(config().await?).await?)
}

/// A receiving clock far enough ahead that no test timestamp is "future".
fn now() -> chrono::DateTime<chrono::Utc> {
    parse_timestamp("2030-01-01T00:00:00Z").expect("fixed clock")
}

/// A validated event as the sync function would build it from a delivery.
fn event(
    entity_id: &str,
    operation: &str,
    timestamp: &str,
    message_id: &str,
    data: Value,
) -> Result<ChangeEvent> {
    let body = change_event(entity_id, operation, timestamp)
        .source("data_publisher")
        .correlation_id(&format!("corr-{message_id}"))
        .data(data)
        .to_bytes();
    Ok(parse_event(
        &body,
        message_id,
        &ValidationLimits::default(),
        now(),
    )?)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[tokio::test]
async fn every_value_type_round_trips() -> Result<()> {
    let store = store().await?;
    let long = "ünïcode-".repeat(300); // 3000+ bytes: must be stored unindexed
    ensure!(long.len() > 1500);
    let data = json!({
        "string": "plain text",
        "long_string": long,
        "integer": 42,
        "int_min": i64::MIN,
        "int_max": i64::MAX,
        "double": 3.25,
        "whole_double": 2.0,
        "boolean": true,
        "null": null,
        "mixed": [1, "two", 3.5, false, null, long],
        "objects": [{"a": 1, "b": "x"}, {"c": [1, 2, 3], "d": {"deep": long}}],
        "nested": {"inner": {"leaf": "v", "n": -7}, "list": ["a", {"k": null}], "empty": {}}
    });
    let e = event(
        "types-1",
        "create",
        "2025-07-23T10:00:00",
        "m-1",
        data.clone(),
    )?;
    let r = store.apply(&e).await?;
    ensure!(r.outcome == Outcome::Applied, "{r:?}");

    let (stored, _) = store
        .admin()
        .get(None, "types-1")
        .await?
        .context("entity written")?;
    assert_eq!(Value::Object(stored.fields), data);

    let listed = store.admin().query_kind(KIND).await?;
    let (name, fields) = listed.first().context("one entity")?;
    assert_eq!(name, "types-1");
    for (k, v) in object(data) {
        assert_eq!(fields.get(&k), Some(&v), "field {k}");
    }
    assert_eq!(fields.get("version"), Some(&json!(1)));
    assert!(!fields.contains_key("_sync"));
    Ok(())
}

#[tokio::test]
async fn recipe_create_then_update_merges_fields_and_bumps_version() -> Result<()> {
    let store = store().await?;
    let create = event(
        "test-entity-001",
        "create",
        "2025-07-23T10:15:30.123456",
        "m-create",
        json!({"name": "Test Product", "description": "A test product", "status": "active"}),
    )?;
    let update = event(
        "test-entity-001",
        "update",
        "2025-07-23T10:16:30.654321",
        "m-update",
        json!({"description": "Updated product description"}),
    )?;
    let first = store.apply(&create).await?;
    assert_eq!(first.outcome, Outcome::Applied);
    assert_eq!(first.version(), 1);
    assert_eq!(
        first.announcement.map(|a| a.operation),
        Some(Operation::Create)
    );
    let second = store.apply(&update).await?;
    assert_eq!(second.outcome, Outcome::Applied);
    assert_eq!(second.version(), 2);
    assert_eq!(
        second.announcement.as_ref().map(|a| a.operation),
        Some(Operation::Update)
    );

    let listed = store.admin().query_kind(KIND).await?;
    assert_eq!(listed.len(), 1);
    let (name, fields) = listed.first().context("one entity")?;
    assert_eq!(name, "test-entity-001");
    assert_eq!(fields.get("name"), Some(&json!("Test Product")));
    assert_eq!(
        fields.get("description"),
        Some(&json!("Updated product description"))
    );
    assert_eq!(fields.get("status"), Some(&json!("active")));
    assert_eq!(fields.get("version"), Some(&json!(2)));
    assert_eq!(fields.get("sync_status"), Some(&json!("synced")));
    assert_eq!(fields.get("conflict_resolved"), Some(&json!(false)));
    assert_eq!(
        fields.get("last_modified"),
        Some(&json!("2025-07-23T10:16:30.654321Z"))
    );
    Ok(())
}

/// 16 writers on one key (64 with `scripts/test.sh --full`), spread over 4 stores (4 "instances", each with its
/// own client and its own in-process serialization), so transactions really
/// collide in Datastore.
#[tokio::test]
async fn concurrent_conflicting_updates_lose_no_update() -> Result<()> {
    const INSTANCES: usize = 4;
    let writers = sync_testkit::load_size(16, 64);
    let mut config = config().await?;
    // Far more than production's 8: 4-way contention on one key is a stress
    // test, and Firestore's emulator aborts a blocked commit only after ~2 s.
    config.max_attempts = 500;
    config.retry_budget = Duration::from_secs(300);
    let mut stores = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        stores.push(DatastoreStore::connect(config.clone()).await?);
    }
    let policy = MergePolicy::default();

    let mut events = Vec::with_capacity(writers);
    for i in 0..writers {
        // Timestamps in an order unrelated to the spawn order.
        let slot = (i * 37) % writers;
        let ts = format!("2025-07-23T10:{:02}:{:02}.{i:06}", slot / 60, slot % 60);
        let op = if i == 0 { "create" } else { "update" };
        let data = json!({
            "a": i,
            "b": format!("writer-{i}"),
            format!("group-{}", i % 4): i,
            "nested": {"writer": i},
        });
        events.push(Arc::new(event(
            "hot-key",
            op,
            &ts,
            &format!("m-{i}"),
            data,
        )?));
    }

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, e) in events.iter().enumerate() {
        let store = stores.get(i % INSTANCES).context("store")?.clone();
        let e = Arc::clone(e);
        tasks.spawn(async move { store.apply(&e).await });
    }
    let mut attempts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.context("apply task panicked")??;
        attempts.push(result.attempts);
    }
    let elapsed = started.elapsed();
    attempts.sort_unstable();
    eprintln!(
        "{writers} concurrent applies on one key from {INSTANCES} stores: {elapsed:?}, attempts total {} max {}",
        attempts.iter().sum::<u32>(),
        attempts.last().copied().unwrap_or(0)
    );

    let mut expected = EntityState::default();
    for e in &events {
        expected = merge(&expected, e, &policy).state;
    }
    let store = stores.first().context("store")?;
    let (stored, state) = store
        .admin()
        .get(None, "hot-key")
        .await?
        .context("entity written")?;
    assert_eq!(stored.fields, expected.visible_fields(&policy));
    assert_eq!(state.fields(), expected.fields());
    assert_eq!(state.written_by(), expected.written_by());
    assert_eq!(state.deleted_by(), expected.deleted_by());
    assert_eq!(state.last_modified(), expected.last_modified());
    Ok(())
}

#[tokio::test]
async fn late_update_after_delete_does_not_resurrect_entity() -> Result<()> {
    let store = store().await?;
    let id = "deleted-1";
    store
        .apply(&event(
            id,
            "create",
            "2025-07-23T10:00:00",
            "m-1",
            json!({"a": 1, "b": 2}),
        )?)
        .await?;
    let deleted = store
        .apply(&event(
            id,
            "delete",
            "2025-07-23T10:02:00",
            "m-2",
            json!(null),
        )?)
        .await?;
    assert_eq!(deleted.outcome, Outcome::Applied);
    assert_eq!(
        deleted.announcement.as_ref().map(|a| a.operation),
        Some(Operation::Delete)
    );

    let late = store
        .apply(&event(
            id,
            "update",
            "2025-07-23T10:01:00",
            "m-3",
            json!({"a": 9}),
        )?)
        .await?;
    assert_eq!(late.outcome, Outcome::Stale);
    assert!(store.admin().query_kind(KIND).await?.is_empty());
    assert!(store.admin().tombstone_exists(None, id).await?);
    let (stored, state) = store.admin().get(None, id).await?.context("tombstone")?;
    assert!(!stored.exists);
    assert_eq!(state.version(), 2);
    let tombstones = store.admin().query_kind("SyncTombstone").await?;
    let (_, tomb) = tombstones.first().context("one tombstone")?;
    let expire_at = tomb
        .get("expire_at")
        .and_then(Value::as_str)
        .context("expire_at")?;
    ensure!(parse_timestamp(expire_at)? > chrono::Utc::now() + chrono::TimeDelta::days(6));
    assert_eq!(
        tomb.get("deleted_at"),
        Some(&json!("2025-07-23T10:02:00.000000Z"))
    );

    let newer = store
        .apply(&event(
            id,
            "update",
            "2025-07-23T10:03:00",
            "m-4",
            json!({"c": 3}),
        )?)
        .await?;
    assert_eq!(newer.outcome, Outcome::Applied);
    assert_eq!(newer.version(), 3, "versions continue across the delete");
    assert_eq!(
        newer.announcement.as_ref().map(|a| a.operation),
        Some(Operation::Create)
    );
    let listed = store.admin().query_kind(KIND).await?;
    let (name, fields) = listed.first().context("entity back")?;
    assert_eq!(name, id);
    assert_eq!(fields.get("c"), Some(&json!(3)));
    assert!(!fields.contains_key("a") && !fields.contains_key("b"));
    assert!(!store.admin().tombstone_exists(None, id).await?);
    assert!(store.admin().query_kind("SyncTombstone").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn stale_event_records_one_conflict_even_when_applied_twice() -> Result<()> {
    let store = store().await?;
    let id = "conflicted-1";
    store
        .apply(&event(
            id,
            "create",
            "2025-07-23T10:05:00",
            "m-new",
            json!({"name": "new"}),
        )?)
        .await?;
    let stale = event(
        id,
        "update",
        "2025-07-23T10:00:00",
        "m-old",
        json!({"name": "old"}),
    )?;
    for _ in 0..2 {
        let r = store.apply(&stale).await?;
        assert_eq!(r.outcome, Outcome::Stale);
        assert_eq!(r.conflicts.len(), 1);
        assert!(r.announcement.is_none());
    }

    let records = store.admin().conflicts(None, Some(id)).await?;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = records.first().context("one record")?;
    assert_eq!(record.event_id, "m-old");
    assert_eq!(record.entity_id, id);
    assert_eq!(record.entity_kind, KIND);
    assert_eq!(record.conflict_count, 1);
    assert_eq!(
        record.recorded_at,
        Some(parse_timestamp("2025-07-23T10:00:00")?)
    );
    let field = record.fields.first().context("one field")?;
    assert_eq!(field.field, "name");
    assert_eq!(field.rule, "lww");
    assert_eq!(field.reason, "older_than_winner");
    assert_eq!(field.winner_value, Some(json!("new")));
    assert_eq!(field.loser_value, json!("old"));
    assert!(field.winner_key.contains("m-new"), "{}", field.winner_key);
    assert!(field.loser_key.contains("m-old"), "{}", field.loser_key);
    // The kind-wide listing sees the same single record.
    assert_eq!(store.admin().conflicts(None, None).await?.len(), 1);
    // The entity itself is untouched.
    let (stored, _) = store.admin().get(None, id).await?.context("entity")?;
    assert_eq!(stored.fields.get("name"), Some(&json!("new")));
    assert_eq!(stored.version, 1);
    Ok(())
}

#[tokio::test]
async fn redelivery_of_the_latest_change_repeats_its_announcement() -> Result<()> {
    let store = store().await?;
    let id = "announced-1";
    let create = event(
        id,
        "create",
        "2025-07-23T10:00:00",
        "m-1",
        json!({"name": "a"}),
    )?;
    let first = store.apply(&create).await?;
    let announcement = first.announcement.context("create is announced")?;
    assert_eq!(announcement.version, 1);

    // The process may have died before publishing: the redelivery announces
    // again, from what Datastore holds.
    let again = store.apply(&create).await?;
    assert_eq!(again.outcome, Outcome::Duplicate);
    let repeated = again.announcement.context("repeated")?;
    assert_eq!(repeated, announcement);
    let (_, state) = store.admin().get(None, id).await?.context("entity")?;
    assert_eq!(state.changed_by(), Some(&create.order_key()));

    // Once a newer change is in, the older event's redelivery announces nothing.
    let update = event(
        id,
        "update",
        "2025-07-23T10:00:30",
        "m-2",
        json!({"name": "b"}),
    )?;
    assert_eq!(
        store.apply(&update).await?.announcement.map(|a| a.version),
        Some(2)
    );
    assert!(store.apply(&create).await?.announcement.is_none());

    // The same through a tombstone.
    let delete = event(id, "delete", "2025-07-23T10:01:00", "m-3", json!(null))?;
    let deleted = store.apply(&delete).await?;
    assert_eq!(deleted.announcement.as_ref().map(|a| a.version), Some(3));
    let redelivered = store.apply(&delete).await?;
    assert_eq!(redelivered.outcome, Outcome::Duplicate);
    assert_eq!(redelivered.announcement, deleted.announcement);
    assert!(store.apply(&update).await?.announcement.is_none());
    Ok(())
}

#[tokio::test]
async fn entity_growing_past_the_size_limit_is_refused_and_nothing_written() -> Result<()> {
    let store = store().await?;
    let id = "big-1";
    let chunk = "x".repeat(400_000);
    for (i, minute) in [(1, "01"), (2, "02")] {
        let r = store
            .apply(&event(
                id,
                "update",
                &format!("2025-07-23T10:{minute}:00"),
                &format!("m-{i}"),
                json!({ format!("part{i}"): chunk }),
            )?)
            .await?;
        assert_eq!(r.outcome, Outcome::Applied);
    }
    let third = event(
        id,
        "update",
        "2025-07-23T10:03:00",
        "m-3",
        json!({ "part3": chunk }),
    )?;
    match store.apply(&third).await {
        Err(e @ StoreError::Rejected(_)) => assert_eq!(e.code(), "entity_too_large"),
        other => bail!("expected entity_too_large, got {other:?}"),
    }
    let (stored, _) = store.admin().get(None, id).await?.context("entity")?;
    assert_eq!(stored.version, 2);
    assert!(stored.fields.contains_key("part1") && stored.fields.contains_key("part2"));
    assert!(!stored.fields.contains_key("part3"));
    assert!(store.admin().conflicts(None, Some(id)).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn recipe_init_entity_is_adopted_and_keeps_its_timestamp() -> Result<()> {
    let store = store().await?;
    let created_at = parse_timestamp("2025-07-01T08:00:00.25Z")?;
    let mut init = BTreeMap::new();
    init.insert("name".to_string(), RawValue::from(json!("initialization")));
    init.insert("status".to_string(), RawValue::from(json!("active")));
    init.insert("created_at".to_string(), RawValue::from(created_at));
    init.insert("version".to_string(), RawValue::from(json!(1)));
    init.insert("sync_status".to_string(), RawValue::from(json!("pending")));
    store.admin().put_raw(None, "init-entity", &init).await?;

    let (stored, state) = store
        .admin()
        .get(None, "init-entity")
        .await?
        .context("init")?;
    assert_eq!(stored.version, 1);
    assert!(stored.bookkeeping.is_none());
    assert!(
        state.announcement(&MergePolicy::default()).is_none(),
        "foreign writes are not announced"
    );

    let r = store
        .apply(&event(
            "init-entity",
            "update",
            "2025-07-23T10:00:00",
            "m-1",
            json!({"status": "inactive"}),
        )?)
        .await?;
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.version(), 2);
    let listed = store.admin().query_kind(KIND).await?;
    let (_, fields) = listed.first().context("entity")?;
    assert_eq!(fields.get("status"), Some(&json!("inactive")));
    assert_eq!(fields.get("sync_status"), Some(&json!("synced")));
    assert_eq!(
        fields.get("created_at"),
        Some(&json!("2025-07-01T08:00:00.250000Z"))
    );

    assert_eq!(store.admin().delete_all(KIND).await?, 1);
    assert!(store.admin().query_kind(KIND).await?.is_empty());
    Ok(())
}

/// Prints the latency of sequential applies (run with `--nocapture`); asserts
/// only correctness, never speed.
#[tokio::test]
async fn sequential_apply_latency() -> Result<()> {
    const APPLIES: usize = 200;
    let store = store().await?;
    let started = Instant::now();
    for i in 0..APPLIES {
        let e = event(
            &format!("seq-{}", i % 10),
            "update",
            &format!("2025-07-23T10:00:00.{i:06}"),
            &format!("m-{i}"),
            json!({"n": i, "label": format!("value {i}")}),
        )?;
        let r = store.apply(&e).await?;
        ensure!(r.outcome == Outcome::Applied, "{r:?}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{APPLIES} sequential applies: {elapsed:?}, {:.2} ms per apply",
        elapsed.as_secs_f64() * 1000.0 / APPLIES as f64
    );
    assert_eq!(store.admin().query_kind(KIND).await?.len(), 10);
    Ok(())
}

/// A TCP forwarder to the emulator that the test can cut: while down it drops
/// every connection, like a Datastore outage seen from the client. Its tasks
/// end with the test's runtime.
async fn cuttable_proxy(upstream: String) -> Result<(String, watch::Sender<bool>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (down_tx, down_rx) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if *down_rx.borrow() {
                continue; // dropped: connection reset
            }
            let upstream = upstream.clone();
            let mut down = down_rx.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    // A dropped sender (test over) leaves the connection alone.
                    Ok(_) = down.wait_for(|d| *d) => {}
                }
            });
        }
    });
    Ok((addr, down_tx))
}

/// A store reaching the emulator through a cuttable proxy.
async fn store_behind_proxy(
    call_timeout: Duration,
    budget: Duration,
) -> Result<(DatastoreStore, watch::Sender<bool>)> {
    let mut config = config().await?;
    let upstream = config.emulator_host.take().context("emulator host")?;
    let (addr, down) = cuttable_proxy(upstream).await?;
    config.emulator_host = Some(addr);
    config.call_timeout = call_timeout;
    config.retry_budget = budget;
    Ok((DatastoreStore::connect(config).await?, down))
}

#[tokio::test]
async fn short_outage_is_retried_within_the_budget() -> Result<()> {
    let (store, down) = store_behind_proxy(Duration::from_secs(2), Duration::from_secs(20)).await?;
    let id = "outage-1";
    store
        .apply(&event(
            id,
            "create",
            "2025-07-23T10:00:00",
            "m-1",
            json!({"a": 1}),
        )?)
        .await?;

    down.send_replace(true);
    // The outage lasts 1.5 s (simulated time, not synchronisation).
    let restore = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        down.send_replace(false);
    });
    let r = store
        .apply(&event(
            id,
            "update",
            "2025-07-23T10:01:00",
            "m-2",
            json!({"a": 2}),
        )?)
        .await?;
    restore.await?;
    assert_eq!(r.outcome, Outcome::Applied);
    assert!(r.attempts > 1, "the outage was not noticed: {r:?}");
    eprintln!("apply across a 1.5 s outage took {} attempts", r.attempts);
    let (stored, _) = store.admin().get(None, id).await?.context("entity")?;
    assert_eq!(stored.fields.get("a"), Some(&json!(2)));
    assert_eq!(stored.version, 2);
    Ok(())
}

#[tokio::test]
async fn outage_longer_than_the_budget_is_a_transient_error() -> Result<()> {
    let (store, down) =
        store_behind_proxy(Duration::from_millis(500), Duration::from_secs(1)).await?;
    down.send_replace(true);
    let e = event(
        "outage-2",
        "create",
        "2025-07-23T10:00:00",
        "m-1",
        json!({"a": 1}),
    )?;
    match store.apply(&e).await {
        Err(err) => {
            assert_eq!(err.code(), "store_unavailable", "{err}");
            assert_eq!(err.disposition(), Disposition::Transient);
        }
        Ok(r) => bail!("applied during an outage: {r:?}"),
    }
    Ok(())
}

/// The RPCs the store counts are the ones an apply makes: before the first
/// apply, the probe (a lookup beginning a transaction and its commit, plus a
/// rollback when that fails); then, without contention, one lookup and one
/// commit per written event (the lookup beginning the transaction where the
/// emulator allows, else one `BeginTransaction` more), and a rollback in
/// place of the commit when there is nothing to write.
#[tokio::test]
async fn rpc_counts_are_what_each_apply_sent() -> Result<()> {
    let store = store().await?;
    assert_eq!(store.rpc_counts(), sync_store::RpcCounts::default());
    ensure!(store.begins_in_lookup().is_none());
    let n = 5u64;
    for i in 0..n {
        let e = event(
            &format!("rpc-{i}"),
            "create",
            "2025-01-01T00:00:00Z",
            &format!("rpc-m{i}"),
            json!({"i": i}),
        )?;
        store.apply(&e).await?;
    }
    let in_lookup = store
        .begins_in_lookup()
        .context("the probe decided how transactions begin")?;
    let counts = store.rpc_counts();
    eprintln!("begins in lookup: {in_lookup}; after {n} applies: {counts:?}");
    // The probe: one lookup beginning a transaction, at most one commit.
    assert_eq!(counts.lookup, n + 1, "{counts:?}");
    if in_lookup {
        assert_eq!(counts.lookup_began_transaction, n + 1, "{counts:?}");
        assert_eq!(counts.begin_transaction, 0, "{counts:?}");
        assert_eq!(counts.commit, n + 1, "{counts:?}");
        assert_eq!(counts.rollback, 0, "{counts:?}");
    } else {
        assert_eq!(counts.lookup_began_transaction, 1, "{counts:?}");
        assert_eq!(counts.begin_transaction, n, "{counts:?}");
        // A failed probe commit is rolled back.
        assert_eq!(counts.commit - counts.rollback, n, "{counts:?}");
    }

    // Each create reads the entity's key and its tombstone's, finds neither,
    // and writes the entity; the probe read one key and sent a commit
    // deleting it (counted as sent, whether it committed or not).
    assert_eq!(counts.keys_looked_up, 2 * n + 1, "{counts:?}");
    assert_eq!(counts.entities_found, 0, "{counts:?}");
    assert_eq!(counts.entity_writes, n, "{counts:?}");
    assert_eq!(counts.entity_deletes, 1, "{counts:?}");

    // A redelivery writes nothing: rolled back, not committed.
    let again = event(
        "rpc-0",
        "create",
        "2025-01-01T00:00:00Z",
        "rpc-m0",
        json!({"i": 0}),
    )?;
    store.apply(&again).await?;
    let after = store.rpc_counts();
    assert_eq!(after.lookup, counts.lookup + 1, "{after:?}");
    assert_eq!(
        after.begin_transaction,
        counts.begin_transaction + u64::from(!in_lookup),
        "{after:?}"
    );
    assert_eq!(after.commit, counts.commit, "{after:?}");
    assert_eq!(after.rollback, counts.rollback + 1, "{after:?}");
    assert_eq!(after.keys_looked_up, counts.keys_looked_up + 2, "{after:?}");
    assert_eq!(
        after.entities_found, 1,
        "the entity, not a tombstone: {after:?}"
    );
    assert_eq!(after.entity_writes, counts.entity_writes, "{after:?}");
    Ok(())
}

/// Group commit: concurrent applies on one hot key through one store share
/// transactions (fewer lookups and commits than events), and each request
/// still gets what applying the events one by one in arrival order gives:
/// its outcome, conflicts, version and announcement, with redeliveries, a
/// delete, stale events and one event refused for the entity's size among
/// them; the entity and the conflict records end as the one-by-one fold
/// says.
#[tokio::test]
async fn concurrent_applies_on_one_key_commit_as_groups_with_one_by_one_outcomes() -> Result<()> {
    const N: usize = 64;
    let store = store().await?;
    let policy = MergePolicy::default();
    let id = "group-hot";
    let chunk = "x".repeat(400_000);
    let mut events: Vec<Arc<ChangeEvent>> = Vec::with_capacity(N);
    for i in 0..N {
        let e = if i >= N - 3 {
            // Three large parts, newer than everything: the third that
            // arrives would make the entity too large.
            let part = i - (N - 3);
            Arc::new(event(
                id,
                "update",
                &format!("2025-07-23T10:01:0{part}"),
                &format!("m-big-{part}"),
                json!({ format!("part{part}"): chunk }),
            )?)
        } else if i % 9 == 8 {
            // A redelivery of an event a few places back.
            Arc::clone(events.get(i - 4).context("earlier event")?)
        } else if i == 30 {
            Arc::new(event(
                id,
                "delete",
                "2025-07-23T10:00:30.5",
                "m-del",
                json!(null),
            )?)
        } else {
            // Timestamps in an order unrelated to arrival: some lose fields,
            // some are older than the delete.
            let slot = (i * 37) % 60;
            let op = if i == 0 { "create" } else { "update" };
            Arc::new(event(
                id,
                op,
                &format!("2025-07-23T10:00:{slot:02}.{i:06}"),
                &format!("m-{i}"),
                json!({"a": i, format!("f{}", i % 5): i}),
            )?)
        };
        events.push(e);
    }

    // A current-thread runtime polls the tasks in spawn order, and an apply
    // joins its entity's queue on its first poll: arrival order is `events`.
    let mut tasks = Vec::with_capacity(N);
    for e in &events {
        let store = store.clone();
        let e = Arc::clone(e);
        tasks.push(tokio::spawn(async move { store.apply(&e).await }));
    }
    let mut answers = Vec::with_capacity(N);
    for task in tasks {
        answers.push(task.await.context("apply task panicked")?);
    }
    let counts = store.rpc_counts();

    let too_large = |out: &sync_core::MergeOutcome| {
        let fields = out.state.visible_fields(&policy);
        if (0..3).all(|p| fields.contains_key(&format!("part{p}"))) {
            Err(())
        } else {
            Ok(())
        }
    };
    let (last, expected) = sync_core::merge_group_checked(
        &EntityState::default(),
        events.iter().map(|e| &**e),
        &policy,
        |_, out| too_large(out),
    );
    ensure!(
        expected.iter().filter(|e| e.is_err()).count() == 1,
        "the test's events refuse exactly one"
    );
    for (i, (answer, expected)) in answers.iter().zip(&expected).enumerate() {
        match (answer, expected) {
            (Ok(got), Ok(want)) => {
                let mut got = got.clone();
                got.attempts = 1;
                assert_eq!(&got, want, "event {i} ({})", events[i].event_id);
            }
            (Err(e), Err(())) => assert_eq!(e.code(), "entity_too_large", "event {i}"),
            (got, want) => bail!("event {i}: got {got:?}, one by one gives {want:?}"),
        }
    }

    let (_, state) = store.admin().get(None, id).await?.context("entity")?;
    assert_eq!(state, last);
    let mut recorded: Vec<String> = store
        .admin()
        .conflicts(None, Some(id))
        .await?
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    recorded.sort();
    let mut with_conflicts: Vec<String> = events
        .iter()
        .zip(&expected)
        .filter(|(_, out)| out.as_ref().is_ok_and(|o| !o.conflicts.is_empty()))
        .map(|(e, _)| e.event_id.clone())
        .collect();
    with_conflicts.sort();
    with_conflicts.dedup();
    assert!(!with_conflicts.is_empty(), "the test's events conflict");
    assert_eq!(recorded, with_conflicts);

    // Less the probe's lookup and commit (and rollback, where the commit of
    // a transaction begun in a lookup failed).
    let in_lookup = store.begins_in_lookup().context("probed")?;
    let lookups = counts.lookup - 1;
    let transactions = counts.commit + counts.rollback - 1 - u64::from(!in_lookup);
    eprintln!(
        "{N} concurrent applies on one key: {lookups} lookups, {transactions} commits or rollbacks \
         ({:.3} lookups and {:.3} commits per event): {counts:?}",
        lookups as f64 / N as f64,
        transactions as f64 / N as f64,
    );
    assert!(transactions < N as u64 / 4, "{counts:?}");
    assert!(lookups < N as u64 / 4, "{counts:?}");
    Ok(())
}

/// Cancel safety: an apply whose future is dropped at once (a push whose
/// connection closed) still runs its transaction to the end, so the event
/// is stored and the entity is not left locked by an abandoned transaction:
/// the next apply on it succeeds.
#[tokio::test]
async fn a_dropped_apply_still_finishes_its_transaction() -> Result<()> {
    let store = store().await?;
    let id = unique_name("cancelled");
    let first = event(
        &id,
        "create",
        "2025-01-01T00:00:00Z",
        "cancel-m1",
        json!({"n": 1}),
    )?;
    // Polled once, then dropped.
    let dropped = tokio::time::timeout(Duration::ZERO, store.apply(&first)).await;
    ensure!(dropped.is_err(), "the apply answered before it was dropped");
    let admin = store.admin();
    let stored = sync_testkit::poll_until(Duration::from_secs(20), "the dropped create", || {
        let (admin, id) = (admin.clone(), id.clone());
        async move { Ok(admin.get(None, &id).await?) }
    })
    .await?;
    assert_eq!(stored.0.fields.get("n"), Some(&json!(1)), "{:?}", stored.0);
    let second = event(
        &id,
        "update",
        "2025-01-01T00:00:01Z",
        "cancel-m2",
        json!({"n": 2}),
    )?;
    let outcome = tokio::time::timeout(Duration::from_secs(20), store.apply(&second))
        .await
        .context("the next apply on the entity waited on a lock")??;
    assert_eq!(outcome.version(), 2, "{outcome:?}");
    Ok(())
}

/// Writes the entities and tombstones of a stored-layout fixture
/// (`tests/stored/layout_*.json`) raw, as that layout stored them, and returns
/// the core's one-by-one merge of the fixture's events per entity: what the
/// store must read back. The removal suite uses it too.
pub(crate) async fn write_stored_layout(
    admin: &sync_store::DatastoreAdmin,
    fixture: &Value,
) -> Result<BTreeMap<String, EntityState>> {
    for e in fixture["entities"].as_array().context("entities")? {
        let id = e["entity_id"].as_str().context("entity_id")?;
        let mut fields = BTreeMap::new();
        for (name, v) in e["properties"].as_object().context("properties")? {
            let raw = match v.get("timestampValue").and_then(Value::as_str) {
                Some(t) => RawValue::from(parse_timestamp(t)?),
                None => RawValue::from(json_of_typed(v)?),
            };
            fields.insert(name.clone(), raw);
        }
        if e["tombstone"] == json!(true) {
            admin.put_raw_tombstone(None, id, &fields).await?;
        } else {
            admin.put_raw(None, id, &fields).await?;
        }
    }
    let policy = MergePolicy::default();
    let mut expected: BTreeMap<String, EntityState> = BTreeMap::new();
    for ev in fixture["events"].as_array().context("events")? {
        let body = serde_json::to_vec(&ev["data"])?;
        let id = ev["message_id"].as_str().context("message_id")?;
        let event = parse_event(&body, id, &ValidationLimits::default(), now())?;
        let state = expected
            .entry(event.entity_id.as_str().to_string())
            .or_default();
        *state = merge(state, &event, &policy).state;
    }
    Ok(expected)
}

/// A value in the Datastore REST API's JSON form (as the stored-layout
/// fixtures hold them) as plain JSON; the removal suite uses it too.
pub(crate) fn json_of_typed(v: &Value) -> Result<Value> {
    let (kind, inner) = v
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.ends_with("Value")))
        .with_context(|| format!("not a typed value: {v}"))?;
    Ok(match kind.as_str() {
        "stringValue" | "booleanValue" | "doubleValue" => inner.clone(),
        "nullValue" => Value::Null,
        "integerValue" => json!(inner.as_str().context("integer")?.parse::<i64>()?),
        "arrayValue" => Value::Array(
            inner["values"]
                .as_array()
                .map_or(Ok(Vec::new()), |a| a.iter().map(json_of_typed).collect())?,
        ),
        "entityValue" => Value::Object(
            inner["properties"]
                .as_object()
                .context("properties")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_of_typed(v)?)))
                .collect::<Result<_>>()?,
        ),
        other => bail!("unexpected value type {other}"),
    })
}

/// Upgrade without migration: entities as the stored layout of 4159480 wrote
/// them (`tests/stored/layout_4159480.json`: a live entity, one
/// deleted, one deleted and created again, a tombstone alone), written raw,
/// read back as the core's merge of the events behind them, then take newer
/// and older events as if the same store had applied them all: each outcome
/// and each final state is the core's one-by-one merge, a tombstone exists
/// exactly while its entity is deleted, an update or delete of an entity
/// that exists reads that one key, and an update older than a delete that
/// only the entity's bookkeeping remembers still loses.
#[tokio::test]
async fn entities_of_the_previous_stored_layout_take_new_events_as_before() -> Result<()> {
    let fixture: Value = serde_json::from_str(include_str!("../stored/layout_4159480.json"))?;
    let store = store().await?;
    let admin = store.admin();
    let mut expected = write_stored_layout(&admin, &fixture).await?;
    let policy = MergePolicy::default();
    for (id, want) in &expected {
        let (_, got) = admin.get(None, id).await?.context("stored")?;
        assert_eq!(&got, want, "{id} as the previous layout stored it");
    }

    // The store's probe reads a key of its own before its first apply.
    store
        .apply(&event(
            "warm",
            "create",
            "2025-03-01T10:00:00",
            "warm",
            json!({"a": 1}),
        )?)
        .await?;
    let t = |s: &str| format!("2025-03-01T10:00:{s}");
    let next = [
        ("live", "update", "03", json!({"price": 13}), "live-4"),
        ("live", "update", "00.5", json!({"name": "Older"}), "live-5"),
        (
            "deleted",
            "update",
            "00.5",
            json!({"name": "Late"}),
            "deleted-3",
        ),
        (
            "deleted",
            "create",
            "03",
            json!({"name": "Back"}),
            "deleted-4",
        ),
        // Older than phoenix's delete, which only its bookkeeping holds now.
        (
            "phoenix",
            "update",
            "00.5",
            json!({"name": "Ash"}),
            "phoenix-4",
        ),
        ("phoenix", "update", "03", json!({"price": 3}), "phoenix-5"),
        ("phoenix", "delete", "04", json!(null), "phoenix-6"),
        (
            "unseen",
            "create",
            "00",
            json!({"name": "Early"}),
            "unseen-2",
        ),
        (
            "unseen",
            "create",
            "02",
            json!({"name": "Late"}),
            "unseen-3",
        ),
    ];
    for (id, op, ts, data, message_id) in next {
        let e = event(id, op, &t(ts), message_id, data)?;
        let state = expected.get_mut(id).context("fixture entity")?;
        let want = merge(state, &e, &policy);
        let before = store.rpc_counts().keys_looked_up;
        let mut got = store.apply(&e).await?;
        let reads = store.rpc_counts().keys_looked_up - before;
        got.attempts = 1;
        assert_eq!(got, want, "{message_id}");
        if state.exists() && op != "create" {
            assert_eq!(reads, 1, "{message_id} read the entity alone");
        }
        *state = want.state;
    }
    for (id, want) in &expected {
        let (_, got) = admin.get(None, id).await?.context("stored")?;
        assert_eq!(&got, want, "{id} after the new events");
        assert_eq!(
            admin.tombstone_exists(None, id).await?,
            !want.exists(),
            "{id}: a tombstone exactly while it is deleted"
        );
    }
    Ok(())
}
