//! Operations endpoints: liveness, readiness, Prometheus metrics. No key: they reveal
//! no campaign data, and a scraper or load balancer should not need one.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;
use crate::error::ApiError;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the engine accepts writes and the server is not shutting down.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if !is_ready(&state) {
        return Err(ApiError::Unavailable);
    }
    Ok("ready")
}

/// What `/readyz` answers, also exported as `firstcome_ready` so that an alert sees it
/// without a probe of its own.
fn is_ready(state: &AppState) -> bool {
    let ready = !state.shutting_down.load(Ordering::Relaxed) && state.engine.is_healthy();
    crate::metrics::set_ready(ready);
    ready
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // Evaluated at each scrape, so the gauge is as fresh as the scrape itself.
    is_ready(&state);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
