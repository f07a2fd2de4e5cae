//! `/v1/campaigns`: create, change, close, delete and statistics (admin); read, list and
//! issue (issuer or admin).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use firstcome_engine::{CampaignPatch, NewCampaign, is_campaign_id};

use crate::AppState;
use crate::auth::{Admin, Issuer};
use crate::dto::{
    CampaignJson, CampaignPage, CreateCampaign, IssueRequest, PageQuery, StatsJson, UpdateCampaign,
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
    body: Result<Json<IssueRequest>, JsonRejection>,
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
    let idem = idempotency::with_key(key, fingerprint, idempotency::render_issue);
    // Admission control: the permit bounds how many issue requests (and so how many
    // actor messages and pending commits) exist at once. Without it, an overload would
    // grow the unbounded actor mailboxes until memory ran out.
    let permit = state
        .issue_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            metrics::counter!("firstcome_issue_total", "outcome" => "overloaded").increment(1);
            ApiError::Overloaded
        })?;
    // The permit travels with the request into its own task: if the client goes away,
    // hyper drops this handler, but the message already sits in the actor's mailbox and
    // its commit is queued; the permit must stay taken until they are done, or clients
    // that time out and retry could grow the mailboxes past the cap.
    let engine = state.engine.clone();
    let answer = tokio::spawn(async move {
        let _permit = permit;
        engine
            .issue_with_contact(&id, &req.user_id, contact, idem)
            .await
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
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
