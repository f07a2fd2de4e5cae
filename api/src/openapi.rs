//! The OpenAPI 3.1 document of the API, generated from the handlers, served at
//! `GET /openapi.json`, with a Swagger UI reference at `GET /docs`.
//!
//! # Why utoipa (5, with utoipa-axum 0.2), not aide
//!
//! - The route table is built from the documented handlers: [`routes`] registers each
//!   handler through utoipa-axum's `routes!`, which takes the method and the path from the
//!   handler's `#[utoipa::path]` attribute. A route cannot be added there without its
//!   operation, and [`crate::router`] adds nothing but this table, the UI and layers.
//! - The handlers stay as they are. aide documents a handler through traits on its
//!   extractors and return type (`OperationInput`, `OperationOutput`), so our own
//!   extractors (`Admin`, `Issuer`, `ApiPath`), `Result<Json<T>, JsonRejection>` bodies
//!   and the `Response`s rendered by `idempotency` would each need impls, and the error
//!   codes would still be written by hand.
//! - utoipa's derive reads the serde attributes we already have (`deny_unknown_fields`
//!   becomes `additionalProperties: false`, `flatten`, `skip_serializing_if`,
//!   `rename_all`), and supports response links, which schemathesis' stateful phase
//!   follows.
//! - The UI ships inside a crate: utoipa-swagger-ui's `vendored` feature embeds the
//!   Swagger UI files in the binary, so neither the build nor a browser fetches anything
//!   from a CDN (and the online validator badge, which would call swagger.io, is off).
//! - Why 5 and not 6: utoipa-axum 0.3 and utoipa-swagger-ui 10, the releases for utoipa 6,
//!   need Rust 1.88, above this workspace's `rust-version` (1.85); utoipa-axum 0.2 and
//!   utoipa-swagger-ui 9 are built for axum 0.8 on utoipa 5.
//!
//! # What utoipa 5.5 gets wrong, and how this crate works around it
//!
//! - A response link serializes its fields in snake case: [`document`] renames them.
//! - `jiff::Timestamp` (its `jiff_0_2` feature) comes out as a reference to a `String`
//!   schema: the DTOs say `value_type = String, format = DateTime`.
//! - `#[param(pattern = ...)]` takes only a literal, and `#[param(schema_with)]` drops the
//!   description and `required`: parameters carry literal patterns, which a test holds to
//!   `dto`'s constants.
//!
//! # Errors
//!
//! Every operation lists the problem `code`s it can answer with, grouped by status, with
//! the status and the codes as enums in the schema and a real body per code as an
//! example. The lists are built from [`ApiError`] values ([`problems!`]), so status, code
//! and detail come from `error.rs` itself.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, OpenApi, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::dto::{LiveDeletedJson, LiveJson};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::ApiError;
use crate::problems::*;
use crate::routes::{campaigns, coupons, export, live, mail, ops};
use crate::state::AppState;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where the interactive reference is served (its files under `/docs/`).
pub const UI_PATH: &str = "/docs";
/// The one security scheme: `Authorization: Bearer <key>`.
pub const BEARER: &str = "bearer";

/// The route table: every route of the API, each from its documented handler. One
/// `routes!` per path, since axum takes each path once.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(
            campaigns::get,
            campaigns::update,
            campaigns::delete
        ))
        .routes(routes!(campaigns::close))
        .routes(routes!(campaigns::stats))
        .routes(routes!(campaigns::issue))
        .routes(routes!(export::coupons))
        .routes(routes!(live::campaign_events))
        .routes(routes!(live::store_events))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(campaigns::issue_batch))
                // Inside the router's server-wide limit, so this one is what applies.
                .layer(axum::extract::DefaultBodyLimit::max(
                    campaigns::ISSUE_BATCH_MAX_BODY_BYTES,
                )),
        )
        .routes(routes!(coupons::get))
        .routes(routes!(coupons::redeem))
        .routes(routes!(coupons::cancel_redemption))
        .routes(routes!(coupons::of_user))
        .routes(routes!(coupons::get_by_code))
        .routes(routes!(coupons::redeem_by_code))
        .routes(routes!(coupons::cancel_redemption_by_code))
        .routes(routes!(
            mail::get_contact,
            mail::put_contact,
            mail::delete_contact
        ))
        .routes(routes!(mail::subscriptions))
        .routes(routes!(mail::subscribe))
        .routes(routes!(mail::unsubscribe))
        .routes(routes!(mail::dead_letters))
        .routes(routes!(mail::retry_dead_letter))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi_json))
}

