//! One prometheus-client [`Registry`] per process, served by axum at `/metrics`
//! next to `/healthz` and `/readyz` (ready once the component says so).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("metrics port {addr} is busy: pick another --metrics-addr (or stop what listens there)")]
    Busy { addr: SocketAddr },
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics server failed")]
    Serve(#[source] std::io::Error),
}

/// Readiness flag shared between a component and its admin server.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    ready: Readiness,
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr).await.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => MetricsError::Busy { addr },
        _ => MetricsError::Bind { addr, source },
    })
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<(), MetricsError> {
    serve_with(listener, registry, ready, Router::new(), shutdown).await
}

/// [`serve`] plus the caller's own routes (`extra`), which may read the peer's
/// address through `ConnectInfo<SocketAddr>` (the supervisor's control routes do).
pub async fn serve_with(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: Readiness,
    extra: Router,
    shutdown: CancellationToken,
) -> Result<(), MetricsError> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { registry, ready })
        .merge(extra);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(MetricsError::Serve)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        ),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], e.to_string())
        }
    }
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.ready.is_ready() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
}

/// Histogram buckets for latencies from milliseconds to minutes.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0]
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn serves_registered_metrics_and_readiness() {
        let mut registry = Registry::with_prefix("scaletest_test");
        let c: Counter = Counter::default();
        registry.register("things", "Things seen", c.clone());
        c.inc_by(3);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Readiness::default();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Arc::new(registry), ready.clone(), stop.clone()));

        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/metrics").await.contains("scaletest_test_things_total 3"));
        assert!(get("/readyz").await.starts_with("HTTP/1.0 503"));
        ready.set_ready();
        assert!(get("/readyz").await.starts_with("HTTP/1.0 200"));

        let busy = bind(addr).await.unwrap_err();
        assert!(busy.to_string().contains("is busy"), "{busy}");
        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
