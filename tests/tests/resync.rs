//! `syncctl resync` on the emulators, the real binary each time: a resync of
//! many entities (700, or 2,000 under `scripts/test.sh --full`) announces
//! exactly the stored state (and lists exactly the tombstones); a run killed with SIGKILL halfway and resumed with its last
//! printed cursor announces every entity at least once; a resync racing live
//! updates through the sync function leaves a consumer that keeps the highest
//! `version` per entity equal to Datastore, and every announcement of one
//! version, live or resync, carries the same payload.
//!
//! The entities of the first two tests are written through the store's apply
//! path in-process (the sync function's, without Pub/Sub in front: fast);
//! the third runs the sync function behind its push subscription.

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use sync_core::wire::announcement::attribute;
use sync_core::wire::AnnouncementMessage;
use sync_core::{
    parse_event, ChangeEvent, EntityStore, MergePolicy, Operation, ValidationLimits,
    RESERVED_FIELDS,
};
use sync_pubsub::{PubSubAdmin, PubSubPuller, ReceivedMessage, SubscriptionConfig};
use sync_store::{DatastoreAdmin, DatastoreStore};
use sync_testkit::harness::*;
use sync_testkit::raw_event::timestamp_in;
use sync_testkit::{
    drain, event, load_size, poll_until, pull_until, unique_name, Emulators, TEST_PROJECT,
};

const KIND: &str = "SyncEntity";
/// Stored entities of the killed resync (it must still be running when it is
/// killed after its fifth page).
const ENTITIES: usize = 2000;
/// Applies in flight at once while writing them.
const WRITERS: usize = 32;

/// A validated event, as the sync function builds it from a delivery.
fn change(id: &str, op: &str, offset_ms: i64, data: Value) -> Result<ChangeEvent> {
    let body = event(id, op, &timestamp_in(offset_ms))
        .source("resync-test")
        .correlation_id(&format!("corr-{id}-{op}"))
        .data(data)
        .to_bytes();
    let message_id = unique_name("m");
    Ok(parse_event(
        &body,
        &message_id,
        &ValidationLimits::default(),
        chrono::Utc::now(),
    )?)
}

/// Applies `events` through the store, [`WRITERS`] at a time.
async fn apply_all(store: &DatastoreStore, events: Vec<ChangeEvent>) -> Result<()> {
    let mut running = tokio::task::JoinSet::new();
    let mut events = events.into_iter();
    loop {
        while running.len() < WRITERS {
            let Some(e) = events.next() else { break };
            let store = store.clone();
            running.spawn(async move { store.apply(&e).await });
        }
        match running.join_next().await {
            None => return Ok(()),
            Some(done) => {
                done.context("apply task")??;
            }
        }
    }
}

/// `live` entities `rs-NNNNN` (every tenth updated once more) and `gone`
/// entities `rs-gone-NNN` created then deleted, in namespace `namespace`.
/// Returns the ids of the deleted ones.
async fn write_entities(
    e: &Emulators,
    namespace: &str,
    live: usize,
    gone: usize,
) -> Result<BTreeSet<String>> {
    let store = DatastoreStore::connect(e.store_config(namespace)).await?;
    let live_ids: Vec<String> = (0..live).map(|i| format!("rs-{i:05}")).collect();
    let gone_ids: BTreeSet<String> = (0..gone).map(|i| format!("rs-gone-{i:03}")).collect();
    let creates = live_ids
        .iter()
        .chain(&gone_ids)
        .enumerate()
        .map(|(i, id)| {
            change(
                id,
                "create",
                0,
                json!({"name": format!("entity {i}"), "n": i, "tags": ["a", "b"]}),
            )
        })
        .collect::<Result<_>>()?;
    apply_all(&store, creates).await?;
    let updates = live_ids
        .iter()
        .step_by(10)
        .map(|id| change(id, "update", 1, json!({"status": "updated"})))
        .collect::<Result<_>>()?;
    apply_all(&store, updates).await?;
    let deletes = gone_ids
        .iter()
        .map(|id| change(id, "delete", 2, Value::Null))
        .collect::<Result<_>>()?;
    apply_all(&store, deletes).await?;
    Ok(gone_ids)
}

/// A topic with one pull subscription; returns the subscription.
async fn topic_with_subscription(admin: &PubSubAdmin, topic: &str) -> Result<String> {
    admin.create_topic(topic).await?;
    let subscription = format!("{topic}-sub");
    let config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(60),
        ..SubscriptionConfig::default()
    };
    admin
        .create_pull_subscription(&subscription, topic, &config)
        .await?;
    Ok(subscription)
}

