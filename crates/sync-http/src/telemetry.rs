//! Logging setup: Cloud Logging JSON on stdout (via `tracing-stackdriver`) or
//! readable text, filtered by `RUST_LOG` (default `info`).
//!
//! The JSON writer adds what `tracing-stackdriver` cannot: the trace recorded
//! on the delivery span as [`TRACE_FIELD`], [`SPAN_ID_FIELD`] and
//! [`TRACE_SAMPLED_FIELD`] becomes Cloud Logging's `logging.googleapis.com/trace`,
//! `…/spanId` and `…/trace_sampled` on every line of that span. It writes
//! nothing twice (no source location; `spans` dropped when it repeats `span`),
//! and it is the last guard of the line budget: a line over
//! [`sync_core::logline::LINE_BUDGET_BYTES`] is shortened as a whole and says
//! so ([`sync_core::logline::fit_line`]).

use std::borrow::Cow;
use std::io::{self, Write};
use std::str::FromStr;
use sync_core::logline::{fit_line, LINE_BUDGET_BYTES};
use thiserror::Error;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Span or event field carrying `projects/P/traces/T`.
pub const TRACE_FIELD: &str = "cloud_trace";
/// Span or event field carrying the 16-hex-digit span id.
pub const SPAN_ID_FIELD: &str = "cloud_span_id";
/// Span or event field carrying whether the trace is sampled.
pub const TRACE_SAMPLED_FIELD: &str = "cloud_trace_sampled";

const LOGGING_TRACE: &str = "logging.googleapis.com/trace";
const LOGGING_SPAN_ID: &str = "logging.googleapis.com/spanId";
const LOGGING_TRACE_SAMPLED: &str = "logging.googleapis.com/trace_sampled";
/// The event-field spellings after `tracing-stackdriver`'s camelCase conversion.
const EVENT_FIELDS: [(&str, &str); 3] = [
    ("cloudTrace", LOGGING_TRACE),
    ("cloudSpanId", LOGGING_SPAN_ID),
    ("cloudTraceSampled", LOGGING_TRACE_SAMPLED),
];
const SPAN_FIELDS: [(&str, &str); 3] = [
    (TRACE_FIELD, LOGGING_TRACE),
    (SPAN_ID_FIELD, LOGGING_SPAN_ID),
    (TRACE_SAMPLED_FIELD, LOGGING_TRACE_SAMPLED),
];

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    /// One Cloud Logging JSON object per line (production).
    #[default]
    Json,
    /// Human-readable text (local runs).
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(format!("unknown log format `{other}`")),
        }
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Logging could not be set up.
#[derive(Debug, Error)]
pub enum TelemetryError {
    /// The filter directives do not parse.
    #[error("log filter {filter:?} is invalid: {reason}")]
    InvalidFilter {
        /// The directives.
        filter: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialised,
}

/// Installs the global subscriber: `format` on stdout, filtered by `RUST_LOG`
/// (default `info`).
///
/// # Errors
/// When `RUST_LOG` does not parse, or a subscriber is already installed.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = std::env::var(sync_config::RUST_LOG).ok();
    init_with_filter(format, filter.as_deref().unwrap_or("info"))
}

/// Installs the global subscriber with explicit filter directives.
///
/// # Errors
/// When `filter` does not parse, or a subscriber is already installed.
pub fn init_with_filter(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::InvalidFilter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })?;
    let result = match format {
        LogFormat::Json => json_subscriber(io::stdout).with(env_filter).try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(env_filter)
            .with(tracing_subscriber::fmt::layer().with_writer(io::stdout))
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInitialised)
}

/// The JSON format's subscriber, unfiltered, writing through a
/// [`CloudLoggingWriter`] to what `make_writer` makes: what [`init`] installs
/// for [`LogFormat::Json`] (tests capture exactly the production lines this
/// way, with `tracing::subscriber::with_default`).
pub fn json_subscriber<M>(make_writer: M) -> impl tracing::Subscriber + Send + Sync
where
    M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry().with(
        tracing_stackdriver::layer()
            .with_source_location(false)
            .with_writer(CloudLoggingWriter::new(make_writer)),
    )
}

/// A `MakeWriter` that passes `tracing-stackdriver`'s lines to an inner
/// writer, promoting the trace fields and keeping each line within the line
/// budget (see the module docs) on the way.
///
/// The fmt layer hands each event over as one complete line in one write, so
/// every `write` call sees exactly one JSON object.
#[derive(Debug, Clone)]
pub struct CloudLoggingWriter<M> {
    inner: M,
}

impl CloudLoggingWriter<fn() -> io::Stdout> {
    /// Writes to stdout.
    pub fn stdout() -> Self {
        Self { inner: io::stdout }
    }
}

