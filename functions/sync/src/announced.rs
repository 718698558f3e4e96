//! What this process has announced lately, to skip repeats.
//!
//! Datastore keeps no record of announcements (that would be a second write
//! per event), so a redelivery of the event behind an entity's current version
//! announces that version again (`sync_core::MergeOutcome::announcement`).
//! Most redeliveries of an event that was announced come back to the same
//! instance (a lost ack, a push timeout); this log lets it recognise them. It
//! is only a hint: a restart or another instance forgets it and announces once
//! more, which downstream tolerates (it keeps the highest `version`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

/// The highest version announced per entity, for at most `capacity` entities
/// (the oldest first-seen entity is forgotten first).
///
/// Entities are held by a 64-bit hash of kind and id, about 40 bytes each, so
/// the default 100,000 entities take about 4 MiB. Two entities sharing a hash
/// (odds about 1 in 10^9 when full) would make one of them skip a repeat.
#[derive(Debug)]
pub struct AnnouncedLog {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    versions: HashMap<u64, i64>,
    order: VecDeque<u64>,
}

fn entity_hash(kind: &str, entity_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (kind, entity_id).hash(&mut h);
    h.finish()
}

impl AnnouncedLog {
    /// Entities remembered by default.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A log of up to `capacity` entities; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `version` is the highest version of the entity announced here.
    ///
    /// Only an exact match counts: an older version that was never announced
    /// (a concurrent request for the same entity lost the race to publish) is
    /// still announced, so every effective change reaches downstream.
    pub fn contains(&self, kind: &str, entity_id: &str, version: i64) -> bool {
        self.lock()
            .versions
            .get(&entity_hash(kind, entity_id))
            .is_some_and(|v| *v == version)
    }

    /// Notes that `version` of the entity went out.
    pub fn record(&self, kind: &str, entity_id: &str, version: i64) {
        if self.capacity == 0 {
            return;
        }
        let key = entity_hash(kind, entity_id);
        let mut inner = self.lock();
        if let Some(v) = inner.versions.get_mut(&key) {
            *v = (*v).max(version);
            return;
        }
        while inner.order.len() >= self.capacity {
            if let Some(old) = inner.order.pop_front() {
                inner.versions.remove(&old);
            }
        }
        inner.order.push_back(key);
        inner.versions.insert(key, version);
    }

    /// Entities remembered now.
    pub fn len(&self) -> usize {
        self.lock().versions.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_highest_version_per_entity() {
        let log = AnnouncedLog::new(10);
        log.record("K", "e1", 2);
        log.record("K", "e1", 1);
        assert!(log.contains("K", "e1", 2));
        assert!(
            !log.contains("K", "e1", 1),
            "an older version is not skipped"
        );
        assert!(!log.contains("K", "e1", 3));
        assert!(!log.contains("Other", "e1", 1), "kinds are separate");
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn forgets_the_oldest_entity_beyond_capacity() {
        let log = AnnouncedLog::new(2);
        log.record("K", "a", 1);
        log.record("K", "b", 1);
        log.record("K", "a", 2);
        log.record("K", "c", 1);
        assert_eq!(log.len(), 2);
        assert!(!log.contains("K", "a", 2), "a was first seen first");
        assert!(log.contains("K", "b", 1) && log.contains("K", "c", 1));
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let log = AnnouncedLog::new(0);
        log.record("K", "a", 1);
        assert!(log.is_empty());
        assert!(!log.contains("K", "a", 1));
    }
}
