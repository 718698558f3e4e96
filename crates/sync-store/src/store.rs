//! [`DatastoreStore`]: the [`EntityStore`] on Datastore, and its read helpers.

use crate::client::{connect, Rpc};
use crate::config::{ConnectError, StoreConfig};
use crate::conflict::{record_entity, record_of, ConflictRecord, ENTITY_KIND};
use crate::mapping::{
    estimated_size, json_of_properties, key_name, main_entity, stored_of, string_value,
    timestamp_value, to_value, tombstone_entity, RawValue,
};
use crate::retry::{self, Backoff, Failed, RetryPolicy};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use sync_core::limits::{check_index_entries, conflict_name, KeyLayout, TOMBSTONE_NAME};
use sync_core::{
    merge, ApplyResult, ChangeEvent, EntityState, EntityStore, StoreError, StoredEntity,
    ValidationError, BOOKKEEPING_PROPERTY,
};

/// Results per query page.
const QUERY_PAGE: i32 = 300;
/// Mutations per non-transactional commit (Datastore allows 500).
const COMMIT_BATCH: usize = 500;
/// Number of per-key lock stripes (collisions only serialize unrelated keys).
const KEY_LOCK_STRIPES: usize = 1024;

/// Datastore-backed [`EntityStore`]. Cheap to clone: clones share one client.
#[derive(Clone)]
pub struct DatastoreStore {
    inner: Arc<Inner>,
}

struct Inner {
    rpc: Rpc,
    config: StoreConfig,
    partition: ds::PartitionId,
    /// Namespace and kinds of the keys written, for the key size limit.
    layout: KeyLayout,
    retry: RetryPolicy,
    /// Striped per-key locks serializing this process's transactions on one
    /// key (empty when disabled).
    key_locks: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for DatastoreStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatastoreStore")
            .field("url", &self.inner.config.url())
            .field("project_id", &self.inner.config.project_id)
            .field("namespace", &self.inner.config.namespace_id())
            .finish_non_exhaustive()
    }
}

/// What one transaction read: the main entity and the tombstone, if present.
struct Read {
    main: Option<ds::Entity>,
    tombstone: Option<ds::Entity>,
}

impl Read {
    /// The stored form: the main entity if present, else the tombstone.
    fn stored(&self) -> Result<Option<StoredEntity>, StoreError> {
        let stored = match (&self.main, &self.tombstone) {
            (Some(main), _) => Some(stored_of(main, true)),
            (None, Some(tomb)) => Some(stored_of(tomb, false)),
            (None, None) => None,
        };
        stored.transpose().map_err(StoreError::Corrupt)
    }

