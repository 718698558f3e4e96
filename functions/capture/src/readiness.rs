//! Ready means connected: the function listens at once, and `/healthz`
//! answers 200 only once its Pub/Sub clients are built and have answered a
//! `GetTopic` of each topic it publishes to, so that Cloud Run's startup
//! probe keeps Eventarc's pushes away until the first event is published at
//! normal speed.
//!
//! [`Startup::begin`] returns at once with a closed [`Gate`] to serve
//! (`/livez` 200, `/healthz` and events 503, which Eventarc redelivers) and
//! runs the warm-up in the background ([`App::connect`], then
//! [`App::warm_up`]) in `sync_http::warmup`'s loop, bounded per attempt by
//! `READY_TIMEOUT_SECS`; then the gate opens with [`App::router`].

use crate::app::App;
use crate::config::CaptureConfig;
use axum::Router;
use std::sync::{Arc, OnceLock};
use sync_http::warmup::{until_ready, Step, WarmUp};
use sync_http::Gate;

/// The function starting: a gate to serve now, the warm-up behind it.
/// Dropping it stops the warm-up.
pub struct Startup {
    gate: Gate,
    app: Arc<OnceLock<App>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the warm-up keeps between attempts: the clients, once built.
struct Warming {
    config: CaptureConfig,
    app: Option<App>,
}

impl Startup {
    /// Starts connecting in the background; the gate opens when Pub/Sub has
    /// answered.
    pub fn begin(config: CaptureConfig) -> Self {
        let gate = Gate::new();
        let app = Arc::new(OnceLock::new());
        let policy = WarmUp::new(config.ready_within);
        let (opened, installed) = (gate.clone(), Arc::clone(&app));
        let task = tokio::spawn(async move {
            let mut state = Warming { config, app: None };
            until_ready(&policy, &mut state, |s: &mut Warming| -> Step<'_> {
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
        Self { gate, app, task }
    }

    /// The router to serve from the start.
    pub fn router(&self) -> Router {
        self.gate.router()
    }

    /// Whether Pub/Sub has answered (the gate is open).
    pub fn is_ready(&self) -> bool {
        self.gate.is_open()
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
