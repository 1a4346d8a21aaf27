//! Prometheus metrics (`/metrics`) and the request-latency histogram.
//!
//! `/metrics` is opt-in: on the main listener only with `Authorization: Bearer <metrics_token>`,
//! or unauthenticated on its own `metrics_bind` address (a private network); with neither it
//! answers 404 like any unknown path. Login outcomes and reuse detections are not for strangers.
//!
//! The `metrics` facade has one recorder per process; it is installed once, and every
//! application in the process (tests start many) renders from the same handle.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use keycard_core::ErrorCode;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds: sub-millisecond token checks up to multi-second login queues.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("keycard_http_request_duration_seconds".into()), &BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        spawn_upkeep(handle.clone());
        // Another recorder may already be installed (an embedding application's): then ours
        // still renders whatever is recorded through it, which is nothing; say so.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A recorder built with `build_recorder` (no exporter task) keeps every histogram sample in a
/// queue until the next render: without a scrape of `/metrics`, memory grows by ~17 bytes per
/// request for ever (found by `keycard-bench soak`: +0.4 MiB/s at 24k req/s). This thread
/// drains the queues on a timer for the life of the process, as the exporter's own task would.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("keycard-metrics".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the metrics upkeep thread; histograms drain only on scrape");
    }
}

/// `GET /metrics` on the main listener: 404 unless `metrics_token` is set, then 401 unless the
/// request carries it as a Bearer token (compared in constant time).
pub async fn render_protected(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(secret) = &state.config.metrics_token else {
        return ApiError::new(ErrorCode::NotFound, "no such endpoint").into_response();
    };
    let presented = crate::extract::bearer_token_from(&headers).unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(secret.expose().as_bytes())) {
        return ApiError::new(ErrorCode::InvalidToken, "/metrics needs the metrics_token as a Bearer token")
            .into_response();
    }
    render().await
}

/// `GET /metrics`: Prometheus text format.
pub async fn render() -> Response {
    let mut response = prometheus().render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Records each request's latency by route template (never the raw path, which may hold ids).
pub async fn track_latency(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("keycard_http_request_duration_seconds", "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}
