//! The Cloud Datastore adapter of datastore-sync.
//!
//! This crate owns everything between `sync-core`'s storage-neutral model and
//! Datastore (or Firestore in Datastore mode, or either emulator):
//!
//! - the gRPC client ([`DatastoreStore::connect`], [`DatastoreAdmin::connect`]):
//!   `http://$DATASTORE_EMULATOR_HOST` without credentials, or the production
//!   endpoint with Application Default Credentials; built once, cheap to clone,
//!   every call bounded by a timeout;
//! - the entity layout (recipe-compatible main entity, `SyncTombstone` child
//!   for deletes, `SyncConflict` child per losing event) and the JSON ↔
//!   Datastore value mapping, with long strings and the bookkeeping unindexed;
//! - [`sync_core::EntityStore`] ([`DatastoreStore`]): one event = one
//!   read-write transaction (lookup of the entity, and of its tombstone only
//!   where it can matter; beginning the
//!   transaction where the server allows, merge, commit
//!   entity/tombstone/conflict record), retried on contention and on transient
//!   failures within a budget;
//! - the RPCs each client sent ([`DatastoreStore::rpc_counts`], [`RpcCounts`])
//!   and how a store's applies shared transactions ([`DatastoreStore::apply_counts`]);
//! - the error classification of gRPC codes into [`sync_core::StoreError`];
//! - reads and writes for the CLI and tests ([`DatastoreAdmin`]: `get`,
//!   `query_kind`, a cursor-paged [`Scan`] of a kind's entities or
//!   tombstones, `conflicts`, `delete_all`, `put_raw`, ...), on their own
//!   client or on the store's ([`DatastoreStore::admin`]);
//! - [`StoreConfig::read`]: the store's part of a binary's settings
//!   (`DATASTORE_EMULATOR_HOST`, `DATASTORE_NAMESPACE`, `SYNC_KIND`,
//!   `TOMBSTONE_RETENTION_DAYS`, `RETRY_BUDGET_SECS`; names in
//!   `sync-config`), read through a `sync_config::Reader` so that a bad value
//!   is reported with every other problem before anything connects.
//!
//! What it leaves out: the merge itself and every decision about events (that
//! is `sync-core`), the backoff arithmetic (`sync_core::backoff`), the process
//! environment itself (the binaries pass a lookup), Pub/Sub, HTTP and
//! telemetry set-up. No wire type (gRPC
//! messages, `tonic::Status`) appears in its public API.

mod admin;
mod client;
pub mod config;
mod conflict;
mod counters;
mod database;
mod error;
mod group;
mod mapping;
mod retry;
mod store;

pub use admin::{DatastoreAdmin, Scan, ScanPage, Scanned};
pub use config::{ConnectError, StoreConfig, PRODUCTION_ENDPOINT};
pub use conflict::{ConflictField, ConflictRecord};
pub use counters::{ApplyCounts, RpcCounts};
pub use mapping::RawValue;
pub use store::DatastoreStore;
