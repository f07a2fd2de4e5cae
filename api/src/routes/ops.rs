//! Operations endpoints: liveness, readiness, Prometheus metrics. No key: they reveal
//! no campaign data, and a scraper or load balancer should not need one.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::problems::{Replay, problems};
use crate::state::AppState;

problems!(NotReady, Replay::No, [&[ApiError::Unavailable]]);

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    security(()),
    responses((status = 200, description = "Alive.", body = String, content_type = "text/plain",
        example = "ok"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready while the engine accepts writes and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "Ready.", body = String, content_type = "text/plain", example = "ready"),
        NotReady,
    )
)]
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

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    security(()),
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain"))
)]
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
