//! `/v1/campaigns`: create (admin); read, list and issue (issuer or admin).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use firstcome_engine::{IssueOutcome, NewCampaign, is_campaign_id};

use crate::AppState;
use crate::auth::{Admin, Issuer};
use crate::dto::{
    CampaignJson, CampaignPage, CreateCampaign, IssueRequest, IssuedJson, PageQuery,
    validate_user_id,
};
use crate::error::ApiError;

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
    Path(id): Path<String>,
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
    let (views, more) = state.engine.campaigns(q.cursor.as_deref(), limit).await?;
    let next_cursor = if more {
        views.last().map(|v| v.record.id.clone())
    } else {
        None
    };
    Ok(Json(CampaignPage {
        campaigns: views.into_iter().map(CampaignJson::from).collect(),
        next_cursor,
    }))
}

pub async fn issue(
    _: Issuer,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<IssueRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<IssuedJson>), ApiError> {
    let Json(req) = body?;
    validate_user_id(&req.user_id)?;
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
    let outcome = tokio::spawn(async move {
        let _permit = permit;
        engine.issue(&id, &req.user_id).await
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    match outcome {
        IssueOutcome::Issued(coupon) => Ok((
            StatusCode::CREATED,
            Json(IssuedJson {
                coupon: coupon.into(),
            }),
        )),
        IssueOutcome::AlreadyIssued { coupon_ids } => Err(ApiError::AlreadyIssued { coupon_ids }),
        IssueOutcome::SoldOut => Err(ApiError::SoldOut),
        IssueOutcome::NotActive(reason) => Err(ApiError::NotActive(reason)),
    }
}
