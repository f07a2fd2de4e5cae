//! The JSON shapes of the API, one module per resource. Requests deny unknown fields,
//! so a misspelt field is a 400, not a silently ignored setting.
//!
//! Everything is re-exported here, so `crate::dto::X` is the one path routes use.

mod campaigns;
mod coupons;
mod mail;
mod page;

pub use campaigns::{
    CampaignJson, CampaignPage, CreateCampaign, DayCounts, DayJson, DiscountJson, DiscountKindJson,
    IssueBody, IssuedJson, StatsJson, UpdateCampaign,
};
pub use coupons::{CouponJson, CouponPage, CouponUseRequest, UserCouponsQuery};
pub use mail::{
    ContactJson, ContactRequest, DeadLetterPage, MailJobJson, SubscriptionJson, SubscriptionPage,
    SubscriptionRequest,
};
pub use page::{DEFAULT_PAGE, MAX_PAGE, Page, PageItem, PageQuery};

use jiff::Timestamp;

use crate::error::ApiError;

pub const MAX_USER_ID_CHARS: usize = 128;

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
