//! Retrying transactions: jittered exponential backoff, bounded by attempts
//! (contention) and by a time budget (everything retryable).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};
use sync_core::{Disposition, StoreError};

/// How an operation is retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub backoff: Backoff,
    /// Attempts on contention before giving up.
    pub max_attempts: u32,
    /// Total time for all attempts and waits.
    pub budget: Duration,
}

/// An attempt that failed, with the transaction it used (so the next attempt
/// can name it as the previous one, keeping its place in Datastore's queue).
pub(crate) struct Failed {
    pub error: StoreError,
    pub transaction: Option<Vec<u8>>,
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Self {
            error,
            transaction: None,
        }
    }
}

/// Runs `attempt` until it succeeds: contention (`ABORTED`) is retried up to
/// `max_attempts`, transient failures as long as the budget lasts, permanent
/// ones not at all. A wait that would end past the budget is not started.
/// Returns the value and the number of attempts made.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<(T, u32), StoreError>
where
    F: FnMut(Option<Vec<u8>>) -> Fut,
    Fut: Future<Output = Result<T, Failed>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut contention = 0u32;
    let mut transient = 0u32;
    let mut previous = None;
    loop {
        attempts += 1;
        let failed = match attempt(previous.take()).await {
            Ok(value) => return Ok((value, attempts)),
            Err(failed) => failed,
        };
        let (error, retry_no) = match failed.error {
            StoreError::Contention { .. } => {
                contention += 1;
                let error = StoreError::Contention {
                    attempts: contention,
                };
                if contention >= policy.max_attempts {
                    return Err(error);
                }
                (error, contention)
            }
            error if error.disposition() == Disposition::Transient => {
                transient += 1;
                (error, transient)
            }
            error => return Err(error),
        };
        let delay = policy.backoff.delay(retry_no);
        if started.elapsed() + delay > policy.budget {
            return Err(error);
        }
        tracing::warn!(
            operation = what,
            attempt = attempts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = %error,
            "retrying Datastore call"
        );
        previous = failed.transaction;
        tokio::time::sleep(delay).await;
    }
}

/// Backoff between attempts: attempt `n` (from 1) waits a uniformly random
/// time in `[0, min(max, base · 2^(n-1))]` ("full jitter"), which spreads
/// colliding writers of one entity apart fastest.
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
    use std::cell::RefCell;

    fn policy(max_attempts: u32, budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(4),
            },
            max_attempts,
            budget: Duration::from_millis(budget_ms),
        }
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable {
            message: "down".into(),
            source: None,
        }
    }

    /// Runs `run` over a script of results, one per attempt; returns the
    /// outcome and the `previous` transaction each attempt received.
    async fn scripted(
        policy: &RetryPolicy,
        script: Vec<Result<u8, StoreError>>,
    ) -> (Result<(u8, u32), StoreError>, Vec<Option<Vec<u8>>>) {
        let script = RefCell::new(script.into_iter());
        let seen = RefCell::new(Vec::new());
        let result = run(policy, "test", |previous| {
            seen.borrow_mut().push(previous);
            let next = script.borrow_mut().next();
            let n = u8::try_from(seen.borrow().len()).unwrap_or(u8::MAX);
            async move {
                match next {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(error)) => Err(Failed {
                        error,
                        transaction: Some(vec![n]),
                    }),
                    None => Err(Failed::from(unavailable())),
                }
            }
        })
        .await;
        (result, seen.into_inner())
    }

    #[tokio::test]
    async fn transient_failures_are_retried_within_the_budget() {
        let (result, seen) = scripted(
            &policy(3, 10_000),
            vec![Err(unavailable()), Err(unavailable()), Ok(7)],
        )
        .await;
        assert_eq!(result.expect("recovered"), (7, 3));
        assert_eq!(seen, vec![None, Some(vec![1]), Some(vec![2])]);
    }

    #[tokio::test]
    async fn contention_is_bounded_by_max_attempts() {
        let aborted = || StoreError::Contention { attempts: 1 };
        let (result, seen) = scripted(
            &policy(3, 10_000),
            vec![Err(aborted()), Err(aborted()), Err(aborted()), Ok(1)],
        )
        .await;
        match result {
            Err(StoreError::Contention { attempts }) => assert_eq!(attempts, 3),
            other => panic!("expected contention, got {other:?}"),
        }
        assert_eq!(seen.len(), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let (result, seen) = scripted(
            &policy(8, 10_000),
            vec![Err(StoreError::Corrupt("bad".into())), Ok(1)],
        )
        .await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))));
        assert_eq!(seen.len(), 1);
    }

    #[tokio::test]
    async fn a_spent_budget_returns_the_transient_error() {
        // Never recovers: gives up once the next wait would pass 30 ms.
        let (result, seen) = scripted(&policy(8, 30), Vec::new()).await;
        assert!(matches!(result, Err(StoreError::Unavailable { .. })));
        assert!(seen.len() > 1);
    }

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
