//! `/v1/coupons/{id}` (read, redeem, cancel-redemption), the same by code at
//! `/v1/codes/{code}`, and `/v1/users/{user_id}/coupons` (issuer).
//!
//! A code route turns the code into the coupon's id (`Engine::coupon_id_of_code`: a
//! decode, no lookup) and then is the id route: the same rules, answers and
//! idempotency fingerprint, so a retry by id of a redeem sent by code is a replay.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use firstcome_engine::{CouponAction, CouponFilter, CouponUse, is_campaign_id, parse_coupon_id};

use crate::auth::Issuer;
use crate::dto::{CouponJson, CouponPage, CouponUseRequest, UserCouponsQuery, validate_user_id};
use crate::error::{ApiError, ApiPath};
use crate::idempotency;
use crate::problems::{ACTOR, BODY, CODE, INPUT, KEY, READ, Replay, problems};
use crate::routes::{CouponCode, CouponId, IdempotencyKey, UserId};
use crate::state::AppState;

/// What a redeem decides against: the same by id and by code.
const REDEEM_REFUSALS: &[ApiError] = &[
    ApiError::CouponNotFound,
    ApiError::NotOwner,
    ApiError::AlreadyRedeemed,
    ApiError::Expired,
    ApiError::IdempotencyKeyReused,
];
/// What a cancel-redemption decides against.
const CANCEL_REFUSALS: &[ApiError] = &[
    ApiError::CouponNotFound,
    ApiError::NotOwner,
    ApiError::NotRedeemed,
    ApiError::OrderMismatch,
    ApiError::IdempotencyKeyReused,
];

problems!(
    RedeemErrors,
    Replay::Decided,
    [KEY, BODY, ACTOR, REDEEM_REFUSALS]
);
problems!(
    CancelErrors,
    Replay::Decided,
    [KEY, BODY, ACTOR, CANCEL_REFUSALS]
);
problems!(
    GetErrors,
    Replay::No,
    [KEY, INPUT, READ, &[ApiError::CouponNotFound]]
);
problems!(OfUserErrors, Replay::No, [KEY, INPUT, READ]);
problems!(
    RedeemByCodeErrors,
    Replay::Decided,
    [KEY, BODY, ACTOR, CODE, REDEEM_REFUSALS]
);
problems!(
    CancelByCodeErrors,
    Replay::Decided,
    [KEY, BODY, ACTOR, CODE, CANCEL_REFUSALS]
);
problems!(
    GetByCodeErrors,
    Replay::No,
    [KEY, INPUT, READ, CODE, &[ApiError::CouponNotFound]]
);

/// Redeem a coupon for its holder.
#[utoipa::path(
    post,
    path = "/v1/coupons/{id}/redeem",
    operation_id = "redeem_coupon",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(CouponId, IdempotencyKey),
    request_body = CouponUseRequest,
    responses(
        (status = 200, description = "Redeemed.", body = CouponJson,
            headers(("idempotent-replayed" = String, description = "`true` on a replayed answer.")),
            links(
                ("cancel_redemption" = (operation_id = "cancel_redemption",
                    parameters(("id" = "$response.body#/id")),
                    request_body = json!({
                        "user_id": "$response.body#/user_id",
                        "order_id": "$response.body#/order_id"
                    }),
                    description = "Undo this redemption (its order was cancelled).")),
                ("get_coupon" = (operation_id = "get_coupon", parameters(("id" = "$response.body#/id")))),
            )),
        RedeemErrors,
    )
)]
pub async fn redeem(
    issuer: Issuer,
    state: State<AppState>,
    id: ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    use_coupon(issuer, state, id, headers, body, CouponAction::Redeem).await
}

/// Undo a redemption (an order was cancelled); with `order_id`, only if it is the
/// redeemed one.
#[utoipa::path(
    post,
    path = "/v1/coupons/{id}/cancel-redemption",
    operation_id = "cancel_redemption",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(CouponId, IdempotencyKey),
    request_body = CouponUseRequest,
    responses(
        (status = 200, description = "Issued again (or `expired`, if past `expires_at`).", body = CouponJson,
            headers(("idempotent-replayed" = String, description = "`true` on a replayed answer.")),
            links(
                ("redeem" = (operation_id = "redeem_coupon",
                    parameters(("id" = "$response.body#/id")),
                    request_body = json!({"user_id": "$response.body#/user_id"}),
                    description = "Redeem it again.")),
            )),
        CancelErrors,
    )
)]
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
    use_coupon_by_id(&state, id, &headers, req, action).await
}

