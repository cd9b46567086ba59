//! The admin HTTP listener: `/metrics` (Prometheus text), `/healthz`
//! (the process is up) and `/readyz` (a policy set is serving and the
//! newest files loaded; a failed reload reports its error here).
//!
//! It shares nothing with the decision path but the reload status.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};

use crate::server::Shared;

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// Ready while a set serves; a failed reload is reported but stays ready,
/// because the last good set still answers correctly. Not ready while
/// draining.
async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_owned());
    }
    let version = shared.store.load().version.clone();
    match shared.status.last_error() {
        None => (StatusCode::OK, format!("ready: policy set {version}\n")),
        Some(error) => (
            StatusCode::OK,
            format!("ready: policy set {version}; last reload failed: {error}\n"),
        ),
    }
}
