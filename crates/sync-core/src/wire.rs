//! Wire contracts shared by the functions, `syncctl`, the tests and the
//! deploy scripts, each defined here once:
//!
//! - the messages, as serde types that both write and read them:
//!   [`EventMessage`] (the change event a publisher sends; [`event::field`]
//!   names its fields for [`crate::parse_event`], which checks them by hand
//!   to keep its error codes), [`AnnouncementMessage`] (what the sync
//!   function publishes downstream) and the audit function's entries
//!   ([`audit`]);
//! - Pub/Sub's attribute limits and the dead-letter attributes, with the one
//!   [`dead_letter::strip`] replay uses;
//! - the trace context a message carries as an attribute ([`trace`]), on
//!   events, announcements and dead letters alike;
//! - the topology's names and their suffix rule ([`topology`]).
//!
//! `deploy/lib.sh` spells the topology in shell; a test in `syncctl` reads
//! it and checks it against [`topology`], and `syncctl topology` prints the
//! same variables for `scripts/demo.sh`.

pub mod announcement;
pub mod audit;
pub mod event;

pub use announcement::AnnouncementMessage;
pub use event::EventMessage;

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The system's name: an announcement's `source`, the audit entries'
/// `component` label.
pub const SYSTEM: &str = "datastore-sync";

/// `message` as JSON. The wire types hold only strings, numbers and JSON
/// values under string keys, which always serialise.
fn to_json(message: &impl Serialize) -> Value {
    serde_json::to_value(message).expect("wire types always serialise")
}

/// Pub/Sub's limit on attributes per message.
pub const MAX_ATTRIBUTES: usize = 100;

