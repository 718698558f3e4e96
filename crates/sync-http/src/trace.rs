//! Trace context from the message attribute `googclient_traceparent`
//! ([`sync_core::wire::trace::TRACEPARENT`]), W3C `traceparent` and Google's
//! `X-Cloud-Trace-Context`, for correlating log entries with Cloud Trace, and
//! the child context ([`TraceContext::child`]) the sync function passes on.
//!
//! Which wins ([`TraceContext::of_delivery`]): the message attribute, then the
//! headers. The attribute is the publisher's context, set when the message
//! was published and kept by Pub/Sub; the push request's headers are the
//! context of Pub/Sub's push (or of Cloud Run's request), which a publisher
//! never sees. One trace id from publisher to consumer needs the first.

use http::HeaderMap;
use std::collections::BTreeMap;
use sync_core::wire::trace as wire;

/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
/// Google's legacy trace header (`TRACE_ID/SPAN_ID;o=1`).
pub const X_CLOUD_TRACE_CONTEXT: &str = "x-cloud-trace-context";

/// A trace id (32 lowercase hex digits), the caller's span id (16 lowercase hex
/// digits) when known, and whether the caller sampled the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, never all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, when the header carried a usable span id.
    pub span_id: Option<String>,
    /// Whether the caller sampled (recorded) the trace.
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a W3C `traceparent` value: `VERSION-TRACEID-PARENTID-FLAGS`.
    ///
    /// Accepts version `00` exactly and later versions with trailing fields, as
    /// the specification asks; hex digits may be upper case (normalised to lower).
    pub fn from_traceparent(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let span_id = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || !is_hex(version) || version.eq_ignore_ascii_case("ff") {
            return None;
        }
        if version == "00" && rest.is_some() {
            return None;
        }
        let trace_id = valid_id(trace_id, 32)?;
        let span_id = valid_id(span_id, 16)?;
        if flags.len() != 2 || !is_hex(flags) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id: Some(span_id),
            sampled: flags & 1 == 1,
        })
    }

    /// Parses `X-Cloud-Trace-Context`: `TRACE_ID[/SPAN_ID][;o=OPTIONS]`, where
    /// `SPAN_ID` is decimal (converted to 16 hex digits) and `o=1` means sampled.
    pub fn from_cloud_trace_context(value: &str) -> Option<Self> {
        let value = value.trim();
        let (ids, options) = match value.split_once(';') {
            Some((ids, options)) => (ids, Some(options)),
            None => (value, None),
        };
        let (trace_id, span) = match ids.split_once('/') {
            Some((t, s)) => (t, Some(s)),
            None => (ids, None),
        };
        let trace_id = valid_id(trace_id, 32)?;
        let span_id = span
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&n| n != 0)
            .map(|n| format!("{n:016x}"));
        let sampled = options.is_some_and(|o| o.trim() == "o=1");
        Some(Self {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// The trace context of a request: `traceparent` first, then
    /// `X-Cloud-Trace-Context`. Unparseable headers are ignored.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        header(TRACEPARENT)
            .and_then(Self::from_traceparent)
            .or_else(|| header(X_CLOUD_TRACE_CONTEXT).and_then(Self::from_cloud_trace_context))
    }

    /// The context a message's attributes carry in
    /// [`TRACEPARENT`](wire::TRACEPARENT), when it is a valid `traceparent`.
    pub fn from_attributes(attributes: &BTreeMap<String, String>) -> Option<Self> {
        attributes
            .get(wire::TRACEPARENT)
            .and_then(|v| Self::from_traceparent(v))
    }

    /// The context of a delivery: its message's attribute when valid, else
    /// `from_request`, the context its request's headers gave.
    pub fn of_delivery(
        attributes: &BTreeMap<String, String>,
        from_request: Option<Self>,
    ) -> Option<Self> {
        Self::from_attributes(attributes).or(from_request)
    }

    /// A new span in this trace, a child of this one: same trace id and
    /// sampling decision, a fresh random span id.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            span_id: Some(random_span_id()),
            sampled: self.sampled,
        }
    }

    /// This context as a `traceparent` value, when it has a span id (the
    /// parent id of whoever continues it).
    pub fn traceparent(&self) -> Option<String> {
        let span = self.span_id.as_deref()?;
        Some(wire::traceparent(&self.trace_id, span, self.sampled))
    }

    /// `projects/PROJECT/traces/TRACE_ID`, the value of Cloud Logging's
    /// `logging.googleapis.com/trace` field.
    pub fn resource_name(&self, project: &str) -> String {
        trace_resource_name(project, &self.trace_id)
    }
}

/// 16 lowercase hex digits, random, not all zero.
fn random_span_id() -> String {
    loop {
        let n: u64 = rand::random();
        if n != 0 {
            return format!("{n:016x}");
        }
    }
}

