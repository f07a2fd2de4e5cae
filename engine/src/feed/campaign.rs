//! [`CampaignFeed`]: one campaign's durable public state and the channel its subscribers
//! watch.

use std::sync::{Arc, Mutex, MutexGuard};

use firstcome_storage::CampaignRecord;
use jiff::Timestamp;
use tokio::sync::{Notify, watch};

use super::event::{LiveEvent, LiveView};
use crate::model::{self, CampaignStatus};

/// A change to the campaign itself that a commit made durable.
#[derive(Debug, Clone)]
pub(crate) enum RecordChange {
    /// Its record as the change left it (an update, a close).
    Record(Box<CampaignRecord>),
    Deleted,
}

/// Told of the campaign's state only by the completions of its commits (after the
/// fsync), so every event it publishes is durable; published by the `Feeds` publisher,
/// which coalesces (`Feeds::run`).
pub(crate) struct CampaignFeed {
    pub(super) id: String,
    // A std Mutex, not a Tokio one: held to change or read a few fields, never across an
    // await, and taken on the committer thread.
    state: Mutex<FeedState>,
    /// The latest event. A `watch`, so a slow subscriber skips to the latest state
    /// instead of buffering the ones it missed: one value per campaign, however many
    /// subscribers and however slow.
    tx: watch::Sender<Arc<LiveEvent>>,
    /// The publisher's: woken when a change should not wait for the next round.
    urgent: Arc<Notify>,
}

struct FeedState {
    record: CampaignRecord,
    /// Raised with each record change, so the publisher sees one.
    record_version: u64,
    issued: u64,
    deleted: bool,
    /// A change of status (or of the campaign): published at once, not at the round.
    urgent: bool,
    /// The last event's number.
    seq: u64,
    published: Published,
}

/// What the last event said, to tell whether a new one is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Published {
    issued: u64,
    status: CampaignStatus,
    record_version: u64,
    deleted: bool,
}

impl CampaignFeed {
    pub(super) fn new(
        record: &CampaignRecord,
        issued: u64,
        boot: &str,
        now: Timestamp,
        urgent: Arc<Notify>,
    ) -> Arc<CampaignFeed> {
        let mut state = FeedState {
            record: record.clone(),
            record_version: 0,
            issued,
            deleted: false,
            urgent: false,
            seq: 0,
            published: Published {
                issued,
                status: CampaignStatus::Scheduled,
                record_version: 0,
                deleted: false,
            },
        };
        let first = state.next_event(boot, now);
        Arc::new(CampaignFeed {
            id: record.id.clone(),
            state: Mutex::new(state),
            tx: watch::Sender::new(first),
            urgent,
        })
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // Consistent even if poisoned: every change is a few plain assignments.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }

    pub(super) fn latest(&self) -> Arc<LiveEvent> {
        self.tx.borrow().clone()
    }

    /// A commit of the campaign is durable: `issued` coupons in all, and the change to the
    /// campaign it made, if any. Runs on the committer thread, before the commit's replies.
    pub(crate) fn committed(&self, issued: u64, change: Option<RecordChange>) {
        let mut s = self.lock();
        // Paired with the check where events are built: the durable count never falls
        // (no coupon is ever taken back) and never passes the stock.
        debug_assert!(issued >= s.issued, "{}: durable count fell", self.id);
        let sold_out_now = issued != s.issued && issued >= s.record.total_stock;
        s.issued = issued;
        let changed = change.is_some();
        match change {
            Some(RecordChange::Record(record)) => {
                s.record = *record;
                s.record_version += 1;
            }
            Some(RecordChange::Deleted) => s.deleted = true,
            None => {}
        }
        if sold_out_now || changed {
            s.urgent = true;
            drop(s);
            self.urgent.notify_one();
        }
    }

    /// An actor (re)started the campaign from what is durable.
    pub(super) fn recovered(&self, record: &CampaignRecord, issued: u64) {
        let mut s = self.lock();
        s.issued = s.issued.max(issued);
        s.record = record.clone();
        s.record_version += 1;
    }

    /// Publishes a new event if the public state differs from the last one's (the status
    /// is the record's at `now`, so a window opening or closing is published too).
    /// `urgent_only`: only if a change asked to go at once. Returns the event published.
    pub(super) fn publish(
        &self,
        boot: &str,
        now: Timestamp,
        urgent_only: bool,
    ) -> Option<Arc<LiveEvent>> {
        let mut s = self.lock();
        if urgent_only && !s.urgent {
            return None;
        }
        s.urgent = false;
        if s.current(now) == s.published {
            return None;
        }
        let event = s.next_event(boot, now);
        self.tx.send_replace(event.clone());
        Some(event)
    }
}

impl FeedState {
    fn current(&self, now: Timestamp) -> Published {
        Published {
            issued: self.issued,
            status: model::status(&self.record, self.issued, now),
            record_version: self.record_version,
            deleted: self.deleted,
        }
    }

    fn next_event(&mut self, boot: &str, now: Timestamp) -> Arc<LiveEvent> {
        let published = self.current(now);
        // Paired with the assertion where a coupon is decided: a durable count over the
        // stock would be an oversold campaign, published.
        assert!(
            self.issued <= self.record.total_stock,
            "campaign {}: {} durable of {}",
            self.record.id,
            self.issued,
            self.record.total_stock
        );
        self.seq += 1;
        self.published = published;
        let r = &self.record;
        Arc::new(LiveEvent::new(
            format!("{boot}-{}", self.seq),
            LiveView {
                id: r.id.clone(),
                name: r.name.clone(),
                store_id: r.store_id.clone(),
                status: published.status,
                total_stock: r.total_stock,
                issued: self.issued,
                starts_at_us: r.starts_at,
                ends_at_us: r.ends_at,
            },
            self.deleted,
        ))
    }
}
