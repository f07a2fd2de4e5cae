//! `Idempotency-Key` on issue, redeem and cancel-redemption.
//!
//! The engine keeps, in the same atomic batch as the decision, the response this module
//! renders for it, and replays it to a retry with the same key and the same request.
//! Every answer to such a request, first or replayed, is sent from a
//! [`StoredResponse`], so a replay is byte for byte the first response.

use std::hash::Hash;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use firstcome_engine::{
    BatchOutcome, CouponChange, IdempotencyKey, Idempotent, IssueOutcome, StoredResponse,
};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::dto::{BatchIssuedJson, CouponJson, IssuedJson};
use crate::error::{ApiError, PROBLEM_JSON};

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 255;

/// The key a request carries, if any: 1 to 255 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::InvalidRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_string()))
}

/// Identifies a request: what it does, to what, with which (normalised) body.
pub fn fingerprint(parts: &[&str]) -> [u8; 16] {
    let mut h = SipHasher13::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish128().as_bytes()
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> StoredResponse {
    match serde_json::to_vec(body) {
        Ok(body) => StoredResponse {
            status: status.as_u16(),
            content_type: "application/json".into(),
            body,
        },
        // Our own plain structs always serialize; if one ever did not, the client hears
        // `internal` (and a retry under the same key hears it again, as it should).
        Err(e) => {
            tracing::error!(error = %e, "serializing a response");
            problem(ApiError::Internal(e.to_string()))
        }
    }
}

fn problem(e: ApiError) -> StoredResponse {
    StoredResponse {
        status: e.status().as_u16(),
        content_type: PROBLEM_JSON.into(),
        body: e.problem(),
    }
}

pub fn render_issue(o: &IssueOutcome) -> StoredResponse {
    match o {
        IssueOutcome::Issued(c) => json(
            StatusCode::CREATED,
            &IssuedJson {
                coupon: c.clone().into(),
            },
        ),
        IssueOutcome::AlreadyIssued { coupon_ids } => problem(ApiError::AlreadyIssued {
            coupon_ids: coupon_ids.clone(),
        }),
        IssueOutcome::SoldOut => problem(ApiError::SoldOut),
        IssueOutcome::NotActive(r) => problem(ApiError::NotActive(*r)),
    }
}

/// A bulk issue is answered 200 whatever each user got: the outcomes are in the body.
pub fn render_issue_batch(b: &BatchOutcome) -> StoredResponse {
    json(StatusCode::OK, &BatchIssuedJson::from(b))
}

pub fn render_coupon_change(c: &CouponChange) -> StoredResponse {
    match c {
        CouponChange::Done(c) => json(StatusCode::OK, &CouponJson::from(c.clone())),
        CouponChange::NotOwner => problem(ApiError::NotOwner),
        CouponChange::AlreadyRedeemed => problem(ApiError::AlreadyRedeemed),
        CouponChange::Expired => problem(ApiError::Expired),
        CouponChange::NotRedeemed => problem(ApiError::NotRedeemed),
        CouponChange::OrderMismatch => problem(ApiError::OrderMismatch),
    }
}

pub fn with_key<T>(
    key: Option<String>,
    fingerprint: [u8; 16],
    render: fn(&T) -> StoredResponse,
) -> Option<IdempotencyKey<T>> {
    key.map(|key| IdempotencyKey {
        key,
        fingerprint,
        render,
    })
}

/// The HTTP response for an answer, fresh or replayed. A request without a key is
/// rendered here; one with a key was rendered when it was decided.
pub fn respond<T>(answer: Idempotent<T>, render: fn(&T) -> StoredResponse) -> Response {
    let (stored, replayed) = match answer {
        Idempotent::Fresh(v) => (render(&v), false),
        // Rendered once, by the decision that kept it for the key.
        Idempotent::Recorded { response, .. } => (response, false),
        Idempotent::Replay(s) => (s, true),
        Idempotent::KeyReused => return ApiError::IdempotencyKeyReused.into_response(),
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&stored.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
