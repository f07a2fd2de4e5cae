//! `/v1/campaigns`: create, change, close, delete and statistics (admin); read, list and
//! issue (issuer or admin).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use firstcome_engine::{CampaignPatch, IssueRequest, NewCampaign, is_campaign_id};

use crate::AppState;
use crate::auth::{Admin, Issuer};
use crate::dto::{
    CampaignJson, CampaignPage, CreateCampaign, IssueBody, PageQuery, StatsJson, UpdateCampaign,
    validate_user_id,
};
use crate::error::{ApiError, ApiPath};
use crate::idempotency;

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

pub async fn get(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignJson>, ApiError> {
    Ok(Json(state.engine.campaign(&id).await?.into()))
}

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

pub async fn close(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignJson>, ApiError> {
    Ok(Json(state.engine.close_campaign(&id).await?.into()))
}

pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_campaign(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stats(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StatsJson>, ApiError> {
    Ok(Json(state.engine.stats(&id).await?.into()))
}
