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

/// The [`StoreError`] for a failed call `what` (e.g. `commit`): the variant
/// is the class (contention, transient, permanent), and the retries and the
/// ack/nack both follow from it ([`StoreError::disposition`]).
pub(crate) fn from_status(status: Status, what: &str) -> StoreError {
    let message = format!(
        "Datastore {what} failed: {:?}: {}",
        status.code(),
        status.message()
    );
    match status.code() {
        Code::Aborted => StoreError::Contention { attempts: 1 },
        Code::DeadlineExceeded
        | Code::Unavailable
        | Code::ResourceExhausted
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled
        // A successful status as an error is nonsense from the transport; it is
        // not the message's fault.
        | Code::Ok => StoreError::Unavailable {
            message,
            source: Some(Box::new(status)),
        },
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::PermissionDenied
        | Code::NotFound
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss
        | Code::Unauthenticated => StoreError::Refused {
            message,
            source: Some(Box::new(status)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::{Classify, Disposition};

    /// Every gRPC code, the resulting error code and disposition.
    #[test]
    fn every_grpc_code_is_classified() {
        let contention = ("contention", Disposition::Transient);
        let transient = ("store_unavailable", Disposition::Transient);
        let permanent = ("store_refused", Disposition::Permanent);
        let cases = [
            (Code::Ok, transient),
            (Code::Cancelled, transient),
            (Code::Unknown, transient),
            (Code::InvalidArgument, permanent),
            (Code::DeadlineExceeded, transient),
            (Code::NotFound, permanent),
            (Code::AlreadyExists, permanent),
            (Code::PermissionDenied, permanent),
            (Code::ResourceExhausted, transient),
            (Code::FailedPrecondition, permanent),
            (Code::Aborted, contention),
            (Code::OutOfRange, permanent),
            (Code::Unimplemented, permanent),
            (Code::Internal, transient),
            (Code::Unavailable, transient),
            (Code::DataLoss, permanent),
            (Code::Unauthenticated, permanent),
        ];
        for (code, (expected_code, disposition)) in cases {
            let err = from_status(Status::new(code, "boom"), "commit");
            assert_eq!(err.code(), expected_code, "{code:?}");
            assert_eq!(err.disposition(), disposition, "{code:?}");
            if expected_code != "contention" {
                assert!(err.to_string().contains("commit"), "{err}");
                assert!(err.to_string().contains("boom"), "{err}");
            }
        }
    }

    #[test]
    fn corrupt_and_rejected_are_permanent() {
        let corrupt = StoreError::Corrupt("x".into());
        assert_eq!(corrupt.disposition(), Disposition::Permanent);
        let rejected =
            StoreError::Rejected(sync_core::ValidationError::EntityTooLarge { bytes: 2, limit: 1 });
        assert_eq!(rejected.disposition(), Disposition::Permanent);
        assert_eq!(rejected.code(), "entity_too_large");
    }
}
