//! Ready means connected: the function listens at once, and `/healthz`
//! answers 200 only once the Datastore and Pub/Sub clients have completed a
//! first cheap call each, so that Cloud Run's startup probe keeps traffic
//! away until the first event is served at normal speed.
//!
//! [`Startup::begin`] returns at once with a closed [`Gate`] to serve (`/livez`
//! 200, `/healthz` and deliveries 503) and runs the warm-up in the background
//! ([`App::connect`], then [`App::warm_up`]), retried with backoff until it
//! succeeds; then the gate opens with [`App::router`]. An attempt is bounded by
//! `READY_TIMEOUT_SECS`; a late start-up is logged once, every failed attempt
//! too, and it never gives up: Cloud Run's startup probe decides.

use crate::app::App;
use crate::config::Config;
use axum::Router;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use sync_http::Gate;
use sync_store::RetryBackoff;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How the warm-up waits and retries.
#[derive(Debug, Clone, Copy)]
pub struct WarmUp {
    /// Bound of one attempt, and the time after which the start-up is late.
    pub ready_within: Duration,
    /// Waits between attempts.
    pub backoff: RetryBackoff,
}

impl WarmUp {
    /// `ready_within`, retried after 100 ms doubling up to 5 s.
    pub fn new(ready_within: Duration) -> Self {
        Self {
            ready_within,
            backoff: RetryBackoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
        }
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
        tokio::time::sleep(policy.backoff.delay(attempt)).await;
    }
}

/// The function starting: a gate to serve now, the warm-up behind it.
/// Dropping it stops the warm-up.
pub struct Startup {
    gate: Gate,
    app: Arc<OnceLock<App>>,
    attempts: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

/// What the warm-up keeps between attempts: the clients, once built.
struct Warming {
    config: Config,
    app: Option<App>,
}

impl Startup {
    /// Starts connecting in the background (see the module docs); the gate
    /// opens when the backends have answered.
    pub fn begin(config: Config) -> Self {
        let gate = Gate::new();
        let app = Arc::new(OnceLock::new());
        let policy = WarmUp::new(config.ready_within);
        let attempts = Arc::new(AtomicU32::new(0));
        let (opened, installed, tried) = (gate.clone(), Arc::clone(&app), Arc::clone(&attempts));
        let task = tokio::spawn(async move {
            let mut state = Warming { config, app: None };
            until_ready(&policy, &mut state, |s: &mut Warming| -> Step<'_> {
                tried.fetch_add(1, Ordering::Relaxed);
                Box::pin(async move {
                    let app = match &mut s.app {
                        Some(app) => app,
                        empty => empty.insert(App::connect(s.config.clone()).await?),
                    };
                    app.warm_up().await
                })
            })
            .await;
            if let Some(app) = state.app {
                let router = app.router();
                let _ = installed.set(app);
                opened.open(router);
            }
        });
        Self {
            gate,
            app,
            attempts,
            task,
        }
    }

    /// The router to serve from the start.
    pub fn router(&self) -> Router {
        self.gate.router()
    }

    /// Whether the backends have answered (the gate is open).
    pub fn is_ready(&self) -> bool {
        self.gate.is_open()
    }

    /// Warm-up attempts begun so far (for tests and diagnostics).
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The connected function, once ready (to drain it at shutdown).
    pub fn app(&self) -> Option<&App> {
        self.app.get()
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    fn policy(ready_within: Duration) -> WarmUp {
        WarmUp {
            ready_within,
            backoff: RetryBackoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
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
}
