//! Campaigns: create, read, update, issue from, and their stats.

use firstcome_engine::mail::Contact;
use firstcome_engine::{
    CampaignPatch, CampaignStats, CampaignView, CouponValidity, DayStats, Discount, DiscountKind,
    NewCampaign, Validity,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{CouponJson, Page, PageItem, ts};
use crate::error::ApiError;

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

impl PageItem for CampaignJson {
    const FIELD: &'static str = "campaigns";
}

/// `GET /v1/campaigns`.
pub type CampaignPage = Page<CampaignJson>;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    pub user_id: String,
    /// Sets the user's contact (with `locale`) in the same batch as the decision.
    pub email: Option<String>,
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

#[derive(Debug, Serialize)]
pub struct IssuedJson {
    pub coupon: CouponJson,
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
