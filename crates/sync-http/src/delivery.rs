//! One [`Delivery`] for every form a Pub/Sub message reaches us in: the
//! type, its forms and what a function reads of it. Decoding a request into
//! one is [`Delivery::decode`]'s.

use crate::error::InvalidBase64;
use crate::trace::TraceContext;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// Default body limit: 16 MiB. Pub/Sub allows 10 MB of message data, which
/// base64 and the envelope grow to about 13.4 MiB; the limit must admit any
/// legal message.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The largest push body Pub/Sub sends: 10 MiB of data (Pub/Sub's 10 MB,
/// taken as MiB) base64-encoded, plus 100 attributes at their limits (256-byte
/// keys, 1024-byte values), an ordering key and the envelope: about 13.5 MiB.
pub const LARGEST_LEGAL_BODY_BYTES: u64 = (10 << 20) / 3 * 4 + 4 + 100 * (256 + 1024 + 8) + 4096;

/// The `Content-Type` of a structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// How a delivery arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryForm {
    /// CloudEvent in binary mode (`ce-*` headers), as Eventarc sends it.
    CloudEventBinary,
    /// CloudEvent in structured mode (`application/cloudevents+json`).
    CloudEventStructured,
    /// Plain Pub/Sub push (wrapped JSON).
    PubSubPush,
    /// Unwrapped Pub/Sub push (`pushConfig.noWrapper`): the body is the data.
    PubSubUnwrapped {
        /// Whether the metadata came as `x-goog-pubsub-*` headers
        /// (`writeMetadata`); without it the message id is derived from the body.
        metadata: bool,
    },
}

impl DeliveryForm {
    /// Stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudEventBinary => "cloudevent_binary",
            Self::CloudEventStructured => "cloudevent_structured",
            Self::PubSubPush => "pubsub_push",
            Self::PubSubUnwrapped { metadata: true } => "pubsub_unwrapped",
            Self::PubSubUnwrapped { metadata: false } => "pubsub_unwrapped_no_metadata",
        }
    }
}

impl fmt::Display for DeliveryForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CloudEvent attributes of a CloudEvent delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEventMeta {
    /// `id` (Eventarc uses the Pub/Sub message id).
    pub id: String,
    /// `source`, e.g. `//pubsub.googleapis.com/projects/P/topics/T` (the topic, not the subscription).
    pub source: String,
    /// `type`, e.g. `google.cloud.pubsub.topic.v1.messagePublished`.
    pub event_type: String,
    /// `specversion`.
    pub spec_version: String,
    /// `time`, when present.
    pub time: Option<DateTime<Utc>>,
}

/// A Pub/Sub message as delivered to us, whatever the form.
#[derive(Clone, PartialEq)]
pub struct Delivery {
    /// Pub/Sub message id.
    pub message_id: String,
    /// When Pub/Sub accepted the message (absent or unparseable: `None`).
    pub publish_time: Option<DateTime<Utc>>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
    /// Ordering key, when set (never empty).
    pub ordering_key: Option<String>,
    /// The subscription, as the envelope names it (usually a full path).
    pub subscription: Option<String>,
    /// Delivery attempt, when the sender says (only subscriptions with a
    /// dead-letter policy do; the emulator never does).
    pub delivery_attempt: Option<u32>,
    /// The form it came in.
    pub form: DeliveryForm,
    /// The decoded message data (empty when absent), or why it could not be
    /// decoded: the message is still a message and can be dead-lettered.
    pub data: Result<Vec<u8>, InvalidBase64>,
    /// Trace context of the message (its `googclient_traceparent`
    /// attribute) or else of the request (its trace headers), when present.
    pub trace: Option<TraceContext>,
    /// The request's own trace context (from its headers) when the message's
    /// took its place in [`trace`](Self::trace): the push's, or the request
    /// trace Cloud Run started, under which Cloud Run logs the request.
    pub request_trace: Option<TraceContext>,
    /// CloudEvent attributes, for the CloudEvent forms.
    pub cloud_event: Option<CloudEventMeta>,
}

impl Delivery {
    /// The decoded data, or the base64 error.
    ///
    /// # Errors
    /// When the message data was not valid base64.
    pub fn data(&self) -> Result<&[u8], &InvalidBase64> {
        self.data.as_deref()
    }

    /// The data to forward when dead-lettering: the decoded bytes, or the text
    /// exactly as received when it was not valid base64.
    pub fn original_data(&self) -> &[u8] {
        match &self.data {
            Ok(bytes) => bytes,
            Err(e) => e.raw.as_bytes(),
        }
    }

    /// [`original_data`](Self::original_data) taken out of the delivery
    /// (its data is empty afterwards), to forward without a copy.
    pub fn take_original_data(&mut self) -> Vec<u8> {
        match std::mem::replace(&mut self.data, Ok(Vec::new())) {
            Ok(bytes) => bytes,
            Err(e) => e.raw.into_bytes(),
        }
    }
}

/// Data is summarised, not dumped: it can be megabytes.
impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = match &self.data {
            Ok(bytes) => format!("Ok(<{} bytes>)", bytes.len()),
            Err(e) => format!("Err({e})"),
        };
        f.debug_struct("Delivery")
            .field("message_id", &self.message_id)
            .field("publish_time", &self.publish_time)
            .field("attributes", &self.attributes)
            .field("ordering_key", &self.ordering_key)
            .field("subscription", &self.subscription)
            .field("delivery_attempt", &self.delivery_attempt)
            .field("form", &self.form)
            .field("data", &data)
            .field("trace", &self.trace)
            .field("request_trace", &self.request_trace)
            .field("cloud_event", &self.cloud_event)
            .finish()
    }
}
