//! `/v1/campaigns`: create, change, close, delete and statistics (admin); read, list and
//! issue (issuer or admin).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use firstcome_engine::{CampaignPatch, IssueBatch, IssueRequest, NewCampaign, is_campaign_id};

use crate::auth::{Admin, Issuer};
use crate::dto::{
    BatchIssuedJson, CampaignJson, CampaignPage, CreateCampaign, IssueBatchBody, IssueBody,
    IssuedJson, PageQuery, StatsJson, UpdateCampaign, validate_user_id,
};
use crate::error::{ApiError, ApiPath};
use crate::idempotency;
use crate::problems::{ACTOR, ADMIN, BODY, INPUT, KEY, Replay, problems};
use crate::routes::{CampaignId, CampaignsQuery, IdempotencyKey};
use crate::state::AppState;

problems!(CreateErrors, Replay::No, [ADMIN, BODY, ACTOR]);
problems!(ListErrors, Replay::No, [KEY, INPUT, ACTOR]);
problems!(
    GetErrors,
    Replay::No,
    [KEY, INPUT, ACTOR, &[ApiError::CampaignNotFound]]
);
problems!(
    AdminErrors,
    Replay::No,
    [ADMIN, INPUT, ACTOR, &[ApiError::CampaignNotFound]]
);
problems!(
    UpdateErrors,
    Replay::No,
    [ADMIN, BODY, ACTOR, &[ApiError::CampaignNotFound]]
);
problems!(
    DeleteErrors,
    Replay::No,
    [
        ADMIN,
        INPUT,
        ACTOR,
        &[ApiError::CampaignNotFound, ApiError::CampaignHasCoupons]
    ]
);
problems!(
    IssueErrors,
    Replay::Decided,
    [
        KEY,
        BODY,
        ACTOR,
        &[
            ApiError::CampaignNotFound,
            ApiError::AlreadyIssued {
                coupon_ids: Vec::new()
            },
            ApiError::SoldOut,
            ApiError::NotActive(firstcome_engine::NotActiveReason::NotStarted),
            ApiError::IdempotencyKeyReused,
        ]
    ]
);

/// Create a campaign.
#[utoipa::path(
    post,
    path = "/v1/campaigns",
    operation_id = "create_campaign",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    request_body = CreateCampaign,
    responses(
        (status = 201, description = "Created; issuing from `starts_at` (or now).", body = CampaignJson,
            links(
                ("issue" = (operation_id = "issue_coupon", parameters(("id" = "$response.body#/id")),
                    description = "Issue a coupon of this campaign.")),
                ("get" = (operation_id = "get_campaign", parameters(("id" = "$response.body#/id")))),
                ("update" = (operation_id = "update_campaign", parameters(("id" = "$response.body#/id")))),
                ("close" = (operation_id = "close_campaign", parameters(("id" = "$response.body#/id")))),
                ("stats" = (operation_id = "campaign_stats", parameters(("id" = "$response.body#/id")))),
                ("delete" = (operation_id = "delete_campaign", parameters(("id" = "$response.body#/id")))),
            )),
        CreateErrors,
    )
)]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<CreateCampaign>, JsonRejection>,
) -> Result<(StatusCode, Json<CampaignJson>), ApiError> {
    let Json(body) = body?;
    let spec = NewCampaign::try_from(body)?;
    let view = state.engine.create_campaign(spec).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Read a campaign, with live `issued`, `remaining` and `status`.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    operation_id = "get_campaign",
    tag = "campaigns",
    security(("bearer" = ["issuer"])),
    params(CampaignId),
    responses(
        (status = 200, description = "The campaign.", body = CampaignJson),
        GetErrors,
    )
)]
pub async fn get(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignJson>, ApiError> {
    Ok(Json(state.engine.campaign(&id).await?.into()))
}

/// List campaigns in id order.
#[utoipa::path(
    get,
    path = "/v1/campaigns",
    operation_id = "list_campaigns",
    tag = "campaigns",
    security(("bearer" = ["issuer"])),
    params(CampaignsQuery),
    responses(
        (status = 200, description = "One page of campaigns.", body = CampaignPage),
        ListErrors,
    )
)]
pub async fn list(
    _: Issuer,
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<CampaignPage>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit()?;
    if let Some(c) = &q.cursor {
        if !is_campaign_id(c) {
            return Err(ApiError::InvalidRequest(
                "cursor is not a campaign id".into(),
            ));
        }
    }
    let (views, next_cursor) = state.engine.campaigns(q.cursor.as_deref(), limit).await?;
    Ok(Json(CampaignPage {
        items: views.into_iter().map(CampaignJson::from).collect(),
        next_cursor,
    }))
}

