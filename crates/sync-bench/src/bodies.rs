//! Push bodies, every one a new event (a new message id, a newer timestamp,
//! a changed field), so that the sync function does real work: request `k`
//! takes entity `k mod entities`, at `k` µs after the run's base time.
//!
//! Every event updates, unless the mix is on: then each entity's first
//! event creates it, and of every [`MIX_PERIOD`] rounds over the entities
//! after that one deletes each entity and the next creates it again (85 %
//! updates, 10 % creates, 5 % deletes). A run's bodies are written to a
//! file beforehand, one per line, which `scripts/bench/push.lua` sends in
//! turn: wrk then spends nothing on encoding.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::io::Write as _;

/// With the mix, rounds over the entities per delete and re-create.
pub const MIX_PERIOD: u64 = 20;

/// A run's events: over `entities` entities, named `PREFIX-00042` (message
/// ids `PREFIX-K`), the mix or not, request 0 at `base`.
#[derive(Debug, Clone)]
pub struct Spec {
    entities: u64,
    pub prefix: String,
    mix: bool,
    base: DateTime<Utc>,
}

impl Spec {
    /// A run starting 100 minutes ago: its timestamps stay in the past.
    pub fn new(entities: u64, prefix: String, mix: bool) -> Self {
        let (entities, base) = (entities.max(1), Utc::now() - Duration::minutes(100));
        Self {
            entities,
            prefix,
            mix,
            base,
        }
    }

    /// The operation of request `k`.
    pub fn operation(&self, k: u64) -> &'static str {
        match (self.mix, k / self.entities) {
            (false, _) => "update",
            (true, 0) => "create",
            (true, round) => match (round - 1) % MIX_PERIOD {
                r if r == MIX_PERIOD / 2 - 1 => "delete",
                r if r == MIX_PERIOD / 2 => "create",
                _ => "update",
            },
        }
    }

    /// The event of request `k`, as the publisher sends it.
    pub fn event(&self, k: u64) -> String {
        let at = self.base + Duration::microseconds(k as i64);
        let at = at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let event = json!({
            "entity_id": format!("{}-{:05}", self.prefix, k % self.entities),
            "operation": self.operation(k),
            "timestamp": at,
            "source": "bench",
            "correlation_id": format!("bench-{}", self.prefix),
            "data": {"rev": at, "name": "Bench item", "status": "active"},
        });
        event.to_string()
    }

    /// The Pub/Sub push body of request `k`.
    pub fn body(&self, k: u64) -> String {
        let message = json!({
            "data": STANDARD.encode(self.event(k)),
            "messageId": format!("{}-{k}", self.prefix),
            "publishTime": self.base.to_rfc3339(),
            "attributes": {"origin": "bench"},
        });
        let subscription = "projects/datastore-sync-bench/subscriptions/sync-processor";
        json!({"message": message, "subscription": subscription}).to_string()
    }

    /// Writes the bodies of requests `0..count`, one per line.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, count: u64, path: &std::path::Path) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for k in 0..count {
            writeln!(out, "{}", self.body(k))?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Request `k`'s message id and event, parsed by the core as the function parses it.
    fn parsed(spec: &Spec, k: u64) -> (Value, sync_core::ChangeEvent) {
        let body: Value = serde_json::from_str(&spec.body(k)).expect("JSON");
        let data = STANDARD.decode(body["message"]["data"].as_str().expect("data"));
        let event =
            sync_core::parse_event(&data.expect("base64"), "m", &Default::default(), Utc::now());
        (body["message"]["messageId"].clone(), event.expect("valid"))
    }

    #[test]
    fn every_body_is_a_valid_push_of_a_new_event() {
        let spec = Spec::new(7, "t1".into(), false);
        let (id, first) = parsed(&spec, 9);
        assert_eq!((id, first.entity_id.as_str()), (json!("t1-9"), "t1-00002"));
        let (_, next) = parsed(&spec, 16);
        assert_eq!(next.entity_id, first.entity_id);
        assert!(next.timestamp > first.timestamp && next.data != first.data);
    }

    #[test]
    fn the_mix_creates_each_entity_then_deletes_and_recreates_it_each_period() {
        let spec = Spec::new(7, "t1".into(), true);
        let ops = [3, 10, 73, 80, 87].map(|k| parsed(&spec, k).1.operation.as_str());
        assert_eq!(
            ops,
            ["create", "update", "delete", "create", "update"],
            "entity 3 of 7"
        );
        let deletes = (0..7 * 201).filter(|&k| spec.operation(k) == "delete");
        assert_eq!(deletes.count(), 7 * 10, "one round in 20");
    }
}
