//! Pure domain logic of datastore-sync.
//!
//! This crate owns what the sync and audit functions decide, and nothing of how
//! they do it: the recipe-compatible change event and its validation, the
//! convergent per-field merge with delete tombstones, the merge policy, the
//! stored entity model and the port traits that adapters implement. It does no
//! I/O, reads no clock and needs no async runtime: time and ids arrive as
//! arguments, so every decision is a deterministic function that unit and
//! property tests can check exhaustively.
//!
//! What it leaves out: Datastore and Pub/Sub wire types (see `sync-store` and
//! `sync-pubsub`), HTTP delivery decoding (`sync-http`), configuration from the
//! environment and telemetry (the function binaries).
//!
//! The cargo feature `memory` (off by default) adds `sync_core::memory`: in-memory
//! ports for handler tests and benchmarks, which their crates enable in
//! dev-dependencies or bench binaries only.
#![deny(missing_docs)]

pub mod error;
pub mod event;
pub mod limits;
#[cfg(feature = "memory")]
pub mod memory;
pub mod merge;
pub mod order;
pub mod policy;
pub mod ports;
mod rank;
pub mod state;
pub mod stored;
pub mod value;
pub mod wire;

pub use error::{Disposition, ValidationError};
pub use event::{parse_event, parse_timestamp, ChangeEvent, EntityId, Limits, Operation};
pub use merge::{merge, FieldConflict, LossReason, MergeOutcome, Outcome};
pub use order::OrderKey;
pub use policy::{FieldRule, MergePolicy, PolicyError};
pub use ports::{EntityStore, EventPublisher, OutgoingMessage, PublishError, StoreError};
pub use state::{Announcement, Candidate, EntityState, FieldState, RESERVED_FIELDS};
pub use stored::{StateError, StoredEntity, BOOKKEEPING_PROPERTY};
