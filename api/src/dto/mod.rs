//! The JSON shapes of the API, one module per resource. Requests deny unknown fields,
//! so a misspelt field is a 400, not a silently ignored setting.
//!
//! Everything is re-exported here, so `crate::dto::X` is the one path routes use.

mod campaigns;
mod coupons;
mod live;
mod mail;
mod page;

pub use campaigns::{
    BatchIssuedJson, BatchResultJson, CampaignJson, CampaignPage, CreateCampaign, DayCounts,
    DayJson, DiscountJson, DiscountKindJson, IssueBatchBody, IssueBody, IssuedJson, StatsJson,
    UpdateCampaign,
};
pub use coupons::{
    CampaignCouponsQuery, CouponJson, CouponPage, CouponUseRequest, DEFAULT_EXPORT_PAGE,
    MAX_EXPORT_PAGE, UserCouponsQuery,
};
pub use live::{LiveDeletedJson, LiveJson};
pub use mail::{
    ContactJson, ContactRequest, DeadLetterPage, MailJobJson, SubscriptionJson, SubscriptionPage,
    SubscriptionRequest,
};
pub use page::{DEFAULT_PAGE, MAX_PAGE, Page, PageItem, PageQuery};

use jiff::Timestamp;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::error::ApiError;

pub const MAX_USER_ID_CHARS: usize = 128;

// Patterns for the OpenAPI document, in the dialect that ECMA-262, Python `re` and Rust
// `regex` read alike (`\xNN`, `\uNNNN`, classes, no look-around). Each restates a rule
// checked in code (named beside it), which stays the judge.

/// [`validate_user_id`]: no control characters (Unicode `Cc`: C0, DEL, C1). With
/// lengths 1 to 128.
pub const USER_ID_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]+$";
/// [`validate_store_id`]: printable ASCII. With lengths 1 to 128.
pub const STORE_ID_PATTERN: &str = r"^[!-~]+$";
/// A campaign name (`NewCampaign::validate`): no control characters and at least one
/// character that is not white space (`str::trim`'s White_Space), so not blank.
pub const NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$";
/// `firstcome_engine::is_campaign_id`: 16 lower-case Crockford base32 symbols.
pub const CAMPAIGN_ID_PATTERN: &str = r"^[0-9a-hjkmnp-tv-z]{16}$";
/// `firstcome_engine::parse_coupon_id`: `{campaign_id}-{seq}`, no leading zeros.
pub const COUPON_ID_PATTERN: &str = r"^[0-9a-hjkmnp-tv-z]{16}-(0|[1-9][0-9]{0,18})$";
/// `firstcome_engine::CodeError`'s rules, loosely: the symbols a code may be typed with
/// (Crockford's, any case, its look-alikes, the check symbols, dashes). With lengths 14
/// to 27; the check character is the server's to judge.
pub const CODE_PATTERN: &str = r"^[0-9A-Za-z*~$=-]+$";
/// `Contact::new`: a language tag such as `en` or `ko-KR`, 2 to 35 characters.
pub const LOCALE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9-]{1,34}$";

// `#[schema(pattern = ...)]` takes only a literal, so the fields that carry these
// patterns get their schema from these functions (`schema_with`), which read the
// constants above.
fn text(lengths: Option<(usize, usize)>, pattern: &str, nullable: bool) -> Object {
    let t = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(t)
        .min_length(lengths.map(|l| l.0))
        .max_length(lengths.map(|l| l.1))
        .pattern(Some(pattern))
        .build()
}

pub(crate) fn user_id_schema() -> Object {
    text(Some((1, MAX_USER_ID_CHARS)), USER_ID_PATTERN, false)
}

/// `order_id`: as a `user_id`, or `null`.
pub(crate) fn order_id_or_null_schema() -> Object {
    text(Some((1, 128)), USER_ID_PATTERN, true)
}

pub(crate) fn store_id_schema() -> Object {
    text(Some((1, 128)), STORE_ID_PATTERN, false)
}

pub(crate) fn store_id_or_null_schema() -> Object {
    text(Some((1, 128)), STORE_ID_PATTERN, true)
}

pub(crate) fn name_schema() -> Object {
    text(Some((1, 200)), NAME_PATTERN, false)
}

pub(crate) fn name_or_null_schema() -> Object {
    text(Some((1, 200)), NAME_PATTERN, true)
}

pub(crate) fn campaign_id_schema() -> Object {
    text(None, CAMPAIGN_ID_PATTERN, false)
}

pub(crate) fn coupon_id_schema() -> Object {
    text(None, COUPON_ID_PATTERN, false)
}

pub(crate) fn locale_or_null_schema() -> Object {
    text(None, LOCALE_PATTERN, true)
}

fn string_enum(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

// The JSON carries these as `&'static str` from the engine's `as_str`, which has no list
// of its values to read; a value missing here fails schemathesis' response checks in CI.
pub(crate) fn campaign_status_schema() -> Object {
    string_enum(&["scheduled", "active", "paused", "sold_out", "ended"])
}

pub(crate) fn coupon_status_schema() -> Object {
    string_enum(&["issued", "redeemed", "expired"])
}

pub(crate) fn issue_outcome_schema() -> Object {
    string_enum(&["issued", "already_issued", "sold_out", "not_active"])
}

pub(crate) fn not_active_reason_schema() -> Object {
    string_enum(&["not_started", "ended", "paused"])
}

/// `user_ids` of a bulk issue: 1 to 1,000 user ids.
pub(crate) fn user_ids_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(user_id_schema())
        .min_items(Some(1))
        .max_items(Some(firstcome_engine::MAX_BATCH_USERS))
        .build()
}

pub(crate) fn mail_kind_schema() -> Object {
    string_enum(&["confirmation", "reminder", "new_campaign"])
}

/// `user_id` is 1 to 128 printable characters (no control characters).
pub fn validate_user_id(user_id: &str) -> Result<(), ApiError> {
    let n = user_id.chars().count();
    if n == 0 || n > MAX_USER_ID_CHARS || user_id.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "user_id must be 1 to 128 printable characters".into(),
        ));
    }
    Ok(())
}

/// `store_id` as campaigns take it: 1 to 128 printable ASCII characters.
pub fn validate_store_id(store_id: &str) -> Result<(), ApiError> {
    if store_id.is_empty()
        || store_id.len() > 128
        || !store_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::InvalidRequest(
            "store_id must be 1 to 128 printable ASCII characters".into(),
        ));
    }
    Ok(())
}

fn ts(us: i64) -> Option<Timestamp> {
    Timestamp::from_microsecond(us).ok()
}
