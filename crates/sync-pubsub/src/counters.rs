//! Messages the publisher handed to the Pub/Sub client, counted with relaxed
//! atomics. The official client batches internally and does not report how
//! many `Publish` RPCs it sent, so batches are not counted here: messages
//! handed over (every attempt, an `OrderingKeyPaused` re-send included),
//! confirmed and failed are.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters of one publisher.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    handed: AtomicU64,
    confirmed: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    /// One message handed to the client's `publish`.
    pub fn handed(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
    }

    /// One publish answered: confirmed (`ok`) or failed (error or timeout).
    pub fn answered(&self, ok: bool) {
        let counter = if ok { &self.confirmed } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> PublishCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PublishCounts {
            messages_handed: get(&self.handed),
            confirmed: get(&self.confirmed),
            failed: get(&self.failed),
        }
    }
}

/// What a publisher has published since it connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishCounts {
    /// Messages handed to the client's `publish` (a re-send after
    /// `OrderingKeyPaused` counts again). The client batches these into
    /// `Publish` RPCs it does not report.
    pub messages_handed: u64,
    /// Publishes confirmed with a message id.
    pub confirmed: u64,
    /// Publishes that failed or timed out.
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_and_answered_are_counted_apart() {
        let counters = Counters::default();
        counters.handed();
        counters.handed();
        counters.handed();
        counters.answered(true);
        counters.answered(false);
        assert_eq!(
            counters.snapshot(),
            PublishCounts {
                messages_handed: 3,
                confirmed: 1,
                failed: 1,
            }
        );
    }
}
