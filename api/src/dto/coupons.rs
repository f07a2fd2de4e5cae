//! Coupons: as a user holds them, redeeming and cancelling, and listing a user's.

use firstcome_engine::{Coupon, CouponStatus};
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
        match self.status.as_deref() {
            None => Ok(None),
            Some("issued") => Ok(Some(CouponStatus::Issued)),
            Some("redeemed") => Ok(Some(CouponStatus::Redeemed)),
            Some("expired") => Ok(Some(CouponStatus::Expired)),
            Some(_) => Err(ApiError::InvalidRequest(
                "status must be issued, redeemed or expired".into(),
            )),
        }
    }
}
