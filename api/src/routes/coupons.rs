//! `/v1/coupons/{id}` (read, redeem, cancel-redemption) and `/v1/users/{user_id}/coupons`
//! (issuer).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use firstcome_engine::{CouponAction, CouponFilter, CouponUse, is_campaign_id, parse_coupon_id};

use crate::AppState;
use crate::auth::Issuer;
use crate::dto::{CouponJson, CouponPage, CouponUseRequest, UserCouponsQuery, validate_user_id};
use crate::error::{ApiError, ApiPath};
use crate::idempotency;

pub async fn redeem(
    issuer: Issuer,
    state: State<AppState>,
    id: ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    use_coupon(issuer, state, id, headers, body, CouponAction::Redeem).await
}

pub async fn cancel_redemption(
    issuer: Issuer,
    state: State<AppState>,
    id: ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    use_coupon(
        issuer,
        state,
        id,
        headers,
        body,
        CouponAction::CancelRedemption,
    )
    .await
}

async fn use_coupon(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
    action: CouponAction,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    req.validate()?;
    let key = idempotency::key(&headers)?;
    // The route's own name (kept as it was, so stored fingerprints still match).
    let route = match action {
        CouponAction::Redeem => "redeem",
        CouponAction::CancelRedemption => "cancel-redemption",
    };
    let order = req.order_id.as_deref().unwrap_or("");
    // The order id is prefixed with its presence, so "no order" and "" never collide.
    let order = format!("{}{order}", req.order_id.is_some() as u8);
    let fingerprint = idempotency::fingerprint(&[route, &id, &req.user_id, &order]);
    let render = idempotency::render_coupon_change;
    let request = CouponUse {
        action,
        coupon_id: id,
        user_id: req.user_id,
        order_id: req.order_id,
        idempotency: idempotency::with_key(key, fingerprint, render),
    };
    let answer = state.engine.use_coupon(request).await?;
    Ok(idempotency::respond(answer, render))
}

pub async fn get(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CouponJson>, ApiError> {
    let engine = state.engine.clone();
    let coupon = tokio::task::spawn_blocking(move || engine.coupon(&id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(Json(coupon.into()))
}

pub async fn of_user(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
    query: Result<Query<UserCouponsQuery>, QueryRejection>,
) -> Result<Json<CouponPage>, ApiError> {
    let Query(q) = query?;
    validate_user_id(&user_id)?;
    let limit = q.page().limit()?;
    let status = q.status()?;
    if let Some(c) = &q.campaign_id {
        if !is_campaign_id(c) {
            return Err(ApiError::InvalidRequest(
                "campaign_id is not a campaign id".into(),
            ));
        }
    }
    if let Some(c) = &q.cursor {
        if parse_coupon_id(c).is_none() {
            return Err(ApiError::InvalidRequest("cursor is not a coupon id".into()));
        }
    }
    let engine = state.engine.clone();
    let (coupons, more) = tokio::task::spawn_blocking(move || {
        let filter = CouponFilter {
            campaign_id: q.campaign_id.as_deref(),
            status,
        };
        engine.user_coupons(&user_id, filter, q.cursor.as_deref(), limit)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let next_cursor = if more {
        coupons.last().map(|c| c.id.clone())
    } else {
        None
    };
    Ok(Json(CouponPage {
        items: coupons.into_iter().map(CouponJson::from).collect(),
        next_cursor,
    }))
}
