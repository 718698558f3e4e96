//! Pub/Sub adapter errors, classified like the core's.

use sync_core::{Classify, Disposition};
use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// A Pub/Sub operation (admin, pull, ack, client set-up) that failed.
///
/// Publishing reports [`sync_core::PublishError`] instead, as the port requires.
#[derive(Debug, Error)]
pub enum PubSubError {
    /// Settings are missing or unusable: every problem found, one a line.
    #[error("{0}")]
    Config(sync_config::Problems),
    /// A topic or subscription name is neither an id nor a full path of the right kind.
    #[error("`{name}` is not a valid {kind} id or path: {reason}")]
    InvalidName {
        /// `topic` or `subscription`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A client could not be created (bad endpoint, no credentials…).
    #[error("cannot create the Pub/Sub {client} client: {message}")]
    Client {
        /// Which client.
        client: &'static str,
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
    /// The resource does not exist.
    #[error("{operation} {resource}: not found")]
    NotFound {
        /// What was attempted.
        operation: &'static str,
        /// The resource path.
        resource: String,
    },
    /// The call did not complete in time.
    #[error("{operation} {resource}: no answer within {timeout_ms} ms")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
        /// The resource path.
        resource: String,
        /// The limit in force.
        timeout_ms: u128,
    },
    /// The service answered with an error.
    #[error("{operation} {resource} failed ({code}): {message}")]
    Rpc {
        /// What was attempted.
        operation: &'static str,
        /// The resource path.
        resource: String,
        /// The status code name (`UNAVAILABLE`, `PERMISSION_DENIED`…), or `TRANSPORT`.
        code: String,
        /// What the service said.
        message: String,
        /// Whether retrying later may succeed.
        transient: bool,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
}

impl Classify for PubSubError {
    /// Transient for timeouts and unavailability; permanent otherwise.
    fn disposition(&self) -> Disposition {
        match self {
            Self::Timeout { .. } => Disposition::Transient,
            Self::Rpc {
                transient: true, ..
            } => Disposition::Transient,
            Self::Config(_)
            | Self::InvalidName { .. }
            | Self::Client { .. }
            | Self::NotFound { .. }
            | Self::Rpc { .. } => Disposition::Permanent,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "invalid_config",
            Self::InvalidName { .. } => "invalid_name",
            Self::Client { .. } => "client_setup",
            Self::NotFound { .. } => "not_found",
            Self::Timeout { .. } => "pubsub_timeout",
            Self::Rpc {
                transient: true, ..
            } => "pubsub_unavailable",
            Self::Rpc { .. } => "pubsub_refused",
        }
    }
}

/// gRPC / Google API status codes that are worth retrying.
pub(crate) fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "UNAVAILABLE"
            | "DEADLINE_EXCEEDED"
            | "RESOURCE_EXHAUSTED"
            | "ABORTED"
            | "INTERNAL"
            | "UNKNOWN"
            | "CANCELLED"
            | "TRANSPORT"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: &str) -> PubSubError {
        PubSubError::Rpc {
            operation: "pull",
            resource: "projects/p/subscriptions/s".into(),
            code: code.into(),
            message: "m".into(),
            transient: is_transient_code(code),
            source: None,
        }
    }

    #[test]
    fn dispositions_per_variant() {
        assert_eq!(rpc("UNAVAILABLE").disposition(), Disposition::Transient);
        assert_eq!(rpc("UNAVAILABLE").code(), "pubsub_unavailable");
        assert_eq!(
            rpc("PERMISSION_DENIED").disposition(),
            Disposition::Permanent
        );
        assert_eq!(rpc("PERMISSION_DENIED").code(), "pubsub_refused");
        let timeout = PubSubError::Timeout {
            operation: "pull",
            resource: "s".into(),
            timeout_ms: 5,
        };
        assert_eq!(timeout.disposition(), Disposition::Transient);
        let not_found = PubSubError::NotFound {
            operation: "get subscription",
            resource: "s".into(),
        };
        assert_eq!(not_found.disposition(), Disposition::Permanent);
        let name = PubSubError::InvalidName {
            kind: "topic",
            name: "a/b".into(),
            reason: "r",
        };
        assert_eq!(name.code(), "invalid_name");
        assert_eq!(name.disposition(), Disposition::Permanent);
    }
}
