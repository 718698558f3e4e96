//! The capture function end to end on the emulators: an application writes
//! its own entities straight to Datastore, the capture function receives the
//! events Eventarc would deliver for them, publishes change events to the
//! events topic, and the real Pub/Sub push takes them to the sync function
//! (the synced store, `external-sync-*`) and the audit function (its
//! trail). All three functions run as their binaries.
//!
//! No emulator emits Datastore entity events: each event is built from the
//! entity as the Datastore emulator returned it before and after the write
//! (`sync_testkit::capture`, `sync_capture::emulate`) and posted as
//! Eventarc's push posts it. The application writes in a namespace of its
//! own; the sync function writes the same kind in the test's namespace.
//! Every wait is a poll with a deadline. `scripts/test.sh` runs the suite on
//! the Datastore emulator and on the Firestore emulator in Datastore mode.

use anyhow::{ensure, Context, Result};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use sync_capture::proto::{ArrayValue, ValueType};
use sync_capture::EntityEvent;
use sync_core::wire::{dead_letter, trace, EventMessage};
use sync_core::Operation;
use sync_pubsub::{ReceivedMessage, SubscriptionConfig};
use sync_testkit::capture::{deliver, double, integer, name_key, post_raw, string, value};
use sync_testkit::capture::{id_key, AppWriter};
use sync_testkit::harness::{bin_path, sync_env, Clients, FunctionProcess, Topology};
use sync_testkit::{drain, poll_until, pull_until, Emulators, TEST_PROJECT};

const KIND: &str = "Product";
/// The trace of every delivery in these tests.
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const DEADLINE: Duration = Duration::from_secs(60);

/// One test's pipeline: the recipe's topology, the sync and audit
/// functions behind their push subscriptions, the capture function
/// publishing to the events topic, a pull subscription on that topic (to
/// see what the capture published), and the application's writer.
struct Pipeline {
    e: Emulators,
    c: Clients,
    t: Topology,
    capture: FunctionProcess,
    audit: FunctionProcess,
    _sync: FunctionProcess,
    tap: String,
    app: AppWriter,
    http: reqwest::Client,
}