/// Pub/Sub's limit on one attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// `s` cut to fit one attribute value (at a character boundary, with `…`
/// marking the cut), so that a long entity id or error message never makes a
/// publish fail.
///
/// ```
/// use sync_core::wire::{attribute_safe, MAX_ATTRIBUTE_VALUE_BYTES};
/// assert_eq!(attribute_safe("short"), "short");
/// let cut = attribute_safe(&"é".repeat(1000));
/// assert!(cut.len() <= MAX_ATTRIBUTE_VALUE_BYTES && cut.ends_with('…'));
/// ```
pub fn attribute_safe(s: &str) -> String {
    if s.len() <= MAX_ATTRIBUTE_VALUE_BYTES {
        return s.to_string();
    }
    let mut end = MAX_ATTRIBUTE_VALUE_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The attributes of a dead-lettered message: the original's, plus why it was
/// refused. Replay ([`dead_letter::strip`]) takes off exactly what was added.
pub mod dead_letter {
    use super::{attribute_safe, BTreeMap, MAX_ATTRIBUTES};

    /// Stable machine code of the refusal (a `ValidationError` code, …).
    pub const ERROR_CODE: &str = "error_code";
    /// Human-readable reason.
    pub const ERROR_MESSAGE: &str = "error_message";
    /// Message id of the refused message.
    pub const ORIGINAL_MESSAGE_ID: &str = "original_message_id";
    /// Subscription it was delivered through, when known.
    pub const ORIGINAL_SUBSCRIPTION: &str = "original_subscription";
    /// Present (`true`) when some original attributes had to be dropped.
    pub const ORIGINAL_ATTRIBUTES_TRUNCATED: &str = "original_attributes_truncated";
    /// Prefix of the attributes Pub/Sub itself adds when its dead-letter
    /// policy forwards a message (`CloudPubSubDeadLetterSourceSubscription`, …).
    pub const PUBSUB_ADDED_PREFIX: &str = "CloudPubSubDeadLetter";

    /// Every attribute [`attributes`] may add.
    pub const ADDED: [&str; 5] = [
        ERROR_CODE,
        ERROR_MESSAGE,
        ORIGINAL_MESSAGE_ID,
        ORIGINAL_SUBSCRIPTION,
        ORIGINAL_ATTRIBUTES_TRUNCATED,
    ];

    /// How many original attributes a dead letter keeps, leaving room for
    /// everything in [`ADDED`] within Pub/Sub's limit.
    pub const KEPT_ORIGINAL_ATTRIBUTES: usize = MAX_ATTRIBUTES - ADDED.len();

    /// Why a message is refused.
    #[derive(Debug, Clone, Copy)]
    pub struct Reason<'a> {
        /// Stable machine code.
        pub code: &'a str,
        /// Human-readable reason.
        pub message: &'a str,
        /// Message id of the refused message.
        pub message_id: &'a str,
        /// Subscription it came through, when known.
        pub subscription: Option<&'a str>,
    }

    /// The dead letter's attributes: the first [`KEPT_ORIGINAL_ATTRIBUTES`]
    /// of `original` (in key order), then the reason. An original attribute
    /// with one of the added names is overwritten by the reason.
    pub fn attributes(
        original: &BTreeMap<String, String>,
        reason: Reason<'_>,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = original
            .iter()
            .take(KEPT_ORIGINAL_ATTRIBUTES)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if original.len() > KEPT_ORIGINAL_ATTRIBUTES {
            out.insert(ORIGINAL_ATTRIBUTES_TRUNCATED.into(), "true".into());
        }
        out.insert(ERROR_CODE.into(), reason.code.to_string());
        out.insert(ERROR_MESSAGE.into(), attribute_safe(reason.message));
        out.insert(
            ORIGINAL_MESSAGE_ID.into(),
            attribute_safe(reason.message_id),
        );
        if let Some(s) = reason.subscription {
            out.insert(ORIGINAL_SUBSCRIPTION.into(), attribute_safe(s));
        }
        out
    }

    /// The attributes to replay a dead letter with: everything but what
    /// [`attributes`] and Pub/Sub's dead-letter policy added.
    pub fn strip(dead_letter: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        dead_letter
            .iter()
            .filter(|(k, _)| !ADDED.contains(&k.as_str()) && !k.starts_with(PUBSUB_ADDED_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The W3C trace context of a message, as an attribute: what Google's Pub/Sub
/// client libraries write when their OpenTelemetry tracing is on, what the
/// sync function reads from an event and writes on its announcements and dead
/// letters, and what `syncctl publish` sets.
pub mod trace {
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
}

/// The names of the topics and subscriptions, as the recipe has them, and
/// the suffix rule that lets several deployments share a project.
pub mod topology {
    use crate::Operation;

    /// The change events' topic.
    pub const EVENTS_TOPIC: &str = "data-sync-events";
    /// Where refused messages go.
    pub const DEAD_LETTER_TOPIC: &str = "sync-dead-letters";
    /// Push subscription of the sync function.
    pub const SYNC_SUBSCRIPTION: &str = "sync-processor";
    /// Push subscription of the audit function.
    pub const AUDIT_SUBSCRIPTION: &str = "audit-logger";
    /// Pull subscription on the dead-letter topic, for operators.
    pub const DLQ_SUBSCRIPTION: &str = "dlq-processor";
    /// Default prefix of the announcement topics: `<prefix><operation>`.
    pub const EXTERNAL_TOPIC_PREFIX: &str = "external-sync-";

    /// The operations an announcement topic exists for.
    pub const OPERATIONS: [Operation; 3] = Operation::ALL;

    /// `base`, or `base-suffix` when a suffix is set.
    pub fn with_suffix(base: &str, suffix: Option<&str>) -> String {
        match suffix {
            Some(s) if !s.is_empty() => format!("{base}-{s}"),
            _ => base.to_string(),
        }
    }

    /// The announcement topic of `operation` under `prefix`.
    pub fn external_topic(prefix: &str, operation: Operation) -> String {
        format!("{prefix}{}", operation.as_str())
    }

    /// The pull subscription `syncctl setup --external-subscriptions` makes
    /// on an announcement topic: `<topic>-sub`.
    pub fn external_subscription(topic: &str) -> String {
        format!("{topic}-sub")
    }

    /// One deployment's names.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Topology {
        /// [`EVENTS_TOPIC`], suffixed.
        pub events_topic: String,
        /// [`DEAD_LETTER_TOPIC`], suffixed.
        pub dead_letter_topic: String,
        /// [`SYNC_SUBSCRIPTION`], suffixed.
        pub sync_subscription: String,
        /// [`AUDIT_SUBSCRIPTION`], suffixed.
        pub audit_subscription: String,
        /// [`DLQ_SUBSCRIPTION`], suffixed.
        pub dlq_subscription: String,
        /// The announcement topics, one per [`OPERATIONS`] entry, in that
        /// order. They are **not** suffixed: the sync function publishes to
        /// `EXTERNAL_TOPIC_PREFIX` + operation, and downstream consumers
        /// subscribe to those names.
        pub external_topics: Vec<String>,
    }

    impl Topology {
        /// The names with `suffix` applied where the suffix rule applies.
        pub fn new(suffix: Option<&str>) -> Self {
            let n = |base: &str| with_suffix(base, suffix);
            Self {
                events_topic: n(EVENTS_TOPIC),
                dead_letter_topic: n(DEAD_LETTER_TOPIC),
                sync_subscription: n(SYNC_SUBSCRIPTION),
                audit_subscription: n(AUDIT_SUBSCRIPTION),
                dlq_subscription: n(DLQ_SUBSCRIPTION),
                external_topics: OPERATIONS
                    .iter()
                    .map(|op| external_topic(EXTERNAL_TOPIC_PREFIX, *op))
                    .collect(),
            }
        }

        /// The [`external_subscription`] of each announcement topic, in
        /// [`OPERATIONS`] order.
        pub fn external_subscriptions(&self) -> Vec<String> {
            self.external_topics
                .iter()
                .map(|t| external_subscription(t))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dead_letter::{self, Reason};
    use super::topology::Topology;
    use super::*;

    fn reason() -> Reason<'static> {
        Reason {
            code: "invalid_json",
            message: "not JSON",
            message_id: "42",
            subscription: Some("projects/p/subscriptions/sync-processor"),
        }
    }

    #[test]
    fn replay_strips_exactly_what_dead_lettering_added() {
        for count in [
            0,
            3,
            dead_letter::KEPT_ORIGINAL_ATTRIBUTES,
            MAX_ATTRIBUTES + 20,
        ] {
            let original: BTreeMap<String, String> = (0..count)
                .map(|i| (format!("a{i:03}"), format!("v{i}")))
                .collect();
            let dead = dead_letter::attributes(&original, reason());
            assert!(
                dead.len() <= MAX_ATTRIBUTES,
                "{count}: {} attributes",
                dead.len()
            );
            let kept: BTreeMap<String, String> = original
                .iter()
                .take(dead_letter::KEPT_ORIGINAL_ATTRIBUTES)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(
                dead_letter::strip(&dead),
                kept,
                "{count} original attributes"
            );
        }
    }

    #[test]
    fn truncation_is_flagged_and_stripped_on_replay() {
        let original: BTreeMap<String, String> = (0..MAX_ATTRIBUTES)
            .map(|i| (format!("a{i:03}"), "v".into()))
            .collect();
        let dead = dead_letter::attributes(&original, reason());
        assert_eq!(dead[dead_letter::ORIGINAL_ATTRIBUTES_TRUNCATED], "true");
        assert!(!dead_letter::strip(&dead).contains_key(dead_letter::ORIGINAL_ATTRIBUTES_TRUNCATED));
    }

    #[test]
    fn replay_drops_pubsubs_own_dead_letter_attributes() {
        let mut dead =
            dead_letter::attributes(&BTreeMap::from([("origin".into(), "crm".into())]), reason());
        dead.insert("CloudPubSubDeadLetterSourceSubscription".into(), "s".into());
        assert_eq!(
            dead_letter::strip(&dead),
            BTreeMap::from([("origin".to_string(), "crm".to_string())])
        );
    }

    #[test]
    fn replay_keeps_the_trace_attribute() {
        let original = BTreeMap::from([(
            super::trace::TRACEPARENT.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
        )]);
        let dead = dead_letter::attributes(&original, reason());
        assert_eq!(dead_letter::strip(&dead), original);
    }

    #[test]
    fn long_reasons_are_cut_to_fit_an_attribute() {
        let long = "x".repeat(5000);
        let dead = dead_letter::attributes(
            &BTreeMap::new(),
            Reason {
                message: &long,
                message_id: &long,
                ..reason()
            },
        );
        assert!(dead.values().all(|v| v.len() <= MAX_ATTRIBUTE_VALUE_BYTES));
    }

    #[test]
    fn a_suffix_applies_to_everything_but_the_announcement_topics() {
        let plain = Topology::new(None);
        let suffixed = Topology::new(Some("ab12"));
        assert_eq!(suffixed.events_topic, "data-sync-events-ab12");
        assert_eq!(suffixed.dead_letter_topic, "sync-dead-letters-ab12");
        assert_eq!(suffixed.sync_subscription, "sync-processor-ab12");
        assert_eq!(suffixed.audit_subscription, "audit-logger-ab12");
        assert_eq!(suffixed.dlq_subscription, "dlq-processor-ab12");
        assert_eq!(
            suffixed.external_topics,
            [
                "external-sync-create",
                "external-sync-update",
                "external-sync-delete"
            ]
        );
        assert_eq!(plain.external_topics, suffixed.external_topics);
        assert_eq!(
            suffixed.external_subscriptions(),
            [
                "external-sync-create-sub",
                "external-sync-update-sub",
                "external-sync-delete-sub"
            ]
        );
        assert_eq!(Topology::new(Some("")), plain);
    }
}