/// Issue a coupon to a user, first come first served.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/issue",
    operation_id = "issue_coupon",
    tag = "campaigns",
    security(("bearer" = ["issuer"])),
    params(CampaignId, IdempotencyKey),
    request_body = IssueBody,
    responses(
        (status = 201, description = "Issued.", body = IssuedJson,
            headers(("idempotent-replayed" = String, description = "`true` on a replayed answer.")),
            links(
                ("redeem" = (operation_id = "redeem_coupon",
                    parameters(("id" = "$response.body#/coupon/id")),
                    request_body = json!({"user_id": "$response.body#/coupon/user_id"}),
                    description = "Redeem the coupon for its holder.")),
                ("get_coupon" = (operation_id = "get_coupon", parameters(("id" = "$response.body#/coupon/id")))),
                ("user_coupons" = (operation_id = "list_user_coupons",
                    parameters(("user_id" = "$response.body#/coupon/user_id")))),
                ("get_coupon_by_code" = (operation_id = "get_coupon_by_code",
                    parameters(("code" = "$response.body#/coupon/code")))),
                ("redeem_by_code" = (operation_id = "redeem_coupon_by_code",
                    parameters(("code" = "$response.body#/coupon/code")),
                    request_body = json!({"user_id": "$response.body#/coupon/user_id"}),
                    description = "Redeem the coupon by its code, as a till would.")),
            )),
        IssueErrors,
    )
)]
pub async fn issue(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<IssueBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    validate_user_id(&req.user_id)?;
    let contact = req.contact()?;
    let key = idempotency::key(&headers)?;
    // The contact is part of what the key stands for: a retry with another address is
    // another request. (Without one, the parts are what they were before contacts
    // existed, so keys stored by an older build still match their retries.)
    let fingerprint = match &contact {
        Some(c) => {
            let locale = c.locale.as_deref().unwrap_or("");
            idempotency::fingerprint(&["issue", &id, &req.user_id, "contact", &c.email, locale])
        }
        None => idempotency::fingerprint(&["issue", &id, &req.user_id]),
    };
    let request = IssueRequest {
        campaign_id: id,
        user_id: req.user_id,
        contact,
        idempotency: idempotency::with_key(key, fingerprint, idempotency::render_issue),
    };
    // Admission is the engine's: beyond its cap this is `Overloaded`, before any work. A
    // client that goes away drops this future, but not the request's permit, which rides
    // in the actor message until its reply.
    let answer = state.engine.issue(request).await?;
    Ok(idempotency::respond(answer, idempotency::render_issue))
}

problems!(
    IssueBatchErrors,
    Replay::No,
    [
        ADMIN,
        BODY,
        ACTOR,
        &[ApiError::CampaignNotFound, ApiError::IdempotencyKeyReused]
    ]
);

/// The largest body of a bulk issue: 1,000 user ids of 128 ASCII characters take about
/// 131 KB, 1,000 of 128 characters of three UTF-8 bytes about 390 KB (the server-wide
/// `max_body_bytes` is for one request's worth). Ids written wholly as `\u` escapes of
/// characters beyond the BMP would need 1.5 MB: such a batch is 413, to be sent in
/// smaller ones.
pub const ISSUE_BATCH_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Issue coupons to up to 1,000 users at once ("give these 500 VIPs a coupon"). Each user
/// gets the decision a single issue would give (per-user limit, stock, window), in the
/// order given, and all of them become durable together: after a crash either every
/// coupon of the batch is there or none is. The body may be up to 1 MiB.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/issue-batch",
    operation_id = "issue_batch",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    params(CampaignId, IdempotencyKey),
    request_body = IssueBatchBody,
    responses(
        (status = 200, description = "Decided: one result per user, in order.", body = BatchIssuedJson,
            headers(("idempotent-replayed" = String, description = "`true` on a replayed answer."))),
        IssueBatchErrors,
    )
)]
pub async fn issue_batch(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Json<IssueBatchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    req.validate()?;
    let key = idempotency::key(&headers)?;
    let mut parts: Vec<&str> = Vec::with_capacity(2 + req.user_ids.len());
    parts.extend(["issue-batch", &id]);
    parts.extend(req.user_ids.iter().map(String::as_str));
    let fingerprint = idempotency::fingerprint(&parts);
    let batch = IssueBatch {
        campaign_id: id,
        user_ids: req.user_ids,
        idempotency: idempotency::with_key(key, fingerprint, idempotency::render_issue_batch),
    };
    let answer = state.engine.issue_batch(batch).await?;
    Ok(idempotency::respond(
        answer,
        idempotency::render_issue_batch,
    ))
}

/// Pause, resume, rename, move `ends_at` or change the stock of a campaign.
#[utoipa::path(
    patch,
    path = "/v1/campaigns/{id}",
    operation_id = "update_campaign",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    params(CampaignId),
    request_body = UpdateCampaign,
    responses(
        (status = 200, description = "The campaign as changed.", body = CampaignJson),
        UpdateErrors,
    )
)]
pub async fn update(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Result<Json<UpdateCampaign>, JsonRejection>,
) -> Result<Json<CampaignJson>, ApiError> {
    let Json(body) = body?;
    let patch = CampaignPatch::from(body);
    if patch.is_empty() {
        return Err(ApiError::InvalidRequest(
            "give at least one of paused, ends_at, total_stock, name".into(),
        ));
    }
    Ok(Json(state.engine.update_campaign(&id, patch).await?.into()))
}

/// End issuance now (`ends_at` = now); issued coupons stay valid.
#[utoipa::path(
    post,
    path = "/v1/campaigns/{id}/close",
    operation_id = "close_campaign",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    params(CampaignId),
    responses(
        (status = 200, description = "The campaign, ended.", body = CampaignJson),
        AdminErrors,
    )
)]
pub async fn close(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignJson>, ApiError> {
    Ok(Json(state.engine.close_campaign(&id).await?.into()))
}

/// Delete a campaign that has issued nothing.
#[utoipa::path(
    delete,
    path = "/v1/campaigns/{id}",
    operation_id = "delete_campaign",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    params(CampaignId),
    responses(
        (status = 204, description = "Deleted."),
        DeleteErrors,
    )
)]
pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_campaign(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Live statistics (coupons due to expire are expired first).
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/stats",
    operation_id = "campaign_stats",
    tag = "campaigns",
    security(("bearer" = ["admin"])),
    params(CampaignId),
    responses(
        (status = 200, description = "The statistics.", body = StatsJson),
        AdminErrors,
    )
)]
pub async fn stats(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StatsJson>, ApiError> {
    Ok(Json(state.engine.stats(&id).await?.into()))
}