impl Pipeline {
    async fn start(label: &str, capture_vars: &[(&str, &str)]) -> Result<Self> {
        let e = Emulators::shared().await?;
        let c = Clients::connect(&e).await?;
        let t = Topology::new(label);
        t.create_base(&c.admin).await?;
        let tap = format!("{}-tap", t.prefix);
        let pull = SubscriptionConfig {
            ack_deadline: Duration::from_secs(60),
            ..SubscriptionConfig::default()
        };
        c.admin
            .create_pull_subscription(&tap, &t.topic, &pull)
            .await?;
        let sync = FunctionProcess::start("sync-function", sync_env(&t, &e)).await?;
        t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
        let audit = FunctionProcess::start(
            "audit-function",
            vars(&[("LOG_FORMAT", "text"), ("NO_COLOR", "1")]),
        )
        .await?;
        t.subscribe_audit(&c.admin, &audit.url()).await?;
        let mut env = capture_env(&t, &e);
        for (k, v) in capture_vars {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let capture = FunctionProcess::start("capture-function", env).await?;
        let app = AppWriter::connect(&e.datastore, &app_namespace(&t)).await?;
        Ok(Self {
            e,
            c,
            t,
            capture,
            audit,
            _sync: sync,
            tap,
            app,
            http: reqwest::Client::new(),
        })
    }

    /// Posts `event` as Eventarc would, with this suite's trace context.
    async fn deliver(&self, event: &EntityEvent) -> Result<reqwest::StatusCode> {
        let (mut headers, body) = event.to_request()?;
        headers.insert("traceparent", TRACEPARENT.parse()?);
        post_raw(&self.http, &self.capture.url(), &headers, body).await
    }

    /// The synced entity `id` of `KIND`: its user fields and bookkeeping
    /// fields as JSON, if it exists.
    async fn synced(&self, id: &str) -> Result<Option<BTreeMap<String, Json>>> {
        let store = self.e.admin(&self.t.namespace).await?;
        let rows = store.query_kind(KIND).await?;
        Ok(rows
            .into_iter()
            .find(|(key, _)| key == id)
            .map(|(_, props)| props.into_iter().collect()))
    }
}

/// The application's namespace: not the synced store's (see docs/capture.md,
/// "No echo loop").
fn app_namespace(t: &Topology) -> String {
    format!("{}_app", t.namespace)
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The capture function's environment for `t`: its events topic and
/// dead-letter topic, JSON logs (the tests read the outcome lines).
fn capture_env(t: &Topology, e: &Emulators) -> Vec<(String, String)> {
    vars(&[
        ("GOOGLE_CLOUD_PROJECT", TEST_PROJECT),
        ("PUBSUB_EMULATOR_HOST", &e.pubsub),
        ("EVENTS_TOPIC", &t.topic),
        ("DEAD_LETTER_TOPIC", &t.dead_letter_topic),
        ("LOG_FORMAT", "json"),
    ])
}

fn props(
    pairs: Vec<(&str, sync_capture::proto::Value)>,
) -> BTreeMap<String, sync_capture::proto::Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The change events on the tap, by CloudEvent id (the published
/// `event_id`), each with how many times it was published.
fn by_event_id(
    messages: &[ReceivedMessage],
) -> Result<BTreeMap<String, (EventMessage, usize, ReceivedMessage)>> {
    let mut out: BTreeMap<String, (EventMessage, usize, ReceivedMessage)> = BTreeMap::new();
    for m in messages {
        let event: EventMessage = serde_json::from_slice(&m.data).context("a change event")?;
        let id = event.event_id.clone().context("an event_id")?;
        let entry = out
            .entry(id)
            .or_insert_with(|| (event.clone(), 0, m.clone()));
        ensure!(
            entry.0 == event,
            "a redelivery published a different event: {event:?}"
        );
        entry.1 += 1;
    }
    Ok(out)
}

/// Outcome lines of the capture function's JSON log.
fn outcomes(capture: &FunctionProcess, outcome: &str) -> Vec<Json> {
    capture
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|l| l["outcome"] == outcome)
        .collect()
}

/// Creates, updates (one removing a property) and deletes, delivered out of
/// order and duplicated, end with the application's final state in the
/// synced store; the audit trail records each delivery, and the changes are
/// announced downstream.
#[tokio::test]
async fn captured_writes_converge_in_the_synced_store_whatever_the_delivery_order() -> Result<()> {
    let p = Pipeline::start("capture-flow", &[("CAPTURE_KINDS", KIND)]).await?;
    let lamp = name_key(KIND, "lamp");
    let desk = name_key(KIND, "desk");
    let tags = value(ValueType::ArrayValue(ArrayValue {
        values: vec![string("sale"), string("new")],
    }));
    let mut events = Vec::new();
    let mut write = |e: Option<EntityEvent>| -> Result<()> {
        events.push(e.context("the write changed something")?);
        Ok(())
    };
    write(
        p.app
            .put(
                &lamp,
                props(vec![
                    ("name", string("Desk lamp")),
                    ("price", double(19.5)),
                    ("colour", string("red")),
                    ("stock", integer(3)),
                ]),
            )
            .await?,
    )?;
    // Removes `colour`, changes `price`, adds `tags`.
    write(
        p.app
            .put(
                &lamp,
                props(vec![
                    ("name", string("Desk lamp")),
                    ("price", double(17.5)),
                    ("stock", integer(3)),
                    ("tags", tags.clone()),
                ]),
            )
            .await?,
    )?;
    write(
        p.app
            .put(
                &lamp,
                props(vec![
                    ("name", string("Desk lamp")),
                    ("price", double(15.0)),
                    ("stock", integer(2)),
                    ("tags", tags),
                ]),
            )
            .await?,
    )?;
    write(
        p.app
            .put(&desk, props(vec![("name", string("Desk"))]))
            .await?,
    )?;
    write(p.app.delete(&desk).await?)?;
    // Writing what is already there changes nothing: Eventarc reports nothing.
    let same = p
        .app
        .lookup(&lamp)
        .await?
        .and_then(|r| r.entity)
        .context("lamp")?;
    ensure!(
        p.app.put(&lamp, same.properties).await?.is_none(),
        "a write that changed nothing makes no event"
    );
    ensure!(events.len() == 5);

    // Newest first, interleaved, with duplicates.
    let order = [2, 4, 0, 1, 2, 3, 0, 4];
    for i in order {
        let status = p.deliver(&events[i]).await?;
        ensure!(status == 204, "event {i}: {status}");
    }

    // What the capture published: one change event per delivery, the same
    // event for each delivery of one change, named by its CloudEvent id.
    let published = pull_until(&p.c.puller, &p.tap, order.len(), DEADLINE).await?;
    ensure!(
        published.len() == order.len(),
        "{} published",
        published.len()
    );
    let published = by_event_id(&published)?;
    ensure!(published.len() == events.len(), "{published:?}");
    for (i, e) in events.iter().enumerate() {
        let (event, times, message) = published.get(&e.id).context("each change published")?;
        let want = order.iter().filter(|&&j| j == i).count();
        ensure!(
            *times == want,
            "event {i} published {times} times, delivered {want}"
        );
        ensure!(event.correlation_id.as_deref() == Some(e.id.as_str()));
        ensure!(
            event.source.as_deref()
                == Some(format!("datastore/(default)/{}", app_namespace(&p.t)).as_str()),
            "{event:?}"
        );
        ensure!(event.kind.as_deref() == Some(KIND));
        let tp = message
            .attributes
            .get(trace::TRACEPARENT)
            .context("the trace context")?;
        ensure!(tp.contains(TRACE_ID) && tp != TRACEPARENT, "{tp}");
    }
    let ops: Vec<Operation> = events
        .iter()
        .map(|e| published[&e.id].0.operation)
        .collect();
    ensure!(
        ops == [
            Operation::Create,
            Operation::Update,
            Operation::Update,
            Operation::Create,
            Operation::Delete
        ],
        "{ops:?}"
    );
    let removal = &published[&events[1].id].0;
    ensure!(removal.removed == ["colour"], "{removal:?}");
    let data = removal.data.clone().unwrap_or_default();
    ensure!(
        data.keys().collect::<BTreeSet<_>>()
            == BTreeSet::from([&"price".to_string(), &"tags".to_string()]),
        "an update sends what it changed: {data:?}"
    );

    // The synced store ends with the application's final state. (Whether
    // the removed `colour` stops showing is the sync function's part: the
    // published event lists it in `removed`, checked above.)
    let want = serde_json::json!({
        "name": "Desk lamp", "price": 15.0, "stock": 2, "tags": ["sale", "new"]
    });
    let last_seen = std::sync::Mutex::new(None);
    poll_until(
        DEADLINE,
        "lamp's final state in the synced store",
        || async {
            let state = p.synced("lamp").await?;
            let done = state.as_ref().is_some_and(|s| {
                want.as_object()
                    .is_some_and(|w| w.iter().all(|(k, v)| s.get(k) == Some(v)))
            });
            *last_seen.lock().expect("lock") = state;
            Ok(done.then_some(()))
        },
    )
    .await
    .with_context(|| format!("last seen: {:?}", last_seen.lock().expect("lock")))?;
    let store = p.e.admin(&p.t.namespace).await?;
    poll_until(DEADLINE, "desk deleted, its tombstone kept", || async {
        let gone = p.synced("desk").await?.is_none();
        Ok((gone && store.tombstone_exists(Some(KIND), "desk").await?).then_some(()))
    })
    .await?;
    // The application's own entities were never touched by the sync function.
    let app_lamp = p
        .app
        .lookup(&lamp)
        .await?
        .and_then(|r| r.entity)
        .context("lamp")?;
    ensure!(!app_lamp
        .properties
        .contains_key(sync_core::BOOKKEEPING_PROPERTY));

    // The audit trail: every delivered change, its CloudEvent id as the
    // correlation id.
    let audited = poll_until(DEADLINE, "an audit entry per published event", || async {
        let entries: Vec<Json> = p
            .audit
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter(|l| l["logging.googleapis.com/labels"]["component"] == "datastore-sync")
            .filter(|l| l.get("correlation_id").is_some())
            .collect();
        Ok((entries.len() >= order.len()).then_some(entries))
    })
    .await?;
    for e in &events {
        ensure!(
            audited.iter().any(|a| a["correlation_id"] == e.id.as_str()),
            "{} not audited",
            e.id
        );
    }

    // Downstream: the lamp's changes are announced.
    let mut announced = Vec::new();
    for op in ["create", "update"] {
        announced.extend(
            drain(
                &p.c.puller,
                &p.t.external_subscription(op),
                Duration::from_secs(3),
            )
            .await?,
        );
    }
    ensure!(
        announced.iter().any(
            |m| m.attributes.get("entity_id").map(String::as_str) == Some("lamp")
                && m.attributes.get("kind").map(String::as_str) == Some(KIND)
        ),
        "lamp announced: {announced:?}"
    );
    ensure!(outcomes(&p.capture, "forwarded").len() == order.len());
    Ok(())
}

#[tokio::test]
async fn a_numeric_id_key_is_synced_under_its_decimal_text() -> Result<()> {
    let p = Pipeline::start("capture-numeric", &[]).await?;
    let id = 5_629_499_534_213_120_i64;
    let event = p
        .app
        .put(&id_key(KIND, id), props(vec![("name", string("Numbered"))]))
        .await?
        .context("a create")?;
    ensure!(p.deliver(&event).await? == 204);
    let state = poll_until(DEADLINE, "the numbered entity synced", || async {
        p.synced(&id.to_string()).await
    })
    .await?;
    ensure!(
        state["name"] == "Numbered" && state["version"] == 1,
        "{state:?}"
    );
    Ok(())
}

/// The sync function's own write, captured (its entity carries `_sync`), is
/// acknowledged and not published again.
#[tokio::test]
async fn the_sync_functions_own_writes_are_echoes_and_not_forwarded() -> Result<()> {
    let p = Pipeline::start("capture-echo", &[]).await?;
    let key = name_key(KIND, "chair");
    let event = p
        .app
        .put(&key, props(vec![("name", string("Chair"))]))
        .await?
        .context("a create")?;
    ensure!(p.deliver(&event).await? == 204);
    pull_until(&p.c.puller, &p.tap, 1, DEADLINE).await?;
    poll_until(DEADLINE, "the chair synced", || async {
        p.synced("chair").await
    })
    .await?;

    // The synced store's entity, as the emulator returns it, in a `written`
    // event from the synced store's namespace.
    let synced = AppWriter::connect(&p.e.datastore, &p.t.namespace).await?;
    let written = synced.lookup(&key).await?.context("the synced entity")?;
    ensure!(written
        .entity
        .as_ref()
        .is_some_and(|e| e.properties.contains_key(sync_core::BOOKKEEPING_PROPERTY)));
    let echo = synced
        .event(None, Some(written), None)
        .context("an event")?;
    ensure!(p.deliver(&echo).await? == 204);
    let republished = drain(&p.c.puller, &p.tap, Duration::from_secs(2)).await?;
    ensure!(
        republished.is_empty(),
        "an echo was published: {republished:?}"
    );
    let echoes = outcomes(&p.capture, "echo");
    ensure!(echoes.len() == 1, "{echoes:?}");
    let span = &echoes[0]["span"];
    ensure!(
        span["event_id"] == echo.id.as_str() || span["eventId"] == echo.id.as_str(),
        "{}",
        echoes[0]
    );
    Ok(())
}

/// What cannot be decoded (a truncated body, an unknown event type, JSON
/// where protobuf belongs) reaches the dead-letter topic with its code,
/// and Eventarc gets a 2xx, so it does not redeliver it for a day.
#[tokio::test]
async fn undecodable_events_are_dead_lettered_with_their_code_and_acknowledged() -> Result<()> {
    let p = Pipeline::start("capture-dlq", &[]).await?;
    let event = p
        .app
        .put(
            &name_key(KIND, "stool"),
            props(vec![("name", string("Stool"))]),
        )
        .await?
        .context("a create")?;
    let (headers, body) = event.to_request()?;
    let cut = body[..body.len() / 2].to_vec();
    let mut unknown = headers.clone();
    unknown.insert(
        "ce-type",
        "google.cloud.datastore.entity.v1.archived".parse()?,
    );
    unknown.insert("ce-id", "unknown-type-1".parse()?);
    let mut json = headers.clone();
    json.insert("content-type", "application/json".parse()?);
    json.insert("ce-id", "json-body-1".parse()?);
    let cases = [
        (&headers, cut.clone(), "invalid_protobuf"),
        (&unknown, body.clone(), "unknown_event_type"),
        (
            &json,
            b"{\"value\":{}}".to_vec(),
            "unsupported_content_type",
        ),
    ];
    for (h, b, code) in &cases {
        let status = post_raw(&p.http, &p.capture.url(), h, b.clone()).await?;
        ensure!(status == 204, "{code}: {status}");
    }
    let dead = pull_until(&p.c.puller, &p.t.dlq_subscription, cases.len(), DEADLINE).await?;
    ensure!(dead.len() == cases.len(), "{dead:?}");
    for (h, b, code) in &cases {
        let id = h
            .get("ce-id")
            .and_then(|v| v.to_str().ok())
            .context("an id")?;
        let d = dead
            .iter()
            .find(|d| {
                d.attributes
                    .get(dead_letter::ERROR_CODE)
                    .map(String::as_str)
                    == Some(code)
            })
            .with_context(|| format!("{code} dead-lettered"))?;
        ensure!(&d.data == b, "{code}: the body, whole");
        ensure!(
            d.attributes
                .get(dead_letter::ORIGINAL_MESSAGE_ID)
                .map(String::as_str)
                == Some(id)
        );
        ensure!(
            d.attributes.get("ce-type")
                == h.get("ce-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .as_ref()
        );
    }
    let nothing = drain(&p.c.puller, &p.tap, Duration::from_secs(1)).await?;
    ensure!(nothing.is_empty(), "published: {nothing:?}");
    ensure!(outcomes(&p.capture, "dead_lettered").len() == cases.len());
    Ok(())
}

/// A publish that fails is answered 503, so Eventarc delivers the event
/// again; once the topic exists the redelivery goes through.
#[tokio::test]
async fn a_failed_publish_is_503_and_the_redelivery_is_published() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("capture-retry");
    // The events topic does not exist yet.
    let mut env = capture_env(&t, &e);
    env.retain(|(k, _)| k != "DEAD_LETTER_TOPIC");
    env.push(("PUBSUB_PUBLISH_TIMEOUT_MS".into(), "3000".into()));
    let capture = FunctionProcess::start("capture-function", env).await?;
    let app = AppWriter::connect(&e.datastore, &format!("{}_app", t.namespace)).await?;
    let event = app
        .put(
            &name_key(KIND, "shelf"),
            props(vec![("name", string("Shelf"))]),
        )
        .await?
        .context("a create")?;
    let http = reqwest::Client::new();
    let status = deliver(&http, &capture.url(), &event).await?;
    ensure!(status == 503, "{status}");
    ensure!(outcomes(&capture, "retry").len() == 1);
    c.admin.create_topic(&t.topic).await?;
    let tap = format!("{}-tap", t.prefix);
    c.admin
        .create_pull_subscription(&tap, &t.topic, &SubscriptionConfig::default())
        .await?;
    let status = deliver(&http, &capture.url(), &event).await?;
    ensure!(status == 204, "{status}");
    let published = pull_until(&c.puller, &tap, 1, DEADLINE).await?;
    let m: EventMessage = serde_json::from_slice(&published[0].data)?;
    ensure!(m.event_id.as_deref() == Some(event.id.as_str()));
    Ok(())
}

/// A configuration that would capture the sync function's own kinds never
/// starts: the binary exits with status 2, naming the variable and the kinds.
#[tokio::test]
async fn capturing_the_sync_functions_kinds_is_refused_at_start() -> Result<()> {
    let binary = bin_path("capture-function")?;
    for (kinds, sync_kind, named) in [
        ("Product,SyncEntity", None, "SyncEntity"),
        ("SyncTombstone", None, "SyncTombstone"),
        ("Product", Some("Product"), "Product"),
    ] {
        let mut command = std::process::Command::new(&binary);
        command
            .env_clear()
            .env("GOOGLE_CLOUD_PROJECT", TEST_PROJECT)
            .env("PORT", "0")
            .env("CAPTURE_KINDS", kinds);
        if let Some(k) = sync_kind {
            command.env("SYNC_KIND", k);
        }
        let out = tokio::task::spawn_blocking(move || command.output()).await??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2),
            "{kinds}: {:?} {stderr}",
            out.status
        );
        ensure!(
            stderr.contains("the capture function's configuration is invalid")
                && stderr.contains("CAPTURE_KINDS")
                && stderr.contains(named)
                && stderr.contains("sync function's own"),
            "{stderr}"
        );
    }
    Ok(())
}