    fn state(&self) -> Result<(Option<StoredEntity>, EntityState), StoreError> {
        let stored = self.stored()?;
        let state = match &stored {
            Some(s) => {
                EntityState::from_stored(s).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => EntityState::default(),
        };
        Ok((stored, state))
    }
}

impl DatastoreStore {
    /// Validates `config` and builds the client (see [`StoreConfig`] for the
    /// endpoint and credentials chosen).
    ///
    /// # Errors
    /// [`ConnectError`] for an invalid configuration or when the client cannot
    /// be created.
    pub async fn connect(config: StoreConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let api = connect(&config).await?;
        let partition = ds::PartitionId {
            project_id: config.project_id.clone(),
            database_id: config.database_id.clone(),
            namespace_id: config.namespace_id().to_string(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                rpc: Rpc {
                    api,
                    project_id: config.project_id.clone(),
                    database_id: config.database_id.clone(),
                },
                retry: RetryPolicy {
                    backoff: Backoff {
                        base: config.backoff_base,
                        max: config.backoff_max,
                    },
                    max_attempts: config.max_attempts,
                    budget: config.retry_budget,
                },
                partition,
                layout: config.key_layout(),
                key_locks: if config.serialize_keys_locally {
                    (0..KEY_LOCK_STRIPES)
                        .map(|_| tokio::sync::Mutex::new(()))
                        .collect()
                } else {
                    Vec::new()
                },
                config,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
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

    fn kind<'a>(&'a self, kind: Option<&'a str>) -> &'a str {
        kind.unwrap_or(&self.inner.config.default_kind)
    }

    fn element(kind: &str, name: &str) -> ds::key::PathElement {
        ds::key::PathElement {
            kind: kind.to_string(),
            id_type: Some(ds::key::path_element::IdType::Name(name.to_string())),
        }
    }

    fn key(&self, path: Vec<ds::key::PathElement>) -> ds::Key {
        ds::Key {
            partition_id: Some(self.inner.partition.clone()),
            path,
        }
    }

    fn entity_key(&self, kind: &str, id: &str) -> ds::Key {
        self.key(vec![Self::element(kind, id)])
    }

    fn tombstone_key(&self, kind: &str, id: &str) -> ds::Key {
        self.key(vec![
            Self::element(kind, id),
            Self::element(&self.inner.config.tombstone_kind, TOMBSTONE_NAME),
        ])
    }

    fn conflict_key(&self, kind: &str, id: &str, event_id: &str) -> ds::Key {
        self.key(vec![
            Self::element(kind, id),
            Self::element(&self.inner.config.conflict_kind, &conflict_name(event_id)),
        ])
    }

    /// Reads the main entity and the tombstone in one lookup.
    async fn read(
        &self,
        kind: &str,
        id: &str,
        transaction: Option<&[u8]>,
    ) -> Result<Read, StoreError> {
        let main_key = self.entity_key(kind, id);
        let tomb_key = self.tombstone_key(kind, id);
        let found = self
            .inner
            .rpc
            .lookup(vec![main_key.clone(), tomb_key.clone()], transaction)
            .await?;
        let mut read = Read {
            main: None,
            tombstone: None,
        };
        for entity in found {
            let path = entity.key.as_ref().map(|k| &k.path);
            if path == Some(&main_key.path) {
                read.main = Some(entity);
            } else if path == Some(&tomb_key.path) {
                read.tombstone = Some(entity);
            }
        }
        Ok(read)
    }

    /// Runs `attempt` with the configured retries (see [`retry::run`]).
    async fn retrying<T, F, Fut>(&self, what: &str, attempt: F) -> Result<(T, u32), StoreError>
    where
        F: FnMut(Option<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        retry::run(&self.inner.retry, what, attempt).await
    }

    /// Reads and merges in `transaction`; returns what to commit.
    async fn plan_apply(
        &self,
        event: &ChangeEvent,
        transaction: &[u8],
    ) -> Result<Plan, StoreError> {
        let config = &self.inner.config;
        let policy = &config.policy;
        let kind = self.kind(event.kind.as_deref());
        let id = event.entity_id.as_str();
        let read = self.read(kind, id, Some(transaction)).await?;
        let (before, state) = read.state()?;
        let merged = merge(&state, event, policy);

        let mut mutations = Vec::new();
        if merged.outcome.needs_write() {
            let stored = merged.state.to_stored(policy);
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
                    self.entity_key(kind, id),
                    &stored,
                    read.main.as_ref().zip(before.as_ref()),
                )));
                if read.tombstone.is_some() {
                    // The delete's key lives on in the entity's bookkeeping.
                    mutations.push(delete(self.tombstone_key(kind, id)));
                }
            } else {
                if read.main.is_some() {
                    mutations.push(delete(self.entity_key(kind, id)));
                }
                let deleted_at = merged.state.deleted.as_ref().map(|k| k.timestamp);
                mutations.push(upsert(tombstone_entity(
                    self.tombstone_key(kind, id),
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
                self.conflict_key(kind, id, &event.event_id),
                kind,
                event,
                &merged.conflicts,
            )));
        }
        let result = merged.result(event, policy);
        Ok(if mutations.is_empty() {
            Plan::Nothing(result)
        } else {
            Plan::Commit(result, mutations)
        })
    }

