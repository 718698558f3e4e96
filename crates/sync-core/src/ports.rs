//! Port traits the adapters implement, and the errors they report.
//!
//! The handlers see only these traits, so handler tests run on in-memory fakes
//! while integration tests run the real adapters on the emulators.

use crate::error::{Classify, Disposition, ValidationError};
use crate::ingest::change::ChangeEvent;
use crate::merge::outcome::MergeOutcome;
use crate::merge::stored::StateError;
use async_trait::async_trait;
use std::collections::BTreeMap;
use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// A store failure, classified.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Transactions kept colliding on the same entity until the retry budget ran out.
    #[error("contention on the entity persisted after {attempts} attempts")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
    /// The store did not answer, or answered that it is overloaded or unavailable.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
    /// The merged entity would be invalid (too large, for one).
    #[error(transparent)]
    Rejected(#[from] ValidationError),
    /// The stored bookkeeping of the entity cannot be read (or the merged
    /// state cannot be written as bookkeeping).
    #[error("stored entity is corrupt: {0}")]
    Corrupt(String),
    /// The store refused the request for a reason retrying cannot fix.
    #[error("store refused the request: {message}")]
    Refused {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
}

impl Classify for StoreError {
    /// Transient for contention and unavailability; permanent otherwise.
    fn disposition(&self) -> Disposition {
        match self {
            Self::Contention { .. } | Self::Unavailable { .. } => Disposition::Transient,
            Self::Rejected(_) | Self::Corrupt(_) | Self::Refused { .. } => Disposition::Permanent,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Contention { .. } => "contention",
            Self::Unavailable { .. } => "store_unavailable",
            Self::Rejected(e) => e.code(),
            Self::Corrupt(_) => "corrupt_state",
            Self::Refused { .. } => "store_refused",
        }
    }
}

impl From<StateError> for StoreError {
    fn from(error: StateError) -> Self {
        Self::Corrupt(error.to_string())
    }
}

/// Where entities live.
#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Applies one event in one transaction: read, merge, write, record
    /// conflicts. Returns the merge's outcome, with the attempts it took.
    async fn apply(&self, event: &ChangeEvent) -> Result<MergeOutcome, StoreError>;
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutgoingMessage {
    /// Message data.
    pub data: Vec<u8>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
    /// Ordering key, if any.
    pub ordering_key: Option<String>,
}

/// A publish failure.
#[derive(Debug, Error)]
pub enum PublishError {
    /// Pub/Sub did not accept the message now; retrying later may succeed.
    #[error("publish to {topic} failed: {message}")]
    Unavailable {
        /// Topic id or path.
        topic: String,
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
}

impl Classify for PublishError {
    /// `publish_unavailable`.
    fn code(&self) -> &'static str {
        "publish_unavailable"
    }

    /// Always transient: a missing topic or permission is an operator's fix, and
    /// the message must survive until it is made.
    fn disposition(&self) -> Disposition {
        Disposition::Transient
    }
}

/// Where messages go.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes one message to `topic` (a topic id in the configured project,
    /// or a full `projects/P/topics/T` path) and returns its message id.
    async fn publish(&self, topic: &str, message: OutgoingMessage) -> Result<String, PublishError>;
}
