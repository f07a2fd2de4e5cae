//! The Prometheus recorder and the HTTP request metrics.
//!
//! Metric names (all prefixed `firstcome_`):
//! - `http_requests_total{route,method,status}`, `http_request_duration_seconds{route,method}`
//!   (route is the template, e.g. `/v1/campaigns/{id}/issue`, never the raw path)
//! - `issue_total{outcome}`, `issue_duration_seconds`
//! - `coupon_use_total{action,outcome}` (redeem / cancel_redemption), `coupons_expired_total`
//! - `commit_batch_requests`, `commit_batch_writes`, `commit_flush_seconds`,
//!   `commit_failures_total`
//! - `campaigns`, `campaign_restarts_total`

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

/// Installs the process-wide recorder once and returns its handle. A process has one
/// global recorder, so servers started later in the same process (tests) share it.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    // A std Mutex, not a OnceLock: the first install can fail, and a later call then
    // tries again rather than seeing a half-made recorder.
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = installed.as_ref() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Prefix("firstcome_commit_batch".into()),
                BATCH_BUCKETS,
            )
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| MetricsError(e.to_string()))?;
    // Without the exporter's own listener, histograms are only drained by upkeep: run
    // it, or their memory grows.
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("firstcome-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| MetricsError(format!("spawning the upkeep thread: {e}")))?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The Prometheus recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// Counts and times every routed request, labelled by route template.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "firstcome_http_requests_total",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "firstcome_http_request_duration_seconds",
        "route" => route,
        "method" => method
    )
    .record(started.elapsed().as_secs_f64());
    response
}
