//! The JSON shapes of the API. Requests deny unknown fields, so a misspelt field is a
//! 400, not a silently ignored setting.

use firstcome_engine::mail::{Contact, ContactRecord, MailJob};
use firstcome_engine::{
    CampaignPatch, CampaignStats, CampaignView, Coupon, CouponStatus, CouponValidity, DayStats,
    Discount, DiscountKind, NewCampaign,
};
use firstcome_storage::Validity;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    pub name: String,
    pub total_stock: u64,
    pub per_user_limit: Option<u32>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub coupon_valid_for_secs: Option<u64>,
    pub coupon_valid_until: Option<Timestamp>,
    pub store_id: Option<String>,
    pub discount: Option<DiscountJson>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscountKindJson {
    Fixed,
    Percent,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscountJson {
    pub kind: DiscountKindJson,
    pub value: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_order_amount: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_discount_amount: Option<u64>,
}

impl From<&Discount> for DiscountJson {
    fn from(d: &Discount) -> Self {
        DiscountJson {
            kind: match d.kind {
                DiscountKind::Fixed => DiscountKindJson::Fixed,
                DiscountKind::Percent => DiscountKindJson::Percent,
            },
            value: d.value,
            min_order_amount: d.min_order_amount,
            max_discount_amount: d.max_discount_amount,
        }
    }
}

impl TryFrom<CreateCampaign> for NewCampaign {
    type Error = ApiError;

    fn try_from(c: CreateCampaign) -> Result<Self, ApiError> {
        let validity = match (c.coupon_valid_for_secs, c.coupon_valid_until) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest(
                    "give coupon_valid_for_secs or coupon_valid_until, not both".into(),
                ));
            }
            (Some(s), None) => CouponValidity::ForSecs(s),
            (None, Some(t)) => CouponValidity::Until(t),
            (None, None) => CouponValidity::UntilCampaignEnds,
        };
        Ok(NewCampaign {
            name: c.name,
            total_stock: c.total_stock,
            per_user_limit: c.per_user_limit.unwrap_or(1),
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            validity,
            store_id: c.store_id,
            discount: c.discount.map(|d| Discount {
                kind: match d.kind {
                    DiscountKindJson::Fixed => DiscountKind::Fixed,
                    DiscountKindJson::Percent => DiscountKind::Percent,
                },
                value: d.value,
                min_order_amount: d.min_order_amount,
                max_discount_amount: d.max_discount_amount,
            }),
        })
    }
}

fn ts(us: i64) -> Option<Timestamp> {
    Timestamp::from_microsecond(us).ok()
}

#[derive(Debug, Serialize)]
pub struct CampaignJson {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub total_stock: u64,
    pub issued: u64,
    pub remaining: u64,
    pub per_user_limit: u32,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub coupon_valid_for_secs: Option<u64>,
    pub coupon_valid_until: Option<Timestamp>,
    pub store_id: Option<String>,
    pub discount: Option<DiscountJson>,
    pub created_at: Option<Timestamp>,
}

impl From<CampaignView> for CampaignJson {
    fn from(v: CampaignView) -> Self {
        let remaining = v.remaining();
        let r = v.record;
        let (for_secs, until) = match r.validity {
            Validity::UntilCampaignEnds => (None, None),
            Validity::ForSecs(s) => (Some(s), None),
            Validity::Until(t) => (None, ts(t)),
        };
        CampaignJson {
            id: r.id,
            name: r.name,
            status: v.status.as_str(),
            total_stock: r.total_stock,
            issued: v.issued,
            remaining,
            per_user_limit: r.per_user_limit,
            starts_at: r.starts_at.and_then(ts),
            ends_at: r.ends_at.and_then(ts),
            coupon_valid_for_secs: for_secs,
            coupon_valid_until: until,
            store_id: r.store_id,
            discount: r.discount.as_ref().map(DiscountJson::from),
            created_at: ts(r.created_at),
        }
    }
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    pub user_id: String,
    /// Sets the user's contact (with `locale`) in the same batch as the decision.
    pub email: Option<String>,
    pub locale: Option<String>,
}

