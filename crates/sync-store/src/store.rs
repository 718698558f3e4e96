//! [`DatastoreStore`]: the [`EntityStore`] on Datastore, one read-write
//! transaction per event, or per group of events for one entity. Reads and
//! writes outside that path are [`DatastoreAdmin`]'s.
//!
//! Applies on one entity take turns on a striped lock; the one holding the
//! turn takes every event of that entity waiting in its queue (at most 32) and
//! merges them in one transaction ([`merge_group_checked`]), and each waiter
//! gets the answer applying its event alone would give. Different entities
//! never share a commit.
//!
//! A transaction reads the entity alone while it exists (its tombstone cannot
//! matter then), and begins in its first lookup where the server allows it
//! (probed once per store, [`DatastoreStore::probe_transactions`]): two RPCs
//! per event, or per group, when nothing contends.

use crate::admin::DatastoreAdmin;
use crate::client::ReadIn;
use crate::config::{ConnectError, StoreConfig};
use crate::conflict::record_entity;
use crate::counters::{ApplyCounters, ApplyCounts, RpcCounts};
use crate::database::{delete, upsert, Database, Read};
use crate::group::{share, Answer, EntityKey, Waiter, Waiting, MAX_GROUP};
use crate::mapping::{estimated_size, main_entity, tombstone_entity};
use crate::retry::Failed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use std::sync::Arc;
use sync_core::ingest::limits::{check_index_entries, KeyLayout, PROBE_KIND};
use sync_core::{
    merge_group_checked, ChangeEvent, Classify, Disposition, EntityStore, MergeOutcome, Operation,
    StoreError, ValidationError,
};
use tokio::sync::oneshot::error::TryRecvError;

/// Number of per-key lock stripes (collisions only serialize unrelated keys).
const KEY_LOCK_STRIPES: usize = 1024;

/// Datastore-backed [`EntityStore`]. Cheap to clone: clones share one client.
#[derive(Clone, Debug)]
pub struct DatastoreStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    /// Namespace and kinds of the keys written, for the key size limit.
    layout: KeyLayout,
    /// Striped per-key locks serializing this process's transactions on one
    /// key (empty when disabled).
    key_locks: Vec<tokio::sync::Mutex<()>>,
    /// Whether lookups begin the transactions, once probed.
    in_lookup: tokio::sync::OnceCell<bool>,
    /// Applies waiting for their entity's turn (group commit).
    waiting: Waiting,
    /// How the applies shared transactions, and their time.
    applies: ApplyCounters,
}