/// Production's memory limit under Cloud Run's concurrency: 80 events at
/// once at an instance of 256 MiB (`deploy/`'s), 20 of them the worst case
/// measured (an entity of 80,000 integer properties: 1.26 MB of protobuf,
/// about 36 times that decoded), the others small. Every event is published
/// (some after a 429, which Eventarc redelivers), and the peak resident
/// size stays under the limit (without the admission by bytes, it rose to
/// 650 MiB here).
#[tokio::test]
async fn a_burst_of_the_largest_events_stays_within_the_instance_memory() -> Result<()> {
    use sync_capture::emulate::{entity_event, Origin};
    use sync_capture::proto::{Entity, EntityResult};
    use sync_testkit::burst::{burst, ProcMemory};
    use sync_testkit::CapturedRequest;
    const LIMIT_MIB: u64 = 256;
    const EVENTS: usize = 80;
    const LARGE: usize = 20;

    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("capture-burst");
    c.admin.create_topic(&t.topic).await?;
    let tap = format!("{}-tap", t.prefix);
    c.admin
        .create_pull_subscription(&tap, &t.topic, &SubscriptionConfig::default())
        .await?;
    let mut env = capture_env(&t, &e);
    env.retain(|(k, _)| k != "DEAD_LETTER_TOPIC");
    env.push(("MEMORY_LIMIT_MIB".into(), LIMIT_MIB.to_string()));
    let capture = FunctionProcess::start("capture-function", env).await?;
    let pid = capture.pid().context("the capture function runs")?;

    let prefix = t.prefix.clone();
    let make = move |i: usize| {
        let count = if i < LARGE { 80_000 } else { 5 };
        let properties = (0..count)
            .map(|p| (format!("p{p:05}"), integer(p)))
            .collect();
        let entity = Entity {
            key: Some(name_key(KIND, &format!("item-{i}"))),
            properties,
        };
        let after = EntityResult {
            entity: Some(entity),
            version: 1,
            ..EntityResult::default()
        };
        let written = sync_capture::EventType::parse("google.cloud.datastore.entity.v1.written")
            .expect("a type");
        let event = entity_event(
            &Origin::new(TEST_PROJECT, Some("burst")),
            format!("{prefix}-{i}"),
            written,
            None,
            Some(after),
            chrono::Utc::now(),
        )
        .expect("a create");
        let (headers, body) = event.to_request().expect("headers");
        CapturedRequest {
            description: format!("event {i}"),
            method: "POST".into(),
            path: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        v.to_str().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            body,
        }
    };
    let result = burst(&capture.url(), EVENTS, make, Duration::from_secs(300))
        .await
        .with_context(|| format!("capture log:\n{}", capture.log_tail(20)))?;
    let after = ProcMemory::of(pid)?;
    eprintln!(
        "capture-function under a burst of {EVENTS} events ({LARGE} of 1.26 MB, 80,000 properties each): peak {:.1} MiB of {LIMIT_MIB} MiB, {} redeliveries ({:?}), {:?}",
        after.peak_mib(),
        result.redeliveries(),
        result.redelivered,
        result.elapsed
    );
    ensure!(
        result.not_acked().is_empty(),
        "not acked: {:?}",
        result.not_acked()
    );
    ensure!(
        after.peak_kib <= LIMIT_MIB * 1024,
        "peak RSS {:.1} MiB is over the {LIMIT_MIB} MiB limit",
        after.peak_mib()
    );
    let published = pull_until(&c.puller, &tap, EVENTS, Duration::from_secs(120)).await?;
    let ids: BTreeSet<String> = published
        .iter()
        .filter_map(|m| {
            serde_json::from_slice::<EventMessage>(&m.data)
                .ok()?
                .event_id
        })
        .collect();
    ensure!(
        ids.len() == EVENTS,
        "{} distinct events published",
        ids.len()
    );
    Ok(())
}

