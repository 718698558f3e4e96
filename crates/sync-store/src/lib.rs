//! The Cloud Datastore adapter of datastore-sync: everything between
//! `sync-core`'s storage-neutral model and Datastore (or Firestore in
//! Datastore mode, or either emulator).
//!
//! - [`DatastoreStore`], the [`sync_core::EntityStore`]: one read-write
//!   transaction per event (or per group of events for one entity), retried on
//!   contention and transient failures within a budget ([`RetryBackoff`]);
//! - the entity layout (recipe-compatible entity, `SyncTombstone` and
//!   `SyncConflict` children) and the JSON ↔ Datastore value mapping;
//! - [`DatastoreAdmin`]: reads and writes for the CLI and tests;
//! - the RPCs counted ([`RpcCounts`], [`ApplyCounts`]), gRPC codes classified
//!   into [`sync_core::StoreError`], and [`StoreConfig`], the store's settings.
//!
//! What it leaves out: the merge and every decision about events
//! (`sync-core`), the process environment, Pub/Sub, HTTP and telemetry. No
//! gRPC type appears in its public API.

mod admin;
mod backoff;
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

pub use admin::{Committed, DatastoreAdmin, Scan, ScanPage, Scanned};
pub use backoff::RetryBackoff;
pub use config::{ConnectError, StoreConfig, PRODUCTION_ENDPOINT};
pub use conflict::{ConflictField, ConflictRecord};
pub use counters::{ApplyCounts, RpcCounts};
pub use mapping::RawValue;
pub use store::DatastoreStore;
