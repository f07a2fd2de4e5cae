//! `/v1/coupons/{id}` (read, redeem, cancel-redemption) and `/v1/users/{user_id}/coupons`
//! (issuer).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use firstcome_engine::{CouponChange, parse_coupon_id};

use crate::AppState;
use crate::auth::Issuer;
use crate::dto::{CouponJson, CouponPage, CouponUseRequest, PageQuery, validate_user_id};
use crate::error::ApiError;

pub async fn redeem(
    _: Issuer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Json<CouponJson>, ApiError> {
    let Json(req) = body?;
    req.validate()?;
    changed(state.engine.redeem(&id, &req.user_id, req.order_id).await?)
}

pub async fn cancel_redemption(
    _: Issuer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Json<CouponJson>, ApiError> {
    let Json(req) = body?;
    req.validate()?;
    changed(
        state
            .engine
            .cancel_redemption(&id, &req.user_id, req.order_id)
            .await?,
    )
}

fn changed(change: CouponChange) -> Result<Json<CouponJson>, ApiError> {
    match change {
        CouponChange::Done(c) => Ok(Json(c.into())),
        CouponChange::NotOwner => Err(ApiError::NotOwner),
        CouponChange::AlreadyRedeemed => Err(ApiError::AlreadyRedeemed),
        CouponChange::Expired => Err(ApiError::Expired),
        CouponChange::NotRedeemed => Err(ApiError::NotRedeemed),
        CouponChange::OrderMismatch => Err(ApiError::OrderMismatch),
    }
}

pub async fn get(
    _: Issuer,
    State(state): State<AppState>,
    Path(id): Path<String>,
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
    Path(user_id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<CouponPage>, ApiError> {
    let Query(q) = query?;
    validate_user_id(&user_id)?;
    let limit = q.limit()?;
    if let Some(c) = &q.cursor {
        if parse_coupon_id(c).is_none() {
            return Err(ApiError::InvalidRequest("cursor is not a coupon id".into()));
        }
    }
    let engine = state.engine.clone();
    let (coupons, more) = tokio::task::spawn_blocking(move || {
        engine.user_coupons(&user_id, q.cursor.as_deref(), limit)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let next_cursor = if more {
        coupons.last().map(|c| c.id.clone())
    } else {
        None
    };
    Ok(Json(CouponPage {
        coupons: coupons.into_iter().map(CouponJson::from).collect(),
        next_cursor,
    }))
}
