//! The names of the topics and subscriptions, as the recipe has them, the
//! suffix rule that lets several deployments share a project, and the
//! system's own name.

use super::operation::Operation;

/// The system's name: an announcement's `source`, the audit entries'
/// `component` label.
pub const SYSTEM: &str = "datastore-sync";

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

#[cfg(test)]
mod tests {
    use super::Topology;

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
