//! Pure domain logic of datastore-sync.
//!
//! This crate owns what the sync and audit functions decide, and nothing of how
//! they do it: the recipe-compatible change event and its validation, the
//! convergent per-field merge with delete tombstones, the merge policy, the
//! schema history that upcasts events of older versions ([`schema`]), the
//! stored entity model, the port traits that adapters implement, and the wire
//! contracts every crate and script shares ([`wire`]: the event, announcement
//! and audit entry as serde types, the dead-letter attributes, the topology's
//! names). It does no I/O, reads no clock and needs no async runtime: time and
//! ids arrive as arguments, so every decision is a deterministic function that
//! unit and property tests can check exhaustively.
//!
//! Two small helpers serve the adapters and binaries alike: [`backoff`]
//! computes jittered retry waits; [`logline`] keeps a log line within one
//! Cloud Logging entry (the budget, and how a value over it is shortened and
//! digested).
//!
//! What it leaves out: Datastore's and Pub/Sub's own API types (see
//! `sync-store` and `sync-pubsub`), HTTP delivery decoding (`sync-http`),
//! reading settings and the files they name (`sync-config` and the
//! binaries: the core parses a policy's or a history's contents), and
//! telemetry (the function binaries).
//!
//! The cargo feature `memory` (off by default) adds `sync_core::memory`: in-memory
//! ports for handler tests and benchmarks, which their crates enable in
//! dev-dependencies or bench binaries only.
#![deny(missing_docs)]

pub mod backoff;
pub mod error;
pub mod event;
mod file_format;
pub mod limits;
pub mod logline;
#[cfg(feature = "memory")]
pub mod memory;
pub mod merge;
pub mod order;
pub mod policy;
pub mod ports;
mod rank;
pub mod schema;
pub mod state;
pub mod stored;
pub mod value;
pub mod wire;

pub use error::{Disposition, ValidationError};
pub use event::{
    parse_event, parse_event_with, parse_timestamp, ChangeEvent, EntityId, Limits, Operation,
};
pub use merge::{
    merge, merge_group, merge_group_checked, FieldConflict, LossReason, MergeOutcome, Outcome,
};
pub use order::OrderKey;
pub use policy::{FieldRule, MergePolicy, PolicyError};
pub use ports::{EntityStore, EventPublisher, OutgoingMessage, PublishError, StoreError};
pub use schema::{SchemaError, SchemaHistory, Upcast};
pub use state::{Announcement, Candidate, EntityState, FieldState, RESERVED_FIELDS};
pub use stored::{StateError, StoredEntity, BOOKKEEPING_PROPERTY};
pub use wire::{AnnouncementMessage, EventMessage};