/// `projects/PROJECT/traces/TRACE_ID`, the value of Cloud Logging's
/// `logging.googleapis.com/trace` field.
pub fn trace_resource_name(project: &str, trace_id: &str) -> String {
    format!("projects/{project}/traces/{trace_id}")
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `s` as lowercase hex of exactly `len` digits, not all zero.
fn valid_id(s: &str, len: usize) -> Option<String> {
    if s.len() != len || !is_hex(s) || s.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn traceparent_sampled_and_not() {
        let t = TraceContext::from_traceparent(&format!("00-{TRACE}-00f067aa0ba902b7-01"))
            .expect("valid");
        assert_eq!(t.trace_id, TRACE);
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        let t = TraceContext::from_traceparent(&format!("00-{TRACE}-00f067aa0ba902b7-00"))
            .expect("valid");
        assert!(!t.sampled);
    }

    #[test]
    fn traceparent_normalises_upper_case_and_accepts_future_versions() {
        let t = TraceContext::from_traceparent(&format!(
            "01-{}-00F067AA0BA902B7-03-extra",
            TRACE.to_uppercase()
        ))
        .expect("valid");
        assert_eq!(t.trace_id, TRACE);
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
    }

    #[test]
    fn traceparent_rejects_malformed_values() {
        for bad in [
            "",
            "garbage",
            "00-short-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cloud_trace_context_forms() {
        let t = TraceContext::from_cloud_trace_context(&format!("{TRACE}/1;o=1")).expect("valid");
        assert_eq!(t.span_id.as_deref(), Some("0000000000000001"));
        assert!(t.sampled);
        let t =
            TraceContext::from_cloud_trace_context(&format!("{TRACE}/18446744073709551615;o=0"))
                .expect("valid");
        assert_eq!(t.span_id.as_deref(), Some("ffffffffffffffff"));
        assert!(!t.sampled);
        let t = TraceContext::from_cloud_trace_context(TRACE).expect("valid");
        assert_eq!(t.span_id, None);
        assert!(!t.sampled);
        let t = TraceContext::from_cloud_trace_context(&format!("{TRACE}/not-a-number;o=1"))
            .expect("trace id is still usable");
        assert_eq!(t.span_id, None);
        assert!(t.sampled);
        assert_eq!(TraceContext::from_cloud_trace_context("abc/1;o=1"), None);
        assert_eq!(TraceContext::from_cloud_trace_context(""), None);
    }

    #[test]
    fn headers_prefer_traceparent() -> Result<(), http::header::InvalidHeaderValue> {
        let mut headers = HeaderMap::new();
        headers.insert(
            X_CLOUD_TRACE_CONTEXT,
            "11111111111111111111111111111111/2;o=1".parse()?,
        );
        assert_eq!(
            TraceContext::from_headers(&headers).map(|t| t.trace_id),
            Some("11111111111111111111111111111111".to_string())
        );
        headers.insert(
            TRACEPARENT,
            format!("00-{TRACE}-00f067aa0ba902b7-01").parse()?,
        );
        assert_eq!(
            TraceContext::from_headers(&headers).map(|t| t.trace_id),
            Some(TRACE.to_string())
        );
        // A broken traceparent falls back to the Google header.
        headers.insert(TRACEPARENT, "broken".parse()?);
        assert_eq!(
            TraceContext::from_headers(&headers).map(|t| t.trace_id),
            Some("11111111111111111111111111111111".to_string())
        );
        Ok(())
    }

    fn attributes(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(wire::TRACEPARENT.to_string(), value.to_string())])
    }

    #[test]
    fn the_message_attribute_wins_over_the_request() {
        let request =
            TraceContext::from_cloud_trace_context("11111111111111111111111111111111/2;o=1");
        let attrs = attributes(&format!("00-{TRACE}-00f067aa0ba902b7-00"));
        let t = TraceContext::of_delivery(&attrs, request.clone()).expect("attribute");
        assert_eq!(t.trace_id, TRACE);
        assert_eq!(t.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(!t.sampled);
        // Without the attribute, the request's context.
        assert_eq!(
            TraceContext::of_delivery(&BTreeMap::new(), request.clone()),
            request
        );
        assert_eq!(TraceContext::of_delivery(&BTreeMap::new(), None), None);
    }

    #[test]
    fn a_malformed_attribute_is_ignored() {
        let request = TraceContext::from_traceparent(&format!("00-{TRACE}-00f067aa0ba902b7-01"));
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "{\"traceparent\":\"x\"}",
            "é",
        ] {
            assert_eq!(
                TraceContext::from_attributes(&attributes(bad)),
                None,
                "{bad:?}"
            );
            assert_eq!(
                TraceContext::of_delivery(&attributes(bad), request.clone()),
                request,
                "{bad:?}"
            );
        }
        // Another attribute of the same family is not the context.
        let other = BTreeMap::from([(
            "googclient_tracestate".to_string(),
            format!("00-{TRACE}-00f067aa0ba902b7-01"),
        )]);
        assert_eq!(TraceContext::from_attributes(&other), None);
    }

    #[test]
    fn a_child_keeps_the_trace_and_the_sampling_with_a_new_span() {
        for flags in ["00", "01"] {
            let parent =
                TraceContext::from_traceparent(&format!("00-{TRACE}-00f067aa0ba902b7-{flags}"))
                    .expect("valid");
            let child = parent.child();
            assert_eq!(child.trace_id, parent.trace_id);
            assert_eq!(child.sampled, parent.sampled);
            let span = child.span_id.clone().expect("a span id");
            assert_ne!(Some(&span), parent.span_id.as_ref());
            assert_ne!(child.child().span_id, child.span_id, "fresh each time");
            // What it writes reads back as itself.
            let written = child.traceparent().expect("has a span");
            assert_eq!(written, format!("00-{TRACE}-{span}-{flags}"));
            assert_eq!(TraceContext::from_traceparent(&written), Some(child));
        }
        // A context without a span id (X-Cloud-Trace-Context) gets one.
        let bare = TraceContext::from_cloud_trace_context(TRACE).expect("valid");
        assert_eq!(bare.traceparent(), None);
        assert!(bare.child().traceparent().is_some());
    }

    #[test]
    fn resource_name_for_cloud_logging() {
        let t = TraceContext::from_traceparent(&format!("00-{TRACE}-00f067aa0ba902b7-01"))
            .expect("valid");
        assert_eq!(
            t.resource_name("my-project"),
            format!("projects/my-project/traces/{TRACE}")
        );
    }
}
