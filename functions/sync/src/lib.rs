//! The sync function: a Cloud Run service that receives Pub/Sub deliveries,
//! applies each change event to Datastore through `sync-core`'s merge,
//! announces effective changes on `external-sync-<operation>` topics and sends
//! poison messages to the dead-letter topic.
//!
//! `handler` holds the router and the handler (no business rules: those are
//! `sync-core`'s); `counters` what the running function counts; `app` holds
//! [`App`], the function connected to Datastore and Pub/Sub (`App::connect`,
//! `router`, `drain`); `config` the validated settings, one
//! [`Config`] composed of the adapters' parts; `announced` the hint that skips
//! repeated announcements; `readiness` the start-up ([`Startup`]): the
//! server answers at once, `/healthz` turns 200 once the clients have made
//! their first calls. `main.rs` only reads the environment, starts logging
//! and serves a [`Startup`], then drains its [`App`]; a test or a bench
//! builds [`router`] on any ports through [`AppState::new`].
//!
//! What it leaves out: merge rules (`sync-core`), wire types of Datastore and
//! Pub/Sub and the messages published (`sync-store`, `sync-pubsub`), delivery
//! decoding (`sync-http`), and any in-memory backend (`sync_core::memory`,
//! used by tests and the bench, never by this binary).

pub mod announced;
pub mod app;
pub mod config;
pub mod counters;
pub mod handler;
pub mod readiness;

pub use announced::AnnouncedLog;
pub use app::App;
pub use config::Config;
pub use handler::{router, AppState, Clock, Reply};
pub use readiness::Startup;
pub use sync_config::ConfigErrors;
