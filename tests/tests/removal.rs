//! Removed fields and event ids (issue 22) on the real emulators: the
//! Datastore emulator, or the Firestore emulator in Datastore mode (the
//! suite reads `Emulators::shared()`, so `scripts/test.sh` runs it on both).
//!
//! A field an update lists in `removed` disappears from the stored Datastore
//! entity (no property at all, not a null), an older write of it arriving
//! later is refused and recorded, a newer one brings it back; every delivery
//! order, one by one or grouped in one transaction, stores the same entity
//! (also under the `max` rule); entities of the stored layout from before
//! removals existed take removals; the same change published twice under its
//! `event_id` is stored, recorded and announced once; and through Pub/Sub
//! push, an update that removes a field is announced without it.
//!
//! Self-contained: every test has its own namespace (and topics), so the
//! tests run in parallel on one shared emulator.

use crate::datastore::write_stored_layout;
use anyhow::{ensure, Context, Result};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use sync_core::{
    merge, parse_event, parse_timestamp, ChangeEvent, EntityStore, MergePolicy, Outcome,
    ValidationLimits,
};
use sync_store::DatastoreStore;
use sync_testkit::harness::{sync_env, sync_in_process, wait_for_version, Clients, Topology};
use sync_testkit::raw_event::timestamp_in;
use sync_testkit::{drain, event as change_event, post, pull_until, push, unique_name, Emulators};

const KIND: &str = "SyncEntity";

/// A store on a fresh namespace of the shared emulator, under `policy`.
async fn store_with(policy: MergePolicy) -> Result<DatastoreStore> {
    let mut config = Emulators::shared()
        .await?
        .store_config(&unique_name("removal"));
    config.policy = Arc::new(policy);
    Ok(DatastoreStore::connect(config).await?)
}

async fn store() -> Result<DatastoreStore> {
    store_with(MergePolicy::default()).await
}

/// A receiving clock far enough ahead that no test timestamp is "future".
fn now() -> chrono::DateTime<chrono::Utc> {
    parse_timestamp("2030-01-01T00:00:00Z").expect("fixed clock")
}

/// What one event says: operation, timestamp, data, removed fields, and its
/// own event id when it has one.
#[derive(Clone)]
struct Spec {
    op: &'static str,
    ts: &'static str,
    data: Value,
    removed: &'static [&'static str],
    event_id: Option<&'static str>,
}

fn spec(op: &'static str, ts: &'static str, data: Value) -> Spec {
    Spec {
        op,
        ts,
        data,
        removed: &[],
        event_id: None,
    }
}

