//! Decoding a request into a [`Delivery`]: which form it came in, and the
//! wrapped push and CloudEvent forms (the unwrapped one is [`crate::unwrapped`]'s).
//!
//! The form is detected in this order: Pub/Sub's write-metadata headers make an
//! unwrapped push; `Content-Type: application/cloudevents+json` is a structured
//! CloudEvent and a `ce-specversion` header a binary one; otherwise the body
//! decides (a JSON object with a `message` is a wrapped push, envelope members
//! alone are one without a message, any other body is unwrapped data unless the
//! request declares JSON). The CloudEvents are read with `cloudevents-sdk`'s
//! HTTP binding; the Pub/Sub envelope inside is parsed once, tolerantly
//! (camelCase or the emulator's snake_case).

use crate::delivery::{CloudEventMeta, Delivery, DeliveryForm, CLOUDEVENTS_JSON};
use crate::error::{DeliveryError, InvalidBase64};
use crate::trace::TraceContext;
use crate::unwrapped;
use chrono::{DateTime, Utc};
use cloudevents::event::{AttributesReader, Data, ExtensionValue};
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;

impl Delivery {
    /// Decodes a delivery from the request method, headers and body.
    ///
    /// The body limit is the caller's business (the extractor enforces it
    /// before reading).
    ///
    /// The trace context is the message attribute's when it has a valid one,
    /// else the request's (see [`TraceContext::of_delivery`]).
    ///
    /// # Errors
    /// When the request is not a Pub/Sub delivery: see [`DeliveryError`].
    pub fn decode(
        method: &Method,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self, DeliveryError> {
        Self::decode_owned(method, headers, body.to_vec())
    }

    /// [`Delivery::decode`] of a body it may consume: the message data is
    /// decoded into the body's own buffer (a wrapped push, a binary-mode
    /// CloudEvent) or is the body (an unwrapped push), so a delivery holds
    /// its data once, and the rest of the body is gone.
    ///
    /// # Errors
    /// As [`Delivery::decode`].
    pub fn decode_owned(
        method: &Method,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Self, DeliveryError> {
        let mut delivery = Self::decode_form(method, headers, body)?;
        let from_request = delivery.trace.take();
        delivery.trace = TraceContext::of_delivery(&delivery.attributes, from_request.clone());
        delivery.request_trace = from_request.filter(|r| delivery.trace.as_ref() != Some(r));
        Ok(delivery)
    }

    /// [`Delivery::decode_owned`] with the request's trace context only.
    fn decode_form(
        method: &Method,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Self, DeliveryError> {
        if method != Method::POST {
            return Err(DeliveryError::MethodNotAllowed(method.to_string()));
        }
        // Write-metadata headers first: with them every other header is an
        // attribute, so `ce-*` or a `Content-Type` there are the message's.
        if unwrapped::has_metadata(headers) {
            return unwrapped::decode_with_metadata(headers, body);
        }
        // The common form, a wrapped push, is read in one pass; only a body
        // that is not one is looked at again to tell the other forms apart.
        if is_push_candidate(headers)? {
            let parsed = parse_envelope(&body)
                .ok()
                .filter(|envelope| envelope.message.is_some())
                .map(|envelope| envelope.into_delivery(DeliveryForm::PubSubPush, None, &body));
            if let Some(parsed) = parsed {
                return push_delivery(headers, parsed?, body);
            }
        }
        match detect_form(headers, &body)? {
            DeliveryForm::PubSubPush => {
                let parsed =
                    parse_envelope(&body)?.into_delivery(DeliveryForm::PubSubPush, None, &body)?;
                push_delivery(headers, parsed, body)
            }
            DeliveryForm::PubSubUnwrapped { .. } => {
                Ok(unwrapped::decode_without_metadata(headers, body))
            }
            form => decode_cloud_event(form, headers, body),
        }
    }
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn media_type(headers: &HeaderMap) -> Result<Option<String>, DeliveryError> {
    match headers.get(http::header::CONTENT_TYPE) {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                DeliveryError::UnsupportedContentType("<non-ASCII content type>".into())
            })?;
            let essence = text.split(';').next().unwrap_or_default().trim();
            Ok(Some(essence.to_ascii_lowercase()))
        }
    }
}

fn is_json_media_type(essence: &str) -> bool {
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// The form of a request without write-metadata headers (see the module
/// documentation of [`crate::unwrapped`] and docs/delivery.md for the rule).
fn detect_form(headers: &HeaderMap, body: &[u8]) -> Result<DeliveryForm, DeliveryError> {
    let media = media_type(headers)?;
    match media.as_deref() {
        Some(CLOUDEVENTS_JSON) => return Ok(DeliveryForm::CloudEventStructured),
        Some(m) if m.starts_with("application/cloudevents-batch") => {
            return Err(DeliveryError::UnsupportedContentType(m.to_string()));
        }
        _ => {}
    }
    if headers.contains_key("ce-specversion") {
        return Ok(DeliveryForm::CloudEventBinary);
    }
    let declared_json = media.as_deref().is_some_and(is_json_media_type);
    let unwrapped = DeliveryForm::PubSubUnwrapped { metadata: false };
    match BodyShape::of(body) {
        // Pub/Sub sends its envelope as JSON; an envelope under another
        // declared type is refused rather than guessed at.
        BodyShape::Envelope => match media {
            None => Ok(DeliveryForm::PubSubPush),
            Some(m) if is_json_media_type(&m) => Ok(DeliveryForm::PubSubPush),
            Some(m) => Err(DeliveryError::UnsupportedContentType(m)),
        },
        // `{}` or only envelope members: an envelope that lost its message, or
        // an event with no fields at all; neither can be applied, and guessing
        // would be a misreading.
        BodyShape::EnvelopeWithoutMessage => Err(DeliveryError::MissingMessage),
        BodyShape::OtherObject => Ok(unwrapped),
        // Not a JSON object: declared JSON, it is a broken envelope (the
        // unwrapped data of an event is an object); otherwise it is unwrapped
        // data, which the functions dead-letter or audit as malformed.
        BodyShape::NotAnObject if declared_json => Err(DeliveryError::InvalidEnvelope(
            "body is declared JSON but is not a JSON object".into(),
        )),
        BodyShape::NotAnObject => Ok(unwrapped),
    }
}

/// Members of the wrapped push envelope besides `message`.
const ENVELOPE_MEMBERS: [&str; 3] = ["subscription", "deliveryAttempt", "delivery_attempt"];

/// What a body looks like, for telling wrapped from unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyShape {
    /// A JSON object with a top-level `message` member.
    Envelope,
    /// A JSON object with no members but envelope ones (`{}` included).
    EnvelopeWithoutMessage,
    /// Any other JSON object.
    OtherObject,
    /// Not JSON, or JSON but not an object.
    NotAnObject,
}

impl BodyShape {
    fn of(body: &[u8]) -> Self {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            _ => return Self::NotAnObject,
        }
        match serde_json::from_slice::<TopLevelKeys>(body) {
            Err(_) => Self::NotAnObject,
            Ok(keys) if keys.message => Self::Envelope,
            Ok(keys) if keys.other => Self::OtherObject,
            Ok(_) => Self::EnvelopeWithoutMessage,
        }
    }
}

