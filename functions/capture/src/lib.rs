//! The capture function: a Cloud Run service that receives the entity
//! change events Firestore in Datastore mode emits through Eventarc and
//! publishes each as the recipe's change event on the events topic, where
//! the sync function merges it and the audit function records it like any
//! other event.
//!
//! `handler` holds the router and the handler (decode, decide, publish or
//! dead-letter; no mapping rule: those are `sync-capture`'s); `config` the
//! validated settings, which refuse to capture the sync function's own
//! kinds; `app` holds [`App`], the function connected to Pub/Sub; and
//! `readiness` the start-up ([`Startup`]): the server answers at once,
//! `/healthz` turns 200 once Pub/Sub has answered. `main.rs` only reads the
//! environment, starts logging and serves a [`Startup`], then drains its
//! [`App`]; a test builds [`router`] on any publisher through
//! [`AppState::new`].
//!
//! What it leaves out: decoding and mapping Datastore's events
//! (`sync-capture`), serving, admission and trace headers (`sync-http`), the
//! Pub/Sub client and the dead-letter message (`sync-pubsub`).

pub mod app;
pub mod config;
pub mod handler;
pub mod readiness;

pub use app::App;
pub use config::CaptureConfig;
pub use handler::{router, AppState, Reply};
pub use readiness::Startup;
pub use sync_config::ConfigErrors;
