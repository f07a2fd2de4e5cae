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
    if state.shutting_down.load(Ordering::Relaxed) || !state.engine.is_healthy() {
        return Err(ApiError::Unavailable);
    }
    Ok("ready")
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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
