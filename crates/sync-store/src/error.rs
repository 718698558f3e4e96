//! gRPC failures, classified into [`StoreError`].
//!
//! The classification decides ack or nack upstream, so it is explicit per
//! code and unit-tested per code:
//!
//! - `ABORTED` is contention: the whole transaction is retried with backoff;
//! - `DEADLINE_EXCEEDED`, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `INTERNAL`,
//!   `UNKNOWN` (also what tonic reports for transport and credential
//!   failures), `CANCELLED` are transient: retried within the budget, then
//!   reported as [`StoreError::Unavailable`] so the delivery is nacked;
//! - every other code (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`,
//!   `PERMISSION_DENIED`, `NOT_FOUND`, ...) is permanent:
//!   [`StoreError::Refused`].

use gcloud_sdk::tonic::{Code, Status};
use sync_core::StoreError;

/// How a gRPC code is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Retry the whole transaction.
    Contention,
    /// Retry later.
    Transient,
    /// Retrying cannot help.
    Permanent,
}

/// The class of a gRPC status code.
pub(crate) fn class_of(code: Code) -> Class {
    match code {
        Code::Aborted => Class::Contention,
        Code::DeadlineExceeded
        | Code::Unavailable
        | Code::ResourceExhausted
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled
        // A successful status as an error is nonsense from the transport; it is
        // not the message's fault.
        | Code::Ok => Class::Transient,
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::NotFound
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss
        | Code::Unauthenticated => Class::Permanent,
    }
}

/// The [`StoreError`] for a failed call `what` (e.g. `commit`).
pub(crate) fn from_status(status: Status, what: &str) -> StoreError {
    let message = format!(
        "Datastore {what} failed: {:?}: {}",
        status.code(),
        status.message()
    );
    match class_of(status.code()) {
        Class::Contention => StoreError::Contention { attempts: 1 },
        Class::Transient => StoreError::Unavailable {
            message,
            source: Some(Box::new(status)),
        },
        Class::Permanent => StoreError::Refused {
            message,
            source: Some(Box::new(status)),
        },
    }
}

/// Whether an error is worth retrying, and how.
pub(crate) fn class_of_error(error: &StoreError) -> Class {
    match error {
        StoreError::Contention { .. } => Class::Contention,
        StoreError::Unavailable { .. } => Class::Transient,
        StoreError::Rejected(_) | StoreError::Corrupt(_) | StoreError::Refused { .. } => {
            Class::Permanent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::Disposition;

    /// Every gRPC code, its class and the resulting error code and disposition.
    #[test]
    fn every_grpc_code_is_classified() {
        let cases = [
            (Code::Ok, Class::Transient),
            (Code::Cancelled, Class::Transient),
            (Code::Unknown, Class::Transient),
            (Code::InvalidArgument, Class::Permanent),
            (Code::DeadlineExceeded, Class::Transient),
            (Code::NotFound, Class::Permanent),
            (Code::AlreadyExists, Class::Permanent),
            (Code::PermissionDenied, Class::Permanent),
            (Code::ResourceExhausted, Class::Transient),
            (Code::FailedPrecondition, Class::Permanent),
            (Code::Aborted, Class::Contention),
            (Code::OutOfRange, Class::Permanent),
            (Code::Unimplemented, Class::Permanent),
            (Code::Internal, Class::Transient),
            (Code::Unavailable, Class::Transient),
            (Code::DataLoss, Class::Permanent),
            (Code::Unauthenticated, Class::Permanent),
        ];
        for (code, class) in cases {
            assert_eq!(class_of(code), class, "{code:?}");
            let err = from_status(Status::new(code, "boom"), "commit");
            assert_eq!(class_of_error(&err), class, "{code:?}");
            let (expected_code, disposition) = match class {
                Class::Contention => ("contention", Disposition::Transient),
                Class::Transient => ("store_unavailable", Disposition::Transient),
                Class::Permanent => ("store_refused", Disposition::Permanent),
            };
            assert_eq!(err.code(), expected_code, "{code:?}");
            assert_eq!(err.disposition(), disposition, "{code:?}");
            if class != Class::Contention {
                assert!(err.to_string().contains("commit"), "{err}");
                assert!(err.to_string().contains("boom"), "{err}");
            }
        }
    }

    #[test]
    fn corrupt_and_rejected_are_permanent() {
        assert_eq!(
            class_of_error(&StoreError::Corrupt("x".into())),
            Class::Permanent
        );
        let rejected =
            StoreError::Rejected(sync_core::ValidationError::EntityTooLarge { bytes: 2, limit: 1 });
        assert_eq!(class_of_error(&rejected), Class::Permanent);
        assert_eq!(rejected.code(), "entity_too_large");
    }
}
