//! Datastore RPCs sent by one client, and how one store's applies shared
//! their transactions (group commit) and where their time went, counted with
//! relaxed atomics (one increment per call, no lock), for the sync
//! function's debug endpoint and its shutdown log.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters of one client, shared by its store and admin.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    begin: AtomicU64,
    lookup: AtomicU64,
    lookup_began: AtomicU64,
    commit: AtomicU64,
    rollback: AtomicU64,
    keys_looked_up: AtomicU64,
    entities_found: AtomicU64,
    entity_writes: AtomicU64,
    entity_deletes: AtomicU64,
}

/// One RPC, as counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Begin,
    Lookup,
    /// A lookup that also begins the transaction (`ReadOptions.new_transaction`);
    /// counted as a lookup too.
    LookupBegin,
    Commit,
    Rollback,
}

impl Counters {
    /// Counts one `call` sent (whatever its result).
    pub fn count(&self, call: Call) {
        let counter = match call {
            Call::Begin => &self.begin,
            Call::Lookup => &self.lookup,
            Call::LookupBegin => {
                self.lookup.fetch_add(1, Ordering::Relaxed);
                &self.lookup_began
            }
            Call::Commit => &self.commit,
            Call::Rollback => &self.rollback,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the keys one lookup round asked for and the entities it found.
    pub fn count_lookup(&self, keys: usize, found: usize) {
        self.keys_looked_up
            .fetch_add(keys as u64, Ordering::Relaxed);
        self.entities_found
            .fetch_add(found as u64, Ordering::Relaxed);
    }

    /// Counts the entity writes and deletes of a commit sent.
    pub fn count_mutations(&self, writes: usize, deletes: usize) {
        self.entity_writes
            .fetch_add(writes as u64, Ordering::Relaxed);
        self.entity_deletes
            .fetch_add(deletes as u64, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RpcCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RpcCounts {
            begin_transaction: get(&self.begin),
            lookup: get(&self.lookup),
            lookup_began_transaction: get(&self.lookup_began),
            commit: get(&self.commit),
            rollback: get(&self.rollback),
            keys_looked_up: get(&self.keys_looked_up),
            entities_found: get(&self.entities_found),
            entity_writes: get(&self.entity_writes),
            entity_deletes: get(&self.entity_deletes),
        }
    }
}

/// Datastore RPCs a client has sent since it connected (failed ones too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcCounts {
    /// `BeginTransaction` calls.
    pub begin_transaction: u64,
    /// `Lookup` calls, each round of deferred keys counted.
    pub lookup: u64,
    /// Of `lookup`, those that began the transaction themselves.
    pub lookup_began_transaction: u64,
    /// `Commit` calls, transactional or not.
    pub commit: u64,
    /// `Rollback` calls.
    pub rollback: u64,
    /// Keys asked for by lookups (deferred keys counted again when asked
    /// again): what Datastore bills as entity reads, found or not.
    pub keys_looked_up: u64,
    /// Of those, the entities found.
    pub entities_found: u64,
    /// Entities written (insert, update, upsert) by commits sent.
    pub entity_writes: u64,
    /// Entities deleted by commits sent.
    pub entity_deletes: u64,
}

impl RpcCounts {
    /// Every RPC counted (a lookup that began a transaction is one RPC).
    pub fn total(&self) -> u64 {
        self.begin_transaction + self.lookup + self.commit + self.rollback
    }
}

/// One store's serialized applies (group commit), live.
#[derive(Debug, Default)]
pub(crate) struct ApplyCounters {
    applies: AtomicU64,
    transactions: AtomicU64,
    grouped_events: AtomicU64,
    late_turns: AtomicU64,
    conflict_records: AtomicU64,
    until_answered_us: AtomicU64,
    answered_to_return_us: AtomicU64,
    transaction_us: AtomicU64,
}

impl ApplyCounters {
    /// One group's transaction (with its retries): its events and time.
    pub fn transaction(&self, events: usize, took: std::time::Duration) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.grouped_events
            .fetch_add(events as u64, Ordering::Relaxed);
        self.transaction_us
            .fetch_add(micros(took), Ordering::Relaxed);
    }

    /// Conflict records put in a commit.
    pub fn conflict_records(&self, n: usize) {
        self.conflict_records.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A turn on an entity taken by an apply whose event a group had already
    /// answered.
    pub fn late_turn(&self) {
        self.late_turns.fetch_add(1, Ordering::Relaxed);
    }

    /// One apply done: from its arrival to its answer, and from its answer
    /// to its return.
    pub fn apply(&self, until_answered: std::time::Duration, to_return: std::time::Duration) {
        self.applies.fetch_add(1, Ordering::Relaxed);
        self.until_answered_us
            .fetch_add(micros(until_answered), Ordering::Relaxed);
        self.answered_to_return_us
            .fetch_add(micros(to_return), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ApplyCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ApplyCounts {
            applies: get(&self.applies),
            transactions: get(&self.transactions),
            grouped_events: get(&self.grouped_events),
            late_turns: get(&self.late_turns),
            conflict_records: get(&self.conflict_records),
            until_answered_us: get(&self.until_answered_us),
            answered_to_return_us: get(&self.answered_to_return_us),
            transaction_us: get(&self.transaction_us),
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// How one store's applies went through the entity turns (group commit),
/// since it connected: what shared a transaction and where the time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    /// Applies that took their entity's turn or were answered in a group.
    pub applies: u64,
    /// Group transactions run (each with its retries).
    pub transactions: u64,
    /// Events in those transactions: over `transactions`, the average group.
    pub grouped_events: u64,
    /// Turns taken by an apply that a group had already answered (it
    /// committed whatever had queued since, before returning).
    pub late_turns: u64,
    /// Conflict records written (each one more entity write).
    pub conflict_records: u64,
    /// Summed over applies: arrival to answer, µs.
    pub until_answered_us: u64,
    /// Summed over applies: answer to return, µs.
    pub answered_to_return_us: u64,
    /// Summed over transactions: read, merge and commit with retries, µs.
    pub transaction_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_counts_once_and_a_beginning_lookup_is_a_lookup() {
        let counters = Counters::default();
        for call in [
            Call::Begin,
            Call::Lookup,
            Call::LookupBegin,
            Call::LookupBegin,
            Call::Commit,
            Call::Rollback,
            Call::Rollback,
        ] {
            counters.count(call);
        }
        let counts = counters.snapshot();
        assert_eq!(
            counts,
            RpcCounts {
                begin_transaction: 1,
                lookup: 3,
                lookup_began_transaction: 2,
                commit: 1,
                rollback: 2,
                ..RpcCounts::default()
            }
        );
        assert_eq!(counts.total(), 7);
    }

    #[test]
    fn keys_entities_and_mutations_add_up_over_calls() {
        let counters = Counters::default();
        counters.count_lookup(3, 1);
        counters.count_lookup(2, 2);
        counters.count_mutations(4, 0);
        counters.count_mutations(1, 2);
        let counts = counters.snapshot();
        assert_eq!(
            (
                counts.keys_looked_up,
                counts.entities_found,
                counts.entity_writes,
                counts.entity_deletes
            ),
            (5, 3, 5, 2)
        );
        assert_eq!(counts.total(), 0, "no RPC was counted");
    }
}
