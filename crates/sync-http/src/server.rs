//! Serving a router on `0.0.0.0:PORT` with graceful shutdown, and the two
//! health paths: `GET /livez` (the process serves; depends on nothing) and
//! `GET /healthz` (ready for traffic). A function with backends serves a
//! [`Gate`] at once and opens it with its real router once the backends have
//! answered: until then `/healthz` and every other path answer 503.

use crate::{BodyLimit, MemoryBudget};
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use thiserror::Error;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The address could not be bound (in use, no permission…).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound listener, not yet serving: [`local_addr`](Self::local_addr) tells
/// the port when 0 was asked for.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// [`ServeError::Bind`] when the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` until `shutdown` completes, then stops accepting and
    /// waits for in-flight requests to finish.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run<F>(self, router: Router, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Binds `0.0.0.0:port`, logs the bound address and serves `router` until
/// `shutdown` completes (then drains in-flight requests).
///
/// # Errors
/// When the port cannot be bound or serving fails.
pub async fn serve<F>(router: Router, port: u16, shutdown: F) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let server = Server::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    tracing::info!(addr = %server.local_addr(), "listening");
    server.run(router, shutdown).await?;
    tracing::info!("server stopped");
    Ok(())
}

/// Completes on SIGTERM (Cloud Run's stop signal; it kills 10 s later) or
/// Ctrl-C. If a handler cannot be installed, that signal is not waited for.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

/// Readiness of a router that needs nothing to serve: `200 ok`.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Liveness: `200 ok` while the process serves requests, whatever its
/// backends do (Cloud Run's liveness probe restarts the instance otherwise).
pub async fn livez() -> &'static str {
    "ok"
}

/// The answer of a [`Gate`] not yet open.
fn starting() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
}

/// A router served before it exists: [`router`](Self::router) answers at
/// once, [`open`](Self::open) installs the real one when its backends have
/// answered. Until then `GET /healthz` and every path but `GET /livez`
/// answer 503 (a push delivered early is redelivered by Pub/Sub). Cheap to
/// clone; every clone is the same gate.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    inner: Arc<OnceLock<Router>>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `router`: from now on `/healthz` answers 200 and requests go
    /// to it. Opening an open gate changes nothing.
    pub fn open(&self, router: Router) {
        let _ = self.inner.set(router);
    }

    /// Whether [`open`](Self::open) was called.
    pub fn is_open(&self) -> bool {
        self.inner.get().is_some()
    }

    /// The router to serve: `GET /livez` and `GET /healthz` here, every other
    /// request forwarded to the installed router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/livez", get(livez))
            .route("/healthz", get(gate_healthz))
            .fallback(gate_forward)
            .with_state(self.clone())
    }
}

async fn gate_healthz(State(gate): State<Gate>) -> Response {
    if gate.is_open() {
        "ok".into_response()
    } else {
        starting()
    }
}

async fn gate_forward(State(gate): State<Gate>, request: Request) -> Response {
    match gate.inner.get() {
        // Cloning a router clones an `Arc`; a router is always ready.
        Some(router) => match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => starting(),
    }
}

/// The shape both functions serve: `handler` on `POST /` (any query string)
/// admitted against `budget` (see [`crate::admission`]), [`healthz`] on
/// `GET /healthz`, [`livez`] on `GET /livez`, and request bodies capped at
/// `max_body_bytes` for the [`Delivery`](crate::Delivery) extractor.
pub fn push_router<H, T, S>(
    handler: H,
    max_body_bytes: usize,
    budget: MemoryBudget,
    state: S,
) -> Router
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let admitted = post(handler).layer(axum::middleware::from_fn_with_state(
        budget,
        crate::admission::admit,
    ));
    Router::new()
        .route("/", admitted)
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .layer(Extension(BodyLimit(max_body_bytes)))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_on_port_zero_and_stops_on_shutdown() -> Result<(), Box<dyn std::error::Error>> {
        let server = Server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/healthz", get(healthz));
        let task = tokio::spawn(server.run(app, async {
            let _ = stopped.await;
        }));

        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("ok"), "{response}");

        let _ = stop.send(());
        task.await??;
        Ok(())
    }

    async fn status(router: &Router, method: &str, path: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("a valid request");
        router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
            .status()
    }

    #[tokio::test]
    async fn a_closed_gate_is_live_but_not_ready_then_forwards_once_open() {
        let gate = Gate::new();
        let served = gate.router();
        assert_eq!(
            status(&served, "GET", "/healthz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&served, "GET", "/livez").await, StatusCode::OK);
        assert_eq!(
            status(&served, "POST", "/").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(!gate.is_open());

        gate.clone()
            .open(Router::new().route("/", post(|| async { StatusCode::NO_CONTENT })));
        assert!(gate.is_open());
        assert_eq!(status(&served, "GET", "/healthz").await, StatusCode::OK);
        assert_eq!(status(&served, "GET", "/livez").await, StatusCode::OK);
        assert_eq!(status(&served, "POST", "/").await, StatusCode::NO_CONTENT);
        assert_eq!(
            status(&served, "GET", "/nowhere").await,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn push_router_is_ready_and_live_at_once() {
        let router = push_router(
            || async { StatusCode::NO_CONTENT },
            1024,
            MemoryBudget::unlimited(),
            (),
        );
        assert_eq!(status(&router, "GET", "/healthz").await, StatusCode::OK);
        assert_eq!(status(&router, "GET", "/livez").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() -> Result<(), Box<dyn std::error::Error>> {
        let first = Server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let taken = first.local_addr();
        let err = Server::bind(taken).await.expect_err("port is taken");
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
        Ok(())
    }
}
