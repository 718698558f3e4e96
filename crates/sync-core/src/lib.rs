//! Pure domain logic of datastore-sync.
//!
//! This crate owns what the sync and audit functions decide, and nothing of
//! how they do it. It does no I/O, reads no clock and needs no async runtime:
//! time and ids arrive as arguments, so every decision is a deterministic
//! function that unit and property tests can check exhaustively.
//!
//! Its modules follow the data, each using only those above it in this list:
//!
//! - [`error`] (every error's [`Disposition`]) and [`value`] (what a user
//!   field may be named and hold);
//! - [`wire`]: the contracts every crate and script shares (the event, the
//!   announcement, the audit entries, dead-letter attributes, topology);
//! - [`ingest`]: message data to a validated [`ChangeEvent`] (schema
//!   upcasting, Datastore's limits);
//! - [`merge`](mod@merge): the convergent per-field merge, the policy, the
//!   entity's state and its stored form;
//! - [`ports`]: the traits the adapters implement; [`logline`]: one log line
//!   within one Cloud Logging entry.
//!
//! Datastore's and Pub/Sub's own types, HTTP delivery decoding, retries,
//! reading settings (`sync-config`: the core parses a policy's or a history's
//! contents, never a file or a variable) and telemetry live in the adapter
//! crates. The cargo feature `memory` (off by
//! default) adds `sync_core::memory`: in-memory ports for handler tests and
//! benchmarks only.
#![deny(missing_docs)]

pub mod error;
mod file_format;
pub mod ingest;
pub mod logline;
#[cfg(feature = "memory")]
pub mod memory;
pub mod merge;
pub mod ports;
pub mod value;
pub mod wire;

pub use error::{Classify, Disposition, ValidationError};
pub use ingest::{
    parse_event, parse_event_with, ChangeEvent, EntityId, SchemaError, SchemaHistory, Upcast,
    ValidationLimits,
};
pub use merge::{
    merge, merge_group, merge_group_checked, Announcement, Candidate, EntityState, FieldConflict,
    FieldRule, FieldState, LossReason, MergeOutcome, MergePolicy, OrderKey, Outcome, PolicyError,
    StateError, StoredEntity,
};
pub use ports::{EntityStore, EventPublisher, OutgoingMessage, PublishError, StoreError};
pub use value::{BOOKKEEPING_PROPERTY, RESERVED_FIELDS};
pub use wire::{format_timestamp, parse_timestamp, AnnouncementMessage, EventMessage, Operation};