/// Which top-level members a JSON object has (values are skipped, not built).
struct TopLevelKeys {
    message: bool,
    other: bool,
}

impl<'de> Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevelKeys, A::Error> {
                let mut keys = TopLevelKeys {
                    message: false,
                    other: false,
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if key == "message" {
                        keys.message = true;
                    } else if !ENVELOPE_MEMBERS.contains(&key.as_ref()) {
                        keys.other = true;
                    }
                }
                Ok(keys)
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// Whether the headers allow a wrapped push: no CloudEvent marker, and a JSON
/// content type or none (what [`detect_form`] requires of an envelope).
fn is_push_candidate(headers: &HeaderMap) -> Result<bool, DeliveryError> {
    let json_or_none = match media_type(headers)?.as_deref() {
        None => true,
        // Structured and batched CloudEvents (both end in `+json`).
        Some(m) if m.starts_with("application/cloudevents") => false,
        Some(m) => is_json_media_type(m),
    };
    Ok(json_or_none && !headers.contains_key("ce-specversion"))
}

/// A wrapped push: the envelope's fields, and its data decoded from `body`.
fn push_delivery(
    headers: &HeaderMap,
    (mut delivery, data): (Delivery, DataText),
    body: Vec<u8>,
) -> Result<Delivery, DeliveryError> {
    delivery.data = data.decode(body);
    delivery.trace = TraceContext::from_headers(headers);
    Ok(delivery)
}

fn decode_cloud_event(
    form: DeliveryForm,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<Delivery, DeliveryError> {
    // Structured mode needs the content type exactly as the SDK checks it
    // (case-sensitive prefix); normalise so `Application/CloudEvents+JSON` works.
    // In binary mode the body is the data, and the SDK would only hand it
    // back as bytes: it is given the headers alone, and the envelope is read
    // from the body here, as for a push, without a copy.
    let (event, body) = if form == DeliveryForm::CloudEventStructured {
        let mut normalised = headers.clone();
        normalised.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(CLOUDEVENTS_JSON),
        );
        (
            cloudevents::binding::http::to_event(&normalised, body),
            None,
        )
    } else {
        (
            cloudevents::binding::http::to_event(headers, Vec::new()),
            Some(body),
        )
    };
    let mut event = event.map_err(|e| DeliveryError::InvalidCloudEvent(e.to_string()))?;

    let meta = CloudEventMeta {
        id: event.id().to_string(),
        source: event.source().to_string(),
        event_type: event.ty().to_string(),
        spec_version: event.specversion().to_string(),
        time: event.time().copied(),
    };
    // The bytes the envelope is read from: the body (binary mode), or the
    // structured event's data.
    let bytes = match (body, event.take_data().2) {
        (Some(body), _) if body.is_empty() => return Err(DeliveryError::MissingMessage),
        (Some(body), _) => body,
        (None, None) => return Err(DeliveryError::MissingMessage),
        (None, Some(Data::Json(value))) if value.is_object() => serde_json::to_vec(&value)
            .map_err(|e| DeliveryError::InvalidEnvelope(format!("CloudEvent data: {e}")))?,
        (None, Some(Data::Json(_))) => {
            return Err(DeliveryError::InvalidEnvelope(
                "CloudEvent data is not a JSON object".into(),
            ))
        }
        (None, Some(Data::Binary(bytes))) => bytes,
        (None, Some(Data::String(text))) => text.into_bytes(),
    };
    let (mut delivery, data) = parse_envelope(&bytes)?.into_delivery(form, Some(&meta), &bytes)?;
    delivery.data = data.decode(bytes);
    let extension_attempt = event.extension("deliveryattempt").and_then(|v| match v {
        ExtensionValue::Integer(n) => u32::try_from(*n).ok(),
        ExtensionValue::String(s) => s.trim().parse().ok(),
        ExtensionValue::Boolean(_) => None,
    });
    let extension_trace = match event.extension("traceparent") {
        Some(ExtensionValue::String(s)) => TraceContext::from_traceparent(s),
        _ => None,
    };
    delivery.delivery_attempt = delivery.delivery_attempt.or(extension_attempt);
    delivery.trace = headers
        .get(crate::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::from_traceparent)
        .or(extension_trace)
        .or_else(|| TraceContext::from_headers(headers));
    delivery.cloud_event = Some(meta);
    Ok(delivery)
}

fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, DeliveryError> {
    // serde would also build a struct from a JSON array: only objects are envelopes.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(DeliveryError::InvalidEnvelope("empty body".into())),
        Some(b'{') => {}
        Some(_) => {
            return Err(DeliveryError::InvalidEnvelope(
                "body is not a JSON object".into(),
            ))
        }
    }
    serde_json::from_slice(body).map_err(|e| DeliveryError::InvalidEnvelope(e.to_string()))
}

/// The wrapped push body (also the data of a Pub/Sub CloudEvent).
///
/// camelCase and snake_case spellings are separate fields on purpose: serde
/// aliases reject a body carrying both, which the emulator (and Google) send.
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    message: Option<WireMessage<'a>>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, rename = "deliveryAttempt")]
    delivery_attempt: Option<WireCount>,
    #[serde(default, rename = "delivery_attempt")]
    delivery_attempt_snake: Option<WireCount>,
}

