//! Why a request is not a Pub/Sub delivery, and bad message data that still is one.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use sync_core::{Classify, Disposition};
use thiserror::Error;

/// Why a request cannot be decoded into a [`Delivery`](crate::Delivery).
///
/// Every variant means "there is no message here to dead-letter": the
/// extractor logs the reason once (a shed request: the admission, see
/// [`crate::admission`]) and the request is answered 4xx (Pub/Sub treats it
/// as a nack). Bad message
/// *data* is not one of these: see [`InvalidBase64`], which travels inside the
/// `Delivery` so the message can still be dead-lettered with its id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    /// The request method is not `POST`.
    #[error("method {0} is not allowed; deliveries are POSTed")]
    MethodNotAllowed(String),
    /// The content type is neither JSON nor a CloudEvent.
    #[error("content type `{0}` is not supported")]
    UnsupportedContentType(String),
    /// The body is larger than the configured limit.
    #[error("request body exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The body could not be read (the client went away, for one).
    #[error("request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The body (or CloudEvent data) is not a JSON object of the push shape.
    #[error("delivery envelope is not valid: {0}")]
    InvalidEnvelope(String),
    /// The CloudEvent itself is malformed (bad `ce-specversion`, missing `ce-id`…).
    #[error("CloudEvent is not valid: {0}")]
    InvalidCloudEvent(String),
    /// The envelope has no `message` object.
    #[error("delivery has no `message`")]
    MissingMessage,
    /// The message has no message id (neither `messageId` nor `message_id`, nor a CloudEvent id).
    #[error("message has no message id")]
    MissingMessageId,
    /// The request's share of the instance's memory budget did not free up
    /// within the wait (see [`crate::admission`]): its body was not read, and
    /// Pub/Sub redelivers it.
    #[error("shed: no room in the memory budget within the wait")]
    Shed,
}

impl DeliveryError {
    /// Stable machine code, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyUnreadable(_) => "body_unreadable",
            Self::InvalidEnvelope(_) => "invalid_envelope",
            Self::InvalidCloudEvent(_) => "invalid_cloud_event",
            Self::MissingMessage => "missing_message",
            Self::MissingMessageId => "missing_message_id",
            Self::Shed => "shed",
        }
    }

    /// The HTTP status the request is answered with (always 4xx: a nack).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Shed => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyUnreadable(_)
            | Self::InvalidEnvelope(_)
            | Self::InvalidCloudEvent(_)
            | Self::MissingMessage
            | Self::MissingMessageId => StatusCode::BAD_REQUEST,
        }
    }
}

/// Answers with the status and the bare error code: details go to the log
/// only, written where the rejection is produced (the extractor).
impl IntoResponse for DeliveryError {
    fn into_response(self) -> Response {
        (self.status(), self.code()).into_response()
    }
}

/// Message data that is not valid base64.
///
/// The delivery itself is fine (it has a message id, attributes…), so the
/// message can and must be dead-lettered; `raw` keeps the text as received.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("message data is not valid base64: {reason}")]
pub struct InvalidBase64 {
    /// The `data` field exactly as received.
    pub raw: String,
    /// What the decoder objected to.
    pub reason: String,
}

impl Classify for InvalidBase64 {
    /// `invalid_base64`.
    fn code(&self) -> &'static str {
        "invalid_base64"
    }

    /// Always permanent: the same bytes never decode.
    fn disposition(&self) -> Disposition {
        Disposition::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_delivery_error_is_a_4xx_with_a_distinct_code() {
        let all = [
            DeliveryError::MethodNotAllowed("GET".into()),
            DeliveryError::UnsupportedContentType("text/plain".into()),
            DeliveryError::BodyTooLarge { limit: 1 },
            DeliveryError::BodyUnreadable("x".into()),
            DeliveryError::InvalidEnvelope("x".into()),
            DeliveryError::InvalidCloudEvent("x".into()),
            DeliveryError::MissingMessage,
            DeliveryError::MissingMessageId,
            DeliveryError::Shed,
        ];
        let mut codes = std::collections::BTreeSet::new();
        for e in &all {
            assert!(e.status().is_client_error(), "{e}");
            assert!(codes.insert(e.code()), "duplicate code {}", e.code());
        }
        assert_eq!(
            DeliveryError::BodyTooLarge { limit: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(DeliveryError::Shed.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn invalid_base64_has_a_stable_code() {
        let e = InvalidBase64 {
            raw: "!!".into(),
            reason: "bad".into(),
        };
        assert_eq!(e.code(), "invalid_base64");
        assert_eq!(e.disposition(), Disposition::Permanent);
    }
}
