//! Datastore RPCs sent by one client, counted with relaxed atomics (one
//! increment per call, no lock), for the sync function's debug endpoint and
//! its shutdown log.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters of one client, shared by its store and admin.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    begin: AtomicU64,
    lookup: AtomicU64,
    lookup_began: AtomicU64,
    commit: AtomicU64,
    rollback: AtomicU64,
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

    /// The counts so far.
    pub fn snapshot(&self) -> RpcCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RpcCounts {
            begin_transaction: get(&self.begin),
            lookup: get(&self.lookup),
            lookup_began_transaction: get(&self.lookup_began),
            commit: get(&self.commit),
            rollback: get(&self.rollback),
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
}

impl RpcCounts {
    /// Every RPC counted (a lookup that began a transaction is one RPC).
    pub fn total(&self) -> u64 {
        self.begin_transaction + self.lookup + self.commit + self.rollback
    }
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
            }
        );
        assert_eq!(counts.total(), 7);
    }
}
