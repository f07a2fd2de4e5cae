//! The handlers, one module per resource, each documented with `#[utoipa::path]` (the
//! route table in `openapi::routes` is built from those attributes).

pub mod campaigns;
pub mod coupons;
pub mod export;
pub mod live;
pub mod mail;
pub mod ops;

use utoipa::IntoParams;

// Parameters that several operations share, for `params(...)`. They describe what the
// handlers read through `ApiPath`, `Query` and `idempotency::key`; nothing extracts
// them. The patterns are literals (`#[param(pattern)]` takes no constant; its
// `schema_with` would drop the description and `required`): the `openapi` tests check
// them against `dto`'s constants.

/// `{id}` of a campaign.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct CampaignId {
    /// A campaign id (16 lower-case Crockford base32 symbols); any other is
    /// `404 campaign_not_found`.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{16}$")]
    id: String,
}

/// `{id}` of a coupon.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct CouponId {
    /// A coupon id, `{campaign_id}-{seq}`; any other is `404 coupon_not_found`.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{16}-(0|[1-9][0-9]{0,18})$")]
    id: String,
}

/// `{code}` of a coupon.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct CouponCode {
    /// A coupon code such as `7Q2M-K9XD-3HWT-AR`, as people type it: any case, dashes
    /// anywhere or none, `O` read as `0`, `I` and `L` as `1`. A wrong check character
    /// (a typo) or anything that is not 14 code symbols is `400 invalid_code`; a code of
    /// no coupon here is `404 coupon_not_found`.
    #[param(min_length = 14, max_length = 27, pattern = "^[0-9A-Za-z*~$=-]+$")]
    code: String,
}

/// `{user_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct UserId {
    /// 1 to 128 characters, no control characters (else `400 invalid_request`).
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    user_id: String,
}

/// `{user_id}/{store_id}` of a subscription.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct SubscriptionPath {
    /// 1 to 128 characters, no control characters.
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    user_id: String,
    /// 1 to 128 printable ASCII characters.
    #[param(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    store_id: String,
}

/// The optional `Idempotency-Key` of issue, redeem and cancel-redemption.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct IdempotencyKey {
    /// 1 to 255 visible ASCII characters. A retry with the same key and the same request
    /// gets the first answer again (`idempotent-replayed: true`); the same key with
    /// another request is `422 idempotency_key_reused`. Kept at least 24 hours.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255,
        pattern = r"^[!-~]+$"
    )]
    key: Option<String>,
}

/// `?cursor&limit` of `GET /v1/campaigns`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct CampaignsQuery {
    /// The `next_cursor` of the page before (a campaign id).
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{16}$")]
    cursor: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// `?cursor&limit` of a list whose cursor is any id (store ids, job ids).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PageParams {
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}
