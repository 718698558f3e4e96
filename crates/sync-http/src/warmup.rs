//! The start-up's warm-up loop, which the functions with backends share:
//! [`until_ready`] runs one attempt of a function's first calls (its
//! clients built, its backends answering) until one succeeds, each attempt
//! bounded by [`WarmUp::ready_within`], a jittered backoff between attempts,
//! every failure logged, and a start-up that takes longer than the bounded
//! wait logged once at error level. It never gives up: Cloud Run's startup
//! probe decides. A function serves a [`Gate`](crate::Gate) meanwhile and
//! opens it when the loop returns.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How the warm-up waits and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmUp {
    /// Bound of one attempt, and the time after which the start-up is late.
    pub ready_within: Duration,
    /// The ceiling of the wait after the first failed attempt; it doubles
    /// with each further one.
    pub backoff_base: Duration,
    /// The largest ceiling of a wait.
    pub backoff_max: Duration,
}

impl WarmUp {
    /// `ready_within`, retried after up to 100 ms doubling up to 5 s.
    pub fn new(ready_within: Duration) -> Self {
        Self {
            ready_within,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// The wait after failed attempt `attempt` (from 1): uniformly random up
    /// to `min(backoff_max, backoff_base · 2^(attempt-1))` ("full jitter"),
    /// so that instances started together do not retry together.
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = sync_http::warmup::WarmUp::new(Duration::from_secs(10));
    /// assert!(w.delay(1) <= Duration::from_millis(100));
    /// assert!(w.delay(30) <= Duration::from_secs(5));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        let ceiling = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

/// How a warm-up went, once it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warmed {
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Whether it took longer than [`WarmUp::ready_within`].
    pub late: bool,
}

/// One attempt of the warm-up on a state `S` kept between attempts.
pub type Step<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Runs `step` on `state` until it succeeds: each attempt bounded by
/// `policy.ready_within`, a backoff wait after each failure, every failure
/// logged, and the lateness logged once.
pub async fn until_ready<S, F>(policy: &WarmUp, state: &mut S, mut step: F) -> Warmed
where
    F: for<'a> FnMut(&'a mut S) -> Step<'a>,
{
    let started = Instant::now();
    let mut late = false;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let failure = match tokio::time::timeout(policy.ready_within, step(state)).await {
            Ok(Ok(())) => {
                info!(
                    attempts = attempt,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "backends answered; ready"
                );
                return Warmed {
                    attempts: attempt,
                    late,
                };
            }
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => format!("no answer within {:?}", policy.ready_within),
        };
        warn!(attempt, error = %failure, "backends not ready; /healthz answers 503, retrying");
        if !late && started.elapsed() >= policy.ready_within {
            late = true;
            error!(
                ready_within_secs = policy.ready_within.as_secs(),
                error = %failure,
                "not ready within the bounded wait; still answering 503 on /healthz and retrying"
            );
        }
        tokio::time::sleep(policy.delay(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    fn policy(ready_within: Duration) -> WarmUp {
        WarmUp {
            ready_within,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
        }
    }

    /// A fake backend: fails `failures` times, each failure taking `takes`;
    /// then succeeds at once.
    struct Fake {
        failures: u32,
        takes: Duration,
        calls: u32,
    }

    fn attempt(f: &mut Fake) -> Step<'_> {
        Box::pin(async move {
            f.calls += 1;
            if f.calls <= f.failures {
                tokio::time::sleep(f.takes).await;
                bail!("refused (call {})", f.calls);
            }
            Ok(())
        })
    }

    /// Runs the warm-up on a [`Fake`]; returns how it went and the calls made.
    async fn run(failures: u32, takes: Duration, ready_within: Duration) -> (Warmed, u32) {
        let mut fake = Fake {
            failures,
            takes,
            calls: 0,
        };
        let warmed = until_ready(&policy(ready_within), &mut fake, attempt).await;
        (warmed, fake.calls)
    }

    const fn warmed(attempts: u32, late: bool) -> Warmed {
        Warmed { attempts, late }
    }

    #[tokio::test]
    async fn a_first_success_is_ready_at_once() {
        let got = run(0, Duration::ZERO, Duration::from_secs(10)).await;
        assert_eq!(got, (warmed(1, false), 1));
    }

    #[tokio::test]
    async fn failures_are_retried_until_one_succeeds() {
        let got = run(3, Duration::ZERO, Duration::from_secs(10)).await;
        assert_eq!(got, (warmed(4, false), 4));
    }

    #[tokio::test]
    async fn past_the_bounded_wait_it_is_late_and_keeps_retrying() {
        // Each failed attempt takes longer than the wait: late after the first.
        let got = run(2, Duration::from_millis(5), Duration::from_millis(4)).await;
        assert_eq!(got, (warmed(3, true), 3));
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_is_cut_at_the_bounded_wait() {
        let mut calls = 0u32;
        let got = until_ready(
            &policy(Duration::from_millis(5)),
            &mut calls,
            |n: &mut u32| -> Step<'_> {
                Box::pin(async move {
                    *n += 1;
                    if *n == 1 {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                })
            },
        )
        .await;
        assert_eq!((got, calls), (warmed(2, true), 2));
    }

    #[test]
    fn waits_double_up_to_the_cap_and_are_jittered() {
        let w = WarmUp::new(Duration::from_secs(1));
        for attempt in [1, 2, 3, 10, 1000] {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(Duration::from_secs(5));
            let delays: Vec<Duration> = (0..40).map(|_| w.delay(attempt)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "{attempt}");
            assert!(delays.iter().any(|d| *d != delays[0]), "no jitter");
        }
    }
}