#[derive(Debug, Deserialize)]
struct WireMessage<'a> {
    /// Borrowed as written (quotes, escapes): decoded later, in place.
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "messageId")]
    message_id: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
    #[serde(default, rename = "orderingKey")]
    ordering_key: Option<String>,
    #[serde(default, rename = "ordering_key")]
    ordering_key_snake: Option<String>,
    /// Not in Google's push format, but the recipe reads it here.
    #[serde(default, rename = "deliveryAttempt")]
    delivery_attempt: Option<WireCount>,
}

/// A count sent as a JSON number or a numeric string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireCount {
    Number(u64),
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl WireCount {
    fn value(&self) -> Option<u32> {
        match self {
            Self::Number(n) => u32::try_from(*n).ok(),
            Self::Text(s) => s.trim().parse().ok(),
            Self::Other(_) => None,
        }
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl Envelope<'_> {
    /// The delivery without its data (empty), and where the data's text is in
    /// `body`, the bytes this envelope was read from.
    fn into_delivery(
        self,
        form: DeliveryForm,
        cloud_event: Option<&CloudEventMeta>,
        body: &[u8],
    ) -> Result<(Delivery, DataText), DeliveryError> {
        let message = self.message.ok_or(DeliveryError::MissingMessage)?;
        let data = DataText::locate(message.data, body)?;
        let message_id = non_empty(message.message_id)
            .or_else(|| non_empty(message.message_id_snake))
            // Eventarc's CloudEvent id is the Pub/Sub message id.
            .or_else(|| {
                cloud_event
                    .map(|ce| ce.id.clone())
                    .filter(|id| !id.is_empty())
            })
            .ok_or(DeliveryError::MissingMessageId)?;
        let publish_time = non_empty(message.publish_time)
            .or_else(|| non_empty(message.publish_time_snake))
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| cloud_event.and_then(|ce| ce.time));
        let delivery_attempt = self
            .delivery_attempt
            .as_ref()
            .and_then(WireCount::value)
            .or_else(|| {
                self.delivery_attempt_snake
                    .as_ref()
                    .and_then(WireCount::value)
            })
            .or_else(|| message.delivery_attempt.as_ref().and_then(WireCount::value));
        let delivery = Delivery {
            message_id,
            publish_time,
            attributes: message.attributes.unwrap_or_default(),
            ordering_key: non_empty(message.ordering_key)
                .or_else(|| non_empty(message.ordering_key_snake)),
            subscription: non_empty(self.subscription),
            delivery_attempt,
            form,
            data: Ok(Vec::new()),
            trace: None,
            request_trace: None,
            cloud_event: None,
        };
        Ok((delivery, data))
    }
}

/// Where the `data` string of an envelope is in the bytes it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DataText {
    /// No `data`, `null` or `""`.
    Empty,
    /// The string's contents (between the quotes), still JSON-escaped when
    /// `escaped`.
    At {
        range: std::ops::Range<usize>,
        escaped: bool,
    },
}

impl DataText {
    /// Where `raw` (borrowed from `body`) is.
    ///
    /// # Errors
    /// When `data` is not a string.
    fn locate(raw: Option<&RawValue>, body: &[u8]) -> Result<Self, DeliveryError> {
        let Some(raw) = raw else {
            return Ok(Self::Empty);
        };
        let text = raw.get();
        if text.len() < 2 || !text.starts_with('"') {
            return Err(DeliveryError::InvalidEnvelope(
                "message.data is not a string".into(),
            ));
        }
        // `raw` is a slice of `body`: its offset is the distance between them.
        let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize) + 1;
        let end = start + text.len() - 2;
        if end > body.len() || start > end {
            return Err(DeliveryError::InvalidEnvelope(
                "message.data could not be located".into(),
            ));
        }
        if start == end {
            return Ok(Self::Empty);
        }
        let escaped = body[start..end].contains(&b'\\');
        Ok(Self::At {
            range: start..end,
            escaped,
        })
    }

    /// The decoded data, in `body`'s own buffer where it can be (the rest of
    /// the body is dropped), or why it is not base64.
    fn decode(self, mut body: Vec<u8>) -> Result<Vec<u8>, InvalidBase64> {
        let Self::At { mut range, escaped } = self else {
            return Ok(Vec::new());
        };
        if escaped {
            match unescape_slashes(&mut body, range.clone()) {
                Some(end) => range.end = end,
                // Escapes base64 never needs (`\u0041`…): decoded the plain
                // way, from the unescaped text.
                None => {
                    let quoted = &body[range.start - 1..range.end + 1];
                    let text: String = serde_json::from_slice(quoted).unwrap_or_default();
                    drop(body);
                    return decode_data(text);
                }
            }
        }
        decode_in_place(body, range)
    }
}