fn removing(ts: &'static str, data: Value, removed: &'static [&'static str]) -> Spec {
    Spec {
        removed,
        ..spec("update", ts, data)
    }
}

impl Spec {
    /// The message data a publisher sends for entity `id`.
    fn bytes(&self, id: &str) -> Vec<u8> {
        let mut e = change_event(id, self.op, self.ts)
            .source("app")
            .correlation_id(&format!("corr-{id}-{}", self.ts));
        if self.op != "delete" {
            e = e.data(self.data.clone());
        }
        if !self.removed.is_empty() {
            e = e.removed(json!(self.removed));
        }
        if let Some(event_id) = self.event_id {
            e = e.event_id(event_id);
        }
        e.to_bytes()
    }

    /// The validated event for entity `id`, delivered as `message_id`.
    fn event(&self, id: &str, message_id: &str) -> Result<ChangeEvent> {
        Ok(parse_event(
            &self.bytes(id),
            message_id,
            &ValidationLimits::default(),
            now(),
        )?)
    }
}

/// The entity's properties as Datastore holds them (without `_sync`), or
/// `None` when there is no entity: read by a kind query, not through the
/// merge state.
async fn properties(store: &DatastoreStore, id: &str) -> Result<Option<Map<String, Value>>> {
    Ok(store
        .admin()
        .query_kind(KIND)
        .await?
        .into_iter()
        .find(|(name, _)| name == id)
        .map(|(_, fields)| fields))
}

/// The user properties of `id` (the recipe's own four left out).
async fn user_properties(store: &DatastoreStore, id: &str) -> Result<Value> {
    let mut props = properties(store, id)
        .await?
        .with_context(|| format!("entity {id} stored"))?;
    for recipe in [
        "version",
        "last_modified",
        "sync_status",
        "conflict_resolved",
    ] {
        props.remove(recipe);
    }
    Ok(Value::Object(props))
}

#[tokio::test]
async fn a_removed_field_leaves_the_datastore_entity_and_an_older_write_cannot_bring_it_back(
) -> Result<()> {
    let store = store().await?;
    let id = "lamp";
    let create = spec(
        "create",
        "2025-07-23T10:00:00",
        json!({"name": "Lamp", "colour": "red", "size": 3}),
    );
    let r = store.apply(&create.event(id, "m-1")?).await?;
    ensure!(r.outcome == Outcome::Applied, "{r:?}");

    let remove = removing("2025-07-23T10:00:02", json!({"size": 4}), &["colour"]);
    let r = store.apply(&remove.event(id, "m-2")?).await?;
    ensure!(r.outcome == Outcome::Applied && r.version() == 2, "{r:?}");
    let props = properties(&store, id).await?.context("stored")?;
    ensure!(
        !props.contains_key("colour"),
        "the property is gone, not null: {props:?}"
    );
    assert_eq!(props.get("name"), Some(&json!("Lamp")));
    assert_eq!(props.get("size"), Some(&json!(4)));
    assert_eq!(props.get("version"), Some(&json!(2)));
    let (stored, _) = store.admin().get(None, id).await?.context("stored")?;
    let bookkeeping = stored.bookkeeping.context("bookkeeping")?;
    ensure!(
        bookkeeping.contains(r#""rm":{"colour":"#),
        "the removal key is kept: {bookkeeping}"
    );

    // Written between the create and the removal, delivered last: refused,
    // and recorded as a conflict lost to the removal.
    let late = spec("update", "2025-07-23T10:00:01", json!({"colour": "blue"}));
    let r = store.apply(&late.event(id, "m-late")?).await?;
    ensure!(r.outcome == Outcome::Stale && r.version() == 2, "{r:?}");
    ensure!(!properties(&store, id)
        .await?
        .context("stored")?
        .contains_key("colour"));
    let records = store.admin().conflicts(None, Some(id)).await?;
    let record = records
        .iter()
        .find(|r| r.event_id == "m-late")
        .context("the late write's conflict record")?;
    let field = record.fields.first().context("one field")?;
    assert_eq!(
        (field.field.as_str(), field.reason.as_str()),
        ("colour", "removed_later")
    );
    assert_eq!(field.winner_value, None);
    assert_eq!(field.loser_value, json!("blue"));

    // A newer write brings it back.
    let newer = spec("update", "2025-07-23T10:00:03", json!({"colour": "green"}));
    let r = store.apply(&newer.event(id, "m-3")?).await?;
    ensure!(r.outcome == Outcome::Applied && r.version() == 3, "{r:?}");
    assert_eq!(
        user_properties(&store, id).await?,
        json!({"name": "Lamp", "colour": "green", "size": 4})
    );
    Ok(())
}

/// Every permutation of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first.clone());
            out.push(p);
        }
    }
    out
}

/// The events of the order tests: a create, a removal of `a` and `score`
/// (and a write of `d`), a write of `a` older than the removal, and a newer
/// write of `score` and `b`. Under `max` for `score`: the create's 10 is
/// removed, so the newer, smaller 5 shows whatever the order.
fn order_events() -> Vec<(Spec, &'static str)> {
    vec![
        (
            spec(
                "create",
                "2025-07-23T10:00:00",
                json!({"a": 1, "b": 1, "c": 1, "score": 10}),
            ),
            "m-create",
        ),
        (
            removing("2025-07-23T10:00:02", json!({"d": 1}), &["a", "score"]),
            "m-remove",
        ),
        (
            spec("update", "2025-07-23T10:00:01", json!({"a": 5, "c": 6})),
            "m-late",
        ),
        (
            spec("update", "2025-07-23T10:00:03", json!({"b": 7, "score": 5})),
            "m-newer",
        ),
    ]
}

