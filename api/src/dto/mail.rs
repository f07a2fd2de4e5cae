//! Mail: a user's contact, store subscriptions, and mail jobs as operators see them.

use firstcome_engine::mail::{ContactRecord, MailJob};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Page, PageItem};

/// Where a user's mail goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactRequest)]
pub struct ContactRequest {
    #[schema(max_length = 254, format = Email)]
    pub email: String,
    /// A language tag such as `en` or `ko-KR`.
    #[schema(schema_with = super::locale_or_null_schema)]
    pub locale: Option<String>,
}

// Every field is sent, `null` when unset: `required = true` says so for the `Option`s.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Contact)]
pub struct ContactJson {
    pub user_id: String,
    pub email: String,
    #[schema(required = true)]
    pub locale: Option<String>,
    #[schema(value_type = String, format = DateTime)]
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

/// The user gets a mail when a campaign of that store becomes active.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    #[schema(schema_with = super::user_id_schema)]
    pub user_id: String,
    #[schema(schema_with = super::store_id_schema)]
    pub store_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionJson {
    pub user_id: String,
    pub store_id: String,
}

impl PageItem for SubscriptionJson {
    const FIELD: &'static str = "subscriptions";
}

/// `GET /v1/users/{user_id}/subscriptions`.
pub type SubscriptionPage = Page<SubscriptionJson>;

// Every field is sent, `null` when unset: `required = true` says so for the `Option`s.
/// A mail job (queued or dead), as operators see it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MailJob)]
pub struct MailJobJson {
    pub id: String,
    #[schema(schema_with = super::mail_kind_schema)]
    pub kind: &'static str,
    pub user_id: String,
    pub to: String,
    pub campaign_id: String,
    #[schema(required = true)]
    pub coupon_id: Option<String>,
    pub attempts: u32,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub due_at: Timestamp,
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
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
