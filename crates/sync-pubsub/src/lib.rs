//! Pub/Sub adapter of datastore-sync.
//!
//! This crate owns:
//! - [`PubSubPublisher`], the [`sync_core::EventPublisher`] port on the
//!   official `google-cloud-pubsub` client: one cached batching publisher per
//!   topic (a 2 ms batching delay by default, so concurrent publishes without
//!   an ordering key share RPCs, each caller still answered with its own
//!   message's result), ordering keys (resumed after a failure), a timeout on
//!   every publish, `flush`/`shutdown` for SIGTERM, the messages it published
//!   counted ([`PublishCounts`]).
//!   Retrying is the client's own (its retryable codes, exponential backoff,
//!   bounded by the publish timeout): nothing retries on top of it;
//! - [`messages`]: the announcement (the entity id as ordering key only when
//!   asked) and dead-letter messages, attributes and ordering key within
//!   Pub/Sub's limits;
//! - [`PubSubAdmin`], idempotent topic and subscription management (pull and
//!   push subscriptions, dead-letter and retry policies) on the official admin
//!   clients;
//! - [`PubSubPuller`], unary pull / ack / nack on `gcloud-sdk`'s gRPC client,
//!   for tests and the operator CLI;
//! - [`PubSubConfig`]: emulator or production, timeouts;
//!   [`PubSubConfig::read`] is the Pub/Sub part of a binary's settings,
//!   read through a `sync_config::Reader` with every other part so that a
//!   bad `PUBSUB_*` value is reported before anything connects.
//!
//! All three clients talk to the emulator when `PUBSUB_EMULATOR_HOST` is configured
//! (endpoint `http://host:port`, anonymous credentials; neither client reads the
//! variable itself) and to production with Application Default Credentials
//! otherwise.
//!
//! What it leaves out: deciding what to publish (the functions, with
//! `sync-core`), decoding push deliveries (`sync-http`), streaming
//! subscribers (nothing here consumes continuously: the functions are pushed to).

pub mod admin;
pub mod config;
mod counters;
pub mod error;
pub mod messages;
pub mod names;
pub mod publisher;
pub mod pull;

pub use admin::{
    AdminOutcome, Backoff, DeadLetter, PubSubAdmin, PushEndpoint, PushWrapper, SubscriptionConfig,
    SubscriptionInfo,
};
pub use config::PubSubConfig;
pub use counters::PublishCounts;
pub use error::PubSubError;
pub use names::{subscription_path, topic_path};
pub use publisher::PubSubPublisher;
pub use pull::{PubSubPuller, ReceivedMessage};

/// Credentials for the emulator, which checks none.
pub(crate) fn anonymous_credentials() -> google_cloud_auth::credentials::Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}
