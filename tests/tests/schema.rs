//! Schema evolution end to end on the emulators: version-1 and version-2
//! publishers write the same entity through the real push path, with the
//! example history of docs/semantics.md (`scripts/testdata/schema_history.toml`)
//! given to the sync function and to the audit function (a process, reading
//! `SCHEMA_HISTORY_FILE` as deployed). Every mix of versions leaves the
//! Datastore entity the version-2 events alone give; a version the history
//! does not know is dead-lettered; the audit records both versions.

use anyhow::{ensure, Context, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use sync_config::SCHEMA_HISTORY_FILE;
use sync_core::{EventMessage, MergePolicy, Operation};
use sync_testkit::harness::*;
use sync_testkit::{poll_until, pull_until, Emulators};

/// The documented example (docs/semantics.md).
const HISTORY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/testdata/schema_history.toml"
);
/// One entity's changes in both versions, and the entity they give.
const EVENTS: &str = include_str!("../../scripts/testdata/schema_events.json");

struct Fixture {
    changes: Vec<Change>,
    expected: Map<String, Value>,
}

struct Change {
    operation: Operation,
    timestamp: String,
    v1: Map<String, Value>,
    v2: Map<String, Value>,
}

fn object(v: &Value, name: &str) -> Result<Map<String, Value>> {
    v[name]
        .as_object()
        .cloned()
        .with_context(|| format!("`{name}` is an object in {v}"))
}

