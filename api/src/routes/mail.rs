//! Mail: users' contacts and subscriptions (issuer key), and the dead letters (admin).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::{Admin, Issuer};
use crate::dto::{
    ContactJson, ContactRequest, DeadLetterPage, MailJobJson, PageQuery, SubscriptionJson,
    SubscriptionPage, SubscriptionRequest, validate_store_id, validate_user_id,
};
use crate::error::{ApiError, ApiPath};
use firstcome_engine::mail::Contact;

/// `PUT /v1/users/{user_id}/contact`: registers (or replaces) where the user's mail goes.
pub async fn put_contact(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
    body: Result<Json<ContactRequest>, JsonRejection>,
) -> Result<Json<ContactJson>, ApiError> {
    validate_user_id(&user_id)?;
    let Json(req) = body?;
    let contact = Contact::new(&req.email, req.locale.as_deref())?;
    let record = state.engine.set_contact(&user_id, &contact).await?;
    Ok(Json(ContactJson::new(user_id, record)))
}

pub async fn get_contact(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<ContactJson>, ApiError> {
    validate_user_id(&user_id)?;
    let record = state.engine.contact(&user_id)?;
    Ok(Json(ContactJson::new(user_id, record)))
}

pub async fn delete_contact(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    validate_user_id(&user_id)?;
    state.engine.delete_contact(&user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/subscriptions`: 201 when new, 200 when the user was already subscribed.
pub async fn subscribe(
    _: Issuer,
    State(state): State<AppState>,
    body: Result<Json<SubscriptionRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<SubscriptionJson>), ApiError> {
    let Json(req) = body?;
    validate_user_id(&req.user_id)?;
    validate_store_id(&req.store_id)?;
    let created = state.engine.subscribe(&req.user_id, &req.store_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SubscriptionJson {
            user_id: req.user_id,
            store_id: req.store_id,
        }),
    ))
}

pub async fn unsubscribe(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath((user_id, store_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    validate_user_id(&user_id)?;
    validate_store_id(&store_id)?;
    state.engine.unsubscribe(&user_id, &store_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn subscriptions(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<SubscriptionPage>, ApiError> {
    validate_user_id(&user_id)?;
    let Query(page) = query?;
    let limit = page.limit()?;
    let (stores, next_cursor) = state
        .engine
        .subscriptions(&user_id, page.cursor.as_deref(), limit)
        .await?;
    Ok(Json(SubscriptionPage {
        items: stores
            .into_iter()
            .map(|store_id| SubscriptionJson {
                user_id: user_id.clone(),
                store_id,
            })
            .collect(),
        next_cursor,
    }))
}

/// `GET /v1/mail/dead`: mail given up on, in id order.
pub async fn dead_letters(
    _: Admin,
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(page) = query?;
    let limit = page.limit()?;
    let (jobs, next_cursor) = state
        .engine
        .dead_letters(page.cursor.as_deref(), limit)
        .await?;
    Ok(Json(DeadLetterPage {
        items: jobs.into_iter().map(MailJobJson::from).collect(),
        next_cursor,
    }))
}

/// `POST /v1/mail/dead/{id}/retry`: back into the outbox, due now (202: it is queued,
/// not yet sent).
pub async fn retry_dead_letter(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<MailJobJson>), ApiError> {
    let job = state.engine.retry_dead_letter(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
