//! Ready means connected: the function listens at once, and `/healthz`
//! answers 200 only once the Datastore and Pub/Sub clients have completed a
//! first cheap call each, so that Cloud Run's startup probe keeps traffic
//! away until the first event is served at normal speed.
//!
//! [`Startup::begin`] returns at once with a closed [`Gate`] to serve (`/livez`
//! 200, `/healthz` and deliveries 503) and runs the warm-up in the background
//! ([`App::connect`], then [`App::warm_up`]), retried with backoff until it
//! succeeds (`sync_http::warmup`); then the gate opens with [`App::router`].
//! An attempt is bounded by `READY_TIMEOUT_SECS`; a late start-up is logged
//! once, every failed attempt too, and it never gives up: Cloud Run's
//! startup probe decides.

use crate::app::App;
use crate::config::Config;
use axum::Router;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use sync_http::warmup::{until_ready, Step, WarmUp};
use sync_http::Gate;

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
