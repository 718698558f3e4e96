//! Conflict records: what an operator inspects when a write lost.
//!
//! One record per (entity, losing event), kind `SyncConflict`, key
//! `[(kind, entity_id), (SyncConflict, event_id)]`: keyed by the event's id
//! (its `event_id`, else the Pub/Sub message id), so a redelivery upserts the
//! same record instead of adding one.
//! Values are stored as unindexed JSON text, so any value fits whatever its
//! type; very large values are cut to keep the record under Datastore's
//! entity size limit (and `truncated` says so).

use crate::mapping::{
    array_value, boolean_value, entity_value, from_value, integer_value, null_value, string_value,
    timestamp_of, timestamp_value,
};
use chrono::{DateTime, Utc};
use gcloud_sdk::google::datastore::v1 as ds;
use serde_json::Value as Json;
use std::collections::HashMap;
use sync_core::value::canonical;
use sync_core::{ChangeEvent, FieldConflict};

/// Properties of a record.
const ENTITY_ID: &str = "entity_id";
pub(crate) const ENTITY_KIND: &str = "entity_kind";
const EVENT_ID: &str = "event_id";
const SOURCE: &str = "source";
const CORRELATION_ID: &str = "correlation_id";
const RECORDED_AT: &str = "recorded_at";
const CONFLICT_COUNT: &str = "conflict_count";
const FIELDS: &str = "fields";

/// Properties of one element of `fields`.
const FIELD: &str = "field";
const RULE: &str = "rule";
const REASON: &str = "reason";
const WINNER_VALUE: &str = "winner_value";
const WINNER_KEY: &str = "winner_key";
const LOSER_VALUE: &str = "loser_value";
const LOSER_KEY: &str = "loser_key";
const TRUNCATED: &str = "truncated";

/// Most field conflicts kept in one record (`conflict_count` has them all).
const MAX_RECORDED_FIELDS: usize = 200;
/// Bytes of text a record may hold: well below the 1 MiB entity limit.
const RECORD_TEXT_BUDGET: usize = 900_000;
/// Longest field name or order key kept in full.
const MAX_NAME_TEXT: usize = 1500;
/// Every value gets at least this much text, however many fields lost.
const MIN_VALUE_TEXT: usize = 64;

/// One conflict record, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRecord {
    /// Kind of the entity.
    pub entity_kind: String,
    /// Key name of the entity.
    pub entity_id: String,
    /// Id of the event that lost (its `event_id`, else its Pub/Sub message
    /// id; the record's key name).
    pub event_id: String,
    /// The losing event's source.
    pub source: Option<String>,
    /// The losing event's correlation id.
    pub correlation_id: Option<String>,
    /// The losing event's timestamp.
    pub recorded_at: Option<DateTime<Utc>>,
    /// How many fields of the event lost.
    pub conflict_count: i64,
    /// The fields that lost (at most 200 are recorded).
    pub fields: Vec<ConflictField>,
}

/// One field that lost.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictField {
    /// Field name.
    pub field: String,
    /// The rule that decided (`lww`, `max`, ...).
    pub rule: String,
    /// Why the write lost (`older_than_winner`, `deleted_later`, ...).
    pub reason: String,
    /// The value that stayed visible; `None` when the entity was deleted.
    pub winner_value: Option<Json>,
    /// Order key of the winner (or of the delete), as `OrderKey` displays it.
    pub winner_key: String,
    /// The value that lost.
    pub loser_value: Json,
    /// Order key of the losing write.
    pub loser_key: String,
    /// Whether a value or key was cut to fit the record (a cut value reads
    /// back as the JSON string of its cut text).
    pub truncated: bool,
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn cut(text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    (text.get(..end).unwrap_or_default().to_string(), true)
}