    fn expire_at(&self) -> DateTime<Utc> {
        let now = Utc::now();
        chrono::TimeDelta::from_std(self.inner.config.tombstone_retention)
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
        let rpc = &self.inner.rpc;
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

    /// Reads the entity (or its tombstone) outside any transaction.
    ///
    /// Returns its stored form (`exists` false for a tombstone) and the merge
    /// state rebuilt from it, or `None` when neither exists.
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn get(
        &self,
        kind: Option<&str>,
        entity_id: &str,
    ) -> Result<Option<(StoredEntity, EntityState)>, StoreError> {
        let kind = self.kind(kind);
        let (read, _) = self
            .retrying("get", |_| async {
                self.read(kind, entity_id, None).await.map_err(Failed::from)
            })
            .await?;
        let (stored, state) = read.state()?;
        Ok(stored.map(|s| (s, state)))
    }

    /// Every entity of `kind` (any kind, e.g. `SyncEntity` or `SyncTombstone`)
    /// in the namespace: key name (a numeric id as text) and properties as JSON,
    /// including `version`, `last_modified`, `sync_status` and
    /// `conflict_resolved`, without the bookkeeping.
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn query_kind(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, Map<String, Json>)>, StoreError> {
        let query = ds::Query {
            kind: vec![ds::KindExpression {
                name: kind.to_string(),
            }],
            ..Default::default()
        };
        let entities = self.query(query).await?;
        Ok(entities
            .iter()
            .map(|e| {
                let mut fields = json_of_properties(&e.properties);
                fields.remove(BOOKKEEPING_PROPERTY);
                (key_name(e.key.as_ref()), fields)
            })
            .collect())
    }

    async fn query(&self, query: ds::Query) -> Result<Vec<ds::Entity>, StoreError> {
        let partition = &self.inner.partition;
        let (entities, _) = self
            .retrying("query", |_| async {
                self.inner
                    .rpc
                    .query_all(partition, query.clone(), QUERY_PAGE)
                    .await
                    .map_err(Failed::from)
            })
            .await?;
        Ok(entities)
    }

    /// Conflict records of entities of `kind`: of one entity (an ancestor
    /// query) when `entity_id` is given, else of all of them. Ordered by the
    /// losing event's timestamp, then event id.
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn conflicts(
        &self,
        kind: Option<&str>,
        entity_id: Option<&str>,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        let kind = self.kind(kind);
        let filter = match entity_id {
            Some(id) => property_filter(
                "__key__",
                ds::property_filter::Operator::HasAncestor,
                ds::Value {
                    value_type: Some(ds::value::ValueType::KeyValue(self.entity_key(kind, id))),
                    ..Default::default()
                },
            ),
            None => property_filter(
                ENTITY_KIND,
                ds::property_filter::Operator::Equal,
                string_value(kind, false),
            ),
        };
        let query = ds::Query {
            kind: vec![ds::KindExpression {
                name: self.inner.config.conflict_kind.clone(),
            }],
            filter: Some(filter),
            ..Default::default()
        };
        let mut records: Vec<ConflictRecord> =
            self.query(query).await?.iter().map(record_of).collect();
        records.sort_by(|a, b| {
            a.recorded_at
                .cmp(&b.recorded_at)
                .then_with(|| a.event_id.cmp(&b.event_id))
        });
        Ok(records)
    }

    /// Whether the entity has a tombstone.
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn tombstone_exists(
        &self,
        kind: Option<&str>,
        entity_id: &str,
    ) -> Result<bool, StoreError> {
        let kind = self.kind(kind);
        let (read, _) = self
            .retrying("tombstone_exists", |_| async {
                self.read(kind, entity_id, None).await.map_err(Failed::from)
            })
            .await?;
        Ok(read.tombstone.is_some())
    }

    /// Deletes every entity of `kind` in the namespace (cleanup); returns how
    /// many there were. Not transactional.
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn delete_all(&self, kind: &str) -> Result<usize, StoreError> {
        let query = ds::Query {
            kind: vec![ds::KindExpression {
                name: kind.to_string(),
            }],
            projection: vec![ds::Projection {
                property: Some(ds::PropertyReference {
                    name: "__key__".into(),
                }),
            }],
            ..Default::default()
        };
        let keys: Vec<ds::Key> = self
            .query(query)
            .await?
            .into_iter()
            .filter_map(|e| e.key)
            .collect();
        for chunk in keys.chunks(COMMIT_BATCH) {
            let mutations: Vec<ds::Mutation> = chunk.iter().cloned().map(delete).collect();
            self.retrying("delete_all", |_| async {
                self.inner
                    .rpc
                    .commit(None, mutations.clone())
                    .await
                    .map_err(Failed::from)
            })
            .await?;
        }
        Ok(keys.len())
    }

    /// Writes an entity as given, without bookkeeping (as `syncctl init` writes
    /// the recipe's initial entity). Reserved names are written as given too;
    /// the store adopts such an entity on its first event.
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn put_raw(
        &self,
        kind: Option<&str>,
        entity_id: &str,
        fields: &BTreeMap<String, RawValue>,
    ) -> Result<(), StoreError> {
        let kind = self.kind(kind);
        let properties = fields
            .iter()
            .map(|(name, value)| {
                let v = match value {
                    RawValue::Json(j) => to_value(j),
                    RawValue::Timestamp(t) => timestamp_value(*t),
                };
                (name.clone(), v)
            })
            .collect();
        let entity = ds::Entity {
            key: Some(self.entity_key(kind, entity_id)),
            properties,
        };
        self.retrying("put_raw", |_| async {
            self.inner
                .rpc
                .commit(None, vec![upsert(entity.clone())])
                .await
                .map_err(Failed::from)
        })
        .await?;
        Ok(())
    }
}

/// What a transaction decided.
enum Plan<T = ApplyResult> {
    /// Commit these mutations, then return the value.
    Commit(T, Vec<ds::Mutation>),
    /// Nothing to write: roll back and return the value.
    Nothing(T),
}

#[async_trait]
impl EntityStore for DatastoreStore {
    async fn apply(&self, event: &ChangeEvent) -> Result<ApplyResult, StoreError> {
        // The keys this store writes, whatever layout the event was validated
        // with: refused before any call rather than by Datastore.
        let limit = self.inner.config.limits.max_key_bytes;
        let (key, bytes) = self.inner.layout.largest_key(
            event.kind.as_deref(),
            event.entity_id.as_str(),
            &event.event_id,
        );
        if bytes > limit {
            return Err(ValidationError::KeyTooLarge { key, bytes, limit }.into());
        }
        let _turn = self
            .lock_key(self.kind(event.kind.as_deref()), event.entity_id.as_str())
            .await;
        let (mut result, attempts) = self
            .retrying("apply", |previous| {
                self.transact(previous, move |tx| async move {
                    self.plan_apply(event, &tx).await
                })
            })
            .await?;
        result.attempts = attempts;
        Ok(result)
    }
}

fn upsert(entity: ds::Entity) -> ds::Mutation {
    ds::Mutation {
        operation: Some(ds::mutation::Operation::Upsert(entity)),
        ..Default::default()
    }
}

fn delete(key: ds::Key) -> ds::Mutation {
    ds::Mutation {
        operation: Some(ds::mutation::Operation::Delete(key)),
        ..Default::default()
    }
}

fn property_filter(
    property: &str,
    op: ds::property_filter::Operator,
    value: ds::Value,
) -> ds::Filter {
    ds::Filter {
        filter_type: Some(ds::filter::FilterType::PropertyFilter(ds::PropertyFilter {
            property: Some(ds::PropertyReference {
                name: property.to_string(),
            }),
            op: op as i32,
            value: Some(value),
        })),
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
