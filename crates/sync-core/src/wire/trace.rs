//! The W3C trace context of a message, as an attribute: what Google's Pub/Sub
//! client libraries write when their OpenTelemetry tracing is on, what the
//! sync function reads from an event and writes on its announcements and dead
//! letters, and what `syncctl publish` sets.

/// The attribute: a W3C `traceparent` value
/// (`00-TRACEID-PARENTID-FLAGS`). The client libraries name the
/// propagated fields `googclient_` + the W3C header name.
pub const TRACEPARENT: &str = "googclient_traceparent";

/// A version-`00` `traceparent` value: `trace_id` (32 lowercase hex
/// digits) and `span_id` (16) as given, the flags `01` when sampled and
/// `00` otherwise (the only flag version `00` defines).
///
/// ```
/// use sync_core::wire::trace::traceparent;
/// assert_eq!(
///     traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", true),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
/// );
/// ```
pub fn traceparent(trace_id: &str, span_id: &str, sampled: bool) -> String {
    format!("00-{trace_id}-{span_id}-{:02x}", u8::from(sampled))
}
