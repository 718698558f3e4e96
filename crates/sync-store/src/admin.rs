//! [`DatastoreAdmin`]: reads and writes outside the apply path, for the CLI
//! and the tests (an entity and its merge state, a kind's entities, a paged
//! [`Scan`] of a kind's entities or tombstones with Datastore query cursors,
//! conflict records, cleanup, raw writes), and [`DatastoreAdmin::ping`], the
//! cheap first call a function makes before it reports ready. The
//! `*_encoded` calls write, delete and read any entity as an application
//! would, in Datastore's own protobuf messages passed as bytes (so no gRPC
//! type enters the API): the capture's tests and demo build Eventarc's
//! events from what they return ([`Committed`]).

use crate::client::ReadIn;
use crate::config::{ConnectError, StoreConfig};
use crate::conflict::{record_of, ConflictRecord, ENTITY_KIND};
use crate::database::{delete, upsert, Database, Read};
use crate::mapping::{
    json_of_properties, key_name, stored_of, string_value, timestamp_value, to_value, RawValue,
};
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use prost::Message as _;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use sync_core::{EntityState, StoreError, StoredEntity, BOOKKEEPING_PROPERTY};

/// Results per query page.
const QUERY_PAGE: i32 = 300;
/// Mutations per non-transactional commit (Datastore allows 500).
const COMMIT_BATCH: usize = 500;
/// The key name [`DatastoreAdmin::ping`] looks up (not reserved: `__*__` is).
const PING_NAME: &str = "sync-readiness-ping";

/// What a [`Scan`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// The entities of the kind (a deleted entity has none, only a tombstone).
    Entities,
    /// The tombstones of the kind's deleted entities.
    Tombstones,
}

/// A read of one kind's entities or tombstones, page by page in key order,
/// each page starting where the previous one's cursor says
/// ([`DatastoreAdmin::scan`]).
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    /// The entities' kind; the configured one when `None`.
    pub kind: Option<&'a str>,
    /// Entities or tombstones.
    pub of: Scanned,
    /// Only entity ids (key names) starting with this (a key range).
    pub prefix: Option<&'a str>,
    /// Results per page (at most; a tombstone of another kind is read but
    /// left out).
    pub page_size: i32,
}

/// One page of a [`Scan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanPage {
    /// Entity id and stored form (`exists` false for a tombstone), in key
    /// order.
    pub entities: Vec<(String, StoredEntity)>,
    /// Where the next page starts, an opaque Datastore query cursor to pass
    /// back to [`DatastoreAdmin::scan`]; `None` after the last page.
    pub next: Option<Vec<u8>>,
}

/// What a write or delete committed: Datastore's answer for the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The entity's version after the commit (for a delete, the version of
    /// its absence).
    pub version: i64,
    /// When the commit happened, as Datastore reports it: the commit time,
    /// else the entity's update time; `None` when the server gives neither
    /// (the emulators may not).
    pub time: Option<DateTime<Utc>>,
}

/// Datastore reads and writes besides [`sync_core::EntityStore::apply`].
/// Cheap to clone; built by [`DatastoreAdmin::connect`] or, sharing the
/// client, by [`crate::DatastoreStore::admin`].
#[derive(Debug, Clone)]
pub struct DatastoreAdmin {
    db: Arc<Database>,
}

impl DatastoreAdmin {
    /// Validates `config` and builds the client (see [`StoreConfig`] for the
    /// endpoint and credentials chosen).
    ///
    /// # Errors
    /// [`ConnectError`] for an invalid configuration or when the client cannot
    /// be created.
    pub async fn connect(config: StoreConfig) -> Result<Self, ConnectError> {
        Ok(Self::on(Arc::new(Database::connect(config).await?)))
    }

    pub(crate) fn on(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// The configuration in force.
    pub fn config(&self) -> &StoreConfig {
        &self.db.config
    }

    /// One cheap call that proves the channel, the credentials and the
    /// database: a lookup of a key that does not exist (one entity read),
    /// in the configured namespace and default kind. Tried once: the caller
    /// decides whether to retry.
    ///
    /// # Errors
    /// [`StoreError`] of the lookup.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let key = self.db.entity_key(&self.db.config.default_kind, PING_NAME);
        self.db
            .rpc
            .lookup(vec![key], ReadIn::Strong)
            .await
            .map(drop)
    }