/// Rewrites `\/` as `/` inside `range` of `buf` (the Pub/Sub emulator
/// escapes every slash of the base64 text); returns the new end of the text,
/// or `None` when it holds any other escape.
fn unescape_slashes(buf: &mut [u8], range: std::ops::Range<usize>) -> Option<usize> {
    let mut i = range.start;
    while i < range.end {
        if buf[i] == b'\\' {
            if buf.get(i + 1) != Some(&b'/') || i + 1 >= range.end {
                return None;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    let (mut read, mut write) = (range.start, range.start);
    while read < range.end {
        if buf[read] == b'\\' {
            read += 1;
        }
        buf[write] = buf[read];
        read += 1;
        write += 1;
    }
    Some(write)
}

/// Base64 text decoded per block, so the decoded bytes can go to the front
/// of the buffer the text is in (they never overtake the text still to read).
const DECODE_BLOCK: usize = 64 * 1024;

/// Decodes the base64 text at `range` of `buf` into the start of `buf`
/// itself, block by block, and returns `buf` holding only the decoded bytes.
/// On an error the text is given back exactly as it was.
fn decode_in_place(
    mut buf: Vec<u8>,
    range: std::ops::Range<usize>,
) -> Result<Vec<u8>, InvalidBase64> {
    use base64::Engine as _;
    // Standard base64 has `+` and `/`; URL-safe has `-` and `_` instead. Text
    // with either of the latter is valid only as URL-safe.
    let engine = if buf[range.clone()].iter().any(|&b| b == b'-' || b == b'_') {
        &URL_SAFE
    } else {
        &STANDARD
    };
    let mut scratch = vec![0_u8; DECODE_BLOCK / 4 * 3];
    let (mut read, mut written) = (range.start, 0);
    while read < range.end {
        let end = (read + DECODE_BLOCK).min(range.end);
        match engine.decode_slice(&buf[read..end], &mut scratch) {
            Ok(n) => {
                buf[written..written + n].copy_from_slice(&scratch[..n]);
                written += n;
                read = end;
            }
            Err(_) => {
                // Every block before this one was whole groups of four, so
                // encoding what they gave restores their text exactly.
                let mut raw = engine.encode(&buf[..written]);
                raw.push_str(&String::from_utf8_lossy(&buf[read..range.end]));
                drop(buf);
                return decode_data(raw);
            }
        }
    }
    buf.truncate(written);
    buf.shrink_to_fit();
    Ok(buf)
}

/// Padding is optional when decoding.
const LENIENT: base64::engine::GeneralPurposeConfig = base64::engine::GeneralPurposeConfig::new()
    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
/// Standard base64, Pub/Sub's encoding.
const STANDARD: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
/// URL-safe base64, which the protobuf JSON mapping also allows.
const URL_SAFE: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Standard base64 (Pub/Sub's encoding), padded or not; URL-safe is accepted
/// too, as the protobuf JSON mapping allows.
fn decode_data(raw: String) -> Result<Vec<u8>, InvalidBase64> {
    use base64::Engine as _;
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    match STANDARD.decode(raw.as_bytes()) {
        Ok(bytes) => Ok(bytes),
        Err(standard_error) => URL_SAFE.decode(raw.as_bytes()).map_err(|_| InvalidBase64 {
            reason: standard_error.to_string(),
            raw,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use sync_core::Classify;
    use sync_testkit::CapturedRequest;

    /// The recipe's create event, as its publisher serialises it.
    const RECIPE_EVENT: &str = r#"{"entity_id": "test-entity-001", "operation": "create", "timestamp": "2025-07-23T10:15:30.123456", "source": "data_publisher", "correlation_id": "5f0c6d1e-8a7b-4c3d-9e2f-1a2b3c4d5e6f", "data": {"name": "Test Product", "description": "Demo product for sync testing", "status": "active"}}"#;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn fixture(name: &str) -> Result<CapturedRequest, Box<dyn std::error::Error>> {
        Ok(CapturedRequest::load(name)?)
    }

    fn decode_fixture(name: &str) -> Result<Delivery, Box<dyn std::error::Error>> {
        let f = fixture(name)?;
        Ok(Delivery::decode(
            &f.http_method()?,
            &f.header_map()?,
            &f.body,
        )?)
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        h
    }

    fn push(body: &str) -> Result<Delivery, DeliveryError> {
        Delivery::decode(&Method::POST, &json_headers(), body.as_bytes())
    }

    fn utc(s: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    #[test]
    fn cloudevent_binary_fixture_decodes() -> TestResult {
        let d = decode_fixture("cloudevent_binary.json")?;
        assert_eq!(d.form, DeliveryForm::CloudEventBinary);
        assert_eq!(d.message_id, "13566281437204712");
        assert_eq!(d.data(), Ok(RECIPE_EVENT.as_bytes()));
        assert_eq!(
            d.attributes.get("origin").map(String::as_str),
            Some("data_publisher")
        );
        assert_eq!(d.publish_time, utc("2025-07-23T10:15:30.412Z"));
        assert_eq!(
            d.subscription.as_deref(),
            Some("projects/datastore-sync-demo/subscriptions/eventarc-us-central1-sync-trigger-sub-394")
        );
        assert_eq!(d.ordering_key, None);
        assert_eq!(d.delivery_attempt, None);
        let ce = d.cloud_event.as_ref().ok_or("cloud event meta")?;
        assert_eq!(ce.id, "13566281437204712");
        assert_eq!(
            ce.event_type,
            "google.cloud.pubsub.topic.v1.messagePublished"
        );
        assert_eq!(
            ce.source,
            "//pubsub.googleapis.com/projects/datastore-sync-demo/topics/data-sync-events"
        );
        assert_eq!(ce.spec_version, "1.0");
        let trace = d.trace.as_ref().ok_or("trace")?;
        assert_eq!(trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(trace.sampled);
        Ok(())
    }

    #[test]
    fn cloudevent_structured_fixture_decodes() -> TestResult {
        let d = decode_fixture("cloudevent_structured.json")?;
        assert_eq!(d.form, DeliveryForm::CloudEventStructured);
        assert_eq!(d.message_id, "13566281437204713");
        assert_eq!(d.data(), Ok(RECIPE_EVENT.as_bytes()));
        assert_eq!(
            d.subscription.as_deref(),
            Some("projects/datastore-sync-demo/subscriptions/sync-processor")
        );
        assert_eq!(d.publish_time, utc("2025-07-23T10:15:30.412Z"));
        assert_eq!(
            d.cloud_event.as_ref().map(|c| c.time),
            Some(utc("2025-07-23T10:15:30.412Z"))
        );
        let trace = d.trace.as_ref().ok_or("trace from X-Cloud-Trace-Context")?;
        assert_eq!(trace.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(trace.span_id.as_deref(), Some("0000000000003039"));
        assert!(!trace.sampled);
        Ok(())
    }

    /// A publisher's context in the message attribute, in every form that
    /// has attributes: it wins over the request's trace headers (which the
    /// fixtures that have them keep); a malformed one leaves the headers'.
    #[test]
    fn the_message_attribute_trace_wins_in_every_form() -> TestResult {
        let name = sync_core::wire::trace::TRACEPARENT;
        let with = |file: &str, value: &str| -> Result<Delivery, Box<dyn std::error::Error>> {
            let mut f = fixture(file)?;
            if f.headers.contains_key(crate::unwrapped::MESSAGE_ID_HEADER) {
                // Attributes are headers there.
                f.headers.insert(name.into(), value.into());
            } else {
                let mut body: serde_json::Value = serde_json::from_slice(&f.body)?;
                let message = if body.get("message").is_some() {
                    &mut body["message"]
                } else {
                    &mut body["data"]["message"]
                };
                message["attributes"][name] = value.into();
                f.body = serde_json::to_vec(&body)?;
            }
            Ok(Delivery::decode(
                &f.http_method()?,
                &f.header_map()?,
                &f.body,
            )?)
        };
        let files = sync_testkit::fixture::WRAPPED
            .into_iter()
            .chain(["push_unwrapped_emulator.json", "push_unwrapped_docs.json"]);
        for file in files {
            let d = with(
                file,
                "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-00f067aa0ba902b7-01",
            )?;
            let t = d.trace.as_ref().ok_or(format!("{file}: a trace"))?;
            assert_eq!(t.trace_id, "a".repeat(32), "{file}");
            assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"), "{file}");
            let plain = decode_fixture(file)?;
            assert_eq!(
                d.request_trace, plain.trace,
                "{file}: the headers' context kept"
            );
            assert_eq!(plain.request_trace, None, "{file}");
            let broken = with(file, "00-broken")?;
            assert_eq!(broken.trace, plain.trace, "{file}");
            assert_eq!(broken.request_trace, None, "{file}");
        }
        Ok(())
    }

    #[test]
    fn plain_push_fixture_decodes() -> TestResult {
        let d = decode_fixture("push_plain.json")?;
        assert_eq!(d.form, DeliveryForm::PubSubPush);
        assert_eq!(d.message_id, "13566281437204711");
        assert_eq!(d.data(), Ok(RECIPE_EVENT.as_bytes()));
        assert_eq!(d.ordering_key.as_deref(), Some("test-entity-001"));
        assert_eq!(d.delivery_attempt, Some(2));
        assert_eq!(
            d.subscription.as_deref(),
            Some("projects/datastore-sync-demo/subscriptions/sync-processor")
        );
        assert_eq!(d.cloud_event, None);
        assert_eq!(
            d.trace.as_ref().map(|t| t.trace_id.as_str()),
            Some("105445aa7843bc8bf206b12000100000")
        );
        Ok(())
    }

    #[test]
    fn emulator_push_fixture_decodes() -> TestResult {
        let d = decode_fixture("push_emulator.json")?;
        assert_eq!(d.form, DeliveryForm::PubSubPush);
        assert_eq!(d.message_id, "1");
        assert_eq!(d.data(), Ok(RECIPE_EVENT.as_bytes()));
        assert_eq!(d.attributes.len(), 1);
        assert_eq!(
            d.subscription.as_deref(),
            Some("projects/capture-proj/subscriptions/sync-processor")
        );
        assert_eq!(d.publish_time, utc("2026-11-26T07:09:12.943Z"));
        assert_eq!(d.ordering_key, None, "the emulator's push never carries it");
        assert_eq!(d.delivery_attempt, None, "the emulator never sends it");
        assert_eq!(d.trace, None);
        Ok(())
    }

    #[test]
    fn snake_case_only_message_is_accepted() -> TestResult {
        let d = push(
            r#"{"message":{"message_id":"7","publish_time":"2025-07-23T10:15:30Z","ordering_key":"k","data":"aGk="},"subscription":"s","delivery_attempt":"3","@type":"x"}"#,
        )?;
        assert_eq!(d.message_id, "7");
        assert_eq!(d.ordering_key.as_deref(), Some("k"));
        assert_eq!(d.delivery_attempt, Some(3));
        assert_eq!(d.data(), Ok(&b"hi"[..]));
        Ok(())
    }

    #[test]
    fn empty_or_absent_data_is_empty_bytes() -> TestResult {
        for body in [
            r#"{"message":{"messageId":"1"}}"#,
            r#"{"message":{"messageId":"1","data":""}}"#,
            r#"{"message":{"messageId":"1","data":null,"attributes":null}}"#,
        ] {
            let d = push(body)?;
            assert_eq!(d.data(), Ok(&b""[..]), "{body}");
            assert!(d.attributes.is_empty());
        }
        Ok(())
    }

    #[test]
    fn unpadded_and_url_safe_base64_are_accepted() -> TestResult {
        assert_eq!(
            push(r#"{"message":{"messageId":"1","data":"aGk"}}"#)?.data(),
            Ok(&b"hi"[..])
        );
        assert_eq!(
            push(r#"{"message":{"messageId":"1","data":"-_8="}}"#)?.data(),
            Ok(&[0xfb, 0xff][..])
        );
        Ok(())
    }

    /// Data of several decoding blocks, decoded in place in every form it
    /// can be written in: plain, with the emulator's `\/` escapes, URL-safe,
    /// unpadded, and with escapes base64 never needs.
    #[test]
    fn large_data_is_decoded_in_place_whatever_its_spelling() -> TestResult {
        let data: Vec<u8> = (0..3 * DECODE_BLOCK + 5)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let standard = base64::engine::general_purpose::STANDARD.encode(&data);
        assert!(standard.contains('/') && standard.contains('+'));
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&data);
        let spellings = [
            standard.clone(),
            standard.replace('/', "\\/"),
            url_safe,
            standard.trim_end_matches('=').to_string(),
            standard.replacen('A', "\\u0041", 3),
        ];
        for text in spellings {
            let body = format!(r#"{{"message":{{"messageId":"1","data":"{text}"}}}}"#);
            let d = push(&body)?;
            assert_eq!(d.data().map(<[u8]>::len), Ok(data.len()));
            assert!(d.data() == Ok(&data[..]), "{}", &text[..40]);
        }
        Ok(())
    }

    /// A bad character past the first blocks: the text comes back exactly as
    /// sent, for the dead letter, though the blocks before it were decoded
    /// over it.
    #[test]
    fn bad_base64_late_in_large_data_is_kept_exactly() -> TestResult {
        let data: Vec<u8> = (0..2 * DECODE_BLOCK).map(|i| (i % 251) as u8).collect();
        let good = base64::engine::general_purpose::STANDARD.encode(&data);
        for (at, bad) in [(DECODE_BLOCK + 10, "!"), (good.len() - 8, "*"), (3, "%")] {
            let mut text = good.clone();
            text.replace_range(at..=at, bad);
            for written in [text.clone(), text.replace('/', "\\/")] {
                let body = format!(r#"{{"message":{{"messageId":"7","data":"{written}"}}}}"#);
                let d = push(&body)?;
                let err = d.data().expect_err("bad base64");
                assert!(err.raw == text, "at {at}: the text as sent");
                assert!(!err.reason.is_empty());
                assert_eq!(d.original_data(), text.as_bytes());
            }
        }
        Ok(())
    }

    #[test]
    fn bad_base64_keeps_the_message_for_dead_lettering() -> TestResult {
        let d = push(
            r#"{"message":{"messageId":"42","data":"not base64!","attributes":{"a":"b"}},"subscription":"projects/p/subscriptions/s"}"#,
        )?;
        assert_eq!(d.message_id, "42");
        assert_eq!(d.attributes.get("a").map(String::as_str), Some("b"));
        let err = d.data().expect_err("bad base64");
        assert_eq!(err.code(), "invalid_base64");
        assert_eq!(err.raw, "not base64!");
        assert_eq!(d.original_data(), b"not base64!");
        Ok(())
    }

    #[test]
    fn missing_message_is_rejected() {
        for body in [
            r#"{"subscription":"projects/p/subscriptions/s"}"#,
            r#"{"message":null}"#,
            "{}",
        ] {
            assert_eq!(push(body), Err(DeliveryError::MissingMessage), "{body}");
        }
    }

    #[test]
    fn bad_json_envelope_is_rejected() {
        for body in [
            "{not json",
            "[]",
            "\"text\"",
            "",
            "   ",
            r#"{"message":"text"}"#,
            r#"{"message":{"messageId":1}}"#,
            r#"{"message":{"messageId":"1","attributes":{"n":1}}}"#,
            r#"{"message":{"messageId":"1","data":5}}"#,
        ] {
            let err = push(body).expect_err(body);
            assert_eq!(err.code(), "invalid_envelope", "{body}: {err}");
        }
    }

    #[test]
    fn missing_message_id_is_rejected() {
        for body in [
            r#"{"message":{"data":"aGk="}}"#,
            r#"{"message":{"messageId":"","message_id":""}}"#,
        ] {
            assert_eq!(push(body), Err(DeliveryError::MissingMessageId), "{body}");
        }
    }

    #[test]
    fn odd_delivery_attempts_are_ignored_not_fatal() -> TestResult {
        for body in [
            r#"{"message":{"messageId":"1"},"deliveryAttempt":-1}"#,
            r#"{"message":{"messageId":"1"},"deliveryAttempt":"many"}"#,
            r#"{"message":{"messageId":"1"},"deliveryAttempt":{"x":1}}"#,
            r#"{"message":{"messageId":"1"},"deliveryAttempt":1e99}"#,
        ] {
            assert_eq!(push(body)?.delivery_attempt, None, "{body}");
        }
        assert_eq!(
            push(r#"{"message":{"messageId":"1","deliveryAttempt":4}}"#)?.delivery_attempt,
            Some(4),
            "the recipe reads it from the message"
        );
        Ok(())
    }

    #[test]
    fn unparseable_publish_time_is_none() -> TestResult {
        let d = push(r#"{"message":{"messageId":"1","publishTime":"yesterday"}}"#)?;
        assert_eq!(d.publish_time, None);
        Ok(())
    }

    fn structured(body: &str) -> Result<Delivery, DeliveryError> {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/cloudevents+json"),
        );
        Delivery::decode(&Method::POST, &h, body.as_bytes())
    }

    const CE_HEAD: &str = r#""specversion":"1.0","id":"ce-1","source":"//pubsub.googleapis.com/projects/p/topics/t","type":"google.cloud.pubsub.topic.v1.messagePublished""#;

    #[test]
    fn structured_mode_with_wrong_data_is_rejected() {
        let cases = [
            (
                format!(r#"{{{CE_HEAD},"datacontenttype":"application/json","data":"hello"}}"#),
                "invalid_envelope",
            ),
            (
                format!(r#"{{{CE_HEAD},"datacontenttype":"application/json","data":{{"foo":1}}}}"#),
                "missing_message",
            ),
            (format!(r#"{{{CE_HEAD}}}"#), "missing_message"),
            (
                format!(r#"{{{CE_HEAD},"datacontenttype":"text/plain","data":"hello"}}"#),
                "invalid_envelope",
            ),
            (
                format!(r#"{{{CE_HEAD},"data_base64":"aGVsbG8="}}"#),
                "invalid_envelope",
            ),
            (
                r#"{"specversion":"0.1","id":"x","source":"s","type":"t"}"#.to_string(),
                "invalid_cloud_event",
            ),
            (
                r#"{"specversion":"1.0","source":"s","type":"t"}"#.to_string(),
                "invalid_cloud_event",
            ),
            ("not json".to_string(), "invalid_cloud_event"),
        ];
        for (body, code) in cases {
            let err = structured(&body).expect_err(&body);
            assert_eq!(err.code(), code, "{body}: {err}");
        }
    }

    #[test]
    fn structured_mode_falls_back_to_the_cloudevent_id_and_time() -> TestResult {
        let d = structured(&format!(
            r#"{{{CE_HEAD},"time":"2025-07-23T10:15:30Z","deliveryattempt":"3","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":{{"message":{{"data":"aGk="}}}}}}"#
        ))?;
        assert_eq!(d.message_id, "ce-1");
        assert_eq!(d.publish_time, utc("2025-07-23T10:15:30Z"));
        assert_eq!(d.delivery_attempt, Some(3));
        assert_eq!(
            d.trace.map(|t| t.trace_id),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".to_string())
        );
        Ok(())
    }

    #[test]
    fn structured_mode_accepts_base64_data_holding_the_envelope() -> TestResult {
        let envelope = base64::engine::general_purpose::STANDARD
            .encode(br#"{"message":{"messageId":"9","data":"aGk="}}"#);
        let d = structured(&format!(r#"{{{CE_HEAD},"data_base64":"{envelope}"}}"#))?;
        assert_eq!(d.message_id, "9");
        assert_eq!(d.data(), Ok(&b"hi"[..]));
        Ok(())
    }

    fn binary(headers: &[(&str, &str)], body: &str) -> Result<Delivery, DeliveryError> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| DeliveryError::InvalidEnvelope(e.to_string()))?,
                http::HeaderValue::from_str(v)
                    .map_err(|e| DeliveryError::InvalidEnvelope(e.to_string()))?,
            );
        }
        Delivery::decode(&Method::POST, &h, body.as_bytes())
    }

    #[test]
    fn binary_mode_errors() {
        let good = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "//pubsub.googleapis.com/projects/p/topics/t"),
            ("ce-type", "google.cloud.pubsub.topic.v1.messagePublished"),
            ("content-type", "application/json"),
        ];
        let err = binary(&good, "").expect_err("no body");
        assert_eq!(err, DeliveryError::MissingMessage);
        let err = binary(&good, "{oops").expect_err("bad JSON");
        assert_eq!(err.code(), "invalid_envelope");
        let mut bad_version = good;
        bad_version[0] = ("ce-specversion", "9.9");
        let err =
            binary(&bad_version, r#"{"message":{"messageId":"1"}}"#).expect_err("bad version");
        assert_eq!(err.code(), "invalid_cloud_event");
        let err = binary(&good[..3], r#"{"message":{"messageId":"1"}}"#).expect_err("no ce-type");
        assert_eq!(err.code(), "invalid_cloud_event");
        let mut bad_time = good.to_vec();
        bad_time.push(("ce-time", "noon"));
        let err = binary(&bad_time, r#"{"message":{"messageId":"1"}}"#).expect_err("bad time");
        assert_eq!(err.code(), "invalid_cloud_event");
    }

    #[test]
    fn wrong_method_and_content_type_are_rejected() {
        let body = br#"{"message":{"messageId":"1"}}"#;
        let err = Delivery::decode(&Method::GET, &json_headers(), body).expect_err("GET");
        assert_eq!(err.code(), "method_not_allowed");
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/cloudevents-batch+json",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(ct),
            );
            let err = Delivery::decode(&Method::POST, &h, body).expect_err(ct);
            assert_eq!(err.code(), "unsupported_content_type", "{ct}");
        }
        // No content type at all, or a JSON variant, is fine.
        assert!(Delivery::decode(&Method::POST, &HeaderMap::new(), body).is_ok());
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(Delivery::decode(&Method::POST, &h, body).is_ok());
    }

    #[test]
    fn debug_output_does_not_dump_data() -> TestResult {
        let d = decode_fixture("push_plain.json")?;
        let text = format!("{d:?}");
        assert!(text.contains("bytes"), "{text}");
        assert!(!text.contains("Test Product"), "{text}");
        Ok(())
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap fuzz over mutations of real fixtures and junk.
        let mut inputs: Vec<Vec<u8>> = vec![vec![0xff, 0xfe], b"{\"message\":{".to_vec()];
        for name in [
            "push_plain.json",
            "cloudevent_structured.json",
            "push_unwrapped_emulator.json",
        ] {
            if let Ok(f) = fixture(name) {
                for cut in (0..f.body.len()).step_by(7) {
                    inputs.push(f.body.get(..cut).unwrap_or_default().to_vec());
                }
            }
        }
        for h in [json_headers(), {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(CLOUDEVENTS_JSON),
            );
            h
        }] {
            for input in &inputs {
                let _ = Delivery::decode(&Method::POST, &h, input);
            }
        }
    }

    fn request(headers: &[(&str, &str)], body: &[u8]) -> Result<Delivery, DeliveryError> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| DeliveryError::InvalidEnvelope(e.to_string()))?,
                http::HeaderValue::from_str(v)
                    .map_err(|e| DeliveryError::InvalidEnvelope(e.to_string()))?,
            );
        }
        Delivery::decode(&Method::POST, &h, body)
    }

    const UNWRAPPED_META: DeliveryForm = DeliveryForm::PubSubUnwrapped { metadata: true };
    const UNWRAPPED_BARE: DeliveryForm = DeliveryForm::PubSubUnwrapped { metadata: false };

    #[test]
    fn emulator_unwrapped_capture_with_metadata_decodes() -> TestResult {
        let d = decode_fixture("push_unwrapped_emulator.json")?;
        assert_eq!(d.form, UNWRAPPED_META);
        assert_eq!(d.form.as_str(), "pubsub_unwrapped");
        assert_eq!(d.message_id, "1");
        assert_eq!(d.data(), Ok(RECIPE_EVENT.as_bytes()));
        assert_eq!(d.publish_time, utc("2026-12-01T19:55:44.714Z"));
        assert_eq!(
            d.subscription.as_deref(),
            Some("projects/capture-proj/subscriptions/meta")
        );
        assert_eq!(d.ordering_key.as_deref(), Some("test-entity-001"));
        // The one attribute that survives: names lower-cased, value kept;
        // content-type, user-agent, host, accept, connection are noise.
        assert_eq!(
            d.attributes,
            BTreeMap::from([("mixed-case_attr".to_string(), "V a l".to_string())])
        );
        assert_eq!(d.delivery_attempt, None);
        assert_eq!(d.cloud_event, None);
        Ok(())
    }

    #[test]
    fn emulator_unwrapped_capture_without_metadata_decodes() -> TestResult {
        let d = decode_fixture("push_unwrapped_emulator_no_metadata.json")?;
        assert_eq!(d.form, UNWRAPPED_BARE);
        assert_eq!(d.form.as_str(), "pubsub_unwrapped_no_metadata");
        assert_eq!(d.data(), Ok(RECIPE_EVENT.as_bytes()));
        assert_eq!(
            d.message_id,
            crate::unwrapped::derived_event_id(RECIPE_EVENT.as_bytes())
        );
        assert!(d.attributes.is_empty());
        assert_eq!(d.subscription, None);
        assert_eq!(d.publish_time, None);
        assert_eq!(d.ordering_key, None);
        Ok(())
    }

    #[test]
    fn documented_unwrapped_shape_decodes_without_http_noise() -> TestResult {
        let d = decode_fixture("push_unwrapped_docs.json")?;
        assert_eq!(d.form, UNWRAPPED_META);
        assert_eq!(d.message_id, "13566281437204714");
        assert_eq!(d.publish_time, utc("2025-07-23T10:15:30.412Z"));
        assert_eq!(d.ordering_key.as_deref(), Some("test-entity-001"));
        assert_eq!(
            d.subscription.as_deref(),
            Some("projects/datastore-sync-demo/subscriptions/sync-processor")
        );
        assert_eq!(
            d.attributes,
            BTreeMap::from([("origin".to_string(), "data_publisher".to_string())]),
            "authorization, traceparent, forwarded, x-forwarded-*, accept-encoding… are not attributes"
        );
        assert_eq!(
            d.trace.as_ref().map(|t| t.trace_id.as_str()),
            Some("105445aa7843bc8bf206b12000100000")
        );
        Ok(())
    }

    #[test]
    fn metadata_headers_win_over_an_envelope_shaped_body() -> TestResult {
        // Real Pub/Sub can send this: someone published an envelope as data to
        // a noWrapper subscription. The body is the data, not an envelope.
        let body = br#"{"message":{"messageId":"inner","data":"aGk="}}"#;
        let d = request(
            &[
                ("x-goog-pubsub-message-id", "outer"),
                ("content-type", "application/json"),
            ],
            body,
        )?;
        assert_eq!(d.form, UNWRAPPED_META);
        assert_eq!(d.message_id, "outer");
        assert_eq!(d.data(), Ok(&body[..]));
        Ok(())
    }

    #[test]
    fn metadata_headers_win_over_cloudevent_markers() -> TestResult {
        // With write-metadata every header is an attribute, `ce-*` included,
        // and the Content-Type is the message's own.
        let d = request(
            &[
                ("x-goog-pubsub-message-id", "7"),
                (
                    "x-goog-pubsub-subscription-name",
                    "projects/p/subscriptions/s",
                ),
                ("ce-specversion", "1.0"),
                ("content-type", "application/cloudevents+json"),
            ],
            b"not a cloud event",
        )?;
        assert_eq!(d.form, UNWRAPPED_META);
        assert_eq!(d.cloud_event, None);
        assert_eq!(
            d.attributes.get("ce-specversion").map(String::as_str),
            Some("1.0")
        );
        assert_eq!(d.data(), Ok(&b"not a cloud event"[..]));
        Ok(())
    }

    #[test]
    fn metadata_without_a_message_id_is_refused() {
        for headers in [
            vec![(
                "x-goog-pubsub-subscription-name",
                "projects/p/subscriptions/s",
            )],
            vec![("x-goog-pubsub-publish-time", "2025-07-23T10:15:30Z")],
            vec![("x-goog-pubsub-message-id", "")],
        ] {
            assert_eq!(
                request(&headers, RECIPE_EVENT.as_bytes()),
                Err(DeliveryError::MissingMessageId),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn an_unwrapped_delivery_attempt_is_read_as_the_wrapped_one() -> TestResult {
        let d = request(
            &[
                (crate::unwrapped::MESSAGE_ID_HEADER, "9"),
                (crate::unwrapped::DELIVERY_ATTEMPT_HEADER, "4"),
            ],
            RECIPE_EVENT.as_bytes(),
        )?;
        assert_eq!(d.form, UNWRAPPED_META);
        assert_eq!(d.delivery_attempt, Some(4));
        let d = request(
            &[(crate::unwrapped::MESSAGE_ID_HEADER, "9")],
            RECIPE_EVENT.as_bytes(),
        )?;
        assert_eq!(d.delivery_attempt, None, "absent: the sender did not say");
        Ok(())
    }

    #[test]
    fn unwrapped_metadata_details() -> TestResult {
        let d = request(
            &[
                ("x-goog-pubsub-message-id", "9"),
                ("x-goog-pubsub-publish-time", "not a time"),
                ("x-goog-pubsub-ordering-key", "documented"),
                ("x-goog-ordering-key", "emulator"),
                ("tag", "a"),
                ("tag", "b"),
            ],
            b"",
        )?;
        assert_eq!(d.publish_time, None, "unparseable publish time is None");
        assert_eq!(d.ordering_key.as_deref(), Some("documented"));
        assert_eq!(d.attributes.get("tag").map(String::as_str), Some("a, b"));
        assert_eq!(d.data(), Ok(&b""[..]));
        Ok(())
    }

    #[test]
    fn bodies_without_metadata_are_told_apart_by_shape() -> TestResult {
        let form_urlencoded = [("content-type", "application/x-www-form-urlencoded")];
        let json = [("content-type", "application/json")];
        let event = RECIPE_EVENT.as_bytes();
        // An event object: unwrapped, whatever the declared type.
        for headers in [&form_urlencoded[..], &json[..], &[][..]] {
            let d = request(headers, event)?;
            assert_eq!(d.form, UNWRAPPED_BARE, "{headers:?}");
            assert_eq!(d.data(), Ok(event));
        }
        // Not JSON, not declared JSON: unwrapped data (dead-lettered later).
        let d = request(&form_urlencoded, b"{oops")?;
        assert_eq!(d.form, UNWRAPPED_BARE);
        let d = request(&[("content-type", "text/plain")], b"hello")?;
        assert_eq!(d.form, UNWRAPPED_BARE);
        let d = request(&[], b"")?;
        assert_eq!(
            d.form, UNWRAPPED_BARE,
            "an attribute-only message has no body"
        );
        // Not a JSON object but declared JSON: a broken envelope, 400.
        for body in [&b"{oops"[..], b"[1]", b"\"text\"", b""] {
            assert_eq!(
                request(&json, body).map_err(|e| e.code()),
                Err("invalid_envelope")
            );
        }
        // `{}` or envelope members without `message`: 400 missing_message.
        for body in [&b"{}"[..], br#"{"subscription":"s","deliveryAttempt":2}"#] {
            for headers in [&form_urlencoded[..], &json[..]] {
                assert_eq!(request(headers, body), Err(DeliveryError::MissingMessage));
            }
        }
        // An envelope under a non-JSON type: refused, not guessed.
        let err = request(&form_urlencoded, br#"{"message":{"messageId":"1"}}"#)
            .expect_err("envelope under form type");
        assert_eq!(err.code(), "unsupported_content_type");
        // Byte-identical bodies are one event; one byte more is another.
        let a = request(&form_urlencoded, event)?.message_id;
        let b = request(&json, event)?.message_id;
        assert_eq!(a, b);
        let mut other = event.to_vec();
        other.push(b' ');
        assert_ne!(a, request(&json, &other)?.message_id);
        Ok(())
    }

    #[test]
    fn a_message_member_anywhere_but_the_top_is_not_an_envelope() -> TestResult {
        let body = br#"{"entity_id":"e","data":{"message":"hi"}}"#;
        let d = request(&[("content-type", "application/json")], body)?;
        assert_eq!(d.form, UNWRAPPED_BARE);
        Ok(())
    }
}
