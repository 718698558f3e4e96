//! Jittered exponential backoff: the waits between the store's transaction
//! attempts, and the sync function's warm-up. It only computes waits;
//! sleeping is the caller's.

use std::time::Duration;

/// Backoff between attempts: attempt `n` (from 1) waits a uniformly random
/// time in `[0, min(max, base · 2^(n-1))]` ("full jitter"), which spreads
/// colliding writers of one entity apart fastest.
///
/// ```
/// use std::time::Duration;
/// use sync_store::RetryBackoff;
///
/// let b = RetryBackoff { base: Duration::from_millis(20), max: Duration::from_secs(1) };
/// assert_eq!(b.ceiling(3), Duration::from_millis(80));
/// assert!(b.delay(3) <= b.ceiling(3));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RetryBackoff {
    /// The ceiling after the first attempt.
    pub base: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl RetryBackoff {
    /// The upper bound of the wait after attempt `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait after attempt `attempt`: uniform in `[0, ceiling)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = RetryBackoff {
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
        let b = RetryBackoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<Duration> = (0..50).map(|_| b.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let first = delays.first().copied();
        assert!(delays.iter().any(|d| Some(*d) != first), "no jitter");
    }
}