/// The record entity for `conflicts` of `event`, under `key`.
pub(crate) fn record_entity(
    key: ds::Key,
    kind: &str,
    event: &ChangeEvent,
    conflicts: &[FieldConflict],
) -> ds::Entity {
    let kept = conflicts.get(..MAX_RECORDED_FIELDS).unwrap_or(conflicts);
    // Names and keys first, then what is left is shared by the values.
    let names: Vec<_> = kept
        .iter()
        .map(|c| {
            (
                cut(c.field.clone(), MAX_NAME_TEXT),
                cut(c.winner_key.to_string(), MAX_NAME_TEXT),
                cut(c.loser_key.to_string(), MAX_NAME_TEXT),
            )
        })
        .collect();
    let name_bytes: usize = names
        .iter()
        .map(|(f, w, l)| f.0.len() + w.0.len() + l.0.len())
        .sum();
    let per_value = (RECORD_TEXT_BUDGET.saturating_sub(name_bytes) / (2 * kept.len().max(1)))
        .max(MIN_VALUE_TEXT);

    let fields = kept
        .iter()
        .zip(names)
        .map(|(c, (field, winner_key, loser_key))| {
            let winner = c
                .winner_value
                .as_ref()
                .map(|v| cut(canonical(v), per_value));
            let loser = cut(canonical(&c.loser_value), per_value);
            let truncated = field.1
                || winner_key.1
                || loser_key.1
                || loser.1
                || winner.as_ref().is_some_and(|w| w.1);
            let mut p = HashMap::with_capacity(8);
            p.insert(FIELD.to_string(), string_value(&field.0, false));
            p.insert(RULE.to_string(), string_value(c.rule.as_str(), false));
            p.insert(REASON.to_string(), string_value(c.reason.as_str(), false));
            p.insert(
                WINNER_VALUE.to_string(),
                winner.map_or_else(null_value, |w| string_value(&w.0, true)),
            );
            p.insert(WINNER_KEY.to_string(), string_value(&winner_key.0, true));
            p.insert(LOSER_VALUE.to_string(), string_value(&loser.0, true));
            p.insert(LOSER_KEY.to_string(), string_value(&loser_key.0, true));
            p.insert(TRUNCATED.to_string(), boolean_value(truncated));
            entity_value(p)
        })
        .collect();

    let mut properties = HashMap::with_capacity(8);
    properties.insert(
        ENTITY_ID.to_string(),
        string_value(event.entity_id.as_str(), false),
    );
    properties.insert(ENTITY_KIND.to_string(), string_value(kind, false));
    properties.insert(EVENT_ID.to_string(), string_value(&event.event_id, false));
    properties.insert(
        SOURCE.to_string(),
        string_value(&cut(event.source.clone(), MAX_NAME_TEXT).0, false),
    );
    properties.insert(
        CORRELATION_ID.to_string(),
        event.correlation_id.as_ref().map_or_else(null_value, |c| {
            string_value(&cut(c.clone(), MAX_NAME_TEXT).0, false)
        }),
    );
    properties.insert(RECORDED_AT.to_string(), timestamp_value(event.timestamp));
    properties.insert(
        CONFLICT_COUNT.to_string(),
        integer_value(i64::try_from(conflicts.len()).unwrap_or(i64::MAX)),
    );
    properties.insert(FIELDS.to_string(), array_value(fields));
    ds::Entity {
        key: Some(key),
        properties,
    }
}

fn text(props: &HashMap<String, ds::Value>, name: &str) -> Option<String> {
    match props.get(name).map(from_value) {
        Some(Json::String(s)) => Some(s),
        _ => None,
    }
}

/// A stored JSON text back to its value; a cut text stays a string.
fn json_text(props: &HashMap<String, ds::Value>, name: &str) -> Option<Json> {
    text(props, name).map(|t| serde_json::from_str(&t).unwrap_or(Json::String(t)))
}

