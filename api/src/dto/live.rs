//! The data of a live event (`routes::live`): a campaign's public view.

use firstcome_engine::LiveView;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::ts;

/// A campaign's public state, durable at the moment it was sent: what a shop's page may
/// show anyone (no user data, no discount).
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveJson<'a> {
    #[schema(schema_with = super::campaign_id_schema)]
    pub id: &'a str,
    pub name: &'a str,
    #[schema(schema_with = super::campaign_status_schema)]
    pub status: &'static str,
    pub total_stock: u64,
    pub issued: u64,
    pub remaining: u64,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub starts_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub ends_at: Option<Timestamp>,
    #[schema(required = true)]
    pub store_id: Option<&'a str>,
}

impl<'a> From<&'a LiveView> for LiveJson<'a> {
    fn from(v: &'a LiveView) -> Self {
        LiveJson {
            id: &v.id,
            name: &v.name,
            status: v.status.as_str(),
            total_stock: v.total_stock,
            issued: v.issued,
            remaining: v.remaining(),
            starts_at: v.starts_at_us.and_then(ts),
            ends_at: v.ends_at_us.and_then(ts),
            store_id: v.store_id.as_deref(),
        }
    }
}

/// The data of a `deleted` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveDeletedJson<'a> {
    #[schema(schema_with = super::campaign_id_schema)]
    pub id: &'a str,
}