    /// Reads the entity and its tombstone outside any transaction, retried.
    async fn read(
        &self,
        what: &str,
        kind: Option<&str>,
        entity_id: &str,
    ) -> Result<Read, StoreError> {
        let kind = self.db.kind(kind);
        self.db
            .retrying_call(what, || self.db.read(kind, entity_id, ReadIn::Strong))
            .await
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
        let (stored, state) = self.read("get", kind, entity_id).await?.state()?;
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

    /// One page of `scan`, from `start` (a [`ScanPage::next`] of the same
    /// scan) or from the first entity. Outside any transaction: an entity
    /// changed while a scan goes on is read as it is when its page is read,
    /// and one created behind the cursor is not read at all.
    ///
    /// # Errors
    /// [`StoreError`]: `Corrupt` for an entity whose bookkeeping properties
    /// have the wrong type; a cursor Datastore does not accept (another
    /// query's, or garbage) as Datastore classifies it; transient failures
    /// are retried within the budget first.
    pub async fn scan(
        &self,
        scan: &Scan<'_>,
        start: Option<&[u8]>,
    ) -> Result<ScanPage, StoreError> {
        let entity_kind = self.db.kind(scan.kind);
        let kind = match scan.of {
            Scanned::Entities => entity_kind,
            Scanned::Tombstones => self.db.config.tombstone_kind.as_str(),
        };
        let query = ds::Query {
            kind: vec![ds::KindExpression {
                name: kind.to_string(),
            }],
            filter: scan
                .prefix
                .filter(|p| !p.is_empty())
                .map(|p| self.key_range(entity_kind, p)),
            start_cursor: start.map(<[u8]>::to_vec).unwrap_or_default(),
            limit: Some(scan.page_size.max(1)),
            ..Default::default()
        };
        let partition = &self.db.partition;
        let page = self
            .db
            .retrying_call("scan", || self.db.rpc.query_page(partition, query.clone()))
            .await?;
        let mut entities = Vec::with_capacity(page.entities.len());
        for e in &page.entities {
            let path = e.key.as_ref().map_or(&[][..], |k| k.path.as_slice());
            let id = match scan.of {
                Scanned::Entities => key_name(e.key.as_ref()),
                // A tombstone is the child of its entity's key.
                Scanned::Tombstones => match path {
                    [.., parent, _] if parent.kind == entity_kind => key_name(Some(&ds::Key {
                        partition_id: None,
                        path: vec![parent.clone()],
                    })),
                    _ => continue,
                },
            };
            let stored = stored_of(e, scan.of == Scanned::Entities)
                .map_err(|why| StoreError::Corrupt(format!("{entity_kind} {id}: {why}")))?;
            entities.push((id, stored));
        }
        Ok(ScanPage {
            entities,
            next: page.next,
        })
    }

    /// `__key__` from `(kind, prefix)` (inclusive) to the first name past
    /// every name starting with `prefix` (exclusive): key names order by
    /// their UTF-8 bytes, which is code point order, and a key's children
    /// (tombstones) sort right after it, so the range holds both.
    fn key_range(&self, kind: &str, prefix: &str) -> ds::Filter {
        use ds::property_filter::Operator;
        let key = |name: &str| ds::Value {
            value_type: Some(ds::value::ValueType::KeyValue(
                self.db.entity_key(kind, name),
            )),
            ..Default::default()
        };
        let from = property_filter("__key__", Operator::GreaterThanOrEqual, key(prefix));
        let Some(past) = past_prefix(prefix) else {
            return from;
        };
        let to = property_filter("__key__", Operator::LessThan, key(&past));
        ds::Filter {
            filter_type: Some(ds::filter::FilterType::CompositeFilter(
                ds::CompositeFilter {
                    op: ds::composite_filter::Operator::And as i32,
                    filters: vec![from, to],
                },
            )),
        }
    }

    async fn query(&self, query: ds::Query) -> Result<Vec<ds::Entity>, StoreError> {
        let partition = &self.db.partition;
        self.db
            .retrying_call("query", || {
                self.db.rpc.query_all(partition, query.clone(), QUERY_PAGE)
            })
            .await
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
        let kind = self.db.kind(kind);
        let filter = match entity_id {
            Some(id) => property_filter(
                "__key__",
                ds::property_filter::Operator::HasAncestor,
                ds::Value {
                    value_type: Some(ds::value::ValueType::KeyValue(self.db.entity_key(kind, id))),
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
                name: self.db.config.conflict_kind.clone(),
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
        let read = self.read("tombstone_exists", kind, entity_id).await?;
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
            self.db
                .retrying_call("delete_all", || self.db.rpc.commit(None, mutations.clone()))
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
        let kind = self.db.kind(kind);
        self.put_raw_at(self.db.entity_key(kind, entity_id), fields)
            .await
    }

    /// Writes an entity's tombstone as given (for tests that write what an
    /// earlier version of the store left).
    ///
    /// # Errors
    /// [`StoreError`]; transient failures are retried within the budget first.
    pub async fn put_raw_tombstone(
        &self,
        kind: Option<&str>,
        entity_id: &str,
        fields: &BTreeMap<String, RawValue>,
    ) -> Result<(), StoreError> {
        let kind = self.db.kind(kind);
        self.put_raw_at(self.db.tombstone_key(kind, entity_id), fields)
            .await
    }

    /// Writes (upserts) `entity`, the protobuf encoding of a
    /// `google.datastore.v1.Entity` with a complete key, as an application
    /// writes its own entities: no bookkeeping, no validation beyond
    /// Datastore's. The key's partition is replaced by this admin's project,
    /// database and namespace. Not retried: a test wants the one commit.
    ///
    /// # Errors
    /// [`StoreError::Refused`] when the bytes are not an entity with a key;
    /// the commit's [`StoreError`].
    pub async fn write_encoded(&self, entity: &[u8]) -> Result<Committed, StoreError> {
        let mut entity = ds::Entity::decode(entity).map_err(|e| refused("an Entity", &e))?;
        let key = entity
            .key
            .take()
            .ok_or_else(|| refused_text("the entity has no key"))?;
        entity.key = Some(self.in_partition(key));
        self.commit_one(upsert(entity)).await
    }

    /// Deletes the entity whose key is `key`, the protobuf encoding of a
    /// `google.datastore.v1.Key` (its partition replaced by this admin's).
    ///
    /// # Errors
    /// As [`write_encoded`](Self::write_encoded).
    pub async fn delete_encoded(&self, key: &[u8]) -> Result<Committed, StoreError> {
        let key = ds::Key::decode(key).map_err(|e| refused("a Key", &e))?;
        self.commit_one(delete(self.in_partition(key))).await
    }

    /// The entity whose key is `key` (encoded as for
    /// [`delete_encoded`](Self::delete_encoded)), as Datastore's lookup
    /// returned it: the protobuf encoding of a `google.datastore.v1.EntityResult`
    /// (entity, version, create and update times); `None` when it does not
    /// exist.
    ///
    /// # Errors
    /// As [`write_encoded`](Self::write_encoded), for the lookup.
    pub async fn lookup_encoded(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = ds::Key::decode(key).map_err(|e| refused("a Key", &e))?;
        let found = self.db.rpc.lookup_result(self.in_partition(key)).await?;
        Ok(found.map(|r| r.encode_to_vec()))
    }

    /// `key` in this admin's project, database and namespace.
    fn in_partition(&self, mut key: ds::Key) -> ds::Key {
        key.partition_id = Some(self.db.partition.clone());
        key
    }

    async fn commit_one(&self, mutation: ds::Mutation) -> Result<Committed, StoreError> {
        let response = self.db.rpc.commit_returning(None, vec![mutation]).await?;
        let result = response.mutation_results.into_iter().next();
        let time = |ts: &prost_types::Timestamp| {
            DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
        };
        Ok(Committed {
            version: result.as_ref().map_or(0, |r| r.version),
            time: response
                .commit_time
                .as_ref()
                .and_then(time)
                .or_else(|| result.as_ref()?.update_time.as_ref().and_then(time)),
        })
    }

    async fn put_raw_at(
        &self,
        key: ds::Key,
        fields: &BTreeMap<String, RawValue>,
    ) -> Result<(), StoreError> {
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
            key: Some(key),
            properties,
        };
        self.db
            .retrying_call("put_raw", || {
                self.db.rpc.commit(None, vec![upsert(entity.clone())])
            })
            .await
    }
}

/// The least string greater than every string starting with `prefix`: its
/// last character that can grow, grown, and what followed it cut; `None`
/// when none can (every character is `char::MAX`), and then no upper bound
/// is needed.
fn past_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, skipping the surrogates.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
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

fn refused(what: &str, e: &prost::DecodeError) -> StoreError {
    refused_text(&format!("the bytes are not {what}: {e}"))
}

fn refused_text(message: &str) -> StoreError {
    StoreError::Refused {
        message: message.to_string(),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::past_prefix;

    #[test]
    fn past_prefix_bounds_exactly_the_names_with_the_prefix() {
        assert_eq!(past_prefix("rs-a-").as_deref(), Some("rs-a."));
        assert_eq!(past_prefix("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(past_prefix("ab\u{10FFFF}").as_deref(), Some("ac"));
        assert_eq!(past_prefix("\u{10FFFF}"), None);
        let past = past_prefix("é").unwrap_or_default();
        for name in ["é", "é-1", "é\u{10FFFF}\u{10FFFF}"] {
            assert!(
                name < past.as_str() && name.as_bytes() < past.as_bytes(),
                "{name}"
            );
        }
        assert!("ê" >= past.as_str());
    }
}