/// The whole document, as `GET /openapi.json` serves it.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(build()).unwrap_or_default();
    fix_links(&mut doc);
    doc
}

/// utoipa 5.5 serializes a Link's fields in snake case (`operation_id`, `request_body`),
/// where OpenAPI says `operationId`, `requestBody`: rename them in every response.
fn fix_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let links = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(v) = link.remove(from) {
                link.insert(to.into(), v);
            }
        }
    }
}

fn build() -> OpenApi {
    let mut doc = routes().into_openapi();
    doc.info = InfoBuilder::new()
        .title("firstcome")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .build();
    doc.tags = Some(
        [
            (
                "campaigns",
                "Create, change and read campaigns; issue coupons.",
            ),
            (
                "coupons",
                "Read, redeem and cancel the redemption of coupons.",
            ),
            (
                "mail",
                "Users' contacts and subscriptions; mail given up on.",
            ),
            (
                "live",
                "Server-sent events of campaigns' durable public state; no key.",
            ),
            (
                "ops",
                "Liveness, readiness, metrics and this document; no key.",
            ),
        ]
        .into_iter()
        .map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })
        .collect(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key. The operation's role says which: `admin` (campaign \
                     management, statistics, dead letters, and everything an issuer may \
                     do) or `issuer` (issue, redeem, reads; the admin key works too).",
                ))
                .build(),
        ),
    );
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    // The data of live events: named by the event streams' descriptions, which no
    // schema can reference (a stream is text).
    for (name, schema) in [
        (LiveJson::name(), LiveJson::schema()),
        (LiveDeletedJson::name(), LiveDeletedJson::schema()),
    ] {
        components.schemas.insert(name.into_owned(), schema);
    }
    cross_field_rules(&mut components.schemas);
    doc
}

const DESCRIPTION: &str = "Exact, durable first-come-first-served coupon issuance.\n\n\
Every error is an RFC 9457 problem (`application/problem+json`) with a stable `code`; \
each operation lists its codes by status. `POST .../issue`, `/redeem` and \
`/cancel-redemption` take an optional `Idempotency-Key`: a retry with the same key and \
request gets the first response again, byte for byte, with `idempotent-replayed: true`.";

/// Rules across fields, which the derive cannot say: each wraps a request schema in
/// `allOf: [fields, rule]`. Written with `properties` alone (absent counts as `null`),
/// without `not`, so that generators and validators read them alike.
fn cross_field_rules(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let only = |field: &str, schema: ObjectBuilder| ObjectBuilder::new().property(field, schema);
    let given = |field: &str, t: Type| {
        ObjectBuilder::new()
            .property(field, ObjectBuilder::new().schema_type(t))
            .required(field)
    };
    let rules: [(&str, &str, Schema); 4] = [
        (
            "CreateCampaign",
            "`coupon_valid_for_secs` or `coupon_valid_until`, not both.",
            AnyOfBuilder::new()
                .item(only("coupon_valid_for_secs", null()))
                .item(only("coupon_valid_until", null()))
                .into(),
        ),
        (
            "UpdateCampaign",
            "At least one of `paused`, `ends_at`, `total_stock`, `name`, not `null`.",
            AnyOfBuilder::new()
                .item(given("paused", Type::Boolean))
                .item(given("ends_at", Type::String))
                .item(given("total_stock", Type::Integer))
                .item(given("name", Type::String))
                .into(),
        ),
        (
            "IssueBody",
            "`locale` only with `email`.",
            AnyOfBuilder::new()
                .item(given("email", Type::String))
                .item(only("locale", null()))
                .into(),
        ),
        (
            "Discount",
            "A `percent` discount's `value` is at most 100.",
            AnyOfBuilder::new()
                .item(only(
                    "kind",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["fixed"])),
                ))
                .item(only(
                    "value",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .maximum(Some(100)),
                ))
                .into(),
        ),
    ];
    for (name, rule, schema) in rules {
        // A rename in dto/ without one here leaves a rule out: a unit test below reads
        // every rule back from the document.
        let Some(fields) = schemas.remove(name) else {
            tracing::error!(schema = name, "OpenAPI: no schema to add a rule to");
            continue;
        };
        let description = match &fields {
            RefOr::T(Schema::Object(o)) => o.description.clone(),
            _ => None,
        };
        let description = Some(match description {
            Some(d) => format!("{d}\n\n{rule}"),
            None => rule.to_string(),
        });
        schemas.insert(
            name.into(),
            AllOfBuilder::new()
                .item(fields)
                .item(schema)
                .description(description)
                .into(),
        );
    }
}

