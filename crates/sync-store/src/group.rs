//! Group commit's waiting room: per entity, the applies of this process
//! waiting for the entity's turn, oldest first, each with the channel its
//! answer goes back on.
//!
//! An apply enqueues its event, then waits for its answer or the key's turn;
//! whoever holds the turn takes the oldest waiters of that entity, at most
//! [`MAX_GROUP`] at a time (again once the entity is read), merges them in
//! one transaction and answers each. Queues hold only
//! requests in flight (so their length is bounded by the process's
//! concurrency), and an entity's queue is removed when emptied.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use sync_core::{ChangeEvent, MergeOutcome, StoreError};
use tokio::sync::oneshot;

/// Most events merged in one transaction: 32 events write at most 34
/// mutations (the entity, its tombstone, a conflict record each), far below
/// Datastore's 500 per commit, and keep a commit's conflict records small.
pub(crate) const MAX_GROUP: usize = 32;

/// The answer to one waiting apply.
pub(crate) type Answer = Result<MergeOutcome, StoreError>;

/// An answer and when it was sent.
pub(crate) type Replied = (Answer, std::time::Instant);

/// One waiting apply.
pub(crate) struct Waiter {
    /// Arrival order, across all entities.
    pub seq: u64,
    pub event: ChangeEvent,
    pub reply: oneshot::Sender<Replied>,
}

/// `(kind, entity id)`.
pub(crate) type EntityKey = (String, String);

/// The per-entity queues.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    next_seq: AtomicU64,
    queues: Mutex<HashMap<EntityKey, VecDeque<Waiter>>>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("seq", &self.seq)
            .field("event_id", &self.event.event_id)
            .finish_non_exhaustive()
    }
}

impl Waiting {
    /// Enqueues `event` for `key`; returns its place and where its answer
    /// will arrive.
    pub fn push(&self, key: EntityKey, event: ChangeEvent) -> (u64, oneshot::Receiver<Replied>) {
        let (reply, answer) = oneshot::channel();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let waiter = Waiter { seq, event, reply };
        self.lock().entry(key).or_default().push_back(waiter);
        (seq, answer)
    }

    /// Takes the oldest waiters for `key`, at most `most`.
    pub fn take(&self, key: &EntityKey, most: usize) -> Vec<Waiter> {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(key) else {
            return Vec::new();
        };
        let group: Vec<Waiter> = queue.drain(..queue.len().min(most)).collect();
        if queue.is_empty() {
            queues.remove(key);
        }
        group
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntityKey, VecDeque<Waiter>>> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A copy of `error` for another waiter of the same failed group: the same
/// variant and message, without the underlying error (which is not `Clone`;
/// the first waiter keeps it).
pub(crate) fn share(error: &StoreError) -> StoreError {
    match error {
        StoreError::Contention { attempts } => StoreError::Contention {
            attempts: *attempts,
        },
        StoreError::Unavailable { message, .. } => StoreError::Unavailable {
            message: message.clone(),
            source: None,
        },
        StoreError::Rejected(e) => StoreError::Rejected(e.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Refused { message, .. } => StoreError::Refused {
            message: message.clone(),
            source: None,
        },
    }
}
