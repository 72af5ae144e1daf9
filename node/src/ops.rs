//! Operations HTTP, as Fabric's: `/healthz` (200 `{"status":"OK","time":…}`, or 503
//! with `failed_checks`) and Prometheus `/metrics` (text exposition format).

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Serialize;

/// A failed health check: which component and why.
#[derive(Debug, Clone, Serialize)]
pub struct FailedCheck {
    pub component: String,
    pub reason: String,
}

/// What a node reports about its health: failed checks (none when healthy) and extra
/// fields for operators (height, Raft leader, …).
pub type HealthFn = Arc<dyn Fn() -> (Vec<FailedCheck>, serde_json::Value) + Send + Sync>;

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: HealthFn,
    registry: Registry,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(move || {
                let health = health.clone();
                async move {
                    let (failed, details) = health();
                    let mut body = serde_json::json!({"time": now_rfc3339(), "details": details});
                    let code = if failed.is_empty() {
                        body["status"] = "OK".into();
                        StatusCode::OK
                    } else {
                        body["status"] = "Service Unavailable".into();
                        body["failed_checks"] = serde_json::to_value(&failed).unwrap_or_default();
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, axum::Json(body))
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = Vec::new();
                    match TextEncoder::new().encode(&registry.gather(), &mut text) {
                        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text)
                            .into_response(),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                    }
                }
            }),
        );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("operations HTTP")
}

/// Registers a metric, which must be new to the registry (a programming error if not).
pub fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!("metric registration: {e}");
    }
    metric
}

/// Latency buckets in seconds, 1 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One shutdown signal for several servers: each [`Stop::stopped`] future resolves once
/// the signal given to [`Stop::new`] has.
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub fn new(shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        Self(rx)
    }

    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
