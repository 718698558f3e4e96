//! The sync function: a Cloud Run service that receives Pub/Sub deliveries,
//! applies each change event to Datastore through `sync-core`'s merge,
//! announces effective changes on `external-sync-<operation>` topics and sends
//! poison messages to the dead-letter topic.
//!
//! `app` holds the router and the handler (no business rules: those are
//! `sync-core`'s), `config` the validated settings; `main.rs` wires the real
//! adapters and serves. What it leaves out: merge rules (`sync-core`), wire
//! types of Datastore and Pub/Sub (`sync-store`, `sync-pubsub`), delivery
//! decoding (`sync-http`).

pub mod announced;
pub mod app;
pub mod config;

pub use announced::AnnouncedLog;
pub use app::{router, AppState, Clock, Reply};
pub use config::{Backend, Config, ConfigErrors};