static DOCUMENT_JSON: LazyLock<Result<Bytes, String>> = LazyLock::new(|| {
    serde_json::to_vec(&document())
        .map(Bytes::from)
        .map_err(|e| e.to_string())
});

/// The OpenAPI 3.1 document of this API (this document).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json",
            body = Object),
        Internal,
    )
)]
pub(crate) async fn openapi_json() -> Result<impl IntoResponse, ApiError> {
    // Built once per process: the document is a function of the code.
    let json = DOCUMENT_JSON
        .as_ref()
        .map_err(|e| ApiError::Internal(format!("serializing the OpenAPI document: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json.clone()))
}

/// The Swagger UI at `/docs`, reading `/openapi.json`. Its files are embedded in the
/// binary; the online validator badge (which would call out to swagger.io) is off.
pub(crate) fn ui<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(UI_PATH)
        .config(
            Config::new([DOCUMENT_PATH])
                .validator_url("none")
                .try_it_out_enabled(true),
        )
        .into()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::dto;
    use crate::error::PROBLEM_JSON;

    fn patterns(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("pattern", serde_json::Value::String(p)) => {
                            out.insert(p.clone());
                        }
                        _ => patterns(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| patterns(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_pattern_in_the_document_is_one_of_dtos_rules() {
        // The parameters' patterns are literals in `#[param]`: this holds them to the
        // constants the body schemas read.
        let mut found = BTreeSet::new();
        patterns(&document(), &mut found);
        let known: BTreeSet<String> = [
            dto::USER_ID_PATTERN,
            dto::STORE_ID_PATTERN,
            dto::NAME_PATTERN,
            dto::CAMPAIGN_ID_PATTERN,
            dto::COUPON_ID_PATTERN,
            dto::LOCALE_PATTERN,
            dto::CODE_PATTERN,
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(found, known);
    }

    #[test]
    fn every_cross_field_rule_is_in_the_document() {
        let doc = document();
        for name in ["CreateCampaign", "UpdateCampaign", "IssueBody", "Discount"] {
            let all_of = &doc["components"]["schemas"][name]["allOf"];
            assert_eq!(all_of.as_array().map(Vec::len), Some(2), "{name}");
            assert_eq!(all_of[0]["additionalProperties"], false, "{name}");
        }
    }

    #[test]
    fn the_problem_schema_names_every_field_a_problem_body_has() {
        let body: serde_json::Value = serde_json::from_slice(
            &ApiError::AlreadyIssued {
                coupon_ids: vec!["x".into()],
            }
            .problem(),
        )
        .unwrap();
        let schema = serde_json::to_value(Problem::schema()).unwrap();
        let mut fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        let mut described: Vec<_> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        fields.sort();
        described.sort();
        assert_eq!(fields, described);
    }

    #[test]
    fn failures_are_grouped_by_status_with_their_codes() {
        let r = problem_responses(Replay::Decided, &[KEY, ADMIN, BODY, &[ApiError::SoldOut]]);
        let r = serde_json::to_value(r).unwrap();
        let statuses: Vec<_> = r.as_object().unwrap().keys().cloned().collect();
        assert_eq!(statuses, ["400", "401", "403", "409", "413", "415"]);
        let codes = &r["401"]["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"]["code"];
        assert_eq!(codes["enum"], serde_json::json!(["unauthorized"]));
        assert!(r["401"]["headers"]["WWW-Authenticate"].is_object());
        assert!(r["409"]["headers"]["idempotent-replayed"].is_object());
        assert_eq!(
            r["409"]["content"][PROBLEM_JSON]["examples"]["sold_out"]["value"]["code"],
            "sold_out"
        );
    }
}
