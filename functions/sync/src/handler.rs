//! The one handler: decode (the [`Delivery`] extractor) → decide
//! (`sync-core`'s parse and merge, through the store) → effects (announce,
//! or dead-letter), with [`AppState`], what every request shares, and
//! [`router`], the routes on any ports (tests run it with `oneshot`).
//!
//! The status code is the whole contract with Pub/Sub push: 2xx acks, anything
//! else is redelivered. `process` either ends well or returns a `Failure`
//! made from the error's [`Classify`] code and disposition; `settle` is the
//! one place a failure is dead-lettered or answered, so every path ends in
//! exactly one [`Reply`] and one outcome event in the log:
//!
//! | what happened | reply |
//! |---|---|
//! | applied, refreshed, duplicate, stale | 204 |
//! | not a Pub/Sub delivery at all | 4xx from [`DeliveryError`](sync_http::DeliveryError) (nothing to dead-letter) |
//! | permanent problem with the message | dead-lettered, then 204; 400 without a dead-letter topic |
//! | transient (store, publish, dead-letter publish) | 503 |
//!
//! Every line fits one Cloud Logging entry (`sync_core::logline`), and the
//! delivery's trace context goes on with its announcement or dead letter
//! (`sync_http::trace`).

use crate::announced::AnnouncedLog;
use crate::config::Config;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use sync_core::logline::{
    excerpt, json_excerpt, FIELD_TEXT_BYTES, ID_TEXT_BYTES, VALUE_TEXT_BYTES,
};
use sync_core::wire::dead_letter::Reason;
use sync_core::{
    parse_event_with, Announcement, ChangeEvent, Classify, Disposition, EntityStore,
    EventPublisher, Operation, PublishError,
};
use sync_http::telemetry::{SPAN_ID_FIELD, TRACE_FIELD, TRACE_SAMPLED_FIELD};
use sync_http::{Delivery, TraceContext};
use sync_pubsub::messages;
use tracing::{field, info, info_span, warn, Instrument};

/// The receiving clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What every request shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Where entities live.
    pub store: Arc<dyn EntityStore>,
    /// Where announcements and dead letters go.
    pub publisher: Arc<dyn EventPublisher>,
    /// Validated settings.
    pub config: Arc<Config>,
    /// The receiving clock.
    pub clock: Clock,
    /// Versions announced lately, to skip repeats on redelivery.
    pub announced: Arc<AnnouncedLog>,
}

impl AppState {
    /// The state on these ports, with the real clock and an announced log of
    /// the default capacity.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn EntityStore>,
        publisher: Arc<dyn EventPublisher>,
    ) -> Self {
        Self {
            store,
            publisher,
            config,
            clock: Arc::new(Utc::now),
            announced: Arc::new(AnnouncedLog::new(AnnouncedLog::DEFAULT_CAPACITY)),
        }
    }
}

/// What the sync function holds at rest, besides requests: the runtime, the
/// Datastore and Pub/Sub clients with their connections and buffers, the
/// announced log, the allocator's slack. Measured: about 13 MiB resident
/// idle (release), 28 MiB (debug); the memory test's burst shows what is
/// left for requests suffices.
pub const AT_REST_BYTES: u64 = 48 << 20;

/// What one delivery holds at its peak (see [`sync_http::admission`]).
///
/// The body is read once and its data decoded in place. A body that can
/// carry an entity (up to [`ENTITY_BODY_BYTES`]) is parsed, merged, encoded
/// for Datastore, recorded as a conflict and announced: measured up to 9×
/// the body (a conflict between two 1 MB values), charged 10×. The rest of a
/// larger body can only be refused (entity too large) and dead-lettered: the
/// data and its parsed copy, then the data and its encoded publish,
/// measured 1.5× the body of a 9.5 MB event, charged 2×.
pub const REQUEST_COST: sync_http::RequestCost = sync_http::RequestCost {
    fixed: 64 << 10,
    per_byte: 10.0,
    bulk_from: ENTITY_BODY_BYTES,
    bulk_per_byte: 2.0,
};

/// The push body of the largest event whose data fits an entity (1,048,572
/// bytes base64-encoded, with the envelope): 1.5 MiB.
pub const ENTITY_BODY_BYTES: u64 = 3 << 19;