impl DatastoreStore {
    /// Validates `config` and builds the client (see [`StoreConfig`] for the
    /// endpoint and credentials chosen).
    ///
    /// # Errors
    /// [`ConnectError`] for an invalid configuration or when the client cannot
    /// be created.
    pub async fn connect(config: StoreConfig) -> Result<Self, ConnectError> {
        let layout = config.key_layout();
        let key_locks = if config.serialize_keys_locally {
            (0..KEY_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db: Arc::new(Database::connect(config).await?),
                layout,
                key_locks,
                in_lookup: tokio::sync::OnceCell::new(),
                waiting: Waiting::default(),
                applies: ApplyCounters::default(),
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &StoreConfig {
        &self.db().config
    }

    /// The admin on the same client.
    pub fn admin(&self) -> DatastoreAdmin {
        DatastoreAdmin::on(Arc::clone(&self.inner.db))
    }

    fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Datastore RPCs this store's client (and admins on it) sent so far.
    pub fn rpc_counts(&self) -> RpcCounts {
        self.db().rpc.counters.snapshot()
    }

    /// How this store's applies shared transactions (group commit) and
    /// where their time went, so far.
    pub fn apply_counts(&self) -> ApplyCounts {
        self.inner.applies.snapshot()
    }

    /// Whether lookups begin the transactions: `None` until the probe before
    /// the first apply has found out (see the module doc).
    pub fn begins_in_lookup(&self) -> Option<bool> {
        self.inner.in_lookup.get().copied()
    }

    /// Runs the probe now unless it has decided already (see the module
    /// doc); returns whether lookups begin the transactions. A start-up
    /// calls it so that the first apply does not pay for it.
    ///
    /// # Errors
    /// A transient failure of the probe's lookup, which decides nothing: the
    /// next call (or apply) probes again.
    pub async fn probe_transactions(&self) -> Result<bool, StoreError> {
        self.inner
            .in_lookup
            .get_or_try_init(|| self.probe())
            .await
            .copied()
    }

    /// Begins a transaction (retrying `previous`, if named) and reads the
    /// entity in it, and its tombstone where it can matter (`tombstone_too`:
    /// in the same lookup; see [`Database::read_where`]): beginning in the
    /// lookup where the server allows, else `BeginTransaction` then the
    /// lookup (see the module doc).
    async fn begin_and_read(
        &self,
        previous: Option<Vec<u8>>,
        kind: &str,
        id: &str,
        tombstone_too: bool,
    ) -> Result<(Vec<u8>, Read), Failed> {
        let db = self.db();
        // A failure before a transaction exists keeps naming the previous one.
        let failed = |error| Failed {
            error,
            transaction: previous.clone(),
        };
        let in_lookup = self.inner.in_lookup.get_or_try_init(|| self.probe()).await;
        if matches!(in_lookup, Ok(true)) {
            let began = ReadIn::NewTransaction(previous.as_deref());
            let mut read = db
                .read_where(kind, id, began, tombstone_too)
                .await
                .map_err(failed)?;
            if !read.began.is_empty() {
                return Ok((std::mem::take(&mut read.began), read));
            }
            // The probe's lookup began one and this one did not: this
            // attempt begins separately and reads anew.
        }
        let transaction = db.rpc.begin(previous.as_deref()).await.map_err(failed)?;
        let read_in = ReadIn::Transaction(&transaction);
        match db.read_where(kind, id, read_in, tombstone_too).await {
            Ok(read) => Ok((transaction, read)),
            Err(error) => {
                db.rpc.rollback(transaction.clone()).await;
                Err(Failed {
                    error,
                    transaction: Some(transaction),
                })
            }
        }
    }

    /// Whether a transaction begun in a lookup commits a write, on a key of
    /// this store's own (see the module doc). `Err` (a transient failure of
    /// the lookup) decides nothing.
    async fn probe(&self) -> Result<bool, StoreError> {
        let db = self.db();
        let name = format!(
            "probe-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let key = db.entity_key(PROBE_KIND, &name);
        let refused = |reason: &str| {
            tracing::warn!(
                reason,
                "Datastore does not begin transactions in lookups here; \
                 each apply begins one with BeginTransaction (one more RPC per event)"
            );
            Ok(false)
        };
        let found = match db
            .rpc
            .lookup(vec![key.clone()], ReadIn::NewTransaction(None))
            .await
        {
            Ok(found) => found,
            Err(error) => match refused_option(&error) {
                Some(reason) => return refused(&reason),
                None => return Err(error),
            },
        };
        if found.began.is_empty() {
            return refused("the lookup returned no transaction");
        }
        match db
            .rpc
            .commit(Some(found.began.clone()), vec![delete(key)])
            .await
        {
            Ok(()) => Ok(true),
            Err(error) => {
                db.rpc.rollback(found.began).await;
                refused(&format!("its commit failed: {error}"))
            }
        }
    }

    /// The lock giving this process's turn on `(kind, id)`, when serialization
    /// is on.
    fn key_lock(&self, kind: &str, id: &str) -> Option<&tokio::sync::Mutex<()>> {
        let locks = &self.inner.key_locks;
        if locks.is_empty() {
            return None;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(kind, id), &mut hasher);
        let hash = std::hash::Hasher::finish(&hasher);
        let index = usize::try_from(hash % locks.len() as u64).unwrap_or(0);
        locks.get(index)
    }

    /// Merges `events` (all for one entity, in order) into what `read` found;
    /// returns each event's result and what to commit. An event whose merged
    /// entity breaks a limit gets its own error and leaves the state as it
    /// was (see [`merge_group_checked`]); an error of the read fails them all.
    fn plan(&self, events: &[&ChangeEvent], read: Read) -> Result<Plan, StoreError> {
        let db = self.db();
        let config = &db.config;
        let policy = &config.policy;
        let Some(first) = events.first() else {
            return Ok(Plan::default());
        };
        let kind = db.kind(first.kind.as_deref());
        let id = first.entity_id.as_str();
        let (before, state) = read.state()?;
        let mut last_stored = None;
        let (last, results) =
            merge_group_checked(&state, events.iter().copied(), policy, |_, merged| {
                let stored = merged.state.to_stored(policy)?;
                if stored.exists {
                    // The merged entity: fields of several events add up.
                    check_index_entries(&stored.fields, config.limits.max_index_entries)?;
                    let bytes = estimated_size(kind, id, &stored);
                    let limit = config.limits.max_entity_bytes;
                    if bytes > limit {
                        return Err(StoreError::Rejected(ValidationError::EntityTooLarge {
                            bytes,
                            limit,
                        }));
                    }
                }
                last_stored = Some(stored);
                Ok(())
            });

        let mut mutations = Vec::new();
        if let Some(stored) = last_stored {
            // The state after the last event that changed it.
            if stored.exists {
                // With a main entity, `before` is its stored form.
                mutations.push(upsert(main_entity(
                    read.main_key,
                    &stored,
                    read.main.as_ref().zip(before.as_ref()),
                )));
                if read.tombstone.is_some() {
                    // The delete's key lives on in the entity's bookkeeping.
                    mutations.push(delete(read.tombstone_key));
                }
            } else {
                if read.main.is_some() {
                    mutations.push(delete(read.main_key));
                }
                let deleted_at = last.deleted_by().map(|k| k.timestamp);
                mutations.push(upsert(tombstone_entity(
                    read.tombstone_key,
                    &stored,
                    deleted_at,
                    self.expire_at(),
                )));
            }
        }
        // Written with the merge, stale or not: a stale event must leave its
        // record, and a redelivery upserts the same one. A commit names each
        // key once, so of one event delivered twice in the group the last
        // record is kept, as one-by-one upserts would leave.
        let mut recorded = std::collections::HashSet::new();
        for (event, result) in events.iter().zip(&results).rev() {
            let Ok(merged) = result else { continue };
            if !merged.conflicts.is_empty() && recorded.insert(event.event_id.as_str()) {
                mutations.push(upsert(record_entity(
                    db.conflict_key(kind, id, &event.event_id),
                    kind,
                    event,
                    &merged.conflicts,
                )));
            }
        }
        Ok(Plan {
            results,
            mutations,
            records: recorded.len(),
        })
    }

    fn expire_at(&self) -> DateTime<Utc> {
        let now = Utc::now();
        chrono::TimeDelta::from_std(self.db().config.tombstone_retention)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Runs one transaction for `events` (all for one entity): begin and
    /// read, plan, then commit the plan or roll back.
    async fn transact(
        &self,
        previous: Option<Vec<u8>>,
        events: &[&ChangeEvent],
        latecomers: Option<&Latecomers<'_>>,
    ) -> Result<Vec<Answer>, Failed> {
        let db = self.db();
        let rpc = &db.rpc;
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        let kind = db.kind(first.kind.as_deref());
        // A create mostly finds no entity: its tombstone is read in the same
        // lookup rather than in a second one.
        let tombstone_too = events.iter().any(|e| e.operation == Operation::Create);
        let (transaction, read) = self
            .begin_and_read(previous, kind, first.entity_id.as_str(), tombstone_too)
            .await?;
        let planned = {
            // Events of the entity that arrived while it was read join this
            // transaction: the read holds for them too.
            let mut joined = latecomers.map(Latecomers::lock);
            let mut all = events.to_vec();
            if let (Some(late), Some(joined)) = (latecomers, joined.as_mut()) {
                let room = MAX_GROUP.saturating_sub(events.len() + joined.len());
                joined.extend(self.inner.waiting.take(late.key, room));
                all.extend(joined.iter().map(|w| &w.event));
            }
            self.plan(&all, read)
        };
        match planned {
            Ok(Plan {
                results, mutations, ..
            }) if mutations.is_empty() => {
                rpc.rollback(transaction).await;
                Ok(results)
            }
            Ok(Plan {
                results,
                mutations,
                records,
            }) => match rpc.commit(Some(transaction.clone()), mutations).await {
                Ok(()) => {
                    self.inner.applies.conflict_records(records);
                    Ok(results)
                }
                Err(error) => Err(Failed {
                    error,
                    transaction: Some(transaction),
                }),
            },
            Err(error) => {
                rpc.rollback(transaction.clone()).await;
                Err(Failed {
                    error,
                    transaction: Some(transaction),
                })
            }
        }
    }

    /// Applies `events` (one entity's) in one transaction with the configured
    /// retries; returns each event's answer.
    async fn apply_group(
        &self,
        events: &[&ChangeEvent],
        latecomers: Option<&Latecomers<'_>>,
    ) -> Result<Vec<Answer>, StoreError> {
        let (results, attempts) = self
            .db()
            .retrying("apply", |previous| {
                self.transact(previous, events, latecomers)
            })
            .await?;
        Ok(results
            .into_iter()
            .map(|result| {
                result.map(|mut merged| {
                    merged.attempts = attempts;
                    merged
                })
            })
            .collect())
    }

    /// Applies `event` alone in its own transaction.
    async fn apply_alone(&self, event: &ChangeEvent) -> Answer {
        self.apply_group(&[event], None)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("an apply returned no outcome".into())))
    }

    /// Commits `group` (one entity's waiters, oldest first) and answers each
    /// waiter. A permanent failure of the whole group (the commit refused, say
    /// for its size) may belong to one event only, so each event is then
    /// applied alone and gets its own answer; a transient one that outlasted
    /// the retries is every waiter's answer.
    async fn commit_group(&self, key: &EntityKey, group: Vec<Waiter>) {
        let latecomers = Latecomers {
            key,
            joined: std::sync::Mutex::default(),
        };
        let started = std::time::Instant::now();
        let firsts: Vec<&ChangeEvent> = group.iter().map(|w| &w.event).collect();
        let result = self.apply_group(&firsts, Some(&latecomers)).await;
        drop(firsts);
        let joined = latecomers
            .joined
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let events: Vec<&ChangeEvent> = group.iter().chain(&joined).map(|w| &w.event).collect();
        let answers = match result {
            Ok(answers) => answers,
            Err(error) if events.len() > 1 && error.disposition() == Disposition::Permanent => {
                tracing::warn!(
                    %error,
                    events = events.len(),
                    "a group commit failed for good; applying its events one by one"
                );
                let mut answers = Vec::with_capacity(events.len());
                for event in &events {
                    answers.push(self.apply_alone(event).await);
                }
                answers
            }
            Err(error) => {
                let mut answers: Vec<Answer> =
                    events.iter().skip(1).map(|_| Err(share(&error))).collect();
                answers.insert(0, Err(error));
                answers
            }
        };
        self.inner
            .applies
            .transaction(events.len(), started.elapsed());
        drop(events);
        let now = std::time::Instant::now();
        for (waiter, answer) in group.into_iter().chain(joined).zip(answers) {
            // A waiter that went away (its request cancelled) needs no answer.
            let _ = waiter.reply.send((answer, now));
        }
    }
}

/// The waiters of one entity that join its group's transaction after the
/// read (see [`DatastoreStore::transact`]); kept across the group's retries.
struct Latecomers<'a> {
    key: &'a EntityKey,
    joined: std::sync::Mutex<Vec<Waiter>>,
}

impl Latecomers<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        self.joined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a transaction decided: each event's result, and the mutations to
/// commit (none: roll back).
#[derive(Default)]
struct Plan {
    results: Vec<Answer>,
    mutations: Vec<ds::Mutation>,
    /// Of the mutations, conflict records.
    records: usize,
}

/// Why the server refused to begin a transaction in a lookup, when that is
/// what `error` says: a refusal of the option itself, not of the request.
fn refused_option(error: &StoreError) -> Option<String> {
    use gcloud_sdk::tonic::{Code, Status};
    let StoreError::Refused {
        source: Some(source),
        ..
    } = error
    else {
        return None;
    };
    let status = source.downcast_ref::<Status>()?;
    matches!(
        status.code(),
        Code::InvalidArgument | Code::Unimplemented | Code::FailedPrecondition
    )
    .then(|| error.to_string())
}

#[async_trait]
impl EntityStore for DatastoreStore {
    /// Applies `event` in a task of its own, so that dropping this future
    /// (a push whose connection closed, a timeout around it) cannot abandon
    /// a transaction between its lookup and its commit: Datastore would keep
    /// the entity locked until the transaction expired, and a group commit
    /// would lose the answers of the applies it carries.
    async fn apply(&self, event: &ChangeEvent) -> Result<MergeOutcome, StoreError> {
        let (store, event) = (self.clone(), event.clone());
        tokio::spawn(async move { store.apply_owned(event).await })
            .await
            .unwrap_or_else(|join| {
                Err(StoreError::Unavailable {
                    message: format!("the apply's task ended without an answer: {join}"),
                    source: None,
                })
            })
    }
}

impl DatastoreStore {
    async fn apply_owned(&self, event: ChangeEvent) -> Result<MergeOutcome, StoreError> {
        // The keys this store writes, whatever layout the event was validated
        // with: refused before any call rather than by Datastore.
        let limit = self.db().config.limits.max_key_bytes;
        let (key, bytes) = self.inner.layout.largest_key(
            event.kind.as_deref(),
            event.entity_id.as_str(),
            &event.event_id,
        );
        if bytes > limit {
            return Err(ValidationError::KeyTooLarge { key, bytes, limit }.into());
        }
        let kind = self.db().kind(event.kind.as_deref());
        let id = event.entity_id.as_str();
        let Some(lock) = self.key_lock(kind, id) else {
            return self.apply_alone(&event).await;
        };
        // Group commit (see the module doc): wait in the entity's queue for
        // whichever comes first, this event's answer (a group took it) or the
        // entity's turn. An answered apply never takes the turn: it goes on
        // to the next waiter, whose event is still queued.
        let key = (kind.to_string(), id.to_string());
        let arrived = std::time::Instant::now();
        let (seq, mut answer) = self.inner.waiting.push(key.clone(), event);
        let replied = tokio::select! {
            biased;
            replied = &mut answer => replied.ok(),
            turn = lock.lock() => match answer.try_recv() {
                Ok(replied) => {
                    // Answered just as the turn came: pass it on.
                    self.inner.applies.late_turn();
                    Some(replied)
                }
                Err(TryRecvError::Closed) => None,
                Err(TryRecvError::Empty) => {
                    // This event is queued: commit groups, oldest first,
                    // until one holds it.
                    loop {
                        let group = self.inner.waiting.take(&key, MAX_GROUP);
                        let mine = group.last().is_none_or(|w| w.seq >= seq);
                        if !group.is_empty() {
                            self.commit_group(&key, group).await;
                        }
                        if mine {
                            break;
                        }
                    }
                    drop(turn);
                    answer.await.ok()
                }
            },
        };
        let Some((answer, at)) = replied else {
            return Err(StoreError::Unavailable {
                message: "the apply holding this entity's turn was cancelled before answering"
                    .into(),
                source: None,
            });
        };
        self.inner.applies.apply(at - arrived, at.elapsed());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The production path (TLS with the webpki roots) sets up without
    /// panicking for want of a rustls crypto provider, and a failed connection
    /// is a typed error. The listener drops every connection, so the TLS
    /// handshake fails before credentials are ever looked for.
    #[tokio::test]
    async fn tls_endpoint_failure_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let mut config = StoreConfig::new("p");
        config.endpoint = Some(format!("https://127.0.0.1:{port}"));
        config.call_timeout = std::time::Duration::from_secs(5);
        match DatastoreStore::connect(config).await {
            Err(ConnectError::Client { url, .. }) => assert!(url.starts_with("https://")),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
