//! [`DatastoreStore`]: the [`EntityStore`] on Datastore, one event per
//! read-write transaction. Reads and writes outside that path are
//! [`DatastoreAdmin`]'s.
//!
//! An event costs two RPCs when nothing contends: a lookup of the entity and
//! its tombstone that begins the transaction itself
//! (`ReadOptions.new_transaction`, documented for Datastore and Firestore in
//! Datastore mode: production takes this path), then the commit (or a
//! rollback when there is nothing to write). Whether the server really
//! supports it is probed once per store, before its first apply, on a key of
//! its own that nothing else reads or writes ([`PROBE_KIND`]): a lookup that
//! begins a transaction, then a commit of a delete of that (absent) key. If
//! the lookup is refused or returns no transaction, or that commit fails (the
//! Firestore emulator accepts the option but then times the commit out on the
//! lookup's own locks, "Transaction lock timeout", and those locks outlive a
//! rollback), the store logs it once and begins every transaction with
//! `BeginTransaction` for its lifetime (three RPCs per event). A transient
//! failure of the probe's lookup decides nothing: that apply begins
//! separately and the next one probes again. Either way a retry after
//! `ABORTED` names the aborted transaction as the previous one.

use crate::admin::DatastoreAdmin;
use crate::client::ReadIn;
use crate::config::{ConnectError, StoreConfig};
use crate::conflict::record_entity;
use crate::counters::RpcCounts;
use crate::database::{delete, upsert, Database, Read};
use crate::mapping::{estimated_size, main_entity, tombstone_entity};
use crate::retry::Failed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use std::sync::Arc;
use sync_core::limits::{check_index_entries, KeyLayout};
use sync_core::{merge, ChangeEvent, EntityStore, MergeOutcome, StoreError, ValidationError};

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
}

/// Kind of the key the probe reads and deletes (never written).
const PROBE_KIND: &str = "SyncProbe";

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

    /// Whether lookups begin the transactions: `None` until the probe before
    /// the first apply has found out (see the module doc).
    pub fn begins_in_lookup(&self) -> Option<bool> {
        self.inner.in_lookup.get().copied()
    }

    /// Begins a transaction (retrying `previous`, if named) and reads the
    /// entity and its tombstone in it: in one lookup where the server allows,
    /// else `BeginTransaction` then the lookup (see the module doc).
    async fn begin_and_read(
        &self,
        previous: Option<Vec<u8>>,
        kind: &str,
        id: &str,
    ) -> Result<(Vec<u8>, Read), Failed> {
        let db = self.db();
        // A failure before a transaction exists keeps naming the previous one.
        let failed = |error| Failed {
            error,
            transaction: previous.clone(),
        };
        let in_lookup = self.inner.in_lookup.get_or_try_init(|| self.probe()).await;
        if matches!(in_lookup, Ok(true)) {
            let mut read = db
                .read(kind, id, ReadIn::NewTransaction(previous.as_deref()))
                .await
                .map_err(failed)?;
            if !read.began.is_empty() {
                return Ok((std::mem::take(&mut read.began), read));
            }
            // The probe's lookup began one and this one did not: this
            // attempt begins separately and reads anew.
        }
        let transaction = db.rpc.begin(previous.as_deref()).await.map_err(failed)?;
        match db.read(kind, id, ReadIn::Transaction(&transaction)).await {
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

    /// Waits for this process's turn on `(kind, id)`, when serialization is on.
    async fn lock_key(&self, kind: &str, id: &str) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let locks = &self.inner.key_locks;
        if locks.is_empty() {
            return None;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&(kind, id), &mut hasher);
        let hash = std::hash::Hasher::finish(&hasher);
        let index = usize::try_from(hash % locks.len() as u64).unwrap_or(0);
        match locks.get(index) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// Merges `event` into what `read` found; returns what to commit.
    fn plan_apply(&self, event: &ChangeEvent, read: Read) -> Result<Plan, StoreError> {
        let db = self.db();
        let config = &db.config;
        let policy = &config.policy;
        let kind = db.kind(event.kind.as_deref());
        let id = event.entity_id.as_str();
        let (before, state) = read.state()?;
        let merged = merge(&state, event, policy);

        let mut mutations = Vec::new();
        if merged.outcome.needs_write() {
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
                let deleted_at = merged.state.deleted_by().map(|k| k.timestamp);
                mutations.push(upsert(tombstone_entity(
                    read.tombstone_key,
                    &stored,
                    deleted_at,
                    self.expire_at(),
                )));
            }
        }
        if !merged.conflicts.is_empty() {
            // Written with the merge, stale or not: a stale event must leave
            // its record, and a redelivery upserts the same one.
            mutations.push(upsert(record_entity(
                db.conflict_key(kind, id, &event.event_id),
                kind,
                event,
                &merged.conflicts,
            )));
        }
        Ok(if mutations.is_empty() {
            Plan::Nothing(merged)
        } else {
            Plan::Commit(merged, mutations)
        })
    }

    fn expire_at(&self) -> DateTime<Utc> {
        let now = Utc::now();
        chrono::TimeDelta::from_std(self.db().config.tombstone_retention)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Runs one transaction for `event`: begin and read, plan, then commit
    /// the plan or roll back.
    async fn transact(
        &self,
        previous: Option<Vec<u8>>,
        event: &ChangeEvent,
    ) -> Result<MergeOutcome, Failed> {
        let db = self.db();
        let rpc = &db.rpc;
        let kind = db.kind(event.kind.as_deref());
        let (transaction, read) = self
            .begin_and_read(previous, kind, event.entity_id.as_str())
            .await?;
        match self.plan_apply(event, read) {
            Ok(Plan::Commit(value, mutations)) => {
                match rpc.commit(Some(transaction.clone()), mutations).await {
                    Ok(()) => Ok(value),
                    Err(error) => Err(Failed {
                        error,
                        transaction: Some(transaction),
                    }),
                }
            }
            Ok(Plan::Nothing(value)) => {
                rpc.rollback(transaction).await;
                Ok(value)
            }
            Err(error) => {
                rpc.rollback(transaction.clone()).await;
                Err(Failed {
                    error,
                    transaction: Some(transaction),
                })
            }
        }
    }
}

/// What a transaction decided.
enum Plan {
    /// Commit these mutations, then return the outcome.
    Commit(MergeOutcome, Vec<ds::Mutation>),
    /// Nothing to write: roll back and return the outcome.
    Nothing(MergeOutcome),
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
    async fn apply(&self, event: &ChangeEvent) -> Result<MergeOutcome, StoreError> {
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
        let _turn = self
            .lock_key(
                self.db().kind(event.kind.as_deref()),
                event.entity_id.as_str(),
            )
            .await;
        let (mut merged, attempts) = self
            .db()
            .retrying("apply", |previous| self.transact(previous, event))
            .await?;
        merged.attempts = attempts;
        Ok(merged)
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
