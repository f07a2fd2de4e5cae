//! Campaigns: create, read, update, issue from, and their stats.

use firstcome_engine::mail::Contact;
use firstcome_engine::{
    BatchOutcome, CampaignPatch, CampaignStats, CampaignView, CouponValidity, DayStats, Discount,
    DiscountKind, IssueOutcome, NewCampaign, Validity,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CouponJson, Page, PageItem, ts, validate_user_id};
use crate::error::ApiError;

// The schema restates the engine's rules (`NewCampaign::validate`) that a schema can
// say, so that clients and fuzzers see them; the engine stays the judge. The rules
// across fields (one validity at most) are added in `openapi::cross_field_rules`.
/// A campaign to create. Times are RFC 3339. Without a validity field a coupon is
/// valid until the campaign's `ends_at` (or forever when it has none).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(schema_with = super::name_schema)]
    pub name: String,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub total_stock: u64,
    /// Coupons one user may hold (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    pub per_user_limit: Option<u32>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    /// After `starts_at` and in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// Each coupon expires this long after it is issued (at most ten years); not with
    /// `coupon_valid_until`.
    #[schema(minimum = 1, maximum = 316_224_000)]
    pub coupon_valid_for_secs: Option<u64>,
    /// Every coupon expires then: in the future and after `starts_at`; not with
    /// `coupon_valid_for_secs`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub coupon_valid_until: Option<Timestamp>,
    /// The store whose subscribers hear of the campaign: 1 to 128 printable ASCII
    /// characters.
    #[schema(schema_with = super::store_id_or_null_schema)]
    pub store_id: Option<String>,
    pub discount: Option<DiscountJson>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DiscountKind)]
pub enum DiscountKindJson {
    Fixed,
    Percent,
}

/// A discount: `fixed` takes `value` off (more than 0), `percent` takes `value` percent
/// (1 to 100) off, at most `max_discount_amount`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Discount)]
pub struct DiscountJson {
    pub kind: DiscountKindJson,
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    pub value: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub min_order_amount: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
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

// Every field is sent, `null` when unset: `required = true` says so for the `Option`s.
/// A campaign with its live counts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Campaign)]
pub struct CampaignJson {
    #[schema(schema_with = super::campaign_id_schema)]
    pub id: String,
    pub name: String,
    /// `ended` wins over `paused`, `paused` over `scheduled`, and all three over
    /// `sold_out`.
    #[schema(schema_with = super::campaign_status_schema)]
    pub status: &'static str,
    pub total_stock: u64,
    pub issued: u64,
    pub remaining: u64,
    pub per_user_limit: u32,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub starts_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub ends_at: Option<Timestamp>,
    #[schema(required = true)]
    pub coupon_valid_for_secs: Option<u64>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub coupon_valid_until: Option<Timestamp>,
    #[schema(required = true)]
    pub store_id: Option<String>,
    #[schema(required = true)]
    pub discount: Option<DiscountJson>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
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

impl PageItem for CampaignJson {
    const FIELD: &'static str = "campaigns";
}

/// `GET /v1/campaigns`.
pub type CampaignPage = Page<CampaignJson>;

/// Changes to a campaign: at least one field that is not `null` (added in
/// `openapi::cross_field_rules`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCampaign {
    /// `true`: issue answers `409 not_active`; `false` resumes.
    pub paused: Option<bool>,
    /// In the future and after `starts_at`; a closed campaign given a later `ends_at`
    /// issues again.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// At least the coupons already issued.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub total_stock: Option<u64>,
    #[schema(schema_with = super::name_or_null_schema)]
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

/// Who asks for a coupon; `locale` only with `email` (added in
/// `openapi::cross_field_rules`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    #[schema(schema_with = super::user_id_schema)]
    pub user_id: String,
    /// Sets the user's contact (with `locale`) in the same batch as the decision,
    /// whatever the outcome.
    #[schema(max_length = 254, format = Email)]
    pub email: Option<String>,
    #[schema(schema_with = super::locale_or_null_schema)]
    pub locale: Option<String>,
}

impl IssueBody {
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

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Issued)]
pub struct IssuedJson {
    pub coupon: CouponJson,
}

/// `POST /v1/campaigns/{id}/issue-batch`: the users to give a coupon, in the order to
/// decide them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueBatchBody {
    /// 1 to 1,000 user ids; one named twice is decided twice (the second time
    /// `already_issued` with a per-user limit of 1).
    #[schema(min_items = 1, max_items = 1000, schema_with = super::user_ids_schema)]
    pub user_ids: Vec<String>,
}

impl IssueBatchBody {
    pub fn validate(&self) -> Result<(), ApiError> {
        let n = self.user_ids.len();
        if n == 0 || n > firstcome_engine::MAX_BATCH_USERS {
            return Err(ApiError::InvalidRequest(format!(
                "user_ids must hold 1 to {} user ids",
                firstcome_engine::MAX_BATCH_USERS
            )));
        }
        self.user_ids.iter().try_for_each(|u| validate_user_id(u))
    }
}

/// The decision for one user of a bulk issue: `coupon` when `issued`, `coupon_ids` when
/// `already_issued`, `reason` when `not_active`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchResult)]
pub struct BatchResultJson {
    pub user_id: String,
    #[schema(schema_with = super::issue_outcome_schema)]
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponJson>,
    /// The coupons the user holds already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::not_active_reason_schema)]
    pub reason: Option<&'static str>,
}

/// The answer to a bulk issue: one result per user, in the order given.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchIssued)]
pub struct BatchIssuedJson {
    /// How many coupons this batch issued.
    pub issued: usize,
    pub results: Vec<BatchResultJson>,
}

impl From<&BatchOutcome> for BatchIssuedJson {
    fn from(b: &BatchOutcome) -> Self {
        let results = b
            .results
            .iter()
            .map(|(user_id, o)| {
                let mut r = BatchResultJson {
                    user_id: user_id.clone(),
                    outcome: o.code(),
                    coupon: None,
                    coupon_ids: None,
                    reason: None,
                };
                match o {
                    IssueOutcome::Issued(c) => r.coupon = Some(c.clone().into()),
                    IssueOutcome::AlreadyIssued { coupon_ids } => {
                        r.coupon_ids = Some(coupon_ids.clone())
                    }
                    IssueOutcome::SoldOut => {}
                    IssueOutcome::NotActive(reason) => r.reason = Some(reason.as_str()),
                }
                r
            })
            .collect();
        BatchIssuedJson {
            issued: b.issued(),
            results,
        }
    }
}

/// One UTC day with any change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Day)]
pub struct DayJson {
    #[schema(format = Date)]
    pub date: String,
    #[serde(flatten)]
    pub counts: DayCounts,
}

/// `issued` on the day of issue, `redeemed` and `cancelled` on the day of the operation,
/// `expired` on the day of `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
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

/// Live statistics; `redeemed` counts coupons redeemed now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Stats)]
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