#[tokio::test]
async fn every_delivery_order_stores_the_same_entity() -> Result<()> {
    let policy = MergePolicy::from_json(r#"{"fields":{"score":"max"}}"#)?;
    let store = store_with(policy).await?;
    let want = json!({"b": 7, "c": 6, "d": 1, "score": 5});
    for (n, order) in permutations(&order_events()).iter().enumerate() {
        let id = format!("order-{n}");
        for (spec, message_id) in order {
            store.apply(&spec.event(&id, message_id)?).await?;
        }
        let got = user_properties(&store, &id).await?;
        ensure!(got == want, "order {n}: {got}");
    }
    Ok(())
}

#[tokio::test]
async fn removals_applied_concurrently_in_one_group_store_the_same_entity() -> Result<()> {
    // Concurrent applies on one entity may share transactions (group commit):
    // the group's merge must give what one by one gives.
    let policy = MergePolicy::from_json(r#"{"fields":{"score":"max"}}"#)?;
    let store = store_with(policy).await?;
    let want = json!({"b": 7, "c": 6, "d": 1, "score": 5});
    for round in 0..6 {
        let id = format!("group-{round}");
        let mut events = Vec::new();
        for (spec, message_id) in order_events() {
            events.push(spec.event(&id, message_id)?);
        }
        // Each round starts the events in another order; a redelivery too.
        events.rotate_left(round % 4);
        events.push(events[0].clone());
        let mut applies = tokio::task::JoinSet::new();
        for event in events {
            let store = store.clone();
            applies.spawn(async move { store.apply(&event).await });
        }
        while let Some(done) = applies.join_next().await {
            done??;
        }
        let got = user_properties(&store, &id).await?;
        ensure!(got == want, "round {round}: {got}");
    }
    Ok(())
}

#[tokio::test]
async fn a_delete_newer_than_a_removal_covers_it_and_a_newer_removal_recreates() -> Result<()> {
    let store = store().await?;
    let events = [
        (
            spec("create", "2025-07-23T10:00:00", json!({"a": 1, "b": 1})),
            "m-1",
        ),
        (removing("2025-07-23T10:00:01", json!({}), &["a"]), "m-2"),
        (spec("delete", "2025-07-23T10:00:02", json!(null)), "m-3"),
        // After the delete: brings the entity back with `c`, removes `a`.
        (
            removing("2025-07-23T10:00:04", json!({"c": 3}), &["a"]),
            "m-4",
        ),
        // Between the delete and that removal: `a` loses to the removal.
        (
            spec("update", "2025-07-23T10:00:03", json!({"a": 9, "e": 5})),
            "m-5",
        ),
    ];
    let want = json!({"c": 3, "e": 5});
    for (n, order) in permutations(&events).iter().enumerate().step_by(7) {
        let id = format!("delete-{n}");
        for (spec, message_id) in order {
            store.apply(&spec.event(&id, message_id)?).await?;
        }
        let got = user_properties(&store, &id).await?;
        ensure!(got == want, "order {n}: {got}");
        ensure!(
            !store.admin().tombstone_exists(None, &id).await?,
            "order {n}: the entity exists again, its tombstone is gone"
        );
    }
    Ok(())
}

/// Entities as the stored layout from before removals wrote them
/// (`tests/stored/layout_4159480.json`, whose `_sync` has no `rm`), written
/// raw, take removals: each ends as the core's merge of the events behind
/// it and the new ones, and a removed field leaves the Datastore entity.
#[tokio::test]
async fn entities_stored_before_removals_existed_take_removals() -> Result<()> {
    let fixture: Value = serde_json::from_str(include_str!("../stored/layout_4159480.json"))?;
    let store = store().await?;
    let admin = store.admin();
    for e in fixture["entities"].as_array().context("entities")? {
        let text = e["properties"]["_sync"]["stringValue"].as_str();
        ensure!(
            !text.is_some_and(|t| t.contains("\"rm\"")),
            "the old layout has no removals"
        );
    }
    let mut expected = write_stored_layout(&admin, &fixture).await?;
    let policy = MergePolicy::default();

    let next = [
        // `live` loses three fields; a write of one older than the removal
        // comes later and is refused.
        (
            "live",
            removing(
                "2025-03-01T10:00:03",
                json!({}),
                &["tags", "meta", "status"],
            ),
            "live-4",
        ),
        (
            "live",
            spec("update", "2025-03-01T10:00:02.5", json!({"tags": ["z"]})),
            "live-5",
        ),
        // The deleted entity comes back without `name`, which it no longer had.
        (
            "deleted",
            removing("2025-03-01T10:00:05", json!({"name": "Back"}), &["price"]),
            "deleted-3",
        ),
        // Older than `phoenix`'s delete: changes nothing.
        (
            "phoenix",
            removing("2025-03-01T10:00:00.5", json!({}), &["price"]),
            "phoenix-4",
        ),
    ];
    for (id, spec, message_id) in &next {
        let event = spec.event(id, message_id)?;
        let state = expected.entry((*id).to_string()).or_default();
        *state = merge(state, &event, &policy).state;
        store.apply(&event).await?;
    }
    for (id, want) in &expected {
        let (_, got) = admin.get(None, id).await?.context("stored")?;
        assert_eq!(&got, want, "{id}");
    }
    let live = user_properties(&store, "live").await?;
    for gone in ["tags", "meta", "status"] {
        ensure!(live.get(gone).is_none(), "`{gone}` left `live`: {live}");
    }
    ensure!(live["price"] == json!(12) && live["name"] == json!("Widget"));
    assert_eq!(
        user_properties(&store, "deleted").await?,
        json!({"name": "Back"})
    );
    assert_eq!(
        user_properties(&store, "phoenix").await?,
        json!({"price": 2})
    );
    Ok(())
}

#[tokio::test]
async fn the_same_change_published_twice_is_stored_and_recorded_once() -> Result<()> {
    let store = store().await?;
    let id = "twice";
    let first = Spec {
        event_id: Some("ce-1"),
        ..spec("create", "2025-07-23T10:00:00", json!({"name": "A"}))
    };
    let r = store.apply(&first.event(id, "m-1")?).await?;
    ensure!(r.outcome == Outcome::Applied, "{r:?}");
    // Published again: another message id, the same event id.
    let r = store.apply(&first.event(id, "m-2")?).await?;
    ensure!(r.outcome == Outcome::Duplicate && r.version() == 1, "{r:?}");
    ensure!(r.conflicts.is_empty());

    // A change that loses (another writer's newer value holds the field),
    // published twice: one conflict record, named by its event id.
    let newer = spec("update", "2025-07-23T10:00:05", json!({"name": "C"}));
    store.apply(&newer.event(id, "m-3")?).await?;
    let loser = Spec {
        event_id: Some("ce-2"),
        ..spec("update", "2025-07-23T10:00:01", json!({"name": "B"}))
    };
    for message_id in ["m-4", "m-5"] {
        let r = store.apply(&loser.event(id, message_id)?).await?;
        ensure!(r.outcome == Outcome::Stale && r.version() == 2, "{r:?}");
    }
    let records = store.admin().conflicts(None, Some(id)).await?;
    let ids: Vec<&str> = records.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["ce-2"], "one record, under the event id");
    assert_eq!(
        user_properties(&store, id).await?,
        json!({"name": "C"}),
        "and the state is the one event's"
    );
    Ok(())
}

/// The sync function in-process, on both emulators: the same create
/// delivered twice under two message ids (posted as Pub/Sub pushes, one
/// after the other) is applied and announced once; an update that removes a
/// field, published through Pub/Sub push, is applied (the property leaves
/// Datastore) and announced as an update whose data lacks the field, as
/// version 2.
#[tokio::test]
async fn through_the_sync_function_a_removal_is_announced_without_the_field() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("removal");
    t.create_base(&c.admin).await?;
    let sync = sync_in_process(&sync_env(&t, &e)).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    let store = e.admin(&t.namespace).await?;
    let id = "captured-1";

    let create = change_event(id, "create", &timestamp_in(0))
        .source("datastore/(default)/(default)")
        .event_id("ce-create")
        .data(json!({"name": "Lamp", "colour": "red"}))
        .to_bytes();
    for message_id in ["1001", "1002"] {
        let status = post(&sync.url(), &push(&create, message_id).build()).await?;
        ensure!(status == 204, "{message_id}: {status}");
    }
    let (_, state) = store.get(None, id).await?.context("stored")?;
    ensure!(state.version() == 1, "version {}", state.version());
    let created = pull_until(
        &c.puller,
        &t.external_subscription("create"),
        1,
        Duration::from_secs(30),
    )
    .await?;
    let more = drain(
        &c.puller,
        &t.external_subscription("create"),
        Duration::from_millis(500),
    )
    .await?;
    ensure!(
        created.len() + more.len() == 1,
        "one create announcement, got {}",
        created.len() + more.len()
    );

    let removal = change_event(id, "update", &timestamp_in(1))
        .source("datastore/(default)/(default)")
        .event_id("ce-update")
        .data(json!({}))
        .removed(json!(["colour"]))
        .to_bytes();
    c.publish(&t.topic, removal).await?;
    let state = wait_for_version(&store, id, 2, Duration::from_secs(60)).await?;
    let visible = Value::Object(state.visible_fields(&MergePolicy::default()));
    ensure!(visible == json!({"name": "Lamp"}), "{visible}");
    let (stored, _) = store.get(None, id).await?.context("stored")?;
    ensure!(!stored.fields.contains_key("colour"), "{:?}", stored.fields);
    let updated = pull_until(
        &c.puller,
        &t.external_subscription("update"),
        1,
        Duration::from_secs(30),
    )
    .await?;
    let payload: Value = serde_json::from_slice(&updated.first().context("announced")?.data)?;
    ensure!(
        payload["version"] == 2 && payload["data"] == json!({"name": "Lamp"}),
        "the announcement's data lacks the removed field: {payload}"
    );
    Ok(())
}
