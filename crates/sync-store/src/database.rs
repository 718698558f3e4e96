//! What the apply path and the admin share: one client on one database and
//! namespace, the keys of the entity layout, the entity/tombstone read and the
//! retries.

use crate::backoff::RetryBackoff;
use crate::client::{connect, ReadIn, Rpc};
use crate::config::{ConnectError, StoreConfig};
use crate::mapping::stored_of;
use crate::retry::{self, Failed, RetryPolicy};
use gcloud_sdk::google::datastore::v1 as ds;
use std::future::Future;
use std::sync::Arc;
use sync_core::ingest::limits::{conflict_name, TOMBSTONE_NAME};
use sync_core::{EntityState, StoreError, StoredEntity, BOOKKEEPING_PROPERTY};

/// One connected database and namespace.
pub(crate) struct Database {
    pub rpc: Rpc,
    pub config: StoreConfig,
    pub partition: ds::PartitionId,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datastore")
            .field("url", &self.config.url())
            .field("project_id", &self.config.project_id)
            .field("namespace", &self.config.namespace_id())
            .finish_non_exhaustive()
    }
}

/// What one read found: the main entity and the tombstone, if present (the
/// tombstone: if read, see [`Database::read_where`]), and the transaction the
/// read began (empty unless it was asked to begin one and the server did).
/// The keys read are kept for the writes that follow, so an apply builds
/// each key once.
pub(crate) struct Read {
    pub main: Option<ds::Entity>,
    pub tombstone: Option<ds::Entity>,
    pub began: Vec<u8>,
    pub main_key: ds::Key,
    pub tombstone_key: ds::Key,
}

impl Read {
    /// Puts what a lookup found where it belongs.
    fn place(&mut self, entities: Vec<ds::Entity>) {
        for entity in entities {
            let path = entity.key.as_ref().map(|k| &k.path);
            if path == Some(&self.main_key.path) {
                self.main = Some(entity);
            } else if path == Some(&self.tombstone_key.path) {
                self.tombstone = Some(entity);
            }
        }
    }

    /// The stored form: the main entity if present, else the tombstone.
    fn stored(&self) -> Result<Option<StoredEntity>, StoreError> {
        let stored = match (&self.main, &self.tombstone) {
            (Some(main), _) => Some(stored_of(main, true)),
            (None, Some(tomb)) => Some(stored_of(tomb, false)),
            (None, None) => None,
        };
        stored.transpose().map_err(StoreError::Corrupt)
    }

    /// The stored form, if any, and the merge state rebuilt from it.
    pub fn state(&self) -> Result<(Option<StoredEntity>, EntityState), StoreError> {
        let stored = self.stored()?;
        let state = match &stored {
            Some(s) => EntityState::from_stored(s)?,
            None => EntityState::default(),
        };
        Ok((stored, state))
    }
}

impl Database {
    /// Validates `config` and builds the client (see [`StoreConfig`] for the
    /// endpoint and credentials chosen).
    pub async fn connect(config: StoreConfig) -> Result<Self, ConnectError> {
        config.validate()?;
        let api = connect(&config).await?;
        Ok(Self {
            rpc: Rpc {
                api,
                project_id: config.project_id.clone(),
                database_id: config.database_id.clone(),
                counters: Arc::default(),
            },
            partition: ds::PartitionId {
                project_id: config.project_id.clone(),
                database_id: config.database_id.clone(),
                namespace_id: config.namespace_id().to_string(),
            },
            retry: RetryPolicy {
                backoff: RetryBackoff {
                    base: config.backoff_base,
                    max: config.backoff_max,
                },
                max_attempts: config.max_attempts,
                budget: config.retry_budget,
            },
            config,
        })
    }

    /// `kind`, or the configured default kind.
    pub fn kind<'a>(&'a self, kind: Option<&'a str>) -> &'a str {
        kind.unwrap_or(&self.config.default_kind)
    }

    fn element(kind: &str, name: &str) -> ds::key::PathElement {
        ds::key::PathElement {
            kind: kind.to_string(),
            id_type: Some(ds::key::path_element::IdType::Name(name.to_string())),
        }
    }

    fn key(&self, path: Vec<ds::key::PathElement>) -> ds::Key {
        ds::Key {
            partition_id: Some(self.partition.clone()),
            path,
        }
    }

