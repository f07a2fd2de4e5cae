//! [`ApiError`]: every way a request can fail, as an RFC 9457 problem
//! (`application/problem+json`) with a stable machine `code`.
//!
//! Internal errors are logged with their cause and answered with a generic message:
//! storage paths, sled errors and actor names never reach a client.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use firstcome_engine::{EngineError, NotActiveReason};
use serde_json::json;

use crate::log_limit::OncePerSecond;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("this API key's scope does not allow this operation")]
    Forbidden,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("campaign not found")]
    CampaignNotFound,
    #[error("coupon not found")]
    CouponNotFound,
    #[error("{0}")]
    InvalidCode(firstcome_engine::CodeError),
    #[error("the user has no contact")]
    ContactNotFound,
    #[error("no such subscription")]
    SubscriptionNotFound,
    #[error("no such dead letter")]
    DeadLetterNotFound,
    #[error("mail is not enabled on this server")]
    MailDisabled,
    #[error("live events are turned off on this server")]
    LiveEventsDisabled,
    #[error("the user already holds the most coupons of this campaign allowed per user")]
    AlreadyIssued { coupon_ids: Vec<String> },
    #[error("the campaign has no coupons left")]
    SoldOut,
    #[error("{}", match .0 {
        NotActiveReason::NotStarted => "the campaign has not started yet",
        NotActiveReason::Ended => "the campaign has ended",
        NotActiveReason::Paused => "the campaign is paused",
    })]
    NotActive(NotActiveReason),
    #[error("the user does not hold this coupon")]
    NotOwner,
    #[error("the coupon is already redeemed")]
    AlreadyRedeemed,
    #[error("the coupon has expired")]
    Expired,
    #[error("the coupon is not redeemed")]
    NotRedeemed,
    #[error("the coupon was redeemed for another order")]
    OrderMismatch,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("the campaign has issued coupons; close it instead")]
    CampaignHasCoupons,
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    #[error("the request body must be JSON with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("the request was not received and answered in time")]
    RequestTimeout,
    #[error("too many requests in flight; retry shortly")]
    Overloaded,
    #[error("temporarily unavailable; retry shortly")]
    Unavailable,
    /// Fail-stop after a failed write: nothing is written until an operator restarts
    /// the server (after freeing space). Not a blip: no `Retry-After`.
    #[error("the store failed a write; this server accepts no writes until it is restarted")]
    StoreFailed,
    /// The cause is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::InvalidCode(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::NotOwner => StatusCode::FORBIDDEN,
            ApiError::RouteNotFound
            | ApiError::CampaignNotFound
            | ApiError::CouponNotFound
            | ApiError::ContactNotFound
            | ApiError::SubscriptionNotFound
            | ApiError::DeadLetterNotFound
            | ApiError::LiveEventsDisabled => StatusCode::NOT_FOUND,
            ApiError::MailDisabled => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyIssued { .. }
            | ApiError::SoldOut
            | ApiError::NotActive(_)
            | ApiError::AlreadyRedeemed
            | ApiError::Expired
            | ApiError::NotRedeemed
            | ApiError::OrderMismatch
            | ApiError::CampaignHasCoupons => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::StoreFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::CampaignNotFound => "campaign_not_found",
            ApiError::CouponNotFound => "coupon_not_found",
            ApiError::InvalidCode(_) => "invalid_code",
            ApiError::ContactNotFound => "contact_not_found",
            ApiError::SubscriptionNotFound => "subscription_not_found",
            ApiError::DeadLetterNotFound => "dead_letter_not_found",
            ApiError::MailDisabled => "mail_disabled",
            ApiError::LiveEventsDisabled => "live_events_disabled",
            ApiError::AlreadyIssued { .. } => "already_issued",
            ApiError::SoldOut => "sold_out",
            ApiError::NotActive(_) => "not_active",
            ApiError::NotOwner => "not_owner",
            ApiError::AlreadyRedeemed => "already_redeemed",
            ApiError::Expired => "expired",
            ApiError::NotRedeemed => "not_redeemed",
            ApiError::OrderMismatch => "order_mismatch",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::CampaignHasCoupons => "campaign_has_coupons",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Overloaded => "overloaded",
            ApiError::Unavailable => "unavailable",
            ApiError::StoreFailed => "store_failed",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// The RFC 9457 body.
    pub fn problem(&self) -> Vec<u8> {
        let status = self.status();
        let mut body = json!({
            "type": format!("urn:firstcome:problem:{}", self.code()),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
        });
        if let ApiError::AlreadyIssued { coupon_ids } = &self {
            body["coupon_ids"] = json!(coupon_ids);
        }
        body.to_string().into_bytes()
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Logs an internal error, at most one line a second (`OncePerSecond`): a damaged
/// record read by every listing must not log a line per request.
fn log_internal(cause: &str) {
    static LIMIT: OncePerSecond = OncePerSecond::new();
    if let Some(skipped) = LIMIT.allow() {
        tracing::error!(%cause, skipped, "internal error");
    }
}

/// The `code` of a problem response, left in its extensions for the metrics layer.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            log_internal(cause);
        }
        let mut response = (status, self.problem()).into_response();
        response.extensions_mut().insert(ProblemCode(self.code()));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::CampaignNotFound => ApiError::CampaignNotFound,
            EngineError::CouponNotFound => ApiError::CouponNotFound,
            EngineError::InvalidCode(e) => ApiError::InvalidCode(e),
            EngineError::CampaignHasCoupons => ApiError::CampaignHasCoupons,
            EngineError::InvalidCampaign(m) | EngineError::InvalidInput(m) => {
                ApiError::InvalidRequest(m)
            }
            EngineError::ContactNotFound => ApiError::ContactNotFound,
            EngineError::SubscriptionNotFound => ApiError::SubscriptionNotFound,
            EngineError::DeadLetterNotFound => ApiError::DeadLetterNotFound,
            EngineError::MailDisabled => ApiError::MailDisabled,
            EngineError::Overloaded => ApiError::Overloaded,
            // The actor's failure is logged where it happened (the supervisor).
            EngineError::Unavailable(_) => ApiError::Unavailable,
            // Shutting down: retry against the next instance or after the restart.
            EngineError::ShuttingDown => ApiError::Unavailable,
            // I/O failure (the store is now fail-stop), a corrupt record: an operator
            // has to act, so no Retry-After invitation.
            e @ EngineError::Storage(_) => ApiError::Internal(e.to_string()),
            // Logged once by the committer when it happened, not once per request.
            EngineError::StoreFailed => ApiError::StoreFailed,
            e @ (EngineError::Actor(_) | EngineError::Mail(_)) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            r => ApiError::InvalidRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::InvalidRequest(r.body_text())
    }
}

/// `axum::extract::Path` whose rejection (e.g. a segment that is not UTF-8 after
/// percent-decoding) is a problem+json 400 like every other bad input.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
