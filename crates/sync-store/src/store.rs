//! [`DatastoreStore`]: the [`EntityStore`] on Datastore, one event per
//! read-write transaction. Reads and writes outside that path are
//! [`DatastoreAdmin`]'s.

use crate::admin::DatastoreAdmin;
use crate::config::{ConnectError, StoreConfig};
use crate::conflict::record_entity;
use crate::database::{delete, upsert, Database};
use crate::mapping::{estimated_size, main_entity, tombstone_entity};
use crate::retry::Failed;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use std::future::Future;
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

    /// Reads and merges in `transaction`; returns what to commit.
    async fn plan_apply(
        &self,
        event: &ChangeEvent,
        transaction: &[u8],
    ) -> Result<Plan, StoreError> {
        let db = self.db();
        let config = &db.config;
        let policy = &config.policy;
        let kind = db.kind(event.kind.as_deref());
        let id = event.entity_id.as_str();
        let read = db.read(kind, id, Some(transaction)).await?;
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
                    db.entity_key(kind, id),
                    &stored,
                    read.main.as_ref().zip(before.as_ref()),
                )));
                if read.tombstone.is_some() {
                    // The delete's key lives on in the entity's bookkeeping.
                    mutations.push(delete(db.tombstone_key(kind, id)));
                }
            } else {
                if read.main.is_some() {
                    mutations.push(delete(db.entity_key(kind, id)));
                }
                let deleted_at = merged.state.deleted_by().map(|k| k.timestamp);
                mutations.push(upsert(tombstone_entity(
                    db.tombstone_key(kind, id),
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

    /// Runs one transaction: begin, plan (read and decide), then commit the
    /// plan or roll back.
    async fn transact<T, P, PFut>(&self, previous: Option<Vec<u8>>, plan: P) -> Result<T, Failed>
    where
        P: FnOnce(Vec<u8>) -> PFut,
        PFut: Future<Output = Result<Plan<T>, StoreError>>,
    {
        let rpc = &self.db().rpc;
        let transaction = rpc.begin(previous).await?;
        match plan(transaction.clone()).await {
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
enum Plan<T = MergeOutcome> {
    /// Commit these mutations, then return the value.
    Commit(T, Vec<ds::Mutation>),
    /// Nothing to write: roll back and return the value.
    Nothing(T),
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
            .retrying("apply", |previous| {
                self.transact(previous, move |tx| async move {
                    self.plan_apply(event, &tx).await
                })
            })
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
