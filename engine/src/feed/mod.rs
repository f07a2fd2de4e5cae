//! [`Feeds`]: every campaign's durable public state, for live subscribers (the API's
//! server-sent event streams).
//!
//! A campaign's [`CampaignFeed`] hears of its state only from the completions of its
//! commits, on the committer thread, after the fsync and before the replies: a count is
//! published only once it is durable, and the publisher hears of the last coupon before
//! its winner's reply leaves. A restarted actor tells its feed what it recovered.
//!
//! One publisher task coalesces: every [`EngineConfig::live_interval`] it publishes each
//! campaign whose public state changed (its count, or its status as time moves its
//! window), so a stream carries at most one event a round however fast coupons go. A
//! change of status that a commit causes (the last coupon, a pause, a close, a delete)
//! does not wait for the round.
//!
//! - `event`: what subscribers receive;
//! - `campaign`: one campaign's feed.
//!
//! [`EngineConfig::live_interval`]: crate::EngineConfig::live_interval

mod campaign;
mod event;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use firstcome_storage::CampaignRecord;
use tokio::sync::{Notify, watch};

pub(crate) use campaign::{CampaignFeed, RecordChange};
pub use event::{LiveEvent, LiveView, StoreSnapshot};

use crate::clock::Clock;
use crate::error::EngineError;

/// The default [`EngineConfig::live_interval`](crate::EngineConfig::live_interval).
pub const DEFAULT_LIVE_INTERVAL: Duration = Duration::from_millis(1000);

/// A subscription to one campaign.
#[derive(Debug)]
pub struct CampaignSubscription {
    /// The latest event; `changed()` when another is published.
    pub events: watch::Receiver<Arc<LiveEvent>>,
    pub heartbeat: Heartbeat,
}

/// A subscription to one store's campaigns.
#[derive(Debug)]
pub struct StoreSubscription {
    pub snapshots: watch::Receiver<Arc<StoreSnapshot>>,
    pub heartbeat: Heartbeat,
}

/// How often a quiet stream hears a [`Beat::KeepAlive`] (so that proxies and clients do
/// not take it for dead).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// [`KEEP_ALIVE`] went by.
    KeepAlive,
    /// The feeds are closed (the engine shuts down): every stream ends.
    Closed,
}

/// One channel for every subscriber's keep-alive and end, beaten by the publisher: ten
/// thousand subscribers wait on it instead of each setting a new timer every time it
/// sends (docs/performance.md, Live events).
#[derive(Debug, Clone)]
pub struct Heartbeat(watch::Receiver<Pulse>);

#[derive(Debug, Clone, Copy, Default)]
struct Pulse {
    closed: bool,
}

impl Heartbeat {
    /// The next beat.
    pub async fn next(&mut self) -> Beat {
        if self.0.borrow_and_update().closed {
            return Beat::Closed;
        }
        match self.0.changed().await {
            Ok(()) if !self.0.borrow_and_update().closed => Beat::KeepAlive,
            // An error means the feeds are gone: closed too.
            _ => Beat::Closed,
        }
    }
}

/// Every campaign's feed, and which campaigns each store has (a store id never changes).
#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Arc<CampaignFeed>>,
    /// So that following a store reads its campaigns, not every campaign: a store id is
    /// whatever a client without a key sends.
    by_store: HashMap<String, BTreeSet<String>>,
}

pub(crate) struct Feeds {
    /// Names this process start in event ids (`LiveEvent::id`).
    boot: String,
    clock: Arc<dyn Clock>,
    interval: Duration,
    // std locks: held for one map operation or one round's copy, never across an await.
    campaigns: RwLock<Registry>,
    /// Only stores someone subscribes to, dropped once nobody does (a store id is any
    /// string a client sends).
    stores: Mutex<HashMap<String, watch::Sender<Arc<StoreSnapshot>>>>,
    urgent: Arc<Notify>,
    heartbeat: watch::Sender<Pulse>,
}

impl Feeds {
    pub(crate) fn new(clock: Arc<dyn Clock>, interval: Duration) -> Arc<Feeds> {
        let boot_ms = clock.now().as_millisecond();
        Arc::new(Feeds {
            boot: format!("{boot_ms:x}"),
            clock,
            interval,
            campaigns: RwLock::new(Registry::default()),
            stores: Mutex::new(HashMap::new()),
            urgent: Arc::new(Notify::new()),
            heartbeat: watch::Sender::new(Pulse::default()),
        })
    }

    /// The feed of a campaign whose actor starts with `issued` durable coupons: a new one,
    /// or (for a restarted actor) the one its subscribers already watch.
    pub(crate) fn register(&self, record: &CampaignRecord, issued: u64) -> Arc<CampaignFeed> {
        let mut campaigns = self.campaigns.write().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = campaigns.by_id.get(&record.id) {
            feed.recovered(record, issued);
            return feed.clone();
        }
        let feed = CampaignFeed::new(
            record,
            issued,
            &self.boot,
            self.clock.now(),
            self.urgent.clone(),
        );
        campaigns.by_id.insert(record.id.clone(), feed.clone());
        if let Some(store) = &record.store_id {
            campaigns
                .by_store
                .entry(store.clone())
                .or_default()
                .insert(record.id.clone());
        }
        drop(campaigns);
        if let Some(store) = &record.store_id {
            // A new campaign of a watched store: its subscribers hear of it now.
            let stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = stores.get(store) {
                tx.send_modify(|s| {
                    Arc::make_mut(s)
                        .campaigns
                        .insert(record.id.clone(), feed.latest());
                });
            }
        }
        feed
    }

