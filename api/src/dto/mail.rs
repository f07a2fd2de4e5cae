//! Mail: a user's contact, store subscriptions, and mail jobs as operators see them.

use firstcome_engine::mail::{ContactRecord, MailJob};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Page, PageItem};

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

impl PageItem for SubscriptionJson {
    const FIELD: &'static str = "subscriptions";
}

/// `GET /v1/users/{user_id}/subscriptions`.
pub type SubscriptionPage = Page<SubscriptionJson>;

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

/// The one page of mail jobs is the dead letters; a page of queued jobs would need its
/// own item type, since the field name goes with the type.
impl PageItem for MailJobJson {
    const FIELD: &'static str = "dead_letters";
}

/// `GET /v1/mail/dead`.
pub type DeadLetterPage = Page<MailJobJson>;
