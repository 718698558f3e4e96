//! The capture function's log: one outcome line per event, in Cloud
//! Logging's JSON, within the line budget. A test binary of its own: the
//! subscriber is installed for this thread only, and a callsite first hit
//! by another test's thread without one could stay disabled here.

mod common;

use axum::http::StatusCode;
use common::{app, fixture, request, send, FIXTURE_TRACE};
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};
use sync_core::logline::LINE_BUDGET_BYTES;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One line per event, in Cloud Logging's JSON, within the line budget even
/// when every attribute header is as long as a header can be.
#[tokio::test]
async fn each_event_logs_one_outcome_line_within_the_budget() {
    let capture = Capture::default();
    let writer = capture.clone();
    let _guard =
        tracing::subscriber::set_default(sync_http::telemetry::json_subscriber(move || {
            writer.clone()
        }));
    let (app, _, _) = app(&[]);
    let mut outcomes = Vec::new();
    for (name, outcome) in [
        ("created", "forwarded"),
        ("echo", "echo"),
        ("own_kind", "ignored"),
        ("undecodable", "dead_lettered"),
    ] {
        let mut f = fixture(name);
        for h in ["ce-entity", "ce-subject", "ce-id"] {
            f.headers.insert(h.into(), "x".repeat(60_000));
        }
        let before = capture.0.lock().expect("lock").len();
        assert_eq!(
            send(&app, request(&f)).await,
            StatusCode::NO_CONTENT,
            "{name}"
        );
        let bytes = capture.0.lock().expect("lock")[before..].to_vec();
        let text = String::from_utf8(bytes).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {text}");
        assert!(
            lines[0].len() <= LINE_BUDGET_BYTES,
            "{name}: {} bytes",
            lines[0].len()
        );
        let line: Value = serde_json::from_str(lines[0]).expect("JSON");
        assert_eq!(line["outcome"], outcome, "{name}: {line}");
        assert!(line["logging.googleapis.com/trace"]
            .as_str()
            .is_some_and(|t| t.ends_with(FIXTURE_TRACE)));
        outcomes.push(line);
    }
    assert_eq!(outcomes[0]["entityId"], "p-1", "{}", outcomes[0]);
    assert_eq!(
        outcomes[3]["errorCode"], "invalid_protobuf",
        "{}",
        outcomes[3]
    );
}
