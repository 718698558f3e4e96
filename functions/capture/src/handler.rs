//! The one handler: decode (`sync_capture::decode` of the request's headers
//! and body) → decide (`sync_capture::decide` under the configured kinds) →
//! effect (publish the change event, or dead-letter what can never be
//! forwarded), with [`AppState`], what every request shares, and [`router`],
//! the routes on any publisher (tests run it with `oneshot`).
//!
//! The status is the whole contract with Eventarc's push, which retries any
//! other answer than 2xx for up to a day:
//!
//! | what happened | reply |
//! |---|---|
//! | forwarded (published to the events topic) | 204 |
//! | an echo of the sync function's own write, or a kind not captured | 204, nothing published |
//! | undecodable, an unknown event type, or a change that can never be forwarded | dead-lettered with its `error_code`, then 204; 400 without a dead-letter topic |
//! | the publish (or the dead-letter publish) failed | 503: Eventarc redelivers |
//! | not readable at all (not a `POST`, a body over the limit, shed for memory) | 4xx from [`DeliveryError`](sync_http::DeliveryError), nothing to dead-letter |
//!
//! Every event gets one log line (its outcome), within the line budget
//! (`sync_core::logline`): each value from the wire is cut to a bounded
//! length. The delivery's trace context (`traceparent`) is continued: the
//! published change event carries a child span of it as its
//! `googclient_traceparent` attribute.

use crate::config::CaptureConfig;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use sync_capture::event::header;
use sync_capture::{decide, decode, Decision};
use sync_core::logline::{excerpt, FIELD_TEXT_BYTES, ID_TEXT_BYTES};
use sync_core::wire::attribute_safe;
use sync_core::wire::dead_letter::Reason;
use sync_core::{EventPublisher, OutgoingMessage};
use sync_http::telemetry::{SPAN_ID_FIELD, TRACE_FIELD, TRACE_SAMPLED_FIELD};
use sync_http::{RawRequest, TraceContext};
use sync_pubsub::messages;
use tracing::{field, info, info_span, warn, Instrument};

/// What every request shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Where change events and dead letters go.
    pub publisher: Arc<dyn EventPublisher>,
    /// Validated settings.
    pub config: Arc<CaptureConfig>,
    /// Events answered, by outcome.
    pub counts: Arc<Counts>,
}

impl AppState {
    /// The state on this publisher, counting from zero.
    pub fn new(config: Arc<CaptureConfig>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self {
            publisher,
            config,
            counts: Arc::default(),
        }
    }
}

/// Events answered so far, by outcome (logged at shutdown).
#[derive(Debug, Default)]
pub struct Counts {
    /// Published to the events topic.
    pub forwarded: AtomicU64,
    /// The sync function's own writes, not forwarded.
    pub echoes: AtomicU64,
    /// Kinds not captured.
    pub ignored: AtomicU64,
    /// Sent to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Refused with 400 (no dead-letter topic).
    pub rejected: AtomicU64,
    /// Answered 503 for Eventarc to redeliver.
    pub retried: AtomicU64,
}

impl Counts {
    /// The counts as JSON, for the shutdown log line.
    pub fn json(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "forwarded": n(&self.forwarded),
            "echoes": n(&self.echoes),
            "ignored": n(&self.ignored),
            "dead_lettered": n(&self.dead_lettered),
            "rejected": n(&self.rejected),
            "retried": n(&self.retried),
        })
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the capture function holds at rest, besides requests: the runtime,
/// the Pub/Sub clients, the allocator's slack. Measured: about 12 MiB
/// resident idle and ready (release), 24 MiB (debug); charged 40 MiB.
pub const AT_REST_BYTES: u64 = 40 << 20;

/// What one event holds at its peak (see [`sync_http::admission`]): the
/// protobuf body, the decoded snapshots (`value` and `old_value`, every
/// property a map entry), the change event's JSON data built from them, its
/// encoded text and the publish's copy. Measured as the rise of the peak
/// resident size over one event (debug build): 5.3× the body for one 1 MB
/// blob, 8-11× for 12,000 properties of 70 bytes, 25-36× for 80,000
/// integer properties (an entity of only tiny properties is the worst
/// case: each costs far more decoded than encoded); charged 40×. The body
/// is at most [`crate::config::MAX_EVENT_BODY_BYTES`] (4 MiB), charged
/// 160 MiB, which a 256 MiB instance admits alone.
pub const REQUEST_COST: sync_http::RequestCost = sync_http::RequestCost::flat(64 << 10, 40.0);

/// The capture function's routes: `POST /` (any query string, admitted
/// against the instance's memory budget), `GET /healthz`, `GET /livez`.
pub fn router(state: AppState) -> Router {
    let runtime = &state.config.runtime;
    let limit = runtime.max_body_bytes;
    let budget = sync_http::MemoryBudget::for_bodies_up_to(
        runtime.memory_limit(),
        AT_REST_BYTES,
        REQUEST_COST,
        limit as u64,
    );
    sync_http::push_router(handle, limit, budget, state)
}

/// How an event ended; decides the HTTP status, and so whether Eventarc
/// delivers it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Forwarded, not to be forwarded, or dead-lettered: 204.
    Ack,
    /// Can never be forwarded and no dead-letter topic is configured: 400
    /// (Eventarc redelivers it).
    Rejected,
    /// Publishing failed for now: 503, Eventarc redelivers.
    Retry,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Ack => StatusCode::NO_CONTENT.into_response(),
            Self::Rejected => (StatusCode::BAD_REQUEST, "event rejected\n").into_response(),
            Self::Retry => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unable to publish; retry\n",
            )
                .into_response(),
        }
    }
}

