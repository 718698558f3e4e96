//! Deliveries as the functions receive them, built by the tests: the wrapped
//! Pub/Sub push envelope ([`push`]) and the unwrapped push ([`unwrapped`]),
//! both as a [`CapturedRequest`] a test sends in-process
//! ([`CapturedRequest::request`]) or over HTTP ([`post`]).

use crate::fixture::CapturedRequest;
use anyhow::Result;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use sync_http::unwrapped::{
    DELIVERY_ATTEMPT_HEADER, MESSAGE_ID_HEADER, PUBLISH_TIME_HEADER, SUBSCRIPTION_HEADER,
};

/// A wrapped push (`{"message": {...}, "subscription": ...}`) under construction.
#[derive(Debug, Clone)]
pub struct PushEnvelope {
    data: String,
    message_id: String,
    attributes: BTreeMap<String, String>,
    subscription: Option<String>,
    delivery_attempt: Option<u32>,
    headers: Vec<(String, String)>,
}

/// A wrapped push of `data` (base64-encoded here) as message `message_id`,
/// without attributes or subscription until given.
pub fn push(data: &[u8], message_id: &str) -> PushEnvelope {
    PushEnvelope {
        data: base64::engine::general_purpose::STANDARD.encode(data),
        message_id: message_id.to_string(),
        attributes: BTreeMap::new(),
        subscription: None,
        delivery_attempt: None,
        headers: Vec::new(),
    }
}

impl PushEnvelope {
    /// The `data` field as given, not encoded (bad base64, for one).
    #[must_use]
    pub fn raw_data(mut self, field: &str) -> Self {
        self.data = field.to_string();
        self
    }

    /// One message attribute.
    #[must_use]
    pub fn attribute(mut self, name: &str, value: &str) -> Self {
        self.attributes.insert(name.to_string(), value.to_string());
        self
    }

    /// The `subscription` member (a full resource name).
    #[must_use]
    pub fn subscription(mut self, subscription: &str) -> Self {
        self.subscription = Some(subscription.to_string());
        self
    }

    /// The `deliveryAttempt` member.
    #[must_use]
    pub fn delivery_attempt(mut self, attempt: u32) -> Self {
        self.delivery_attempt = Some(attempt);
        self
    }

    /// One more HTTP header (`traceparent`, for one).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The envelope's JSON.
    pub fn body(&self) -> Value {
        let mut message = Map::new();
        message.insert("data".into(), json!(self.data));
        message.insert("messageId".into(), json!(self.message_id));
        if !self.attributes.is_empty() {
            message.insert("attributes".into(), json!(self.attributes));
        }
        let mut body = Map::new();
        body.insert("message".into(), Value::Object(message));
        if let Some(s) = &self.subscription {
            body.insert("subscription".into(), json!(s));
        }
        if let Some(n) = self.delivery_attempt {
            body.insert("deliveryAttempt".into(), json!(n));
        }
        Value::Object(body)
    }

    /// The `POST /` carrying it.
    pub fn build(&self) -> CapturedRequest {
        let mut request = CapturedRequest::post(
            &[("content-type", "application/json")],
            self.body().to_string().into_bytes(),
        );
        request.headers.extend(self.headers.iter().cloned());
        request
    }

    /// [`Self::build`] as a request for `router.oneshot(…)`.
    pub fn request(&self) -> axum::http::Request<axum::body::Body> {
        self.build().request()
    }
}

/// An unwrapped push (`noWrapper`): the message's data is the body.
#[derive(Debug, Clone)]
pub struct Unwrapped {
    request: CapturedRequest,
}

/// An unwrapped push without metadata, as the emulator sends it (a form
/// content type, no headers naming the message).
pub fn unwrapped(body: &[u8]) -> Unwrapped {
    Unwrapped {
        request: CapturedRequest::post(
            &[("content-type", "application/x-www-form-urlencoded")],
            body.to_vec(),
        ),
    }
}

impl Unwrapped {
    /// With write-metadata, as Pub/Sub sends it: a JSON content type and the
    /// message id, subscription and publish time as headers.
    #[must_use]
    pub fn metadata(self, message_id: &str, subscription: &str, publish_time: &str) -> Self {
        self.header("content-type", "application/json")
            .header(MESSAGE_ID_HEADER, message_id)
            .header(SUBSCRIPTION_HEADER, subscription)
            .header(PUBLISH_TIME_HEADER, publish_time)
    }

    /// The delivery attempt header, as Pub/Sub may send it with
    /// write-metadata when the subscription has a dead-letter policy.
    #[must_use]
    pub fn delivery_attempt(self, attempt: u32) -> Self {
        self.header(DELIVERY_ATTEMPT_HEADER, &attempt.to_string())
    }

    /// One more header (an attribute, with write-metadata).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .insert(name.to_string(), value.to_string());
        self
    }

    /// The `POST /`.
    pub fn build(self) -> CapturedRequest {
        self.request
    }

    /// As a request for `router.oneshot(…)`.
    pub fn request(&self) -> axum::http::Request<axum::body::Body> {
        self.request.request()
    }
}

/// Sends `request` to the function at `url` (`http://host:port/`) and returns
/// the status. `host` and `content-length` are the client's to set.
///
/// # Errors
/// When the request cannot be sent.
pub async fn post(url: &str, request: &CapturedRequest) -> Result<u16> {
    let client = reqwest::Client::new();
    let mut builder = client.post(format!("{}{}", url.trim_end_matches('/'), request.path));
    for (k, v) in &request.headers {
        if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
            builder = builder.header(k.as_str(), v.as_str());
        }
    }
    Ok(builder
        .body(request.body.clone())
        .send()
        .await?
        .status()
        .as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_encodes_the_data_and_writes_only_what_was_given() -> Result<()> {
        let req = push(b"hi", "m1").build();
        let body: Value = serde_json::from_slice(&req.body)?;
        assert_eq!(
            body,
            json!({"message": {"data": "aGk=", "messageId": "m1"}})
        );
        let body = push(b"", "m2")
            .raw_data("%%%")
            .attribute("k", "v")
            .subscription("projects/p/subscriptions/s")
            .delivery_attempt(2)
            .body();
        assert_eq!(body["message"]["data"], "%%%");
        assert_eq!(body["message"]["attributes"], json!({"k": "v"}));
        assert_eq!(body["subscription"], "projects/p/subscriptions/s");
        assert_eq!(body["deliveryAttempt"], 2);
        Ok(())
    }
}