/// The sync function's routes: `POST /` (any query string, admitted against
/// the instance's memory budget) and `GET /healthz`.
pub fn router(state: AppState) -> Router {
    let runtime = &state.config.runtime;
    let budget =
        sync_http::MemoryBudget::for_instance(runtime.memory_limit(), AT_REST_BYTES, REQUEST_COST);
    let limit = runtime.max_body_bytes;
    sync_http::push_router(handle, limit, budget, state)
}

/// How a delivery ended; decides the HTTP status and so ack or nack.
#[derive(Debug)]
pub enum Reply {
    /// Done (applied, refreshed, duplicate, stale, or dead-lettered): ack.
    Ack,
    /// Permanent problem and no dead-letter topic configured: 400.
    Rejected,
    /// Transient problem: 503, Pub/Sub redelivers.
    Retry,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Ack => StatusCode::NO_CONTENT.into_response(),
            Self::Rejected => (StatusCode::BAD_REQUEST, "message rejected\n").into_response(),
            Self::Retry => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unable to process; retry\n",
            )
                .into_response(),
        }
    }
}

/// What a processed delivery did, for its outcome event.
struct Processed {
    outcome: sync_core::Outcome,
    operation: Operation,
    version: i64,
    conflicts: usize,
    attempts: u32,
    /// Publish-to-apply latency, for dashboards and the end-to-end benchmark.
    publish_to_apply_ms: Option<i64>,
}

/// Why a delivery was not processed.
#[derive(Debug)]
enum Failure {
    /// Retrying cannot help: the message is dead-lettered.
    Permanent { code: &'static str, error: String },
    /// The store failed for now: Pub/Sub redelivers.
    Transient { code: &'static str, error: String },
    /// The change is stored but its announcement did not go out: Pub/Sub
    /// redelivers, and the redelivery announces it.
    Announcement {
        topic: String,
        version: i64,
        error: PublishError,
    },
}

/// Every error the handler meets, alike: its `code()`, `disposition()` and
/// text.
impl<E: Classify + std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        let (code, error) = (e.code(), e.to_string());
        match e.disposition() {
            Disposition::Permanent => Self::Permanent { code, error },
            Disposition::Transient => Self::Transient { code, error },
        }
    }
}

/// A request that is not a Pub/Sub delivery never gets here: the extractor's
/// rejection (`DeliveryError`) answers 4xx and logs it once.
async fn handle(State(app): State<AppState>, mut delivery: Delivery) -> Reply {
    // Every line of the delivery repeats the span's fields: ids from the
    // wire are cut to a bounded length (`logline`).
    let span = info_span!(
        "delivery",
        message_id = %excerpt(&delivery.message_id, ID_TEXT_BYTES),
        form = delivery.form.as_str(),
        attempt = field::Empty,
        entity_id = field::Empty,
        event_id = field::Empty,
        correlation_id = field::Empty,
        cloud_trace = field::Empty,
        cloud_span_id = field::Empty,
        cloud_trace_sampled = field::Empty,
        request_trace_id = field::Empty,
    );
    if let Some(a) = delivery.delivery_attempt {
        span.record("attempt", a);
    }
    // This delivery's span in the trace: its log lines and what it publishes.
    let trace = delivery.trace.as_ref().map(TraceContext::child);
    if let Some(t) = &trace {
        span.record(TRACE_FIELD, t.resource_name(app.config.project_id()));
        if let Some(s) = &t.span_id {
            span.record(SPAN_ID_FIELD, s.as_str());
        }
        span.record(TRACE_SAMPLED_FIELD, t.sampled);
    }
    if let Some(r) = &delivery.request_trace {
        span.record("request_trace_id", r.trace_id.as_str());
    }
    async {
        let traceparent = trace.as_ref().and_then(TraceContext::traceparent);
        match process(&app, &delivery, &span, traceparent.as_deref()).await {
            Ok(p) => {
                info!(
                    outcome = p.outcome.as_str(),
                    operation = p.operation.as_str(),
                    version = p.version,
                    conflicts = p.conflicts,
                    attempts = p.attempts,
                    publish_to_apply_ms = p.publish_to_apply_ms,
                    "event processed"
                );
                Reply::Ack
            }
            Err(failure) => settle(&app, &mut delivery, failure, traceparent.as_deref()).await,
        }
    }
    .instrument(span.clone())
    .await
}

