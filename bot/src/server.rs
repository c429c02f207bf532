//! Klaxon's own HTTP server: `/healthz`, `/readyz`, `/metrics` (alert intake joins
//! it later).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use klaxon_core::App;
use tokio::net::TcpListener;
use tracing::warn;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Ready when the database answers and the gateway session is up: a load balancer
/// or systemd watchdog should not route to a replica that cannot do either.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let db = matches!(
        tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await,
        Ok(Ok(()))
    );
    let gateway = app.chat_connected.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "database": if db { "ok" } else { "unreachable" },
        "gateway": if gateway { "connected" } else { "disconnected" },
    });
    let status = if db && gateway {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

pub async fn spawn(
    listen: SocketAddr,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("http.listen: cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let router = router(app);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "HTTP server stopped");
        }
    });
    Ok((addr, task))
}
