//! In-memory implementations of the ports.
//!
//! For handler unit tests and for benchmarks that isolate the HTTP layer from
//! the emulators; compiled only with the cargo feature `memory`. They apply
//! the same merge as the Datastore adapter but claim nothing about Datastore.

use crate::ingest::change::ChangeEvent;
use crate::ingest::limits::{check_index_entries, ValidationLimits, DEFAULT_KIND};
use crate::merge::apply::merge;
use crate::merge::outcome::MergeOutcome;
use crate::merge::policy::MergePolicy;
use crate::merge::state::EntityState;
use crate::ports::{EntityStore, EventPublisher, OutgoingMessage, PublishError, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Entities in a map keyed by (kind, entity id), merged under one lock.
///
/// Like the Datastore adapter, it refuses a merged entity over the
/// index-entry limit ([`check_index_entries`]).
#[derive(Debug, Default)]
pub struct MemoryStore {
    policy: MergePolicy,
    limits: ValidationLimits,
    default_kind: String,
    entities: Mutex<HashMap<(String, String), EntityState>>,
    /// When set, every call fails as if the store were unavailable.
    pub unavailable: AtomicBool,
}

impl MemoryStore {
    /// An empty store merging under `policy`, with `SyncEntity` as default kind.
    pub fn new(policy: MergePolicy) -> Self {
        Self {
            policy,
            limits: ValidationLimits::default(),
            default_kind: DEFAULT_KIND.into(),
            ..Self::default()
        }
    }

    /// The state of one entity, if any event reached it.
    pub fn get(&self, kind: Option<&str>, entity_id: &str) -> Option<EntityState> {
        let kind = kind.unwrap_or(&self.default_kind).to_string();
        self.lock().get(&(kind, entity_id.to_string())).cloned()
    }

    /// Number of entities (existing or tombstoned) held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no event reached the store.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), EntityState>> {
        self.entities.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_available(&self) -> Result<(), StoreError> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable {
                message: "memory store switched off".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl EntityStore for MemoryStore {
    async fn apply(&self, event: &ChangeEvent) -> Result<MergeOutcome, StoreError> {
        self.check_available()?;
        let kind = event
            .kind
            .clone()
            .unwrap_or_else(|| self.default_kind.clone());
        let mut map = self.lock();
        let slot = map
            .entry((kind, event.entity_id.as_str().to_string()))
            .or_default();
        let out = merge(slot, event, &self.policy);
        if out.outcome.needs_write() && out.state.exists() {
            check_index_entries(
                &out.state.visible_fields(&self.policy),
                self.limits.max_index_entries,
            )?;
        }
        if out.outcome.needs_write() {
            slot.clone_from(&out.state);
        }
        Ok(out)
    }
}

/// A publisher that records what it was asked to publish.
#[derive(Debug, Default, Clone)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<(String, OutgoingMessage)>>>,
    next_id: Arc<AtomicU64>,
    /// When set, every publish fails as if Pub/Sub were unavailable.
    pub unavailable: Arc<AtomicBool>,
}

impl MemoryPublisher {
    /// Everything published so far, as (topic, message).
    pub fn sent(&self) -> Vec<(String, OutgoingMessage)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Messages published to `topic`.
    pub fn sent_to(&self, topic: &str) -> Vec<OutgoingMessage> {
        self.sent()
            .into_iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, m)| m)
            .collect()
    }
}

#[async_trait]
impl EventPublisher for MemoryPublisher {
    async fn publish(&self, topic: &str, message: OutgoingMessage) -> Result<String, PublishError> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(PublishError::Unavailable {
                topic: topic.to_string(),
                message: "memory publisher switched off".into(),
                source: None,
            });
        }
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((topic.to_string(), message));
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed).to_string())
    }
}
