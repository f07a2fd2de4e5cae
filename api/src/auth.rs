//! Bearer API keys with two scopes: `admin` (campaign management, and everything an
//! issuer may do) and `issuer` (issue and reads).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::keys::Scope;
use crate::state::AppState;

fn presented_scope(parts: &Parts, state: &AppState) -> Result<Scope, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?;
    state
        .keys
        .scope_of(key.trim())
        .ok_or(ApiError::Unauthorized)
}

/// Extractor: the request carries the admin key.
#[derive(Debug)]
pub struct Admin;

/// Extractor: the request carries the issuer key or the admin key.
#[derive(Debug)]
pub struct Issuer;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match presented_scope(parts, state)? {
            Scope::Admin => Ok(Admin),
            Scope::Issuer => Err(ApiError::Forbidden),
        }
    }
}

impl FromRequestParts<AppState> for Issuer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        presented_scope(parts, state).map(|_| Issuer)
    }
}
