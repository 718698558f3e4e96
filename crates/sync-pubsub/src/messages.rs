//! The messages the sync function publishes, built within Pub/Sub's limits:
//! an entity's announcement (with or without the entity id as ordering key)
//! and a refused message's dead letter (never with one), each with the
//! delivery's trace context when it has one ([`traced`]); and the same
//! announcement as `syncctl resync` republishes it, marked as a resync.
//!
//! Attribute values are cut to Pub/Sub's size limit and a dead letter keeps
//! only as many original attributes as fit beside its reason (both rules and
//! the dead-letter attribute names are `sync_core::wire`'s, which replay
//! also uses); what the announcement's JSON says is `sync_core`'s
//! [`Announcement`]. What goes where (the topic) is the function's.

use std::collections::BTreeMap;
use sync_core::wire::announcement::attribute::{
    CORRELATION_ID, ENTITY_ID, KIND, OPERATION, RESYNC, VERSION,
};
use sync_core::wire::{attribute_safe, dead_letter, trace, MAX_ATTRIBUTES};
use sync_core::{Announcement, OutgoingMessage};

/// The announcement of `a` for the entity `(kind, entity_id)`: the payload as
/// data and the attributes of `sync_core::wire::announcement::attribute`.
///
/// With `ordered`, the entity id is the ordering key, so that one entity's
/// announcements reach an ordering-enabled subscription in order. Without
/// it (the sync function's default) there is no key: the publisher then puts
/// concurrent announcements of different entities in one publish request,
/// and a consumer orders them itself by the `version` attribute (keep the
/// highest version seen per entity). A key costs batching (the client keeps
/// one sequential batch per key) and client memory per key.
///
/// ```
/// use sync_core::{Announcement, Operation};
/// let a = Announcement {
///     operation: Operation::Create,
///     version: 1,
///     data: Default::default(),
///     last_modified: None,
///     correlation_id: Some("c-1".into()),
/// };
/// let m = sync_pubsub::messages::announcement("SyncEntity", "e-1", &a, false);
/// assert_eq!(m.ordering_key, None);
/// assert_eq!(m.attributes["version"], "1");
/// assert_eq!(m.attributes["correlation_id"], "c-1");
/// let ordered = sync_pubsub::messages::announcement("SyncEntity", "e-1", &a, true);
/// assert_eq!(ordered.ordering_key.as_deref(), Some("e-1"));
/// ```
pub fn announcement(
    kind: &str,
    entity_id: &str,
    a: &Announcement,
    ordered: bool,
) -> OutgoingMessage {
    let key = attribute_safe(entity_id);
    let ordering_key = ordered.then(|| key.clone());
    let mut attributes = BTreeMap::from([
        (ENTITY_ID.to_string(), key),
        (OPERATION.to_string(), a.operation.as_str().to_string()),
        (VERSION.to_string(), a.version.to_string()),
        (KIND.to_string(), kind.to_string()),
    ]);
    if let Some(c) = &a.correlation_id {
        attributes.insert(CORRELATION_ID.to_string(), attribute_safe(c));
    }
    OutgoingMessage {
        data: a.payload(entity_id).to_string().into_bytes(),
        attributes,
        ordering_key,
    }
}

/// The announcement of `a` as `syncctl resync` republishes it: the data and
/// attributes of [`announcement`] (unordered), plus `resync=true`.
///
/// ```
/// use sync_core::{Announcement, Operation};
/// let a = Announcement {
///     operation: Operation::Update,
///     version: 4,
///     data: Default::default(),
///     last_modified: None,
///     correlation_id: None,
/// };
/// let live = sync_pubsub::messages::announcement("SyncEntity", "e-1", &a, false);
/// let again = sync_pubsub::messages::resync_announcement("SyncEntity", "e-1", &a);
/// assert_eq!(again.data, live.data);
/// assert_eq!(again.attributes["resync"], "true");
/// assert_eq!(again.attributes.len(), live.attributes.len() + 1);
/// ```
pub fn resync_announcement(kind: &str, entity_id: &str, a: &Announcement) -> OutgoingMessage {
    let mut message = announcement(kind, entity_id, a, false);
    message
        .attributes
        .insert(RESYNC.to_string(), "true".to_string());
    message
}

