//! What a subscriber receives: [`LiveEvent`] (one campaign's public state at one moment)
//! and [`StoreSnapshot`] (every campaign of one store).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::model::CampaignStatus;

/// A campaign's public state: what a shop's page may show anyone. No user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveView {
    pub id: String,
    pub name: String,
    pub store_id: Option<String>,
    pub status: CampaignStatus,
    pub total_stock: u64,
    /// Durable: every coupon counted here survives a crash.
    pub issued: u64,
    pub starts_at_us: Option<i64>,
    pub ends_at_us: Option<i64>,
}

impl LiveView {
    pub fn remaining(&self) -> u64 {
        // Paired with the assertion where a coupon is decided (and in the actor's view).
        debug_assert!(self.issued <= self.total_stock, "{}: oversold", self.id);
        self.total_stock.saturating_sub(self.issued)
    }
}

/// One published state of a campaign. Shared by every subscriber of the campaign (an
/// `Arc`), and rendered once for all of them ([`LiveEvent::frame`]).
#[derive(Debug)]
pub struct LiveEvent {
    /// `{boot}-{seq}`: `seq` grows with each event of this campaign, `boot` names the
    /// process start, so an id is never reused by a later start (whose `seq` begins
    /// again).
    pub id: String,
    pub view: LiveView,
    /// The campaign was deleted: the last event of its stream.
    pub deleted: bool,
    frame: OnceLock<Bytes>,
}

impl LiveEvent {
    pub(crate) fn new(id: String, view: LiveView, deleted: bool) -> LiveEvent {
        LiveEvent {
            id,
            view,
            deleted,
            frame: OnceLock::new(),
        }
    }

    /// The event as its stream sends it, rendered by the first subscriber that asks and
    /// then shared: with ten thousand subscribers, one rendering instead of ten thousand.
    pub fn frame(&self, render: impl FnOnce(&LiveEvent) -> Bytes) -> Bytes {
        self.frame.get_or_init(|| render(self)).clone()
    }
}

/// Every campaign of one store, each as last published, by campaign id. Deleted
/// campaigns leave it; ended ones stay (a store has a bounded number of campaigns).
#[derive(Debug, Default, Clone)]
pub struct StoreSnapshot {
    pub campaigns: BTreeMap<String, Arc<LiveEvent>>,
}