/// Everything on `subscription` until one pull of `quiet` brings nothing.
async fn pull_all(
    puller: &PubSubPuller,
    subscription: &str,
    quiet: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let mut all = Vec::new();
    loop {
        let batch = drain(puller, subscription, quiet).await?;
        if batch.is_empty() {
            return Ok(all);
        }
        all.extend(batch);
    }
}

/// Runs `syncctl resync ARGS` in `namespace`; returns its stdout.
async fn resync(e: &Emulators, namespace: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["resync".to_string(), "--quiet".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    syncctl_async(all, e, namespace).await
}

/// The user fields of a Datastore row (its properties less the reserved ones).
fn user_fields(props: &Map<String, Value>) -> Map<String, Value> {
    props
        .iter()
        .filter(|(k, _)| !RESERVED_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Entity id → (version, user fields) of every entity of `KIND`.
async fn stored_state(
    store: &DatastoreAdmin,
) -> Result<BTreeMap<String, (i64, Map<String, Value>)>> {
    store
        .query_kind(KIND)
        .await?
        .into_iter()
        .map(|(id, props)| {
            let version = props
                .get("version")
                .and_then(Value::as_i64)
                .with_context(|| format!("{id}: version"))?;
            Ok((id, (version, user_fields(&props))))
        })
        .collect()
}

/// A resync announcement, checked against its attributes.
fn read_resync(m: &ReceivedMessage) -> Result<AnnouncementMessage> {
    let a: AnnouncementMessage = serde_json::from_slice(&m.data).context("announcement JSON")?;
    let attr = |name: &str| m.attributes.get(name).map(String::as_str);
    ensure!(
        attr(attribute::RESYNC) == Some("true")
            && attr(attribute::KIND) == Some(KIND)
            && attr(attribute::ENTITY_ID) == Some(a.entity_id.as_str())
            && attr(attribute::OPERATION) == Some(a.operation.as_str())
            && attr(attribute::VERSION) == Some(a.version.to_string().as_str()),
        "attributes {:?} of {a:?}",
        m.attributes
    );
    Ok(a)
}

/// The `cursor:` tokens of a resync's stdout.
fn cursors(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cursor: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn resync_of_many_entities_announces_exactly_the_stored_state() -> Result<()> {
    // Several pages of 300 at the default size; 2,000 with `--full`.
    let entities = load_size(700, 2000);
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let namespace = unique_name("resync").replace('-', "_");
    let gone = write_entities(&e, &namespace, entities, 50).await?;
    let store = e.admin(&namespace).await?;
    let stored = stored_state(&store).await?;
    ensure!(stored.len() == entities, "{} stored entities", stored.len());

    let topic = unique_name("resync-all");
    let sub = topic_with_subscription(&c.admin, &topic).await?;
    let out = resync(
        &e,
        &namespace,
        &["--topic", &topic, "--rate", "5000", "--page-size", "300"],
    )
    .await?;
    ensure!(
        out.contains(&format!("done: {entities} read, {entities} announced")),
        "{out}"
    );
    // A cursor after each full page (700 / 300: two), none after the last.
    ensure!(cursors(&out).len() >= entities / 300, "{out}");
    let received = pull_until(&c.puller, &sub, entities, Duration::from_secs(60)).await?;
    let extra = pull_all(&c.puller, &sub, Duration::from_millis(500)).await?;
    ensure!(
        received.len() == entities && extra.is_empty(),
        "{} announcements, then {} more",
        received.len(),
        extra.len()
    );
    let mut announced = BTreeMap::new();
    for m in &received {
        let a = read_resync(m)?;
        let want = if a.version == 1 {
            Operation::Create
        } else {
            Operation::Update
        };
        ensure!(
            a.operation == want,
            "{a:?}: the operation of its version's change"
        );
        ensure!(
            a.correlation_id == Some(format!("corr-{}-{}", a.entity_id, want.as_str())),
            "{a:?}"
        );
        announced.insert(a.entity_id.clone(), (a.version, a.data));
    }
    ensure!(announced.len() == entities, "one announcement per entity");
    ensure!(
        announced == stored,
        "announced and stored differ, e.g. {:?}",
        stored.iter().find(|(id, s)| announced.get(*id) != Some(s))
    );
    ensure!(
        announced.keys().all(|id| !gone.contains(id)),
        "a deleted entity was announced"
    );

    // The tombstones, paged too: exactly the deleted entities, each with the
    // version of its delete.
    let listed = resync(&e, &namespace, &["--tombstones", "--page-size", "7"]).await?;
    let mut tombstones = BTreeMap::new();
    for line in listed.lines().filter(|l| l.starts_with('{')) {
        let a: AnnouncementMessage = serde_json::from_str(line)?;
        ensure!(
            a.operation == Operation::Delete && a.data.is_empty(),
            "{line}"
        );
        tombstones.insert(a.entity_id.clone(), a.version);
    }
    ensure!(cursors(&listed).len() >= 50 / 7, "{listed}");
    ensure!(
        tombstones.keys().cloned().collect::<BTreeSet<_>>() == gone,
        "tombstones listed: {tombstones:?}"
    );
    for (id, version) in &tombstones {
        let (s, _) = store.get(None, id).await?.context("a tombstone")?;
        ensure!(!s.exists && s.version == *version, "{id}: {s:?}");
    }

    // A prefix is a key range, for entities and tombstones alike; a dry run
    // publishes nothing; one entity by id.
    let out = resync(&e, &namespace, &["--prefix", "rs-0001", "--dry-run"]).await?;
    ensure!(
        out.contains("done: 10 read, 10 would be announced"),
        "{out}"
    );
    let out = resync(
        &e,
        &namespace,
        &["--tombstones", "--prefix", "rs-gone-00", "--dry-run"],
    )
    .await?;
    ensure!(out.contains("done: 10 read"), "{out}");
    let out = resync(
        &e,
        &namespace,
        &["--entity-id", "rs-00042", "--topic", &topic],
    )
    .await?;
    ensure!(out.contains("done: 1 read, 1 announced"), "{out}");
    let one = pull_until(&c.puller, &sub, 1, Duration::from_secs(30)).await?;
    let a = read_resync(&one[0])?;
    ensure!(
        one.len() == 1 && Some(&(a.version, a.data)) == stored.get("rs-00042"),
        "{one:?}"
    );
    let dry = pull_all(&c.puller, &sub, Duration::from_millis(500)).await?;
    ensure!(dry.is_empty(), "the dry runs published {}", dry.len());

    // A cursor that is not one is refused with a reason, not a panic.
    let bad = resync(
        &e,
        &namespace,
        &["--resume", "bm90IGEgY3Vyc29y", "--dry-run"],
    )
    .await;
    let why = format!("{:#}", bad.err().context("a bad cursor is refused")?);
    ensure!(
        why.contains("not a cursor printed by `syncctl resync`") && !why.contains("panicked"),
        "{why}"
    );
    Ok(())
}

/// Starts `syncctl resync ARGS` and SIGKILLs it once it has printed `after`
/// cursor lines; returns what it printed.
fn run_and_kill(
    e: &Emulators,
    namespace: &str,
    args: &[&str],
    after: usize,
) -> Result<Vec<String>> {
    let mut child = Command::new(bin_path("syncctl")?)
        .arg("resync")
        .args(args)
        .env("GOOGLE_CLOUD_PROJECT", TEST_PROJECT)
        .env("PUBSUB_EMULATOR_HOST", &e.pubsub)
        .env("DATASTORE_EMULATOR_HOST", &e.datastore)
        .env("DATASTORE_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting syncctl resync")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let is_cursor = line.starts_with("cursor: ");
        lines.push(line);
        if is_cursor && cursors(&lines.join("\n")).len() == after {
            break;
        }
    }
    child.kill().context("SIGKILL")?;
    child.wait()?;
    Ok(lines)
}

#[tokio::test]
async fn a_killed_resync_resumed_from_its_last_cursor_announces_every_entity() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let namespace = unique_name("resume").replace('-', "_");
    write_entities(&e, &namespace, ENTITIES, 0).await?;
    let first_topic = unique_name("resync-killed");
    let first_sub = topic_with_subscription(&c.admin, &first_topic).await?;
    let second_topic = unique_name("resync-resumed");
    let second_sub = topic_with_subscription(&c.admin, &second_topic).await?;

    // 100 a page at 400 a second: five pages take over a second, the whole
    // run five.
    let (e2, ns) = (e.clone(), namespace.clone());
    let args = [
        "--topic",
        first_topic.as_str(),
        "--rate",
        "400",
        "--page-size",
        "100",
        "--quiet",
    ]
    .map(String::from);
    let printed = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_and_kill(&e2, &ns, &args, 5)
    })
    .await
    .context("killer task")??;
    let last = cursors(&printed.join("\n"))
        .pop()
        .context("a cursor line before the kill")?;

    let out = resync(
        &e,
        &namespace,
        &[
            "--topic",
            &second_topic,
            "--rate",
            "5000",
            "--resume",
            &last,
        ],
    )
    .await?;
    ensure!(out.contains("done: "), "{out}");

    let first = pull_until(&c.puller, &first_sub, 500, Duration::from_secs(60)).await?;
    let first: Vec<ReceivedMessage> = first
        .into_iter()
        .chain(pull_all(&c.puller, &first_sub, Duration::from_millis(500)).await?)
        .collect();
    let second = pull_all(&c.puller, &second_sub, Duration::from_secs(2)).await?;
    let ids = |ms: &[ReceivedMessage]| -> Result<BTreeSet<String>> {
        ms.iter().map(|m| Ok(read_resync(m)?.entity_id)).collect()
    };
    let (before, after) = (ids(&first)?, ids(&second)?);
    // Five pages were confirmed before the fifth cursor was printed.
    ensure!(
        before.len() >= 500 && before.len() < ENTITIES,
        "{} announced before the kill",
        before.len()
    );
    // The resumed run started after the fifth page, not from the start.
    ensure!(
        !after.contains("rs-00000") && after.len() <= ENTITIES - 500,
        "{} announced after resuming",
        after.len()
    );
    let all: BTreeSet<String> = before.union(&after).cloned().collect();
    let want: BTreeSet<String> = (0..ENTITIES).map(|i| format!("rs-{i:05}")).collect();
    ensure!(
        all == want,
        "missing after the resume: {:?}",
        want.difference(&all).take(5).collect::<Vec<_>>()
    );
    Ok(())
}