/// The dead letter of a refused message: its data as received, its
/// attributes with the reason added ([`dead_letter::attributes`]), no
/// ordering key.
///
/// ```
/// use std::collections::BTreeMap;
/// use sync_core::wire::dead_letter::Reason;
/// let reason = Reason { code: "invalid_json", message: "not JSON", message_id: "42", subscription: None };
/// let m = sync_pubsub::messages::dead_letter(b"{".to_vec(), &BTreeMap::new(), reason);
/// assert_eq!(m.attributes["error_code"], "invalid_json");
/// assert_eq!(m.ordering_key, None);
/// ```
pub fn dead_letter(
    data: Vec<u8>,
    original_attributes: &BTreeMap<String, String>,
    reason: dead_letter::Reason<'_>,
) -> OutgoingMessage {
    OutgoingMessage {
        data,
        attributes: dead_letter::attributes(original_attributes, reason),
        ordering_key: None,
    }
}

/// `message` with `traceparent` (a W3C `traceparent` value) as its
/// [`trace::TRACEPARENT`] attribute, replacing one it had, so that its
/// consumers continue the trace; unchanged without one, or when the
/// attribute would be one more than Pub/Sub takes (a dead letter of a message
/// with as many attributes as fit keeps the original's, if it had one).
///
/// ```
/// use sync_core::OutgoingMessage;
/// let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let m = sync_pubsub::messages::traced(OutgoingMessage::default(), Some(tp));
/// assert_eq!(m.attributes["googclient_traceparent"], tp);
/// ```
pub fn traced(mut message: OutgoingMessage, traceparent: Option<&str>) -> OutgoingMessage {
    if let Some(value) = traceparent {
        let fits = message.attributes.len() < MAX_ATTRIBUTES
            || message.attributes.contains_key(trace::TRACEPARENT);
        if fits {
            message
                .attributes
                .insert(trace::TRACEPARENT.to_string(), attribute_safe(value));
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::wire::MAX_ATTRIBUTE_VALUE_BYTES;
    use sync_core::Operation;

    #[test]
    fn a_long_entity_id_fits_the_attribute_and_the_ordering_key() {
        let id = "é".repeat(2000);
        let a = Announcement {
            operation: Operation::Delete,
            version: 3,
            data: Default::default(),
            last_modified: None,
            correlation_id: None,
        };
        let m = announcement("K", &id, &a, true);
        assert!(m.attributes[ENTITY_ID].len() <= MAX_ATTRIBUTE_VALUE_BYTES);
        assert_eq!(
            m.ordering_key.as_deref(),
            Some(m.attributes[ENTITY_ID].as_str())
        );
        assert_eq!(m.attributes[OPERATION], "delete");
        assert_eq!(m.attributes[KIND], "K");
        assert!(!m.attributes.contains_key(CORRELATION_ID));
        // The payload keeps the whole id.
        assert!(String::from_utf8_lossy(&m.data).contains(&id));
        // Unordered, the same message without the key.
        let unordered = announcement("K", &id, &a, false);
        assert_eq!(unordered.ordering_key, None);
        assert_eq!(unordered.attributes, m.attributes);
        assert_eq!(unordered.data, m.data);
    }

    #[test]
    fn the_trace_attribute_is_set_replaced_or_left_out_when_full() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let a = Announcement {
            operation: Operation::Create,
            version: 1,
            data: Default::default(),
            last_modified: None,
            correlation_id: None,
        };
        let m = traced(announcement("K", "e", &a, false), Some(tp));
        assert_eq!(m.attributes[trace::TRACEPARENT], tp);
        assert_eq!(
            traced(announcement("K", "e", &a, false), None)
                .attributes
                .get(trace::TRACEPARENT),
            None
        );

        let reason = dead_letter::Reason {
            code: "invalid_json",
            message: "m",
            message_id: "1",
            subscription: Some("s"),
        };
        // The original's context is replaced by the one passed on.
        let original = BTreeMap::from([(trace::TRACEPARENT.to_string(), "old".to_string())]);
        let m = traced(dead_letter(vec![], &original, reason), Some(tp));
        assert_eq!(m.attributes[trace::TRACEPARENT], tp);
        // A dead letter at Pub/Sub's limit takes no more attributes.
        let full: BTreeMap<String, String> = (0..MAX_ATTRIBUTES)
            .map(|i| (format!("a{i:03}"), "v".to_string()))
            .collect();
        let m = traced(dead_letter(vec![], &full, reason), Some(tp));
        assert_eq!(m.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(m.attributes.get(trace::TRACEPARENT), None);
    }
}
