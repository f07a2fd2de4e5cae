//! The problem responses that handlers name in their `#[utoipa::path]` attributes: the
//! [`Problem`] schema, the error lists per concern (`KEY`, `ADMIN`, `BODY`, ...), and
//! [`problems!`], which turns `ApiError` values into documented responses. Below the
//! route handlers, so that they and the document builder (`openapi`) both use it without
//! a cycle.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

use crate::error::{ApiError, PROBLEM_JSON};

/// An RFC 9457 problem, as every error is sent (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:firstcome:problem:{code}`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// For people; switch on `code`.
    pub detail: String,
    /// The stable machine code.
    pub code: String,
    /// With `already_issued` only: the coupons the user holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_ids: Option<Vec<String>>,
}

/// Failures that need a key: `401 unauthorized`.
pub(crate) const KEY: &[ApiError] = &[ApiError::Unauthorized];
/// Failures of an admin-only operation: `401`, and `403 forbidden` for the issuer key.
pub(crate) const ADMIN: &[ApiError] = &[ApiError::Unauthorized, ApiError::Forbidden];
/// A bad path segment or query: `400 invalid_request`.
pub(crate) const INPUT: &[ApiError] = &[ApiError::InvalidRequest(String::new())];
/// A coupon code that is malformed or mistyped: `400 invalid_code`.
pub(crate) const CODE: &[ApiError] = &[ApiError::InvalidCode(
    firstcome_engine::CodeError::CheckMismatch,
)];
/// A JSON body: malformed or breaking a rule, too large, not JSON.
pub(crate) const BODY: &[ApiError] = &[
    ApiError::InvalidRequest(String::new()),
    ApiError::PayloadTooLarge,
    ApiError::UnsupportedMediaType,
];
/// Work for a campaign's actor: the in-flight cap, a restarting actor or a stopping
/// server, a storage failure.
pub(crate) const ACTOR: &[ApiError] = &[
    ApiError::Overloaded,
    ApiError::Unavailable,
    ApiError::Internal(String::new()),
    ApiError::StoreFailed,
];
/// A write through the committer: a stopping server, a storage failure.
pub(crate) const WRITE: &[ApiError] = &[
    ApiError::Unavailable,
    ApiError::Internal(String::new()),
    ApiError::StoreFailed,
];
/// A store read: a storage failure.
pub(crate) const READ: &[ApiError] = &[ApiError::Internal(String::new())];

/// Whether an operation replays stored answers (`Idempotency-Key`): its decided
/// refusals (`403`, `409`) can then carry `idempotent-replayed`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    No,
    Decided,
}

/// `problems!(Name, Replay::No, [GROUP, &[ApiError::X, ...], ...])` defines `Name`, whose
/// responses (for `responses(...)` in `#[utoipa::path]`) are those failures.
macro_rules! problems {
    ($(#[$doc:meta])* $name:ident, $replay:expr, [$($group:expr),* $(,)?]) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::problems::problem_responses($replay, &[$($group),*])
            }
        }
    };
}
pub(crate) use problems;

problems!(
    /// `GET /openapi.json`: only a bug.
    Internal,
    Replay::No,
    [READ]
);

/// The responses for these failures: one per status, its schema the problem with that
/// status and the codes possible there, a real body per code as an example.
pub(crate) fn problem_responses(
    replay: Replay,
    groups: &[&[ApiError]],
) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&ApiError>> = BTreeMap::new();
    for e in groups.iter().flat_map(|g| g.iter()) {
        let same = by_status.entry(e.status().as_u16()).or_default();
        if !same.iter().any(|s| s.code() == e.code()) {
            same.push(e);
        }
    }
    by_status
        .into_iter()
        .map(|(status, errors)| {
            (
                status.to_string(),
                problem_response(replay, status, &errors),
            )
        })
        .collect()
}

fn problem_response(replay: Replay, status: u16, errors: &[&ApiError]) -> RefOr<Response> {
    let codes: Vec<&str> = errors.iter().map(|e| e.code()).collect();
    let description = errors
        .iter()
        .map(|e| format!("`{}`: {}", e.code(), example_detail(e)))
        .collect::<Vec<_>>()
        .join("; ");
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(Problem::name()))
        .item(
            ObjectBuilder::new()
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([status])),
                )
                .property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(codes)),
                ),
        );
    let mut content = ContentBuilder::new().schema(Some(schema));
    for e in errors {
        content = content.examples_from_iter([(
            e.code(),
            utoipa::openapi::example::ExampleBuilder::new().value(Some(example_body(e))),
        )]);
    }
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content.build());
    if status == 401 {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["Bearer"])),
                )
                .description(Some("The scheme to authenticate with."))
                .build(),
        );
    }
    if status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    if replay == Replay::Decided && (status == 403 || status == 409) {
        response = response.header("idempotent-replayed", replayed_header());
    }
    response.build().into()
}

/// `idempotent-replayed: true` on a replayed answer.
pub(crate) fn replayed_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some(["true"])),
        )
        .description(Some(
            "`true` when this is the stored answer to an earlier request with the same \
             `Idempotency-Key`, sent again byte for byte.",
        ))
        .build()
}

/// Errors whose detail is a message of the moment get a typical one in the docs.
fn example_detail(e: &ApiError) -> String {
    match e {
        ApiError::InvalidRequest(_) => {
            "the request breaks a rule (malformed JSON or query, an unknown field, a value \
             out of range); `detail` says which"
                .into()
        }
        e => e.to_string(),
    }
}

fn example_body(e: &ApiError) -> serde_json::Value {
    let example = match e {
        ApiError::InvalidRequest(_) => {
            ApiError::InvalidRequest("user_id must be 1 to 128 printable characters".into())
        }
        ApiError::AlreadyIssued { .. } => ApiError::AlreadyIssued {
            coupon_ids: vec!["4mq7d2k9x1c3b5na-0".into()],
        },
        _ => return serde_json::from_slice(&e.problem()).unwrap_or_default(),
    };
    serde_json::from_slice(&example.problem()).unwrap_or_default()
}
