//! Mail: users' contacts and subscriptions (issuer key), and the dead letters (admin).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;

use crate::auth::{Admin, Issuer};
use crate::dto::{
    ContactJson, ContactRequest, DeadLetterPage, MailJobJson, PageQuery, SubscriptionJson,
    SubscriptionPage, SubscriptionRequest, validate_store_id, validate_user_id,
};
use crate::error::{ApiError, ApiPath};
use crate::problems::{ADMIN, BODY, INPUT, KEY, READ, Replay, WRITE, problems};
use crate::routes::{PageParams, SubscriptionPath, UserId};
use crate::state::AppState;
use firstcome_engine::mail::Contact;

problems!(PutContactErrors, Replay::No, [KEY, INPUT, BODY, WRITE]);
problems!(
    ContactErrors,
    Replay::No,
    [KEY, INPUT, READ, &[ApiError::ContactNotFound]]
);
problems!(
    DeleteContactErrors,
    Replay::No,
    [KEY, INPUT, WRITE, &[ApiError::ContactNotFound]]
);
problems!(SubscribeErrors, Replay::No, [KEY, BODY, WRITE]);
problems!(
    UnsubscribeErrors,
    Replay::No,
    [KEY, INPUT, WRITE, &[ApiError::SubscriptionNotFound]]
);
problems!(ListErrors, Replay::No, [KEY, INPUT, READ]);
problems!(DeadLettersErrors, Replay::No, [ADMIN, INPUT, READ]);
problems!(
    RetryErrors,
    Replay::No,
    [
        ADMIN,
        INPUT,
        WRITE,
        &[ApiError::DeadLetterNotFound, ApiError::MailDisabled]
    ]
);

/// Register (or replace) where the user's mail goes.
#[utoipa::path(
    put,
    path = "/v1/users/{user_id}/contact",
    operation_id = "put_contact",
    tag = "mail",
    security(("bearer" = ["issuer"])),
    params(UserId),
    request_body = ContactRequest,
    responses(
        (status = 200, description = "The contact as kept.", body = ContactJson,
            links(("get" = (operation_id = "get_contact", parameters(("user_id" = "$response.body#/user_id")))))),
        PutContactErrors,
    )
)]
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

/// Where the user's mail goes.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/contact",
    operation_id = "get_contact",
    tag = "mail",
    security(("bearer" = ["issuer"])),
    params(UserId),
    responses(
        (status = 200, description = "The contact.", body = ContactJson),
        ContactErrors,
    )
)]
pub async fn get_contact(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<ContactJson>, ApiError> {
    validate_user_id(&user_id)?;
    let record = state.engine.contact(&user_id)?;
    Ok(Json(ContactJson::new(user_id, record)))
}

/// Forget the user's contact; mail already queued still goes out.
#[utoipa::path(
    delete,
    path = "/v1/users/{user_id}/contact",
    operation_id = "delete_contact",
    tag = "mail",
    security(("bearer" = ["issuer"])),
    params(UserId),
    responses(
        (status = 204, description = "Forgotten."),
        DeleteContactErrors,
    )
)]
pub async fn delete_contact(
    _: Issuer,
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    validate_user_id(&user_id)?;
    state.engine.delete_contact(&user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Subscribe a user to a store's new campaigns (201 when new, 200 when already).
#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    operation_id = "subscribe",
    tag = "mail",
    security(("bearer" = ["issuer"])),
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "Subscribed.", body = SubscriptionJson,
            links(("unsubscribe" = (operation_id = "unsubscribe", parameters(
                ("user_id" = "$response.body#/user_id"), ("store_id" = "$response.body#/store_id")))))),
        (status = 200, description = "Already subscribed.", body = SubscriptionJson),
        SubscribeErrors,
    )
)]
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

/// Unsubscribe a user from a store.
#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{user_id}/{store_id}",
    operation_id = "unsubscribe",
    tag = "mail",
    security(("bearer" = ["issuer"])),
    params(SubscriptionPath),
    responses(
        (status = 204, description = "Unsubscribed."),
        UnsubscribeErrors,
    )
)]
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

/// The stores a user subscribes to, in store id order.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/subscriptions",
    operation_id = "list_subscriptions",
    tag = "mail",
    security(("bearer" = ["issuer"])),
    params(UserId, PageParams),
    responses(
        (status = 200, description = "One page of subscriptions.", body = SubscriptionPage),
        ListErrors,
    )
)]
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

/// Mail given up on, in id order.
#[utoipa::path(
    get,
    path = "/v1/mail/dead",
    operation_id = "list_dead_letters",
    tag = "mail",
    security(("bearer" = ["admin"])),
    params(PageParams),
    responses(
        (status = 200, description = "One page of dead letters, with `attempts` and `last_error`.",
            body = DeadLetterPage),
        DeadLettersErrors,
    )
)]
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

/// Put a dead letter back into the outbox, due now (202: it is queued, not yet sent).
#[utoipa::path(
    post,
    path = "/v1/mail/dead/{id}/retry",
    operation_id = "retry_dead_letter",
    tag = "mail",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, min_length = 1, description = "A dead letter's job id.")),
    responses(
        (status = 202, description = "Queued again, with a fresh retry budget.", body = MailJobJson),
        RetryErrors,
    )
)]
pub async fn retry_dead_letter(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<MailJobJson>), ApiError> {
    let job = state.engine.retry_dead_letter(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}
