//! The audit function: for every Pub/Sub delivery, one audit entry in Cloud
//! Logging's structured JSON format on stdout, with the recipe's fields; a
//! second, `NOTICE` entry for deletes; a `WARNING` entry for malformed messages,
//! which are acknowledged like the rest: the audit trail never loses a message
//! and never waits on the sync function.
//!
//! Entries are written with serde, not through `tracing`, as the types of
//! `sync_core::wire::audit` (which tests and consumers read back): their field
//! names are a contract (snake_case, as the recipe's), while `tracing-stackdriver`
//! renames event fields to camelCase and flattens nested values to text. The
//! function's own operational logs still go through `tracing`.
//!
//! What it leaves out: delivery decoding (`sync-http`) and event validation
//! (`sync-core`), which it reuses.

pub mod app;
pub mod config;
pub mod entry;
pub mod sink;

pub use app::{router, AppState};
pub use config::AuditConfig;
pub use sink::{AuditSink, StdoutSink};