/// Reads a record back. Tolerant: missing properties read as empty.
pub(crate) fn record_of(entity: &ds::Entity) -> ConflictRecord {
    let p = &entity.properties;
    let fields = match p.get(FIELDS).and_then(|v| v.value_type.as_ref()) {
        Some(ds::value::ValueType::ArrayValue(a)) => a
            .values
            .iter()
            .filter_map(|v| match &v.value_type {
                Some(ds::value::ValueType::EntityValue(e)) => Some(&e.properties),
                _ => None,
            })
            .map(|f| ConflictField {
                field: text(f, FIELD).unwrap_or_default(),
                rule: text(f, RULE).unwrap_or_default(),
                reason: text(f, REASON).unwrap_or_default(),
                winner_value: json_text(f, WINNER_VALUE),
                winner_key: text(f, WINNER_KEY).unwrap_or_default(),
                loser_value: json_text(f, LOSER_VALUE).unwrap_or(Json::Null),
                loser_key: text(f, LOSER_KEY).unwrap_or_default(),
                truncated: matches!(
                    f.get(TRUNCATED).and_then(|v| v.value_type.as_ref()),
                    Some(ds::value::ValueType::BooleanValue(true))
                ),
            })
            .collect(),
        _ => Vec::new(),
    };
    ConflictRecord {
        entity_kind: text(p, ENTITY_KIND).unwrap_or_default(),
        entity_id: text(p, ENTITY_ID).unwrap_or_default(),
        event_id: text(p, EVENT_ID)
            .unwrap_or_else(|| crate::mapping::key_name(entity.key.as_ref())),
        source: text(p, SOURCE),
        correlation_id: text(p, CORRELATION_ID),
        recorded_at: p.get(RECORDED_AT).and_then(timestamp_of),
        conflict_count: match p.get(CONFLICT_COUNT).and_then(|v| v.value_type.as_ref()) {
            Some(ds::value::ValueType::IntegerValue(n)) => *n,
            _ => 0,
        },
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sync_core::{parse_event, parse_timestamp, LossReason, OrderKey, ValidationLimits};

    fn event() -> ChangeEvent {
        let now = parse_timestamp("2025-07-23T11:00:00").expect("now");
        parse_event(
            br#"{"entity_id":"e1","operation":"update","timestamp":"2025-07-23T10:00:00","source":"app","correlation_id":"c1","data":{"a":1}}"#,
            "m-1",
            &ValidationLimits::default(),
            now,
        )
        .expect("event")
    }

    fn conflict(loser: Json, winner: Option<Json>) -> FieldConflict {
        let t = parse_timestamp("2025-07-23T10:00:00").expect("t");
        FieldConflict {
            field: "a".into(),
            rule: sync_core::FieldRule::Lww,
            reason: LossReason::OlderThanWinner,
            winner_value: winner,
            winner_key: OrderKey::new(t, "b", "m-2"),
            loser_value: loser,
            loser_key: OrderKey::new(t, "app", "m-1"),
        }
    }

    #[test]
    fn record_round_trips() {
        let c = conflict(json!({"x": [1, "y"]}), Some(json!(2)));
        let e = record_entity(
            ds::Key::default(),
            "SyncEntity",
            &event(),
            std::slice::from_ref(&c),
        );
        let r = record_of(&e);
        assert_eq!(r.entity_id, "e1");
        assert_eq!(r.entity_kind, "SyncEntity");
        assert_eq!(r.event_id, "m-1");
        assert_eq!(r.source.as_deref(), Some("app"));
        assert_eq!(r.correlation_id.as_deref(), Some("c1"));
        assert_eq!(r.conflict_count, 1);
        let f = r.fields.first().expect("one field");
        assert_eq!(f.field, "a");
        assert_eq!(f.rule, "lww");
        assert_eq!(f.reason, "older_than_winner");
        assert_eq!(f.winner_value, Some(json!(2)));
        assert_eq!(f.loser_value, json!({"x": [1, "y"]}));
        assert_eq!(f.winner_key, c.winner_key.to_string());
        assert!(!f.truncated);
        let deleted = record_entity(
            ds::Key::default(),
            "K",
            &event(),
            &[conflict(json!(1), None)],
        );
        assert_eq!(
            record_of(&deleted)
                .fields
                .first()
                .expect("one")
                .winner_value,
            None
        );
    }

    #[test]
    fn huge_values_are_cut_to_fit() {
        let big = json!("z".repeat(2_000_000));
        let e = record_entity(
            ds::Key::default(),
            "K",
            &event(),
            &[conflict(big.clone(), Some(big))],
        );
        let r = record_of(&e);
        let f = r.fields.first().expect("one");
        assert!(f.truncated);
        let size: usize = [&f.loser_value, f.winner_value.as_ref().expect("winner")]
            .iter()
            .map(|v| v.as_str().map_or(0, str::len))
            .sum();
        assert!(size <= RECORD_TEXT_BUDGET, "{size}");
    }

    #[test]
    fn many_fields_are_capped() {
        let many: Vec<_> = (0..500)
            .map(|i| conflict(json!(i), Some(json!(0))))
            .collect();
        let r = record_of(&record_entity(ds::Key::default(), "K", &event(), &many));
        assert_eq!(r.conflict_count, 500);
        assert_eq!(r.fields.len(), MAX_RECORDED_FIELDS);
    }

    #[test]
    fn cut_respects_char_boundaries() {
        let (s, cut_) = cut("ééé".into(), 3);
        assert_eq!(s, "é");
        assert!(cut_);
        assert_eq!(cut("abc".into(), 3), ("abc".into(), false));
    }
}