async fn process(
    app: &AppState,
    delivery: &Delivery,
    span: &tracing::Span,
    traceparent: Option<&str>,
) -> Result<Processed, Failure> {
    let data = delivery.data()?;
    let event = parse_event_with(
        data,
        &delivery.message_id,
        app.config.limits(),
        &app.config.schema,
        (app.clock)(),
    )?;
    span.record("entity_id", event.entity_id.as_str());
    // The change's own id, when it has one: what the merge orders and
    // deduplicates by in place of the message id.
    if event.event_id != delivery.message_id {
        span.record("event_id", &*excerpt(&event.event_id, ID_TEXT_BYTES));
    }
    if let Some(c) = &event.correlation_id {
        span.record("correlation_id", &*excerpt(c, ID_TEXT_BYTES));
    }

    let result = app.store.apply(&event).await?;
    for c in &result.conflicts {
        log_conflict(c);
    }
    if let Some(announcement) = &result.announcement {
        announce(app, &event, announcement, traceparent).await?;
    }
    Ok(Processed {
        outcome: result.outcome,
        operation: event.operation,
        version: result.version(),
        conflicts: result.conflicts.len(),
        attempts: result.attempts,
        publish_to_apply_ms: delivery
            .publish_time
            .map(|t| ((app.clock)() - t).num_milliseconds()),
    })
}

/// One line per conflict, as `sync_core::wire::audit::ConflictLine` reads
/// it: both values as compact JSON, each cut to fit the line (with the
/// length and SHA-256 of its whole text when cut), the order keys (whose
/// source may be long) cut too.
fn log_conflict(c: &sync_core::FieldConflict) {
    let (winner, winner_full) = match &c.winner_value {
        Some(v) => json_excerpt(v, VALUE_TEXT_BYTES),
        None => ("(deleted)".to_string(), None),
    };
    let (loser, loser_full) = json_excerpt(&c.loser_value, VALUE_TEXT_BYTES);
    info!(
        field = %c.field,
        rule = c.rule.as_str(),
        reason = c.reason.as_str(),
        winner_value = %winner,
        winner_value_truncated = winner_full.is_some().then_some(true),
        winner_value_bytes = winner_full.as_ref().map(|d| d.bytes),
        winner_value_sha256 = winner_full.as_ref().map(|d| d.sha256.as_str()),
        winner_key = %excerpt(&c.winner_key.to_string(), ID_TEXT_BYTES),
        loser_value = %loser,
        loser_value_truncated = loser_full.is_some().then_some(true),
        loser_value_bytes = loser_full.as_ref().map(|d| d.bytes),
        loser_value_sha256 = loser_full.as_ref().map(|d| d.sha256.as_str()),
        loser_key = %excerpt(&c.loser_key.to_string(), ID_TEXT_BYTES),
        "conflict: incoming value lost"
    );
}

/// Publishes the change downstream. Nothing records that it went out: a
/// failure here nacks the delivery, and its redelivery announces it (see
/// `MergeOutcome::announcement`).
async fn announce(
    app: &AppState,
    event: &ChangeEvent,
    a: &Announcement,
    traceparent: Option<&str>,
) -> Result<(), Failure> {
    let entity_id = event.entity_id.as_str();
    let kind = event.kind.as_deref().unwrap_or(app.config.kind());
    if app.announced.contains(kind, entity_id, a.version) {
        info!(
            version = a.version,
            "already announced by this instance; not repeated"
        );
        return Ok(());
    }
    let topic = app.config.external_topic(a.operation);
    let message = messages::announcement(kind, entity_id, a, app.config.announce_ordering_keys);
    let message = messages::traced(message, traceparent);
    if let Err(error) = app.publisher.publish(&topic, message).await {
        return Err(Failure::Announcement {
            topic,
            version: a.version,
            error,
        });
    }
    app.announced.record(kind, entity_id, a.version);
    Ok(())
}

/// Dead-letters or answers a failure, and logs its outcome event.
async fn settle(
    app: &AppState,
    delivery: &mut Delivery,
    failure: Failure,
    traceparent: Option<&str>,
) -> Reply {
    match failure {
        Failure::Permanent { code, error } => {
            dead_letter(app, delivery, code, &error, traceparent).await
        }
        Failure::Transient { code, error } => {
            warn!(outcome = "retry", error_code = code, error = %excerpt(&error, FIELD_TEXT_BYTES), "store failed; Pub/Sub will redeliver");
            Reply::Retry
        }
        Failure::Announcement {
            topic,
            version,
            error,
        } => {
            warn!(outcome = "retry", topic = %topic, version, error = %excerpt(&error.to_string(), FIELD_TEXT_BYTES), "announcement failed; Pub/Sub will redeliver and it will be announced then");
            Reply::Retry
        }
    }
}

