//! Unwrapped push (`pushConfig.noWrapper`): the body is the message data
//! itself; with `writeMetadata` the message metadata comes as `x-goog-pubsub-*`
//! headers and each attribute as a plain header.
//!
//! Every header name this decoding depends on is defined here, once: the
//! metadata headers (the delivery attempt among them, when Pub/Sub sends
//! it), and [`IGNORED_HEADERS`] / [`IGNORED_HEADER_PREFIXES`],
//! the HTTP noise that is never taken for an attribute.

use crate::delivery::{Delivery, DeliveryForm};
use crate::error::DeliveryError;
use crate::trace::{TraceContext, TRACEPARENT, X_CLOUD_TRACE_CONTEXT};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The message id (write-metadata).
pub const MESSAGE_ID_HEADER: &str = "x-goog-pubsub-message-id";
/// The subscription's full path (write-metadata).
pub const SUBSCRIPTION_HEADER: &str = "x-goog-pubsub-subscription-name";
/// The publish time, RFC 3339 (write-metadata).
pub const PUBLISH_TIME_HEADER: &str = "x-goog-pubsub-publish-time";
/// The ordering key, as Google documents it (write-metadata, when set).
pub const ORDERING_KEY_HEADER: &str = "x-goog-pubsub-ordering-key";
/// The ordering key as the Pub/Sub emulator sends it instead.
pub const EMULATOR_ORDERING_KEY_HEADER: &str = "x-goog-ordering-key";
/// How many times Pub/Sub has tried to deliver the message (write-metadata),
/// as the wrapped form's `deliveryAttempt`: read when present. Google's
/// page on payload unwrapping lists the message id, subscription, publish
/// time and ordering key headers; this one follows the same
/// `x-goog-pubsub-<key>` pattern for the attempt (present, if at all, only
/// when the subscription has a dead-letter policy, as `deliveryAttempt`),
/// and the emulator sends none.
pub const DELIVERY_ATTEMPT_HEADER: &str = "x-goog-pubsub-delivery-attempt";

/// Headers whose presence makes a request an unwrapped push with metadata.
pub const METADATA_HEADERS: [&str; 3] =
    [MESSAGE_ID_HEADER, SUBSCRIPTION_HEADER, PUBLISH_TIME_HEADER];

/// Prefix of a derived event id (unwrapped push without metadata).
pub const DERIVED_ID_PREFIX: &str = "sha256:";
/// Hex digits of the body's SHA-256 kept in a derived id (128 bits).
pub const DERIVED_ID_HEX_DIGITS: usize = 32;

/// Header names (lower case, as HTTP/1 and hyper give them) that are HTTP,
/// proxy or tracing machinery and never a message attribute. `content-type`
/// is among them: Pub/Sub writes a `Content-Type` attribute into that header,
/// but when the message has none the header is the sender's default (the
/// emulator sends `application/x-www-form-urlencoded`), and the two cannot be
/// told apart.
pub const IGNORED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "user-agent",
    "authorization",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "expect",
    "via",
    "forwarded",
    "cookie",
    "from",
    TRACEPARENT,
    "tracestate",
    "baggage",
    X_CLOUD_TRACE_CONTEXT,
];

/// Header name prefixes that are never a message attribute: Google's own
/// headers (Pub/Sub's metadata is read from them separately; Cloud Run and the
/// front end add others), proxies' `x-forwarded-*`, Cloud's `x-cloud-*`.
pub const IGNORED_HEADER_PREFIXES: &[&str] = &["x-goog-", "x-forwarded-", "x-cloud-"];

