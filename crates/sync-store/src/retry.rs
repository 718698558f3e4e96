//! Retrying transactions: [`RetryBackoff`] waits, bounded by attempts
//! (contention) and by a time budget (everything retryable).

use crate::backoff::RetryBackoff;
use std::future::Future;
use std::time::{Duration, Instant};
use sync_core::{Classify, Disposition, StoreError};

/// How an operation is retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub backoff: RetryBackoff,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn policy(max_attempts: u32, budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            backoff: RetryBackoff {
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
}