/// Sends a permanently bad message to the dead-letter topic with the reason.
/// Its data is moved into the dead letter, not copied: the delivery needs it
/// no more.
async fn dead_letter(
    app: &AppState,
    delivery: &mut Delivery,
    code: &str,
    message: &str,
    traceparent: Option<&str>,
) -> Reply {
    // The reason may echo the message (an operation, a field name).
    let error = excerpt(message, FIELD_TEXT_BYTES);
    let Some(topic) = &app.config.dead_letter_topic else {
        warn!(
            outcome = "rejected",
            error_code = code,
            error = %error,
            "message rejected; no dead-letter topic is configured, so Pub/Sub will redeliver it"
        );
        return Reply::Rejected;
    };
    let out = messages::dead_letter(
        delivery.take_original_data(),
        &delivery.attributes,
        Reason {
            code,
            message,
            message_id: &delivery.message_id,
            subscription: delivery.subscription.as_deref(),
        },
    );
    let out = messages::traced(out, traceparent);
    match app.publisher.publish(topic, out).await {
        Ok(id) => {
            warn!(outcome = "rejected", error_code = code, error = %error, dead_letter_message_id = %id, "message dead-lettered");
            Reply::Ack
        }
        Err(e) => {
            warn!(outcome = "retry", error_code = code, error = %excerpt(&e.to_string(), FIELD_TEXT_BYTES), "dead-letter publish failed; Pub/Sub will redeliver");
            Reply::Retry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::io::Write;
    use std::sync::Mutex;
    use sync_core::logline::LINE_BUDGET_BYTES;
    use sync_core::wire::audit::ConflictLine;
    use sync_core::{FieldConflict, FieldRule, LossReason, OrderKey};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The production JSON lines `f` logs.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = sync_http::telemetry::json_subscriber(move || writer.clone());
        tracing::subscriber::with_default(subscriber, f);
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn sha256(bytes: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn conflict(winner: Value, loser: Value) -> FieldConflict {
        let t = |s| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        FieldConflict {
            field: "doc".into(),
            rule: FieldRule::Lww,
            reason: LossReason::OlderThanWinner,
            winner_value: Some(winner),
            winner_key: OrderKey::new(t("2025-07-23T10:00:01Z"), "crm", "m-2"),
            loser_value: loser,
            loser_key: OrderKey::new(t("2025-07-23T10:00:00Z"), "web", "m-1"),
        }
    }

    #[test]
    fn a_conflict_of_two_400_kb_values_fits_one_line_with_both_digests() {
        let winner = json!({"text": "w\"".repeat(200_000)});
        let loser = json!("l".repeat(400_000));
        let lines = logged(|| log_conflict(&conflict(winner.clone(), loser.clone())));
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.len() <= LINE_BUDGET_BYTES, "{} bytes", line.len());
        let read: ConflictLine = serde_json::from_str(line).expect("a conflict line");
        assert_eq!(read.message, "conflict: incoming value lost");
        assert_eq!((read.field.as_str(), read.rule.as_str()), ("doc", "lww"));
        for (value, text, truncated, bytes, digest) in [
            (
                &winner,
                &read.winner_value,
                read.winner_value_truncated,
                read.winner_value_bytes,
                &read.winner_value_sha256,
            ),
            (
                &loser,
                &read.loser_value,
                read.loser_value_truncated,
                read.loser_value_bytes,
                &read.loser_value_sha256,
            ),
        ] {
            let full = serde_json::to_string(value).expect("JSON");
            assert!(truncated);
            assert!(full.starts_with(text.as_str()) && text.len() > 10_000);
            assert_eq!(bytes, Some(full.len()));
            assert_eq!(digest.as_deref(), Some(sha256(full.as_bytes()).as_str()));
        }
        assert!(read.winner_key.contains("crm") && read.loser_key.contains("web"));
    }

    #[test]
    fn a_small_conflict_is_logged_whole() {
        let lines = logged(|| log_conflict(&conflict(json!(2), json!({"a": 1}))));
        let read: ConflictLine = serde_json::from_str(&lines[0]).expect("a conflict line");
        assert_eq!(read.winner_value, "2");
        assert_eq!(read.loser_value, r#"{"a":1}"#);
        assert!(!read.winner_value_truncated && !read.loser_value_truncated);
        assert_eq!(read.loser_value_bytes, None);
        assert_eq!(read.winner_value_sha256, None);
    }
}