/// What a downstream consumer that keeps the highest version per entity
/// holds: version, and the data (`None` once deleted).
type Consumer = BTreeMap<String, (i64, Option<Map<String, Value>>)>;

/// Resync announcements received: message id → (entity, version).
type Resyncs = BTreeMap<String, (String, i64)>;

/// Folds announcements from the topic of `operation` into `consumer`, every
/// payload into `seen` by (entity, version) (a second, different payload for
/// one version fails), and the resync announcements into `resyncs`.
fn consume(
    consumer: &mut Consumer,
    seen: &mut HashMap<(String, i64), Vec<u8>>,
    resyncs: &mut Resyncs,
    (operation, messages): (Operation, &[ReceivedMessage]),
) -> Result<()> {
    for m in messages {
        let a: AnnouncementMessage = serde_json::from_slice(&m.data)?;
        ensure!(a.operation == operation, "{a:?} on the {operation} topic");
        if m.attributes.get(attribute::RESYNC).map(String::as_str) == Some("true") {
            read_resync(m)?;
            resyncs.insert(m.message_id.clone(), (a.entity_id.clone(), a.version));
        }
        let key = (a.entity_id.clone(), a.version);
        match seen.get(&key) {
            Some(before) if *before != m.data => bail!(
                "version {} of {} announced with two payloads:\n{}\n{}",
                a.version,
                a.entity_id,
                String::from_utf8_lossy(before),
                String::from_utf8_lossy(&m.data)
            ),
            Some(_) => {}
            None => {
                seen.insert(key, m.data.clone());
            }
        }
        let newer = consumer
            .get(&a.entity_id)
            .is_none_or(|(v, _)| a.version > *v);
        if newer {
            let data = (a.operation != Operation::Delete).then_some(a.data);
            consumer.insert(a.entity_id, (a.version, data));
        }
    }
    Ok(())
}