/// Whether a header (lower-case name) is HTTP noise rather than an attribute.
pub fn is_ignored_header(name: &str) -> bool {
    IGNORED_HEADERS.contains(&name) || IGNORED_HEADER_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether the request carries Pub/Sub's write-metadata headers.
pub fn has_metadata(headers: &HeaderMap) -> bool {
    METADATA_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// The id of an unwrapped message delivered without metadata: `sha256:` and
/// the first 32 hex digits of the body's SHA-256. Two byte-identical bodies
/// get the same id, so they are one event.
pub fn derived_event_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut id = String::with_capacity(DERIVED_ID_PREFIX.len() + DERIVED_ID_HEX_DIGITS);
    id.push_str(DERIVED_ID_PREFIX);
    for byte in digest.iter().take(DERIVED_ID_HEX_DIGITS / 2) {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// A header's value as text: UTF-8 when it is, lossily otherwise.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(", ")).filter(|s| !s.is_empty())
    }
}

/// Every header that is not noise, as an attribute (name lower-cased by HTTP;
/// repeated headers joined with `", "`).
fn attributes(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .keys()
        .filter(|name| !is_ignored_header(name.as_str()))
        .filter_map(|name| header_text(headers, name.as_str()).map(|v| (name.to_string(), v)))
        .collect()
}

/// Decodes an unwrapped push with write-metadata.
///
/// # Errors
/// [`DeliveryError::MissingMessageId`] when the metadata headers are there but
/// `x-goog-pubsub-message-id` is absent or empty.
pub(crate) fn decode_with_metadata(
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<Delivery, DeliveryError> {
    let message_id =
        header_text(headers, MESSAGE_ID_HEADER).ok_or(DeliveryError::MissingMessageId)?;
    let publish_time = header_text(headers, PUBLISH_TIME_HEADER)
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc));
    let ordering_key = header_text(headers, ORDERING_KEY_HEADER)
        .or_else(|| header_text(headers, EMULATOR_ORDERING_KEY_HEADER));
    // A count that does not parse is ignored, as in the wrapped form.
    let delivery_attempt =
        header_text(headers, DELIVERY_ATTEMPT_HEADER).and_then(|v| v.trim().parse::<u32>().ok());
    Ok(Delivery {
        message_id,
        publish_time,
        attributes: attributes(headers),
        ordering_key,
        subscription: header_text(headers, SUBSCRIPTION_HEADER),
        delivery_attempt,
        form: DeliveryForm::PubSubUnwrapped { metadata: true },
        data: Ok(body),
        trace: TraceContext::from_headers(headers),
        request_trace: None,
        cloud_event: None,
    })
}

/// Decodes an unwrapped push without metadata: the body is all there is.
pub(crate) fn decode_without_metadata(headers: &HeaderMap, body: Vec<u8>) -> Delivery {
    Delivery {
        message_id: derived_event_id(&body),
        publish_time: None,
        attributes: BTreeMap::new(),
        ordering_key: None,
        subscription: None,
        delivery_attempt: None,
        form: DeliveryForm::PubSubUnwrapped { metadata: false },
        data: Ok(body),
        trace: TraceContext::from_headers(headers),
        request_trace: None,
        cloud_event: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_prefixed_and_body_sensitive() {
        let a = derived_event_id(b"{\"entity_id\":\"e\"}");
        assert_eq!(a, derived_event_id(b"{\"entity_id\":\"e\"}"));
        assert!(a.starts_with(DERIVED_ID_PREFIX), "{a}");
        assert_eq!(a.len(), DERIVED_ID_PREFIX.len() + DERIVED_ID_HEX_DIGITS);
        assert_ne!(a, derived_event_id(b"{\"entity_id\": \"e\"}"));
        // SHA-256 of the empty string, a known value.
        assert_eq!(
            derived_event_id(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb924"
        );
    }

    #[test]
    fn noise_is_ignored_and_everything_else_is_an_attribute() {
        for name in [
            "host",
            "content-type",
            "user-agent",
            "authorization",
            "traceparent",
            "x-cloud-trace-context",
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-proto",
            "accept-encoding",
            "content-length",
            "x-goog-pubsub-message-id",
            "x-goog-ordering-key",
            DELIVERY_ATTEMPT_HEADER,
        ] {
            assert!(is_ignored_header(name), "{name}");
        }
        for name in ["origin", "mixed-case_attr", "ce-specversion", "entity_id"] {
            assert!(!is_ignored_header(name), "{name}");
        }
    }
}

#[cfg(test)]
mod attempt_tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn the_delivery_attempt_header_is_read_when_present() -> Result<(), DeliveryError> {
        for (value, attempt) in [
            (Some("3"), Some(3)),
            (Some(" 12 "), Some(12)),
            (Some("many"), None),
            (Some("-1"), None),
            (Some("99999999999"), None),
            (None, None),
        ] {
            let mut pairs = vec![(MESSAGE_ID_HEADER, "7")];
            pairs.extend(value.map(|v| (DELIVERY_ATTEMPT_HEADER, v)));
            let d = decode_with_metadata(&headers(&pairs), b"{}".to_vec())?;
            assert_eq!(d.delivery_attempt, attempt, "{value:?}");
            assert!(
                !d.attributes.contains_key(DELIVERY_ATTEMPT_HEADER),
                "metadata, not an attribute"
            );
        }
        Ok(())
    }

    #[test]
    fn without_metadata_there_is_no_attempt() {
        let d =
            decode_without_metadata(&headers(&[(DELIVERY_ATTEMPT_HEADER, "2")]), b"{}".to_vec());
        assert_eq!(d.delivery_attempt, None);
    }
}