impl IssueRequest {
    pub fn contact(&self) -> Result<Option<Contact>, ApiError> {
        match (&self.email, &self.locale) {
            (Some(e), l) => Ok(Some(Contact::new(e, l.as_deref())?)),
            (None, Some(_)) => Err(ApiError::InvalidRequest(
                "locale is given with email".into(),
            )),
            (None, None) => Ok(None),
        }
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub email: String,
    pub locale: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ContactJson {
    pub user_id: String,
    pub email: String,
    pub locale: Option<String>,
    pub updated_at: Timestamp,
}

impl ContactJson {
    pub fn new(user_id: String, c: ContactRecord) -> ContactJson {
        ContactJson {
            user_id,
            email: c.email,
            locale: c.locale,
            updated_at: Timestamp::from_microsecond(c.updated_at).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    pub user_id: String,
    pub store_id: String,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionJson {
    pub user_id: String,
    pub store_id: String,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionPage {
    pub subscriptions: Vec<SubscriptionJson>,
    pub next_cursor: Option<String>,
}

/// A mail job (queued or dead), as operators see it.
#[derive(Debug, Serialize)]
pub struct MailJobJson {
    pub id: String,
    pub kind: &'static str,
    pub user_id: String,
    pub to: String,
    pub campaign_id: String,
    pub coupon_id: Option<String>,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    pub last_error: Option<String>,
    pub dead_at: Option<Timestamp>,
}

impl From<MailJob> for MailJobJson {
    fn from(j: MailJob) -> Self {
        let t = |us: i64| Timestamp::from_microsecond(us).unwrap_or_default();
        MailJobJson {
            kind: j.kind.as_str(),
            user_id: j.user_id,
            to: j.to,
            campaign_id: j.campaign.id,
            coupon_id: j.coupon.map(|c| c.id),
            attempts: j.attempts,
            created_at: t(j.created_at),
            due_at: t(j.due_at),
            last_error: j.last_error,
            dead_at: j.dead_at.map(t),
            id: j.id,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<MailJobJson>,
    pub next_cursor: Option<String>,
}

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

#[derive(Debug, Serialize)]
pub struct IssuedJson {
    pub coupon: CouponJson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

impl PageQuery {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::InvalidRequest(
                "limit must be between 1 and 100".into(),
            )),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CampaignPage {
    pub campaigns: Vec<CampaignJson>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CouponPage {
    pub coupons: Vec<CouponJson>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCampaign {
    pub paused: Option<bool>,
    pub ends_at: Option<Timestamp>,
    pub total_stock: Option<u64>,
    pub name: Option<String>,
}

impl From<UpdateCampaign> for CampaignPatch {
    fn from(u: UpdateCampaign) -> Self {
        CampaignPatch {
            paused: u.paused,
            ends_at: u.ends_at,
            total_stock: u.total_stock,
            name: u.name,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DayJson {
    pub date: String,
    #[serde(flatten)]
    pub counts: DayCounts,
}

#[derive(Debug, Serialize)]
pub struct DayCounts {
    pub issued: u64,
    pub redeemed: u64,
    pub cancelled: u64,
    pub expired: u64,
}

impl From<DayStats> for DayCounts {
    fn from(d: DayStats) -> Self {
        DayCounts {
            issued: d.issued,
            redeemed: d.redeemed,
            cancelled: d.cancelled,
            expired: d.expired,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StatsJson {
    pub total_stock: u64,
    pub issued: u64,
    pub redeemed: u64,
    pub expired: u64,
    pub remaining: u64,
    pub per_day: Vec<DayJson>,
}

impl From<CampaignStats> for StatsJson {
    fn from(s: CampaignStats) -> Self {
        StatsJson {
            total_stock: s.total_stock,
            issued: s.issued,
            redeemed: s.redeemed,
            expired: s.expired,
            remaining: s.remaining,
            per_day: s
                .per_day
                .into_iter()
                .map(|(d, c)| DayJson {
                    date: d.to_string(),
                    counts: c.into(),
                })
                .collect(),
        }
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
