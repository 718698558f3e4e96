//! Datastore change capture: entity change events that Firestore in
//! Datastore mode emits through Eventarc, turned into the pipeline's change
//! events.
//!
//! This crate owns the decode and decide steps of the capture function:
//!
//! - [`proto`]: the event's protobuf body, `EntityEventData`, declared with
//!   prost from Google's published field numbers (it also encodes, which is
//!   how tests build events);
//! - [`event`]: the binary-mode CloudEvent (the `ce-*` headers and the
//!   protobuf body) decoded into an [`EntityEvent`], every Datastore event
//!   type with or without `.withAuthContext`; what cannot be decoded is a
//!   [`DecodeError`] with a stable code; [`EntityEvent::to_request`] builds
//!   the request Eventarc would send, for tests and the demo;
//! - [`mapping`]: the [`Decision`] for an event: the recipe's change event to
//!   forward, an echo of the sync function's own write, or a kind not
//!   captured; what can never be forwarded is a [`MapError`] with a stable
//!   code;
//! - [`value`]: each Datastore value as the JSON of the change event's
//!   `data`;
//! - [`filter`]: which kinds are captured, refusing the sync function's own;
//! - [`emulate`]: a stand-in for Eventarc, for local runs: the event a change
//!   makes, built from the snapshots a Datastore lookup returned (the tests
//!   and the demo deliver it, since no emulator emits these events).
//!
//! It does no I/O: serving HTTP, reading the trace context (`sync-http`),
//! publishing and dead-lettering (`sync-pubsub`) are the function's
//! (`functions/capture`). The contract, field by field and type by type, is
//! `docs/capture.md`.
#![deny(missing_docs)]

pub mod emulate;
pub mod event;
pub mod filter;
pub mod mapping;
pub mod proto;
pub mod value;

pub use event::{decode, DecodeError, EntityEvent, EventType};
pub use filter::{CaptureFilter, FilterError, OwnKinds};
pub use mapping::{decide, CapturedChange, Decision, MapError};

#[cfg(test)]
mod fixtures;
