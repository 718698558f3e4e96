//! Jittered exponential backoff, for the adapters' retry loops (the Datastore
//! transactions of `sync-store`). It only computes waits: sleeping is the
//! caller's, so the core stays free of a runtime and a clock.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Backoff between attempts: attempt `n` (from 1) waits a uniformly random
/// time in `[0, min(max, base · 2^(n-1))]` ("full jitter"), which spreads
/// colliding writers of one entity apart fastest.
///
/// ```
/// use std::time::Duration;
/// use sync_core::backoff::Backoff;
///
/// let b = Backoff { base: Duration::from_millis(20), max: Duration::from_secs(1) };
/// assert_eq!(b.ceiling(3), Duration::from_millis(80));
/// assert!(b.delay(3) <= b.ceiling(3));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The ceiling after the first attempt.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the wait after attempt `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait after attempt `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(unit_random())
    }
}

/// A random number in `[0, 1)`. `RandomState` is randomly keyed per instance,
/// which is all the randomness jitter needs (no extra dependency).
fn unit_random() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    // 53 random bits: exactly representable as a double in [0, 1).
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(20));
        assert_eq!(b.ceiling(2), Duration::from_millis(40));
        assert_eq!(b.ceiling(6), Duration::from_millis(640));
        assert_eq!(b.ceiling(7), Duration::from_secs(1));
        assert_eq!(b.ceiling(1000), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<Duration> = (0..50).map(|_| b.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let first = delays.first().copied();
        assert!(delays.iter().any(|d| Some(*d) != first), "no jitter");
    }
}