/// A request that cannot be read never gets here: the extractor's
/// rejection answers 4xx and logs it once.
async fn handle(State(app): State<AppState>, request: RawRequest) -> Reply {
    let RawRequest { headers, body } = request;
    let attribute = |name| {
        headers
            .get(name)
            .map(|v| excerpt(&String::from_utf8_lossy(v.as_bytes()), ID_TEXT_BYTES).into_owned())
    };
    let span = info_span!(
        "event",
        event_id = attribute(header::ID).as_deref().unwrap_or("(none)"),
        event_type = attribute(header::TYPE).as_deref().unwrap_or("(none)"),
        entity = attribute(header::ENTITY).as_deref().unwrap_or("(none)"),
        cloud_trace = field::Empty,
        cloud_span_id = field::Empty,
        cloud_trace_sampled = field::Empty,
    );
    // This event's span in the delivery's trace: its log line and what it
    // publishes.
    let trace = TraceContext::from_headers(&headers).map(|t| t.child());
    if let Some(t) = &trace {
        span.record(TRACE_FIELD, t.resource_name(app.config.project_id()));
        if let Some(s) = &t.span_id {
            span.record(SPAN_ID_FIELD, s.as_str());
        }
        span.record(TRACE_SAMPLED_FIELD, t.sampled);
    }
    let traceparent = trace.as_ref().and_then(TraceContext::traceparent);
    process(&app, &headers, body, traceparent.as_deref())
        .instrument(span)
        .await
}

async fn process(
    app: &AppState,
    headers: &HeaderMap,
    body: Vec<u8>,
    traceparent: Option<&str>,
) -> Reply {
    let event = match decode(headers, &body) {
        Ok(event) => event,
        Err(e) => {
            return dead_letter(app, headers, body, e.code(), &e.to_string(), traceparent).await
        }
    };
    let change = match decide(&event, &app.config.filter) {
        Ok(Decision::Forward(change)) => change,
        Ok(Decision::Echo { kind }) => {
            Counts::add(&app.counts.echoes);
            info!(
                outcome = "echo",
                kind = %excerpt(&kind, ID_TEXT_BYTES),
                "the sync function's own write (it carries _sync); not forwarded"
            );
            return Reply::Ack;
        }
        Ok(Decision::Ignored { kind }) => {
            Counts::add(&app.counts.ignored);
            info!(
                outcome = "ignored",
                kind = %excerpt(&kind, ID_TEXT_BYTES),
                "a kind that is not captured; not forwarded"
            );
            return Reply::Ack;
        }
        Err(e) => {
            return dead_letter(app, headers, body, e.code(), &e.to_string(), traceparent).await
        }
    };
    // The body is not needed past this point.
    drop(body);
    let message = &change.message;
    let outgoing = messages::traced(
        OutgoingMessage {
            data: message.to_bytes(),
            ..OutgoingMessage::default()
        },
        traceparent,
    );
    let topic = &app.config.events_topic;
    match app.publisher.publish(topic, outgoing).await {
        Ok(id) => {
            Counts::add(&app.counts.forwarded);
            info!(
                outcome = "forwarded",
                kind = %excerpt(message.kind.as_deref().unwrap_or_default(), ID_TEXT_BYTES),
                entity_id = %excerpt(&message.entity_id, ID_TEXT_BYTES),
                operation = message.operation.as_str(),
                timestamp = %message.timestamp,
                removed = message.removed.len(),
                message_id = %id,
                "change event published"
            );
            Reply::Ack
        }
        Err(e) => {
            Counts::add(&app.counts.retried);
            warn!(
                outcome = "retry",
                entity_id = %excerpt(&message.entity_id, ID_TEXT_BYTES),
                error = %excerpt(&e.to_string(), FIELD_TEXT_BYTES),
                "publishing the change event failed; Eventarc will redeliver"
            );
            Reply::Retry
        }
    }
}

/// The attributes a dead letter keeps of the request: each CloudEvent
/// attribute header (`ce-*`) and the content type, under the header's name,
/// so that an operator sees what arrived and a replay can rebuild it.
fn request_attributes(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| {
            name.as_str().starts_with("ce-") || *name == axum::http::header::CONTENT_TYPE
        })
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                attribute_safe(&String::from_utf8_lossy(value.as_bytes())),
            )
        })
        .collect()
}

/// Sends a request that can never be forwarded to the dead-letter topic,
/// its body as the data and the reason as attributes, then acknowledges it.
async fn dead_letter(
    app: &AppState,
    headers: &HeaderMap,
    body: Vec<u8>,
    code: &str,
    message: &str,
    traceparent: Option<&str>,
) -> Reply {
    let error = excerpt(message, FIELD_TEXT_BYTES);
    let Some(topic) = &app.config.dead_letter_topic else {
        Counts::add(&app.counts.rejected);
        warn!(
            outcome = "rejected",
            error_code = code,
            error = %error,
            "event rejected; no dead-letter topic is configured, so Eventarc will redeliver it"
        );
        return Reply::Rejected;
    };
    let id = headers
        .get(header::ID)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let out = messages::dead_letter(
        body,
        &request_attributes(headers),
        Reason {
            code,
            message,
            message_id: &id,
            subscription: None,
        },
    );
    let out = messages::traced(out, traceparent);
    match app.publisher.publish(topic, out).await {
        Ok(dead_letter_id) => {
            Counts::add(&app.counts.dead_lettered);
            warn!(outcome = "dead_lettered", error_code = code, error = %error, dead_letter_message_id = %dead_letter_id, "event dead-lettered");
            Reply::Ack
        }
        Err(e) => {
            Counts::add(&app.counts.retried);
            warn!(outcome = "retry", error_code = code, error = %excerpt(&e.to_string(), FIELD_TEXT_BYTES), "dead-letter publish failed; Eventarc will redeliver");
            Reply::Retry
        }
    }
}
