//! The Datastore emulator's own limit: the fewest calls an event can cost
//! (one read-write transaction: begin, lookup, commit an upsert), made
//! straight to the emulator by many workers at once, with nothing else in
//! the way. This is the ceiling the sync function's end-to-end rate is
//! compared with.
//!
//! Same client, transport and features as `sync-store` (gcloud-sdk over one
//! HTTP/2 channel, anonymous credentials), the same entity distribution as
//! `syncctl load` (entity drawn uniformly among `entities`), and the same
//! answer to contention (`ABORTED` → retry the whole transaction with
//! jittered exponential backoff, 20 ms doubling to 1 s, 8 attempts, naming
//! the previous transaction).

use anyhow::{Context, Result};
use gcloud_sdk::google::datastore::v1 as ds;
use gcloud_sdk::google::datastore::v1::datastore_client::DatastoreClient;
use gcloud_sdk::google_cloud_auth::credentials::anonymous;
use gcloud_sdk::tonic::{Code, Status};
use gcloud_sdk::{GoogleApi, GoogleAuthMiddleware, RequestTimeouts};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use sync_store::{Backoff, StoreConfig};

type Api = GoogleApi<DatastoreClient<GoogleAuthMiddleware>>;

/// The store's own contention settings (backoff and attempts); this client
/// draws the jitter from its seeded random numbers.
static STORE_RETRY: LazyLock<(Backoff, u32)> = LazyLock::new(|| {
    let store = StoreConfig::new("");
    let backoff = Backoff {
        base: store.backoff_base,
        max: store.backoff_max,
    };
    (backoff, store.max_attempts)
});
/// Size of the unindexed bookkeeping blob written with each entity, about
/// what the sync function stores for a recipe-shaped entity.
const BOOKKEEPING_BYTES: usize = 400;

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Emulator `host:port`.
    pub host: String,
    /// Project id.
    pub project: String,
    /// Namespace (isolates runs from the sync function's data).
    pub namespace: String,
    /// Kind of the entities.
    pub kind: String,
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
    /// Begin the transaction inside the lookup (`ReadOptions.new_transaction`)
    /// instead of with a separate `BeginTransaction` call: one round trip less.
    pub inline_begin: bool,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Events committed in the measured window.
    pub events: u64,
    /// From the first start to the last commit, seconds.
    pub elapsed_s: f64,
    /// Aborted attempts that were retried.
    pub aborted: u64,
    /// Events given up on (contention after 8 attempts, or another error).
    pub failed: u64,
    /// Per event, including retries, milliseconds (sorted).
    pub latencies_ms: Vec<f64>,
}

struct Worker {
    api: Api,
    settings: Arc<Settings>,
}

#[derive(Default)]
struct Tally {
    events: u64,
    aborted: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
}

async fn connect(host: &str) -> Result<Api> {
    let url = format!("http://{}", host.trim_start_matches("http://"));
    let api = GoogleApi::from_function_with_credentials(
        DatastoreClient::new,
        &url,
        None,
        anonymous::Builder::new().build(),
    )
    .await
    .with_context(|| format!("connecting to the Datastore emulator at {url}"))?;
    Ok(api.with_request_timeouts(RequestTimeouts::new().with_total(Duration::from_secs(10))))
}

fn value(v: ds::value::ValueType, unindexed: bool) -> ds::Value {
    ds::Value {
        value_type: Some(v),
        exclude_from_indexes: unindexed,
        ..Default::default()
    }
}

impl Worker {
    fn key(&self, entity: usize) -> ds::Key {
        let s = &self.settings;
        ds::Key {
            partition_id: Some(ds::PartitionId {
                project_id: s.project.clone(),
                database_id: String::new(),
                namespace_id: s.namespace.clone(),
            }),
            path: vec![ds::key::PathElement {
                kind: s.kind.clone(),
                id_type: Some(ds::key::path_element::IdType::Name(format!(
                    "{}-{entity:05}",
                    s.entity_prefix
                ))),
            }],
        }
    }