fn fixture() -> Result<Fixture> {
    let v: Value = serde_json::from_str(EVENTS)?;
    let changes = v["changes"]
        .as_array()
        .context("changes")?
        .iter()
        .map(|c| {
            Ok(Change {
                operation: Operation::parse(c["operation"].as_str().context("operation")?)?,
                timestamp: c["timestamp"].as_str().context("timestamp")?.to_string(),
                v1: object(c, "v1")?,
                v2: object(c, "v2")?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Fixture {
        changes,
        expected: object(&v, "expected")?,
    })
}

/// Which version publishes each change of an entity.
#[derive(Debug, Clone, Copy)]
enum Mix {
    /// Old publishers only, which never name a version.
    V1Only,
    V2Only,
    /// Version 1 for even changes, 2 for odd ones.
    Alternating,
    /// Version 2 for even changes, 1 (named) for odd ones.
    AlternatingFrom2,
}

impl Mix {
    const ALL: [Mix; 4] = [
        Mix::V1Only,
        Mix::V2Only,
        Mix::Alternating,
        Mix::AlternatingFrom2,
    ];

    fn entity(self) -> String {
        format!("lamp-{self:?}").to_lowercase()
    }

    fn version(self, i: usize) -> i64 {
        match self {
            Mix::V1Only => 1,
            Mix::V2Only => 2,
            Mix::Alternating => 1 + (i % 2) as i64,
            Mix::AlternatingFrom2 => 2 - (i % 2) as i64,
        }
    }

    fn message(self, i: usize, change: &Change) -> EventMessage {
        let version = self.version(i);
        let (data, source) = match version {
            1 => (&change.v1, "catalog-v1"),
            _ => (&change.v2, "catalog-v2"),
        };
        let m = EventMessage::new(self.entity(), change.operation, &change.timestamp)
            .source(source)
            .data(data.clone());
        match self {
            Mix::V1Only => m,
            _ => m.schema_version(version),
        }
    }
}

#[test]
fn the_docs_show_the_fixture_history() -> Result<()> {
    let history = std::fs::read_to_string(HISTORY)?;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let shown = ["docs/semantics.md"].iter().any(|doc| {
        std::fs::read_to_string(format!("{root}/{doc}")).is_ok_and(|text| text.contains(&history))
    });
    ensure!(shown, "docs/semantics.md shows {HISTORY} verbatim");
    Ok(())
}

#[tokio::test]
async fn version_one_and_two_publishers_converge_to_what_version_two_alone_gives() -> Result<()> {
    let fixture = fixture()?;
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("schema");
    t.create_base(&c.admin).await?;
    let mut env = sync_env(&t, &e);
    env.push((SCHEMA_HISTORY_FILE.to_string(), HISTORY.to_string()));
    let sync = sync_in_process(&env).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    // A process: the test reads what it wrote, and it reads the variable itself.
    let audit = FunctionProcess::start(
        "audit-function",
        vec![
            (SCHEMA_HISTORY_FILE.to_string(), HISTORY.to_string()),
            ("LOG_FORMAT".to_string(), "text".to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ],
    )
    .await?;
    t.subscribe_audit(&c.admin, &audit.url()).await?;

    // Every entity's changes, published newest first, entities interleaved:
    // the merge, not the delivery order, decides.
    // Per message: the version sent, and whether upcasting changes it.
    let mut versions = BTreeMap::new();
    for i in (0..fixture.changes.len()).rev() {
        let change = &fixture.changes[i];
        for mix in Mix::ALL {
            let id = c
                .publish(&t.topic, mix.message(i, change).to_bytes())
                .await?;
            let version = mix.version(i);
            versions.insert(id, (version, version == 1 && change.v1 != change.v2));
        }
    }
    let future = EventMessage::new("lamp-future", Operation::Create, "2025-07-23T10:00:00")
        .schema_version(3)
        .field("title", "from a newer publisher");
    let future_id = c.publish(&t.topic, future.to_bytes()).await?;

    let store = e.admin(&t.namespace).await?;
    let policy = MergePolicy::default();
    let entities = poll_until(
        Duration::from_secs(120),
        "every entity to show the fixture's expected fields",
        || async {
            let mut all = BTreeMap::new();
            for mix in Mix::ALL {
                match store.get(None, &mix.entity()).await? {
                    Some((_, s)) if s.visible_fields(&policy) == fixture.expected => {
                        all.insert(mix.entity(), s.visible_fields(&policy));
                    }
                    _ => return Ok(None),
                }
            }
            Ok(Some(all))
        },
    )
    .await?;
    let v2_only = &entities[&Mix::V2Only.entity()];
    for (id, fields) in &entities {
        ensure!(fields == v2_only, "{id}: {fields:?} is not {v2_only:?}");
    }
    // The stored properties themselves: no old name, nothing dropped survives.
    let rows = store.query_kind("SyncEntity").await?;
    ensure!(rows.len() == Mix::ALL.len(), "four entities: {rows:?}");
    for (key, props) in &rows {
        for old in ["name", "street", "city", "fax"] {
            ensure!(!props.contains_key(old), "{key} stores {old}: {props:?}");
        }
    }

    let dead = pull_until(&c.puller, &t.dlq_subscription, 1, Duration::from_secs(60)).await?;
    ensure!(dead.len() == 1, "only the future version: {dead:?}");
    let attributes = &dead[0].attributes;
    ensure!(
        attributes.get("original_message_id") == Some(&future_id)
            && attributes.get("error_code").map(String::as_str)
                == Some("unsupported_schema_version"),
        "{attributes:?}"
    );
    ensure!(store.get(None, "lamp-future").await?.is_none());

    // The audit: one event entry per message, with both versions.
    let total = versions.len() + 1;
    let entries = poll_until(
        Duration::from_secs(60),
        "an audit entry for every message",
        || async {
            let entries: Vec<Value> = audit
                .log_text()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["event_type"] == "data_synchronization")
                .collect();
            Ok((entries.len() >= total).then_some(entries))
        },
    )
    .await
    .with_context(|| audit.log_tail(20))?;
    for entry in &entries {
        let id = entry["message_id"].as_str().context("message_id")?;
        if id == future_id {
            ensure!(
                entry["validation_error"]["error_code"] == "unsupported_schema_version"
                    && entry.get("schema").is_none(),
                "{entry}"
            );
            continue;
        }
        let (received, changed) = versions.get(id).copied().context("a published message")?;
        let schema = &entry["schema"];
        ensure!(
            schema["received_version"] == received
                && schema["version"] == 2
                && schema["changed"] == changed,
            "{entry}"
        );
        if changed {
            let upcast = &schema["upcast_data_snapshot"];
            ensure!(
                upcast.is_object() && upcast.get("name").is_none(),
                "{entry}"
            );
        }
    }
    Ok(())
}
