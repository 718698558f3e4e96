//! Serving a router on `0.0.0.0:PORT` with graceful shutdown.

use crate::BodyLimit;
use axum::handler::Handler;
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use thiserror::Error;
use tokio::net::TcpListener;

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

/// Liveness handler: `200 ok`.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The shape both functions serve: `handler` on `POST /` (any query string),
/// [`healthz`] on `GET /healthz`, and request bodies capped at `max_body_bytes`
/// for the [`Delivery`](crate::Delivery) extractor.
pub fn push_router<H, T, S>(handler: H, max_body_bytes: usize, state: S) -> Router
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", post(handler))
        .route("/healthz", get(healthz))
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

    #[tokio::test]
    async fn bind_failure_names_the_address() -> Result<(), Box<dyn std::error::Error>> {
        let first = Server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let taken = first.local_addr();
        let err = Server::bind(taken).await.expect_err("port is taken");
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
        Ok(())
    }
}
