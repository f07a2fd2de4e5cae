//! Coupons: as a user holds them, redeeming and cancelling, and listing a user's.

use firstcome_engine::{Coupon, CouponStatus};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Page, PageItem, PageQuery, validate_user_id};
use crate::error::ApiError;

#[derive(Debug, Serialize)]
pub struct CouponJson {
    pub id: String,
    pub code: String,
    pub campaign_id: String,
    pub user_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub status: &'static str,
    pub redeemed_at: Option<Timestamp>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponUseRequest {
    pub user_id: String,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCouponsQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    pub status: Option<String>,
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