async fn use_coupon_by_id(
    state: &AppState,
    id: String,
    headers: &HeaderMap,
    req: CouponUseRequest,
    action: CouponAction,
) -> Result<Response, ApiError> {
    let key = idempotency::key(headers)?;
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

/// Redeem a coupon by its code, as a till reads it: any case, with or without dashes, `O`
/// for `0` and `I` or `L` for `1`. Otherwise as `POST /v1/coupons/{id}/redeem`.
#[utoipa::path(
    post,
    path = "/v1/codes/{code}/redeem",
    operation_id = "redeem_coupon_by_code",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(CouponCode, IdempotencyKey),
    request_body = CouponUseRequest,
    responses(
        (status = 200, description = "Redeemed.", body = CouponJson,
            headers(("idempotent-replayed" = String, description = "`true` on a replayed answer.")),
            links(
                ("cancel_redemption" = (operation_id = "cancel_redemption_by_code",
                    parameters(("code" = "$response.body#/code")),
                    request_body = json!({
                        "user_id": "$response.body#/user_id",
                        "order_id": "$response.body#/order_id"
                    }),
                    description = "Undo this redemption (its order was cancelled).")),
            )),
        RedeemByCodeErrors,
    )
)]
pub async fn redeem_by_code(
    issuer: Issuer,
    state: State<AppState>,
    code: ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    use_coupon_by_code(issuer, state, code, headers, body, CouponAction::Redeem).await
}

/// Undo a redemption by the coupon's code. Otherwise as
/// `POST /v1/coupons/{id}/cancel-redemption`.
#[utoipa::path(
    post,
    path = "/v1/codes/{code}/cancel-redemption",
    operation_id = "cancel_redemption_by_code",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(CouponCode, IdempotencyKey),
    request_body = CouponUseRequest,
    responses(
        (status = 200, description = "Issued again (or `expired`, if past `expires_at`).", body = CouponJson,
            headers(("idempotent-replayed" = String, description = "`true` on a replayed answer."))),
        CancelByCodeErrors,
    )
)]
pub async fn cancel_redemption_by_code(
    issuer: Issuer,
    state: State<AppState>,
    code: ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let action = CouponAction::CancelRedemption;
    use_coupon_by_code(issuer, state, code, headers, body, action).await
}

/// The code route: the code names the coupon, then it is the id route.
async fn use_coupon_by_code(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(code): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<CouponUseRequest>, JsonRejection>,
    action: CouponAction,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    req.validate()?;
    let id = state.engine.coupon_id_of_code(&code)?;
    use_coupon_by_id(&state, id, &headers, req, action).await
}

/// Read a coupon by its code (typed as for redeeming), with its status as of now.
#[utoipa::path(
    get,
    path = "/v1/codes/{code}",
    operation_id = "get_coupon_by_code",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(CouponCode),
    responses(
        (status = 200, description = "The coupon.", body = CouponJson),
        GetByCodeErrors,
    )
)]
pub async fn get_by_code(
    issuer: Issuer,
    state: State<AppState>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<CouponJson>, ApiError> {
    let id = state.engine.coupon_id_of_code(&code)?;
    get(issuer, state, ApiPath(id)).await
}

/// Read a coupon, with its status as of now.
#[utoipa::path(
    get,
    path = "/v1/coupons/{id}",
    operation_id = "get_coupon",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(CouponId),
    responses(
        (status = 200, description = "The coupon.", body = CouponJson),
        GetErrors,
    )
)]
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

/// A user's coupons in (campaign id, seq) order.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/coupons",
    operation_id = "list_user_coupons",
    tag = "coupons",
    security(("bearer" = ["issuer"])),
    params(UserId, UserCouponsQuery),
    responses(
        (status = 200, description = "One page of the user's coupons.", body = CouponPage),
        OfUserErrors,
    )
)]
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
