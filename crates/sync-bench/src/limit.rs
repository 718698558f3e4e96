//! The Datastore emulator's own limit: the sync function's transaction per
//! event (begin, lookup of entity and tombstone, commit), made with
//! `sync-store`'s [`DatastoreStore`] by many workers at once straight to the
//! emulator, with no HTTP and no Pub/Sub in the way. This is the ceiling the
//! sync function's end-to-end rate is compared with.
//!
//! The store is the production one (same client, entity layout, bookkeeping,
//! and retry on contention) with one setting changed: its per-key
//! serialization is off, so the workers contend in the emulator as separate
//! instances would. Entities are drawn uniformly, as `syncctl load` draws
//! them. Every event is a new one (new id, current timestamp, a value no
//! other event wrote), so every transaction commits: the entity, or, when a
//! newer event on the entity committed first, the losing event's conflict
//! record.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_core::{parse_event, EntityStore, StoreError, ValidationLimits};
use sync_store::{DatastoreStore, StoreConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespace (isolates runs from the sync function's data).
    pub namespace: String,
    /// Entity ids are `PREFIX-00042`.
    pub entity_prefix: String,
    /// Entities drawn uniformly.
    pub entities: usize,
    /// Transactions in flight.
    pub concurrency: usize,
    /// Unmeasured warm-up first (the emulator is a JVM).
    pub warmup: Duration,
    /// Measured time: no transaction starts after it.
    pub duration: Duration,
    /// Random seed.
    pub seed: u64,
}

/// What a run measured (or one worker, before they are added up).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Events committed in the measured window.
    pub events: u64,
    /// From the end of the warm-up to the last commit, seconds.
    pub elapsed_s: f64,
    /// Attempts that were retried (aborted on contention, or transient).
    pub aborted: u64,
    /// Events given up on (contention after every attempt, or another error).
    pub failed: u64,
    /// Per event, including retries, milliseconds (sorted).
    pub latencies_ms: Vec<f64>,
}

/// Connects the store to `$DATASTORE_EMULATOR_HOST` for `$GOOGLE_CLOUD_PROJECT`.
async fn connect(namespace: &str) -> Result<DatastoreStore> {
    let project = std::env::var("GOOGLE_CLOUD_PROJECT").context("GOOGLE_CLOUD_PROJECT")?;
    let mut config = StoreConfig::new(project);
    config.emulator_host = std::env::var(sync_config::DATASTORE_EMULATOR_HOST)
        .ok()
        .filter(|h| !h.trim().is_empty());
    anyhow::ensure!(
        config.emulator_host.is_some(),
        "DATASTORE_EMULATOR_HOST is not set: the limit is measured on the emulator"
    );
    config.namespace = Some(namespace.to_string());
    config.serialize_keys_locally = false;
    DatastoreStore::connect(config)
        .await
        .context("connecting to the Datastore emulator")
}

/// One event: entity `entity`, written by `worker` as its `counter`-th.
fn event(
    s: &Settings,
    worker: usize,
    counter: u64,
    entity: usize,
) -> Result<sync_core::ChangeEvent> {
    let now = chrono::Utc::now();
    let json = serde_json::json!({
        "entity_id": format!("{}-{entity:05}", s.entity_prefix),
        "operation": "update",
        "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "source": "bench",
        "data": {"name": format!("Item {worker}-{counter}"), "status": "active", "counter": counter},
    });
    let id = format!("limit-{}-{worker}-{counter}", s.seed);
    parse_event(
        json.to_string().as_bytes(),
        &id,
        &ValidationLimits::default(),
        now,
    )
    .context("building a bench event")
}

async fn work(
    store: DatastoreStore,
    s: Arc<Settings>,
    worker: usize,
    warmup_until: Instant,
    until: Instant,
) -> Result<Outcome> {
    let mut rng = StdRng::seed_from_u64(s.seed.wrapping_add(worker as u64));
    let mut tally = Outcome::default();
    for counter in 1.. {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let entity = rng.random_range(0..s.entities.max(1));
        let event = event(&s, worker, counter, entity)?;
        let result = store.apply(&event).await;
        if started < warmup_until {
            continue;
        }
        match result {
            Ok(r) => {
                tally.events += 1;
                tally.aborted += u64::from(r.attempts.saturating_sub(1));
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                tally.latencies_ms.push(ms);
            }
            Err(e) => {
                if let StoreError::Contention { attempts } = e {
                    tally.aborted += u64::from(attempts.saturating_sub(1));
                }
                tally.failed += 1;
            }
        }
    }
    Ok(tally)
}

/// Runs the workers: warm-up, then the measured window.
///
/// # Errors
/// When the emulator cannot be reached at all.
pub async fn run(settings: Settings) -> Result<Outcome> {
    let store = connect(&settings.namespace).await?;
    let settings = Arc::new(settings);
    let warmup_until = Instant::now() + settings.warmup;
    let until = warmup_until + settings.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..settings.concurrency.max(1) {
        tasks.spawn(work(
            store.clone(),
            settings.clone(),
            worker,
            warmup_until,
            until,
        ));
    }
    let mut outcome = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a worker panicked")??;
        outcome.events += tally.events;
        outcome.aborted += tally.aborted;
        outcome.failed += tally.failed;
        outcome.latencies_ms.extend(tally.latencies_ms);
    }
    outcome.elapsed_s = warmup_until.elapsed().as_secs_f64();
    outcome.latencies_ms.sort_by(f64::total_cmp);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_new_and_valid() -> Result<()> {
        let s = Settings {
            namespace: "n".into(),
            entity_prefix: "limit-e10".into(),
            entities: 10,
            concurrency: 2,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            seed: 3,
        };
        let a = event(&s, 0, 1, 7)?;
        let b = event(&s, 1, 1, 7)?;
        assert_eq!(a.entity_id.as_str(), "limit-e10-00007");
        assert_ne!(a.event_id, b.event_id);
        assert_ne!(a.data.get("name"), b.data.get("name"));
        assert!(a.timestamp <= b.timestamp);
        Ok(())
    }
}
