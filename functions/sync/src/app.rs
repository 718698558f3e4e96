//! The router and the one handler: decode → decide (sync-core) → effects.
//!
//! The status code is the whole contract with Pub/Sub push: 2xx acks, anything
//! else is redelivered. So every path below ends in exactly one [`Reply`]:
//!
//! | what happened | reply |
//! |---|---|
//! | applied, refreshed, duplicate, stale | 204 |
//! | not a Pub/Sub delivery at all | 4xx from [`DeliveryError`](sync_http::DeliveryError) (nothing to dead-letter) |
//! | permanent problem with the message | dead-lettered, then 204; 400 without a dead-letter topic |
//! | transient (store, publish, dead-letter publish) | 503 |

use crate::announced::AnnouncedLog;
use crate::config::Config;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_core::wire::{attribute_safe, dead_letter};
use sync_core::{
    parse_event, Announcement, ChangeEvent, Disposition, EntityStore, EventPublisher,
    OutgoingMessage,
};
use sync_http::telemetry::{SPAN_ID_FIELD, TRACE_FIELD, TRACE_SAMPLED_FIELD};
use sync_http::Delivery;
use sync_store::Backoff;
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

/// The sync function's routes: `POST /` (any query string) and `GET /healthz`.
pub fn router(state: AppState) -> Router {
    let limit = state.config.runtime.max_body_bytes;
    sync_http::push_router(handle, limit, state)
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

/// A request that is not a Pub/Sub delivery never gets here: the extractor's
/// rejection (`DeliveryError`) answers 4xx and logs it once.
async fn handle(State(app): State<AppState>, delivery: Delivery) -> Reply {
    let span = info_span!(
        "delivery",
        message_id = %delivery.message_id,
        form = delivery.form.as_str(),
        attempt = field::Empty,
        entity_id = field::Empty,
        correlation_id = field::Empty,
        cloud_trace = field::Empty,
        cloud_span_id = field::Empty,
        cloud_trace_sampled = field::Empty,
    );
    if let Some(a) = delivery.delivery_attempt {
        span.record("attempt", a);
    }
    if let Some(t) = &delivery.trace {
        span.record(TRACE_FIELD, t.resource_name(&app.config.project_id));
        if let Some(s) = &t.span_id {
            span.record(SPAN_ID_FIELD, s.as_str());
        }
        span.record(TRACE_SAMPLED_FIELD, t.sampled);
    }
    process(&app, &delivery, &span)
        .instrument(span.clone())
        .await
}

async fn process(app: &AppState, delivery: &Delivery, span: &tracing::Span) -> Reply {
    let data = match delivery.data() {
        Ok(d) => d,
        Err(e) => return dead_letter(app, delivery, e.code(), &e.to_string()).await,
    };
    let event = match parse_event(
        data,
        &delivery.message_id,
        &app.config.limits,
        (app.clock)(),
    ) {
        Ok(e) => e,
        Err(e) => return dead_letter(app, delivery, e.code(), &e.to_string()).await,
    };
    span.record("entity_id", event.entity_id.as_str());
    if let Some(c) = &event.correlation_id {
        span.record("correlation_id", c.as_str());
    }

    let result = match app.store.apply(&event).await {
        Ok(r) => r,
        Err(e) if e.disposition() == Disposition::Permanent => {
            return dead_letter(app, delivery, e.code(), &e.to_string()).await
        }
        Err(e) => {
            warn!(outcome = "retry", error_code = e.code(), error = %e, "store failed; Pub/Sub will redeliver");
            return Reply::Retry;
        }
    };
    for c in &result.conflicts {
        info!(
            field = %c.field,
            rule = c.rule.as_str(),
            reason = c.reason.as_str(),
            winner_value = %c.winner_value.as_ref().map_or_else(|| "(deleted)".to_string(), |v| v.to_string()),
            winner_key = %c.winner_key,
            loser_value = %c.loser_value,
            loser_key = %c.loser_key,
            "conflict: incoming value lost"
        );
    }
    if let Some(announcement) = &result.announcement {
        if let Err(reply) = announce(app, &event, announcement).await {
            return reply;
        }
    }
    // Publish-to-apply latency, for dashboards and the end-to-end benchmark.
    let latency_ms = delivery
        .publish_time
        .map(|t| ((app.clock)() - t).num_milliseconds());
    info!(
        outcome = result.outcome.as_str(),
        operation = event.operation.as_str(),
        version = result.version(),
        conflicts = result.conflicts.len(),
        attempts = result.attempts,
        publish_to_apply_ms = latency_ms,
        "event processed"
    );
    Reply::Ack
}

/// Publishes the change downstream. Nothing records that it went out: a
/// failure here nacks the delivery, and its redelivery announces it (see
/// `MergeOutcome::announcement`).
async fn announce(app: &AppState, event: &ChangeEvent, a: &Announcement) -> Result<(), Reply> {
    let entity_id = event.entity_id.as_str();
    let kind = event.kind.as_deref().unwrap_or(&app.config.kind);
    if app.announced.contains(kind, entity_id, a.version) {
        info!(
            version = a.version,
            "already announced by this instance; not repeated"
        );
        return Ok(());
    }
    let topic = app.config.external_topic(a.operation);
    let mut attributes = BTreeMap::new();
    let key = attribute_safe(entity_id);
    attributes.insert("entity_id".to_string(), key.clone());
    attributes.insert("operation".to_string(), a.operation.as_str().to_string());
    attributes.insert("version".to_string(), a.version.to_string());
    attributes.insert("kind".to_string(), kind.to_string());
    if let Some(c) = &a.correlation_id {
        attributes.insert("correlation_id".to_string(), attribute_safe(c));
    }
    let message = OutgoingMessage {
        data: a.payload(entity_id).to_string().into_bytes(),
        attributes,
        ordering_key: Some(key),
    };
    if let Err(e) = publish_with_retry(app, &topic, message).await {
        warn!(outcome = "retry", topic = %topic, version = a.version, error = %e, "announcement failed; Pub/Sub will redeliver and it will be announced then");
        return Err(Reply::Retry);
    }
    app.announced.record(kind, entity_id, a.version);
    Ok(())
}

/// Sends a permanently bad message to the dead-letter topic with the reason.
async fn dead_letter(app: &AppState, delivery: &Delivery, code: &str, message: &str) -> Reply {
    let Some(topic) = &app.config.dead_letter_topic else {
        warn!(
            outcome = "rejected",
            error_code = code,
            error = message,
            "message rejected; no dead-letter topic is configured, so Pub/Sub will redeliver it"
        );
        return Reply::Rejected;
    };
    let attributes = dead_letter::attributes(
        &delivery.attributes,
        dead_letter::Reason {
            code,
            message,
            message_id: &delivery.message_id,
            subscription: delivery.subscription.as_deref(),
        },
    );
    let out = OutgoingMessage {
        data: delivery.original_data().to_vec(),
        attributes,
        ordering_key: None,
    };
    match publish_with_retry(app, topic, out).await {
        Ok(id) => {
            warn!(outcome = "rejected", error_code = code, error = message, dead_letter_message_id = %id, "message dead-lettered");
            Reply::Ack
        }
        Err(e) => {
            warn!(outcome = "retry", error_code = code, error = %e, "dead-letter publish failed; Pub/Sub will redeliver");
            Reply::Retry
        }
    }
}

/// Publishes, retrying transient failures within the budget, with the same
/// full-jitter backoff the store uses (50 ms doubling to 2 s).
async fn publish_with_retry(
    app: &AppState,
    topic: &str,
    message: OutgoingMessage,
) -> Result<String, sync_core::PublishError> {
    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    let deadline = Instant::now() + app.config.retry_budget;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match app.publisher.publish(topic, message.clone()).await {
            Ok(id) => return Ok(id),
            Err(e) => {
                let delay = BACKOFF.delay(attempt);
                if Instant::now() + delay >= deadline {
                    return Err(e);
                }
                warn!(topic, error = %e, "publish failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