/// `/livez` answers at once; `/healthz` and events answer 503 until Pub/Sub
/// has answered (here it never does: its host does not listen), so Cloud
/// Run's startup probe keeps Eventarc's pushes away.
#[tokio::test]
async fn healthz_waits_for_pubsub_while_livez_answers_at_once() -> Result<()> {
    let port = sync_testkit::free_port()?;
    let nowhere = sync_testkit::free_port()?;
    let log = std::env::temp_dir().join(format!(
        "{}.log",
        sync_testkit::unique_name("capture-unready")
    ));
    let out = std::fs::File::create(&log)?;
    let mut child = std::process::Command::new(bin_path("capture-function")?)
        .env_clear()
        .env("GOOGLE_CLOUD_PROJECT", TEST_PROJECT)
        .env("PUBSUB_EMULATOR_HOST", format!("127.0.0.1:{nowhere}"))
        .env("PORT", port.to_string())
        .env("READY_TIMEOUT_SECS", "1")
        .env("LOG_FORMAT", "json")
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let checked = async {
        poll_until(DEADLINE, "/livez to answer 200", || async {
            let live = http.get(format!("{base}/livez")).send().await;
            Ok(live.is_ok_and(|r| r.status() == 200).then_some(()))
        })
        .await?;
        let health = http.get(format!("{base}/healthz")).send().await?.status();
        ensure!(health == 503, "/healthz {health}");
        let event = http
            .post(format!("{base}/"))
            .body("x")
            .send()
            .await?
            .status();
        ensure!(event == 503, "an event before ready: {event}");
        // It keeps trying, and says why.
        poll_until(DEADLINE, "the failed warm-up logged", || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text.contains("backends not ready").then_some(()))
        })
        .await
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    checked
}

/// SIGTERM (Cloud Run's stop): the function stops taking requests, sends
/// what its publisher holds and logs what it counted.
#[tokio::test]
async fn sigterm_drains_the_publisher_and_logs_the_counts() -> Result<()> {
    let p = Pipeline::start("capture-stop", &[]).await?;
    let event = p
        .app
        .put(
            &name_key(KIND, "bench"),
            props(vec![("name", string("Bench"))]),
        )
        .await?
        .context("a create")?;
    ensure!(p.deliver(&event).await? == 204);
    let pid = p.capture.pid().context("running")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -TERM {pid}");
    let counted = poll_until(DEADLINE, "the counts logged at shutdown", || async {
        Ok(p.capture
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .find(|l| l["message"] == "events counted"))
    })
    .await?;
    let events: Json = counted["events"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .context("the counts as JSON")?;
    ensure!(events["forwarded"] == 1, "{counted}");
    Ok(())
}
