//! The attributes of a dead-lettered message: the original's, plus why it was
//! refused. Replay ([`strip`]) takes off exactly what was added.

use super::pubsub::{attribute_safe, MAX_ATTRIBUTES};
use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use crate::wire::dead_letter::{self, Reason};
    use crate::wire::pubsub::{MAX_ATTRIBUTES, MAX_ATTRIBUTE_VALUE_BYTES};
    use std::collections::BTreeMap;

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
            crate::wire::trace::TRACEPARENT.to_string(),
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
}