    fn is_closed(&self) -> bool {
        self.heartbeat.borrow().closed
    }

    fn heartbeat(&self) -> Heartbeat {
        Heartbeat(self.heartbeat.subscribe())
    }

    /// Refused for a campaign that does not exist (or is deleted), and once the feeds are
    /// closed.
    pub(crate) fn subscribe(&self, campaign_id: &str) -> Result<CampaignSubscription, EngineError> {
        if self.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        let campaigns = self.campaigns.read().unwrap_or_else(|p| p.into_inner());
        let feed = campaigns
            .by_id
            .get(campaign_id)
            .ok_or(EngineError::CampaignNotFound)?;
        let events = feed.subscribe();
        if events.borrow().deleted {
            return Err(EngineError::CampaignNotFound);
        }
        Ok(CampaignSubscription {
            events,
            heartbeat: self.heartbeat(),
        })
    }

    /// Refused once the feeds are closed. A store with no campaign yet is watched all the
    /// same: its first campaign is news.
    pub(crate) fn subscribe_store(&self, store_id: &str) -> Result<StoreSubscription, EngineError> {
        if self.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        let snapshots = match stores.get(store_id) {
            Some(tx) => tx.subscribe(),
            None => {
                let snapshot = self.store_snapshot(store_id);
                let tx = watch::Sender::new(Arc::new(snapshot));
                let rx = tx.subscribe();
                stores.insert(store_id.to_string(), tx);
                rx
            }
        };
        Ok(StoreSubscription {
            snapshots,
            heartbeat: self.heartbeat(),
        })
    }

    fn store_snapshot(&self, store_id: &str) -> StoreSnapshot {
        let campaigns = self.campaigns.read().unwrap_or_else(|p| p.into_inner());
        let mut snapshot = StoreSnapshot::default();
        let ids = campaigns.by_store.get(store_id).into_iter().flatten();
        for feed in ids.filter_map(|id| campaigns.by_id.get(id)) {
            let latest = feed.latest();
            if !latest.deleted {
                snapshot.campaigns.insert(feed.id.clone(), latest);
            }
        }
        snapshot
    }

    /// Ends every stream (the engine shuts down), and refuses new subscriptions.
    pub(crate) fn close(&self) {
        self.heartbeat.send_replace(Pulse { closed: true });
    }

    /// The publisher: a round every interval, and at once for an urgent change; the
    /// heartbeat every [`KEEP_ALIVE`]. Ends when the feeds close.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut heartbeat = self.heartbeat();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            let urgent_only = tokio::select! {
                _ = tick.tick() => false,
                _ = self.urgent.notified() => true,
                _ = keep_alive.tick() => {
                    self.heartbeat.send_if_modified(|p| !p.closed);
                    continue;
                }
                beat = heartbeat.next() => match beat {
                    Beat::Closed => return,
                    Beat::KeepAlive => continue,
                },
            };
            self.round(urgent_only);
        }
    }

    /// Publishes what changed (`urgent_only`: only the changes that asked to go at once),
    /// then brings the watched stores' snapshots up to date.
    fn round(&self, urgent_only: bool) {
        let now = self.clock.now();
        let feeds: Vec<Arc<CampaignFeed>> = self
            .campaigns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .values()
            .cloned()
            .collect();
        let mut published = Vec::new();
        for feed in &feeds {
            if let Some(event) = feed.publish(&self.boot, now, urgent_only) {
                published.push(event);
            }
        }
        let deleted: Vec<&Arc<LiveEvent>> = published.iter().filter(|e| e.deleted).collect();
        if !deleted.is_empty() {
            let mut campaigns = self.campaigns.write().unwrap_or_else(|p| p.into_inner());
            for event in deleted {
                campaigns.by_id.remove(&event.view.id);
                if let Some(store) = &event.view.store_id {
                    if let Some(ids) = campaigns.by_store.get_mut(store) {
                        ids.remove(&event.view.id);
                        if ids.is_empty() {
                            campaigns.by_store.remove(store);
                        }
                    }
                }
            }
        }
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        // Nobody watches these any more.
        stores.retain(|_, tx| tx.receiver_count() > 0);
        for event in published {
            let Some(tx) = event.view.store_id.as_ref().and_then(|s| stores.get_mut(s)) else {
                continue;
            };
            tx.send_modify(|s| {
                let campaigns = &mut Arc::make_mut(s).campaigns;
                if event.deleted {
                    campaigns.remove(&event.view.id);
                } else {
                    campaigns.insert(event.view.id.clone(), event.clone());
                }
            });
        }
    }
}
