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
//!   read-write transaction (lookup entity and tombstone, merge, commit
//!   entity/tombstone/conflict record), retried on contention and on transient
//!   failures within a budget;
//! - the error classification of gRPC codes into [`sync_core::StoreError`];
//! - reads and writes for the CLI and tests ([`DatastoreAdmin`]: `get`,
//!   `query_kind`, `conflicts`, `delete_all`, `put_raw`, ...), on their own
//!   client or on the store's ([`DatastoreStore::admin`]).
//!
//! What it leaves out: the merge itself and every decision about events (that
//! is `sync-core`), reading the environment (the binaries build a
//! [`StoreConfig`]), Pub/Sub, HTTP and telemetry set-up. No wire type (gRPC
//! messages, `tonic::Status`) appears in its public API.

mod admin;
mod client;
mod config;
mod conflict;
mod database;
mod error;
mod mapping;
mod retry;
mod store;

pub use admin::DatastoreAdmin;
pub use config::{ConnectError, StoreConfig, EMULATOR_HOST_VAR, PRODUCTION_ENDPOINT};
pub use conflict::{ConflictField, ConflictRecord};
pub use mapping::RawValue;
pub use retry::Backoff;
pub use store::DatastoreStore;