    pub fn entity_key(&self, kind: &str, id: &str) -> ds::Key {
        self.key(vec![Self::element(kind, id)])
    }

    pub fn tombstone_key(&self, kind: &str, id: &str) -> ds::Key {
        self.key(vec![
            Self::element(kind, id),
            Self::element(&self.config.tombstone_kind, TOMBSTONE_NAME),
        ])
    }

    pub fn conflict_key(&self, kind: &str, id: &str, event_id: &str) -> ds::Key {
        self.key(vec![
            Self::element(kind, id),
            Self::element(&self.config.conflict_kind, &conflict_name(event_id)),
        ])
    }

    /// Reads the main entity and the tombstone in one lookup, as `read_in`
    /// says.
    pub async fn read(
        &self,
        kind: &str,
        id: &str,
        read_in: ReadIn<'_>,
    ) -> Result<Read, StoreError> {
        self.read_where(kind, id, read_in, true).await
    }

    /// Reads what the merge needs, as `read_in` says: the main entity, and
    /// its tombstone only where it can matter. An entity this store wrote
    /// keeps the last delete's order key in its bookkeeping, and the store
    /// removes the tombstone whenever it writes the entity, so the tombstone
    /// is read (in a second lookup, in the same transaction) only when the
    /// entity is absent, or was written by someone else (no bookkeeping:
    /// its tombstone, if any, is removed with the next write).
    /// `tombstone_too` asks for both in one lookup (a create, which mostly
    /// finds no entity and would need the second lookup).
    pub async fn read_where(
        &self,
        kind: &str,
        id: &str,
        read_in: ReadIn<'_>,
        tombstone_too: bool,
    ) -> Result<Read, StoreError> {
        let main_key = self.entity_key(kind, id);
        let tomb_key = self.tombstone_key(kind, id);
        let keys = if tombstone_too {
            vec![main_key.clone(), tomb_key.clone()]
        } else {
            vec![main_key.clone()]
        };
        let found = self.rpc.lookup(keys, read_in).await?;
        let mut read = Read {
            main: None,
            tombstone: None,
            began: found.began,
            main_key,
            tombstone_key: tomb_key,
        };
        read.place(found.entities);
        let ours = read
            .main
            .as_ref()
            .is_some_and(|m| m.properties.contains_key(BOOKKEEPING_PROPERTY));
        if tombstone_too || ours {
            return Ok(read);
        }
        let again = match read_in {
            // A lookup that was to begin the transaction and did not: the
            // caller begins one and reads anew.
            ReadIn::NewTransaction(_) if read.began.is_empty() => return Ok(read),
            ReadIn::NewTransaction(_) => ReadIn::Transaction(&read.began),
            other => other,
        };
        match self
            .rpc
            .lookup(vec![read.tombstone_key.clone()], again)
            .await
        {
            Ok(found) => {
                read.place(found.entities);
                Ok(read)
            }
            Err(error) => {
                // The transaction the first lookup began ends here: its
                // caller only ever sees the error.
                if matches!(read_in, ReadIn::NewTransaction(_)) {
                    self.rpc.rollback(read.began).await;
                }
                Err(error)
            }
        }
    }

    /// Runs `attempt` with the configured retries (see [`retry::run`]);
    /// returns its value and the attempts made.
    pub async fn retrying<T, F, Fut>(&self, what: &str, attempt: F) -> Result<(T, u32), StoreError>
    where
        F: FnMut(Option<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        retry::run(&self.retry, what, attempt).await
    }

    /// Runs `call`, which uses no transaction, with the configured retries.
    pub async fn retrying_call<T, F, Fut>(&self, what: &str, call: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let call = &call;
        let (value, _) = self
            .retrying(what, |_| async move { call().await.map_err(Failed::from) })
            .await?;
        Ok(value)
    }
}

/// An upsert of `entity`.
pub(crate) fn upsert(entity: ds::Entity) -> ds::Mutation {
    ds::Mutation {
        operation: Some(ds::mutation::Operation::Upsert(entity)),
        ..Default::default()
    }
}

/// A delete of `key`.
pub(crate) fn delete(key: ds::Key) -> ds::Mutation {
    ds::Mutation {
        operation: Some(ds::mutation::Operation::Delete(key)),
        ..Default::default()
    }
}