impl<M> CloudLoggingWriter<M> {
    /// Writes to what `inner` makes (tests capture lines this way).
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for CloudLoggingWriter<M> {
    type Writer = PromotingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        PromotingWriter {
            inner: self.inner.make_writer(),
        }
    }
}

/// The writer [`CloudLoggingWriter`] makes.
#[derive(Debug)]
pub struct PromotingWriter<W> {
    inner: W,
}

impl<W: Write> Write for PromotingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let promoted = promote_trace_fields(buf);
        let line = promoted.as_deref().unwrap_or(buf);
        let line = match drop_repeated_span(line) {
            Some(shorter) => Cow::Owned(shorter),
            None => Cow::Borrowed(line),
        };
        match fit_line(&line, LINE_BUDGET_BYTES) {
            Some(fitted) => self.inner.write_all(&fitted)?,
            None => self.inner.write_all(&line)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The line without its `spans` list when the list holds only what `span`
/// holds, or `None` to keep the line as it is. Byte for byte: both are
/// serialized from the same span, and a quote inside a JSON string is
/// escaped, so the first `"span":` is the top-level key.
fn drop_repeated_span(line: &[u8]) -> Option<Vec<u8>> {
    const SPAN: &[u8] = b"\"span\":";
    const SPANS: &[u8] = b",\"spans\":[";
    let find = memchr::memmem::find;
    let start = find(line, SPAN)? + SPAN.len();
    let end = start + find(line.get(start..)?, SPANS)?;
    let span = line.get(start..end)?;
    let list = end + SPANS.len();
    let after = list + span.len();
    if line.get(list..after)? != span || line.get(after) != Some(&b']') {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() - (after + 1 - end));
    out.extend_from_slice(line.get(..end)?);
    out.extend_from_slice(line.get(after + 1..)?);
    Some(out)
}

/// The line with trace fields promoted to Cloud Logging's keys, or `None` when
/// there is nothing to promote (the line is then written unchanged).
fn promote_trace_fields(line: &[u8]) -> Option<Vec<u8>> {
    // Cheap test first: most lines carry no trace.
    let needle_event = b"cloudTrace";
    let needle_span = TRACE_FIELD.as_bytes();
    let contains = |needle: &[u8]| memchr::memmem::find(line, needle).is_some();
    if !contains(needle_event) && !contains(needle_span) {
        return None;
    }
    let serde_json::Value::Object(mut map) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    let mut found = serde_json::Map::new();
    // Event fields win; they are removed from the top level, where their
    // camelCase names would only duplicate the promoted keys.
    for (from, to) in EVENT_FIELDS {
        if let Some(v) = map.remove(from) {
            found.insert(to.to_string(), v);
        }
    }
    // Then the innermost span that carries them.
    let mut spans: Vec<&serde_json::Map<String, serde_json::Value>> = Vec::new();
    if let Some(serde_json::Value::Object(span)) = map.get("span") {
        spans.push(span);
    }
    if let Some(serde_json::Value::Array(list)) = map.get("spans") {
        spans.extend(list.iter().rev().filter_map(|s| s.as_object()));
    }
    for span in spans {
        for (from, to) in SPAN_FIELDS {
            if !found.contains_key(to) {
                if let Some(v) = span.get(from) {
                    found.insert(to.to_string(), v.clone());
                }
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    for (key, value) in found {
        let value = if key == LOGGING_TRACE_SAMPLED {
            serde_json::Value::Bool(
                value
                    .as_bool()
                    .unwrap_or_else(|| value.as_str() == Some("true")),
            )
        } else {
            value
        };
        map.insert(key, value);
    }
    let mut out = serde_json::to_vec(&map).ok()?;
    out.push(b'\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::subscriber::with_default;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(capture: &Capture) -> Vec<serde_json::Value> {
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn json_subscriber(capture: &Capture) -> impl tracing::Subscriber + Send + Sync {
        super::json_subscriber(capture.clone())
    }

    #[test]
    fn log_format_parses_case_insensitively() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" Text ".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn stackdriver_field_names_are_what_the_docs_say() {
        let capture = Capture::default();
        with_default(json_subscriber(&capture), || {
            let span = tracing::info_span!("delivery", message_id = "m-1");
            let _guard = span.enter();
            tracing::info!(
                entity_id = "e-1",
                labels.component = "datastore-sync",
                "applied"
            );
            tracing::info!(severity = "NOTICE", "compliance");
        });
        let lines = lines(&capture);
        let first = lines.first().expect("one line");
        assert_eq!(first["severity"], "INFO");
        assert_eq!(first["message"], "applied");
        assert_eq!(
            first["entityId"], "e-1",
            "event fields are camelCased: {first}"
        );
        assert_eq!(
            first["logging.googleapis.com/labels"]["component"],
            "datastore-sync"
        );
        assert_eq!(
            first["span"]["message_id"], "m-1",
            "span fields keep their names"
        );
        assert!(first.get("logging.googleapis.com/trace").is_none());
        assert_eq!(
            lines.get(1).map(|l| l["severity"].clone()),
            Some("NOTICE".into())
        );
    }

    #[test]
    fn trace_fields_on_the_span_are_promoted() {
        let capture = Capture::default();
        with_default(json_subscriber(&capture), || {
            let span = tracing::info_span!(
                "delivery",
                cloud_trace = "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736",
                cloud_span_id = "00f067aa0ba902b7",
                cloud_trace_sampled = true
            );
            let _guard = span.enter();
            let inner = tracing::info_span!("apply");
            let _inner = inner.enter();
            tracing::info!("applied");
        });
        let lines = lines(&capture);
        let line = lines.first().expect("one line");
        assert_eq!(
            line["logging.googleapis.com/trace"],
            "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(line["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(line["logging.googleapis.com/trace_sampled"], true);
    }

    #[test]
    fn trace_fields_on_the_event_are_promoted_and_removed() {
        let capture = Capture::default();
        with_default(json_subscriber(&capture), || {
            tracing::info!(cloud_trace = "projects/p/traces/abc", "audit");
        });
        let lines = lines(&capture);
        let line = lines.first().expect("one line");
        assert_eq!(
            line["logging.googleapis.com/trace"],
            "projects/p/traces/abc"
        );
        assert!(line.get("cloudTrace").is_none());
    }

    #[test]
    fn a_spans_list_that_repeats_the_span_is_dropped() {
        let capture = Capture::default();
        with_default(json_subscriber(&capture), || {
            let span = tracing::info_span!("delivery", message_id = "m-1", entity_id = "e");
            let _guard = span.enter();
            tracing::info!(outcome = "applied", "event processed");
            let inner = tracing::info_span!("apply", step = 2);
            let _inner = inner.enter();
            tracing::info!("nested");
        });
        let lines = lines(&capture);
        let one = lines.first().expect("a line");
        assert_eq!(one["span"]["message_id"], "m-1", "{one}");
        assert!(one.get("spans").is_none(), "{one}");
        assert_eq!(one["outcome"], "applied", "{one}");
        let nested = lines.get(1).expect("a second line");
        assert_eq!(nested["span"]["step"], 2, "{nested}");
        assert_eq!(
            nested["spans"][0]["message_id"], "m-1",
            "two spans open: the list says more than the span: {nested}"
        );
        assert_eq!(
            drop_repeated_span(br#"{"span":{"a":1},"spans":[{"a":2}]}"#),
            None
        );
        assert_eq!(
            drop_repeated_span(br#"{"t":1,"span":{"a":1},"spans":[{"a":1}],"m":"x"}"#).as_deref(),
            Some(&br#"{"t":1,"span":{"a":1},"m":"x"}"#[..])
        );
    }

    #[test]
    fn no_line_passes_the_budget_and_a_shortened_one_says_so() {
        let capture = Capture::default();
        let long = "x".repeat(3 * LINE_BUDGET_BYTES);
        with_default(json_subscriber(&capture), || {
            let span = tracing::info_span!(
                "delivery",
                correlation_id = %long,
                cloud_trace = "projects/p/traces/abc"
            );
            let _guard = span.enter();
            tracing::warn!(error = %long, "something echoed its input");
            tracing::info!("small");
        });
        let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one line per event");
        for line in &lines {
            assert!(line.len() <= LINE_BUDGET_BYTES, "{} bytes", line.len());
            let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            assert_eq!(v["logging.googleapis.com/trace"], "projects/p/traces/abc");
            assert_eq!(v["log_line_truncated"], true, "{}", &line[..200]);
            assert!(v["log_line_bytes"]
                .as_u64()
                .is_some_and(|n| n > 3 * 200_000));
            assert!(v["shortened_field_count"].as_u64().is_some_and(|n| n >= 1));
        }
        let first: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
        // The error and the span's correlation id (`spans` only repeated it
        // and is dropped).
        assert!(first["shortened_field_count"]
            .as_u64()
            .is_some_and(|n| n >= 2));
        assert_eq!(first["severity"], "WARNING");
        assert_eq!(first["message"], "something echoed its input");
    }

    #[test]
    fn lines_without_trace_pass_through_unchanged() {
        assert_eq!(promote_trace_fields(b"{\"message\":\"x\"}\n"), None);
        assert_eq!(promote_trace_fields(b"not json cloud_trace"), None);
    }
}