    /// One read-write transaction: begin, lookup, commit the next version.
    async fn transact(
        &self,
        key: &ds::Key,
        counter: u64,
        previous: Vec<u8>,
    ) -> Result<(), (Status, Vec<u8>)> {
        let project_id = self.settings.project.clone();
        let options = ds::TransactionOptions {
            mode: Some(ds::transaction_options::Mode::ReadWrite(
                ds::transaction_options::ReadWrite {
                    previous_transaction: previous,
                },
            )),
        };
        let lookup = |consistency| ds::LookupRequest {
            project_id: project_id.clone(),
            database_id: String::new(),
            read_options: Some(ds::ReadOptions {
                consistency_type: Some(consistency),
            }),
            keys: vec![key.clone()],
            property_mask: None,
            request_options: None,
        };
        let (tx, found) = if self.settings.inline_begin {
            let found = self
                .api
                .get()
                .lookup(lookup(ds::read_options::ConsistencyType::NewTransaction(
                    options,
                )))
                .await
                .map_err(|s| (s, Vec::new()))?
                .into_inner();
            if found.transaction.is_empty() {
                return Err((
                    Status::unimplemented("the lookup began no transaction (new_transaction)"),
                    Vec::new(),
                ));
            }
            (found.transaction.clone(), found)
        } else {
            let begin = ds::BeginTransactionRequest {
                project_id: project_id.clone(),
                database_id: String::new(),
                transaction_options: Some(options),
                request_options: None,
            };
            let tx = self
                .api
                .get()
                .begin_transaction(begin)
                .await
                .map_err(|s| (s, Vec::new()))?
                .into_inner()
                .transaction;
            let found = self
                .api
                .get()
                .lookup(lookup(ds::read_options::ConsistencyType::Transaction(
                    tx.clone(),
                )))
                .await
                .map_err(|s| (s, tx.clone()))?
                .into_inner();
            (tx, found)
        };
        let version = found
            .found
            .first()
            .and_then(|r| r.entity.as_ref())
            .and_then(|e| e.properties.get("version"))
            .and_then(|v| match v.value_type {
                Some(ds::value::ValueType::IntegerValue(i)) => Some(i),
                _ => None,
            })
            .unwrap_or(0);
        let now = chrono::Utc::now();
        use ds::value::ValueType as V;
        let properties: HashMap<String, ds::Value> = [
            (
                "name",
                value(V::StringValue(format!("Item {counter}")), false),
            ),
            ("status", value(V::StringValue("active".into()), false)),
            (
                "counter",
                value(V::IntegerValue(i64::try_from(counter).unwrap_or(0)), false),
            ),
            ("version", value(V::IntegerValue(version + 1), false)),
            (
                "last_modified",
                value(
                    V::TimestampValue(gcloud_sdk::prost_types::Timestamp {
                        seconds: now.timestamp(),
                        nanos: 0,
                    }),
                    false,
                ),
            ),
            ("sync_status", value(V::StringValue("synced".into()), false)),
            ("conflict_resolved", value(V::BooleanValue(false), false)),
            (
                sync_core::BOOKKEEPING_PROPERTY,
                value(V::StringValue("b".repeat(BOOKKEEPING_BYTES)), true),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let commit = ds::CommitRequest {
            project_id,
            database_id: String::new(),
            mode: ds::commit_request::Mode::Transactional as i32,
            mutations: vec![ds::Mutation {
                operation: Some(ds::mutation::Operation::Upsert(ds::Entity {
                    key: Some(key.clone()),
                    properties,
                })),
                ..Default::default()
            }],
            request_options: None,
            transaction_selector: Some(ds::commit_request::TransactionSelector::Transaction(
                tx.clone(),
            )),
        };
        self.api.get().commit(commit).await.map_err(|s| (s, tx))?;
        Ok(())
    }

    /// One event: the transaction, retried on contention. Returns the number
    /// of aborted attempts, or an error when it gave up.
    async fn event(&self, rng: &mut StdRng, counter: u64) -> (u64, Result<(), Status>) {
        let key = self.key(rng.random_range(0..self.settings.entities.max(1)));
        let (backoff, max_attempts) = *STORE_RETRY;
        let mut previous = Vec::new();
        let mut aborted = 0u64;
        for attempt in 1..=max_attempts {
            match self.transact(&key, counter, previous).await {
                Ok(()) => return (aborted, Ok(())),
                Err((status, tx)) if status.code() == Code::Aborted && attempt < max_attempts => {
                    aborted += 1;
                    previous = tx;
                    let wait = backoff.ceiling(attempt).mul_f64(rng.random::<f64>());
                    tokio::time::sleep(wait).await;
                }
                Err((status, _)) => return (aborted, Err(status)),
            }
        }
        (
            aborted,
            Err(Status::aborted("contention after every attempt")),
        )
    }

    async fn run(self, index: usize, warmup_until: Instant, until: Instant) -> Tally {
        let mut rng = StdRng::seed_from_u64(self.settings.seed.wrapping_add(index as u64));
        let mut tally = Tally::default();
        let mut counter = 0u64;
        loop {
            let started = Instant::now();
            if started >= until {
                return tally;
            }
            counter += 1;
            let (aborted, result) = self.event(&mut rng, counter).await;
            if started < warmup_until {
                continue;
            }
            tally.aborted += aborted;
            match result {
                Ok(()) => {
                    tally.events += 1;
                    tally
                        .latencies_ms
                        .push(started.elapsed().as_secs_f64() * 1000.0);
                }
                Err(_) => tally.failed += 1,
            }
        }
    }
}

/// Runs the workers: warm-up, then the measured window.
///
/// # Errors
/// When the emulator cannot be reached at all.
pub async fn run(settings: Settings) -> Result<Outcome> {
    let api = connect(&settings.host).await?;
    let settings = Arc::new(settings);
    let start = Instant::now();
    let warmup_until = start + settings.warmup;
    let until = warmup_until + settings.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..settings.concurrency.max(1) {
        let worker = Worker {
            api: api.clone(),
            settings: settings.clone(),
        };
        tasks.spawn(worker.run(index, warmup_until, until));
    }
    let mut outcome = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a worker panicked")?;
        outcome.events += tally.events;
        outcome.aborted += tally.aborted;
        outcome.failed += tally.failed;
        outcome.latencies_ms.extend(tally.latencies_ms);
    }
    // Measured from the end of the warm-up to the last commit.
    outcome.elapsed_s = warmup_until.elapsed().as_secs_f64();
    outcome.latencies_ms.sort_by(f64::total_cmp);
    Ok(outcome)
}
