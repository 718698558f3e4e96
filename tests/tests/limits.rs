//! Datastore's production limits end to end: events the Datastore emulator
//! would accept (or fail on with `Unknown`, retried until Pub/Sub gives up) but
//! production refuses are dead-lettered by the sync function on their first
//! delivery with their code, and Datastore holds nothing of them. The
//! function runs as a process: the test counts the deliveries it logged.

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use sync_core::ingest::limits::{
    BOOKKEEPING_INDEX_ENTRIES, DEFAULT_CONFLICT_KIND, DEFAULT_KIND, DEFAULT_TOMBSTONE_KIND,
    MAX_INDEX_ENTRIES, MAX_KEY_BYTES, MAX_NESTING_DEPTH,
};
use sync_testkit::harness::{sync_env, Clients, FunctionProcess, Topology};
use sync_testkit::raw_event::now_timestamp;
use sync_testkit::{
    datastore_flavour, drain, event, poll_until, pull_until, DatastoreFlavour, Emulators,
};

fn update(entity_id: &str, data: Value) -> Vec<u8> {
    event(entity_id, "update", &now_timestamp())
        .source("limits-test")
        .data(data)
        .to_bytes()
}

/// The most indexed values the Firestore emulator in Datastore mode takes in
/// one entity: it refuses more with `INVALID_ARGUMENT` "Too many indexed
/// properties", where Google documents 20,000 index entries (and the Datastore
/// emulator takes 20,000).
const FIRESTORE_EMULATOR_MAX_INDEXED_VALUES: usize = 5_000;

/// The array length of the event that sits at the limits: with its nested
/// leaf and the store's bookkeeping, as many indexed values as the emulator of
/// this run takes.
fn values_that_fit() -> usize {
    let entity_limit = match datastore_flavour() {
        DatastoreFlavour::Datastore => MAX_INDEX_ENTRIES,
        DatastoreFlavour::Firestore => FIRESTORE_EMULATOR_MAX_INDEXED_VALUES,
    };
    entity_limit - BOOKKEEPING_INDEX_ENTRIES - 1
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |inner, _| json!({ "n": inner }))
}

/// 21-deep data, 20,001 indexed values, a key over 6 KiB: each arrives on the
/// dead-letter subscription with its code, dead-lettered by the function on
/// the one delivery it got; a valid event published with them is applied.
#[tokio::test]
async fn production_limits_are_dead_lettered_on_the_first_delivery() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("limits");
    t.create_base(&c.admin).await?;
    let sync = FunctionProcess::start("sync-function", sync_env(&t, &e)).await?;
    // Five attempts before Pub/Sub's own dead-lettering: a retried message
    // would show up in the function's log more than once.
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    let store = e.admin(&t.namespace).await?;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "too_deep",
            update("deep", json!({ "d": nested(MAX_NESTING_DEPTH + 1) })),
        ),
        (
            "too_many_index_entries",
            update("wide", json!({ "v": vec![1; MAX_INDEX_ENTRIES + 1] })),
        ),
        (
            "key_too_large",
            update(&"k".repeat(MAX_KEY_BYTES), json!({"a": 1})),
        ),
    ];
    let mut codes = BTreeMap::new();
    for (code, data) in &cases {
        let id = c.publish(&t.topic, data.clone()).await?;
        codes.insert(id, (*code, data.clone()));
    }
    // At the limits: applied.
    let fits = update(
        "fits",
        json!({ "d": nested(MAX_NESTING_DEPTH), "v": vec![1; values_that_fit()] }),
    );
    c.publish(&t.topic, fits).await?;

    let dead = pull_until(
        &c.puller,
        &t.dlq_subscription,
        cases.len(),
        Duration::from_secs(60),
    )
    .await
    .with_context(|| format!("function log:\n{}", sync.log_tail(40)))?;
    ensure!(
        dead.len() == cases.len(),
        "{} dead letters, want {}; function log:\n{}",
        dead.len(),
        cases.len(),
        sync.log_tail(40)
    );
    for m in &dead {
        let original = m
            .attributes
            .get("original_message_id")
            .context("original_message_id: dead-lettered by the function")?;
        let (code, data) = codes.get(original).context("a message we published")?;
        ensure!(
            m.attributes.get("error_code").map(String::as_str) == Some(*code),
            "{original}: {:?}, want {code}",
            m.attributes
        );
        ensure!(&m.data == data, "{code}: original data kept");
    }

    // The valid one is applied: the pipeline ran, so the refusals were not
    // for want of a working Datastore.
    let state = poll_until(Duration::from_secs(30), "fits applied", || async {
        Ok(store.get(None, "fits").await?.map(|(_, s)| s))
    })
    .await
    .with_context(|| format!("fits was not applied; function log:\n{}", sync.log_tail(40)))?;
    ensure!(state.version() == 1, "fits: version {}", state.version());

    // One delivery each: the function handled each refused message once,
    // and nothing more reaches the dead-letter subscription.
    let log = sync.log_text();
    for (id, (code, _)) in &codes {
        let span = format!("message_id={id} ");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&span)).collect();
        ensure!(
            lines.len() == 1 && lines[0].contains("message dead-lettered"),
            "{code} ({id}): want one delivery, dead-lettered; got {lines:#?}"
        );
    }
    let more = drain(&c.puller, &t.dlq_subscription, Duration::from_secs(2)).await?;
    ensure!(more.is_empty(), "{} more dead letters", more.len());

    // Datastore holds nothing of them: the namespace has only `fits`.
    let entities: Vec<String> = store
        .query_kind(DEFAULT_KIND)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    ensure!(entities == ["fits"], "entities: {entities:?}");
    for kind in [DEFAULT_TOMBSTONE_KIND, DEFAULT_CONFLICT_KIND] {
        ensure!(store.query_kind(kind).await?.is_empty(), "{kind} not empty");
    }
    Ok(())
}
