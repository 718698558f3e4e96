//! The capture function's handler on an in-memory publisher: every fixture
//! of `crates/sync-capture/fixtures` (bodies encoded with Google's own
//! Python types) posted as Eventarc posts it, and what was published, dead-
//! lettered or answered. What happens on the emulators is `tests/tests/capture.rs`.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{app, fixture, fixtures, request, send, DLQ, EVENTS, FIXTURE_TRACE};
use serde_json::Value;
use std::sync::atomic::Ordering;
use sync_core::wire::{dead_letter, trace, EventMessage};

#[tokio::test]
async fn every_fixture_is_forwarded_dropped_or_dead_lettered_as_decided() {
    for f in fixtures() {
        let (app, publisher, _) = app(&[]);
        let status = send(&app, request(&f)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}", f.name);
        let events = publisher.sent_to(EVENTS);
        let dead = publisher.sent_to(DLQ);
        match f.expect["decision"].as_str() {
            Some("forward") => {
                assert_eq!((events.len(), dead.len()), (1, 0), "{}", f.name);
                let m = &events[0];
                let data: Value = serde_json::from_slice(&m.data).expect("JSON");
                assert_eq!(data, f.expect["event"], "{}", f.name);
                // The change event names the CloudEvent id as its event id.
                let event: EventMessage = serde_json::from_value(data).expect("an event");
                assert_eq!(event.event_id.as_deref(), Some(f.headers["ce-id"].as_str()));
                // The delivery's trace continues in a child span.
                let tp = &m.attributes[trace::TRACEPARENT];
                assert!(tp.starts_with(&format!("00-{FIXTURE_TRACE}-")), "{tp}");
                assert_ne!(tp, &f.headers["traceparent"], "a new span id");
                assert_eq!(m.attributes.len(), 1, "{:?}", m.attributes);
                assert_eq!(m.ordering_key, None);
            }
            Some("echo" | "ignored") => {
                assert!(events.is_empty() && dead.is_empty(), "{}", f.name);
            }
            Some("error") => {
                assert_eq!((events.len(), dead.len()), (0, 1), "{}", f.name);
                let d = &dead[0];
                assert_eq!(d.data, f.body, "{}: the body, whole", f.name);
                assert_eq!(
                    d.attributes[dead_letter::ERROR_CODE],
                    f.expect["error_code"],
                    "{}",
                    f.name
                );
                assert_eq!(
                    d.attributes[dead_letter::ORIGINAL_MESSAGE_ID],
                    f.headers["ce-id"]
                );
                assert!(!d.attributes[dead_letter::ERROR_MESSAGE].is_empty());
                // The CloudEvent's attributes go with it, to replay or read.
                for h in ["ce-type", "ce-source", "ce-id", "content-type"] {
                    assert_eq!(d.attributes.get(h), f.headers.get(h), "{}: {h}", f.name);
                }
                assert!(!d.attributes.contains_key("traceparent"));
                assert!(d.attributes[trace::TRACEPARENT].contains(FIXTURE_TRACE));
            }
            other => panic!("{}: unknown decision {other:?}", f.name),
        }
    }
}

#[tokio::test]
async fn a_redelivery_publishes_the_same_event_again_with_the_same_event_id() {
    let (app, publisher, state) = app(&[]);
    let f = fixture("updated");
    for _ in 0..2 {
        assert_eq!(send(&app, request(&f)).await, StatusCode::NO_CONTENT);
    }
    let sent = publisher.sent_to(EVENTS);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].data, sent[1].data, "one event, twice");
    let event: EventMessage = serde_json::from_slice(&sent[0].data).expect("event");
    assert_eq!(event.removed, ["discontinued"]);
    assert!(event.data.is_some_and(|d| !d.contains_key("discontinued")));
    assert_eq!(state.counts.forwarded.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn kinds_outside_the_list_are_acknowledged_and_not_forwarded() {
    let (app, publisher, state) = app(&[("CAPTURE_KINDS", "Order")]);
    assert_eq!(
        send(&app, request(&fixture("created"))).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, request(&fixture("named_database"))).await,
        StatusCode::NO_CONTENT
    );
    let sent = publisher.sent_to(EVENTS);
    assert_eq!(sent.len(), 1, "only the Order");
    assert!(String::from_utf8_lossy(&sent[0].data).contains("\"kind\":\"Order\""));
    assert_eq!(state.counts.ignored.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn without_a_dead_letter_topic_what_cannot_be_forwarded_is_400() {
    let (app, publisher, state) = app(&[("DEAD_LETTER_TOPIC", "")]);
    for name in ["undecodable", "unknown_type", "ancestor"] {
        assert_eq!(
            send(&app, request(&fixture(name))).await,
            StatusCode::BAD_REQUEST,
            "{name}"
        );
    }
    assert!(publisher.sent().is_empty());
    assert_eq!(state.counts.rejected.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_failed_publish_is_503_so_eventarc_redelivers() {
    let (app, publisher, state) = app(&[]);
    publisher.unavailable.store(true, Ordering::Relaxed);
    for name in ["created", "undecodable"] {
        assert_eq!(
            send(&app, request(&fixture(name))).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "{name}"
        );
    }
    assert_eq!(state.counts.retried.load(Ordering::Relaxed), 2);
    publisher.unavailable.store(false, Ordering::Relaxed);
    assert_eq!(
        send(&app, request(&fixture("created"))).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn requests_that_cannot_be_read_are_4xx_and_the_health_paths_answer() {
    let (app, publisher, _) = app(&[("MAX_BODY_BYTES", "64")]);
    let big = fixture("created");
    assert_eq!(
        send(&app, request(&big)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let get = Request::builder()
        .uri("/")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, get).await, StatusCode::METHOD_NOT_ALLOWED);
    for path in ["/healthz", "/livez"] {
        let get = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        assert_eq!(send(&app, get).await, StatusCode::OK, "{path}");
    }
    assert!(publisher.sent().is_empty());
}
