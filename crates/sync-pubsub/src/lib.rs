//! Pub/Sub adapter of datastore-sync.
//!
//! - [`PubSubPublisher`], the [`sync_core::EventPublisher`] port on the
//!   official `google-cloud-pubsub` client (batching, ordering keys, a timeout
//!   on every publish, the messages counted: [`PublishCounts`]);
//! - [`messages`]: the announcement and dead-letter messages, within Pub/Sub's
//!   limits;
//! - [`PubSubAdmin`]: idempotent topic and subscription management;
//!   [`PubSubPuller`]: unary pull, ack and nack, for tests and the CLI;
//! - [`PubSubConfig`]: emulator (when `PUBSUB_EMULATOR_HOST` is configured,
//!   with anonymous credentials) or production (Application Default
//!   Credentials), and timeouts.
//!
//! What it leaves out: deciding what to publish (the functions, with
//! `sync-core`), decoding push deliveries (`sync-http`), streaming subscribers.

pub mod admin;
pub mod config;
mod counters;
mod credentials;
pub mod error;
pub mod messages;
pub mod names;
pub mod publisher;
pub mod pull;

pub use admin::{
    AdminOutcome, DeadLetter, PubSubAdmin, PushEndpoint, PushWrapper, RedeliveryBackoff,
    SubscriptionConfig, SubscriptionInfo,
};
pub use config::PubSubConfig;
pub use counters::PublishCounts;
pub use error::PubSubError;
pub use names::{check_topic, subscription_path, topic_path};
pub use publisher::PubSubPublisher;
pub use pull::{PubSubPuller, ReceivedMessage};
