//! Coupons: as a user holds them, redeeming and cancelling, and listing a user's.

use firstcome_engine::{CampaignCouponFilter, Coupon, CouponStatus, parse_coupon_id};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Page, PageItem, PageQuery, validate_user_id};
use crate::error::ApiError;

// Every field is sent, `null` when unset: `required = true` says so for the `Option`s.
/// A coupon as its user holds it. `redeemed_at` and `order_id` are set while it is
/// redeemed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Coupon)]
pub struct CouponJson {
    /// `{campaign_id}-{seq}`, used in the API.
    #[schema(schema_with = super::coupon_id_schema)]
    pub id: String,
    /// What a customer types at a till: 13 Crockford base32 symbols and a check
    /// character.
    pub code: String,
    #[schema(schema_with = super::campaign_id_schema)]
    pub campaign_id: String,
    pub user_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
    /// Fixed when the coupon is issued; `null`: never.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub expires_at: Option<Timestamp>,
    /// The status as of now (an issued coupon past `expires_at` is `expired`).
    #[schema(schema_with = super::coupon_status_schema)]
    pub status: &'static str,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub redeemed_at: Option<Timestamp>,
    #[schema(required = true)]
    pub order_id: Option<String>,
}

impl From<Coupon> for CouponJson {
    fn from(c: Coupon) -> Self {
        CouponJson {
            id: c.id,
            code: c.code,
            campaign_id: c.campaign_id,
            user_id: c.user_id,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            status: c.status.as_str(),
            redeemed_at: c.redeemed_at,
            order_id: c.order_id,
        }
    }
}

impl PageItem for CouponJson {
    const FIELD: &'static str = "coupons";
}

/// `GET /v1/users/{user_id}/coupons`.
pub type CouponPage = Page<CouponJson>;

/// Body of redeem and cancel-redemption.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CouponUse)]
pub struct CouponUseRequest {
    /// The coupon's holder.
    #[schema(schema_with = super::user_id_schema)]
    pub user_id: String,
    /// Redeem keeps it; cancel-redemption with it undoes only that order's redemption.
    #[schema(schema_with = super::order_id_or_null_schema)]
    pub order_id: Option<String>,
}

impl CouponUseRequest {
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_user_id(&self.user_id)?;
        if let Some(o) = &self.order_id {
            let n = o.chars().count();
            if n == 0 || n > 128 || o.chars().any(char::is_control) {
                return Err(ApiError::InvalidRequest(
                    "order_id must be 1 to 128 printable characters".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A coupon's status, as the `status` filter takes it.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a schema only
pub(crate) enum CouponStatusName {
    Issued,
    Redeemed,
    Expired,
}

/// `GET /v1/campaigns/{id}/coupons`: which coupons, from where, how many.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CampaignCouponsQuery {
    /// The `next_cursor` of the page before: a coupon id of this campaign. Coupons come
    /// in seq order (the order they were issued in).
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{16}-(0|[1-9][0-9]{0,18})$")]
    pub cursor: Option<String>,
    /// JSON: the page size, 1 to 1,000 (default 100). CSV: at most this many rows
    /// (default: every coupon after the cursor).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only coupons with this status as of now.
    #[param(inline, value_type = Option<CouponStatusName>)]
    pub status: Option<String>,
    /// Only coupons issued at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub issued_after: Option<Timestamp>,
    /// Only coupons issued strictly before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub issued_before: Option<Timestamp>,
}

/// The JSON page size of an export.
pub const DEFAULT_EXPORT_PAGE: usize = 100;
pub const MAX_EXPORT_PAGE: usize = 1000;

impl CampaignCouponsQuery {
    pub fn filter(&self) -> Result<CampaignCouponFilter, ApiError> {
        Ok(CampaignCouponFilter {
            status: parse_status(self.status.as_deref())?,
            issued_from_us: self.issued_after.map(|t| t.as_microsecond()),
            issued_before_us: self.issued_before.map(|t| t.as_microsecond()),
        })
    }

    /// 1 to [`MAX_EXPORT_PAGE`], or `None` when not given.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.limit {
            Some(n) if !(1..=MAX_EXPORT_PAGE).contains(&n) => Err(ApiError::InvalidRequest(
                "limit must be between 1 and 1000".into(),
            )),
            n => Ok(n),
        }
    }

    /// The seq the cursor names: a coupon of `campaign_id`.
    pub fn after(&self, campaign_id: &str) -> Result<Option<u64>, ApiError> {
        let Some(c) = &self.cursor else {
            return Ok(None);
        };
        match parse_coupon_id(c) {
            Some((cid, seq)) if cid == campaign_id => Ok(Some(seq)),
            _ => Err(ApiError::InvalidRequest(
                "cursor is not a coupon id of this campaign".into(),
            )),
        }
    }
}

fn parse_status(status: Option<&str>) -> Result<Option<CouponStatus>, ApiError> {
    match status {
        None => Ok(None),
        Some("issued") => Ok(Some(CouponStatus::Issued)),
        Some("redeemed") => Ok(Some(CouponStatus::Redeemed)),
        Some("expired") => Ok(Some(CouponStatus::Expired)),
        Some(_) => Err(ApiError::InvalidRequest(
            "status must be issued, redeemed or expired".into(),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserCouponsQuery {
    /// The `next_cursor` of the page before (a coupon id).
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{16}-(0|[1-9][0-9]{0,18})$")]
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// Only coupons with this status as of now.
    #[param(inline, value_type = Option<CouponStatusName>)]
    pub status: Option<String>,
    /// Only coupons of this campaign.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{16}$")]
    pub campaign_id: Option<String>,
}

impl UserCouponsQuery {
    pub fn page(&self) -> PageQuery {
        PageQuery {
            cursor: self.cursor.clone(),
            limit: self.limit,
        }
    }

    pub fn status(&self) -> Result<Option<CouponStatus>, ApiError> {
        parse_status(self.status.as_deref())
    }
}