/// What Datastore holds, as a [`Consumer`] would: live entities and tombstones.
async fn datastore_view(store: &DatastoreAdmin, ids: &[String]) -> Result<Consumer> {
    let mut view = Consumer::new();
    for id in ids {
        if let Some((s, _)) = store.get(None, id).await? {
            view.insert(id.clone(), (s.version, s.exists.then_some(s.fields)));
        }
    }
    Ok(view)
}

#[tokio::test]
async fn resync_racing_live_updates_leaves_a_highest_version_consumer_equal_to_datastore(
) -> Result<()> {
    const CREATED: usize = 200;
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("resync-race");
    t.create_base(&c.admin).await?;
    let sync = sync_in_process(&sync_env(&t, &e)).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    let subs: Vec<String> = Operation::ALL
        .iter()
        .map(|op| t.external_subscription(op.as_str()))
        .collect();

    let ids: Vec<String> = (0..CREATED).map(|i| format!("race-{i:03}")).collect();
    let mut published = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let data = event(id, "create", &timestamp_in(0))
            .correlation_id(&format!("create-{i}"))
            .data(json!({"name": format!("entity {i}"), "round": 0}))
            .to_bytes();
        published.push((c.publish(&t.topic, data.clone()).await?, data));
    }
    let store = e.admin(&t.namespace).await?;
    poll_until(Duration::from_secs(60), "every entity created", || async {
        Ok((store.query_kind(KIND).await?.len() == CREATED).then_some(()))
    })
    .await?;
    // A consumer subscribed from here on: what came before it never saw.
    let mut seen = HashMap::new();
    let (mut ignored, mut no_resyncs) = (Consumer::new(), Resyncs::new());
    let before = pull_until(&c.puller, &subs[0], CREATED, Duration::from_secs(60)).await?;
    consume(
        &mut ignored,
        &mut seen,
        &mut no_resyncs,
        (Operation::Create, &before),
    )?;

    // Live updates and deletes of the first 150 entities race a resync to
    // the per-operation topics; the last 50 stay as created.
    let args: Vec<String> = [
        "resync",
        "--quiet",
        "--rate",
        "300",
        "--page-size",
        "20",
        "--topic-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([t.external_prefix.clone()])
    .collect();
    let resync_run = tokio::spawn({
        let (e, ns) = (e.clone(), t.namespace.clone());
        async move { syncctl_async(args, &e, &ns).await }
    });
    for round in 1..=3 {
        for (i, id) in ids.iter().enumerate().take(150) {
            let ts = timestamp_in(i64::from(round));
            let data = if round == 3 && i % 10 == 0 {
                event(id, "delete", &ts).to_bytes()
            } else {
                event(id, "update", &ts)
                    .correlation_id(&format!("update-{round}-{i}"))
                    .data(json!({"round": round, "status": format!("s{round}")}))
                    .to_bytes()
            };
            published.push((c.publish(&t.topic, data.clone()).await?, data));
        }
    }
    let out = resync_run.await.context("resync task")??;
    let announced: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("done: "))
        .and_then(|l| l.split(" read, ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("the done line: {out}"))?;

    let policy = MergePolicy::default();
    let expected = expected_states(&published, &policy)?;
    wait_for_states(&store, &expected, &policy, Duration::from_secs(90)).await?;
    let want = datastore_view(&store, &ids).await?;

    let mut consumer = Consumer::new();
    let mut resyncs = Resyncs::new();
    // Pulling waits for messages, so the loop needs no sleep; it ends at a
    // deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while consumer != want {
        if std::time::Instant::now() > deadline {
            let differs: Vec<_> = want
                .iter()
                .filter(|(id, w)| consumer.get(*id) != Some(w))
                .take(3)
                .map(|(id, w)| format!("{id}: want {w:?}, consumer {:?}", consumer.get(id)))
                .collect();
            bail!("after 60 s the consumer differs from Datastore: {differs:?}");
        }
        for (op, sub) in Operation::ALL.into_iter().zip(&subs) {
            let got = drain(&c.puller, sub, Duration::from_millis(200)).await?;
            consume(&mut consumer, &mut seen, &mut resyncs, (op, &got))?;
        }
    }
    // Late resync announcements of older versions change nothing.
    for (op, sub) in Operation::ALL.into_iter().zip(&subs) {
        let late = pull_all(&c.puller, sub, Duration::from_millis(500)).await?;
        consume(&mut consumer, &mut seen, &mut resyncs, (op, &late))?;
    }
    ensure!(consumer == want, "a late announcement changed the consumer");
    ensure!(
        resyncs.len() == announced && announced >= CREATED - 15,
        "{} resync announcements received, {announced} announced",
        resyncs.len()
    );
    // The untouched entities were resynced at their creation's version, on
    // the create topic, with the live create's payload (`consume` checks
    // both).
    let resynced: BTreeSet<&(String, i64)> = resyncs.values().collect();
    ensure!(
        ids[150..]
            .iter()
            .all(|id| resynced.contains(&(id.clone(), 1))),
        "an untouched entity was not resynced at version 1"
    );
    drop(sync);
    Ok(())
}
