//! [`Engine`]: the engine's front door, used by the API, the benches and the tests.
//!
//! The facade on top of everything else: it admits a request, finds the campaign actor
//! that owns it, and waits for the answer. Nothing below imports it.
//!
//! - this file: start, shutdown, and the campaign and coupon requests;
//! - `mail`: contacts, subscriptions and dead letters;
//! - `user_locks`: the per-user serialisation of read-then-write requests.

mod mail;
mod outcome_metrics;
mod user_locks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use firstcome_storage::{Committer, CommitterConfig, StorageError, Store, StoreConfig};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use rand::RngCore;

use crate::admission::{Admission, Reply};
use crate::campaign::{CampaignActor, CampaignMsg, LiveSubmissions};
use crate::clock::Clock;
use crate::codes::CouponCodes;
use crate::context::Context;
use crate::directory::Directory;
use crate::error::EngineError;
use crate::feed::{CampaignSubscription, DEFAULT_LIVE_INTERVAL, Feeds, StoreSubscription};
use crate::idempotency::{self, KeyClaims};
use crate::ids::{is_campaign_id, parse_coupon_id};
use crate::mail::{MailConfig, Mailer};
use crate::model::{
    BatchOutcome, CampaignPatch, CampaignStats, CampaignView, Coupon, CouponChange, CouponStatus,
    Idempotent, IssueOutcome, NewCampaign,
};
use crate::request::{CouponUse, IssueBatch, IssueRequest, MAX_BATCH_USERS};
use crate::supervisor::{CampaignSupervisor, SupervisorMsg};
use crate::user_index::UserIndex;
use outcome_metrics::OutcomeMetrics;
use user_locks::UserLocks;

/// The default cap on requests in flight to actors.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub committer: CommitterConfig,
    /// `None` turns mail off: no jobs are written and no mailer runs.
    pub mail: Option<MailConfig>,
    /// Requests in flight to actors at once (every request bound for a campaign actor or
    /// the supervisor); beyond it, [`EngineError::Overloaded`]. This is what bounds
    /// memory under overload: actor mailboxes are unbounded.
    pub max_in_flight: usize,
    /// A request that waited longer than this in a campaign's mailbox (since its
    /// admission) is answered [`EngineError::Overloaded`] before any work: under
    /// overload, late answers are shed rather than queued.
    pub queue_deadline: Duration,
    /// How often at most a campaign's live subscribers hear of a new count (a change of
    /// status goes at once).
    pub live_interval: Duration,
}

/// The default [`EngineConfig::queue_deadline`].
pub const DEFAULT_QUEUE_DEADLINE: Duration = Duration::from_secs(2);

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            committer: CommitterConfig::default(),
            mail: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            queue_deadline: DEFAULT_QUEUE_DEADLINE,
            live_interval: DEFAULT_LIVE_INTERVAL,
        }
    }
}

/// Which of a user's coupons to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct CouponFilter<'a> {
    pub campaign_id: Option<&'a str>,
    pub status: Option<CouponStatus>,
}

/// Which of a campaign's coupons to export.
#[derive(Debug, Clone, Copy, Default)]
pub struct CampaignCouponFilter {
    /// Status as of now.
    pub status: Option<CouponStatus>,
    /// Issued at or after this instant (µs since the epoch).
    pub issued_from_us: Option<i64>,
    /// Issued strictly before this instant (µs since the epoch).
    pub issued_before_us: Option<i64>,
}

/// One stretch of a campaign's coupons, in seq order.
#[derive(Debug)]
pub struct CouponScan {
    /// The coupons that passed the filter.
    pub coupons: Vec<Coupon>,
    /// Where to go on from (the last seq read: not always that of the last coupon
    /// returned), `None` when the campaign has no coupon after it.
    pub next_after: Option<u64>,
}

/// How many coupons one [`Engine::campaign_coupons`] reads from the store at a time.
const SCAN_CHUNK: usize = 1024;

/// Opens (or creates) the store, off the async workers: sled's open reads and checks
/// its files, which blocks.
pub async fn open_store(config: StoreConfig) -> Result<Store, EngineError> {
    tokio::task::spawn_blocking(move || Store::open(&config))
        .await
        .map_err(|e| EngineError::Actor(e.to_string()))?
        .map_err(EngineError::from)
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    ctx: Arc<Context>,
    directory: Arc<Directory>,
    admission: Arc<Admission>,
    supervisor: ActorRef<SupervisorMsg>,
    mailer: Option<Arc<Mailer>>,
    user_locks: Arc<UserLocks>,
    index: Arc<UserIndex>,
    metrics: Arc<OutcomeMetrics>,
    feeds: Arc<Feeds>,
    #[cfg(test)]
    live: Arc<LiveSubmissions>,
}

impl Engine {
    /// Starts the committer and the mailer, then recovers every campaign in `store`
    /// (each actor rebuilds its own state). Returns when all campaigns are ready to
    /// answer.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        if store.found_format() < firstcome_storage::STORE_FORMAT {
            tracing::info!(
                found = store.found_format(),
                now = firstcome_storage::STORE_FORMAT,
                "store written in an older format: read in place; new coupons are written in the new one"
            );
        }
        let key = store.meta_or_init("code_key", || {
            let mut k = vec![0u8; 16];
            rand::rng().fill_bytes(&mut k);
            k
        })?;
        let key: [u8; 16] = key.try_into().map_err(|_| StorageError::Corrupt {
            what: "code key",
            detail: "not 16 bytes".into(),
        })?;
        let records = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.campaigns(None, usize::MAX))
                .await
                .map_err(|e| EngineError::Actor(e.to_string()))??
        };
        let ctx = Arc::new(Context {
            committer: Committer::start(store.clone(), config.committer)?,
            store,
            clock,
            codes: CouponCodes::from_key(key),
        });
        // The mailer before the campaigns: their decisions wake its dispatcher, which
        // must exist by then.
        let mailer = match config.mail {
            Some(cfg) => match Mailer::start(ctx.clone(), cfg).await {
                Ok(m) => Some(Arc::new(m)),
                Err(e) => {
                    ctx.committer.shutdown();
                    return Err(e);
                }
            },
            None => None,
        };
        let directory = Arc::new(Directory::default());
        let index = Arc::new(UserIndex::default());
        let live = Arc::new(LiveSubmissions::default());
        // A zero interval would panic the publisher's timer (and freeze every stream).
        let live_interval = config.live_interval.max(Duration::from_millis(1));
        let feeds = Feeds::new(ctx.clock.clone(), live_interval);
        tokio::spawn(feeds.clone().run());
        let campaign = CampaignActor {
            ctx: ctx.clone(),
            claims: Arc::new(KeyClaims::default()),
            index: index.clone(),
            mail: mailer.as_ref().map(|m| m.handle.clone()),
            live: live.clone(),
            feeds: feeds.clone(),
            queue_deadline: config.queue_deadline,
        };
        let started = Instant::now();
        let count = records.len();
        let spawned = Actor::spawn(
            None,
            CampaignSupervisor {
                campaign,
                directory: directory.clone(),
            },
            records,
        )
        .await;
        let supervisor = match spawned {
            Ok((supervisor, _)) => supervisor,
            Err(e) => {
                if let Some(m) = &mailer {
                    m.stop(Duration::from_secs(5)).await;
                }
                feeds.close();
                ctx.committer.shutdown();
                return Err(EngineError::Actor(e.to_string()));
            }
        };
        tracing::info!(
            campaigns = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "engine recovered"
        );
        Ok(Engine {
            ctx,
            directory,
            admission: Arc::new(Admission::new(config.max_in_flight)),
            supervisor,
            mailer,
            user_locks: Arc::new(UserLocks::new()),
            index,
            metrics: Arc::new(OutcomeMetrics::new()),
            feeds,
            #[cfg(test)]
            live,
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.ctx.clock
    }

    /// Group-commit counts since start (groups that wrote, requests they released).
    pub fn commit_stats(&self) -> firstcome_storage::CommitStats {
        self.ctx.committer.stats()
    }

    /// False once the store has failed a commit: this process writes nothing more.
    pub fn is_healthy(&self) -> bool {
        self.ctx.committer.is_healthy()
    }

    pub async fn create_campaign(&self, spec: NewCampaign) -> Result<CampaignView, EngineError> {
        let permit = self.admission.admit()?;
        let call = self.supervisor.call(
            |port| SupervisorMsg::Create(Box::new(spec), Reply::new(port, permit)),
            None,
        );
        match call.await {
            Ok(CallResult::Success(r)) => r,
            _ => Err(EngineError::Unavailable("supervisor".into())),
        }
    }

    fn actor(&self, campaign_id: &str) -> Result<ActorRef<CampaignMsg>, EngineError> {
        if !is_campaign_id(campaign_id) {
            return Err(EngineError::CampaignNotFound);
        }
        self.directory
            .lookup(campaign_id)
            .ok_or(EngineError::CampaignNotFound)
    }

    /// Admits a request, sends it to the campaign's actor, and waits for the answer. The
    /// permit rides in the message and is released with the reply.
    async fn call<T: Send + 'static>(
        &self,
        campaign_id: &str,
        msg: impl FnOnce(Reply<T>) -> CampaignMsg,
    ) -> Result<T, EngineError> {
        let actor = self.actor(campaign_id)?;
        self.call_actor(&actor, msg).await
    }

    /// [`Engine::call`] to an actor already looked up (so the request can move into the
    /// message without a copy of its campaign id).
    async fn call_actor<T: Send + 'static>(
        &self,
        actor: &ActorRef<CampaignMsg>,
        msg: impl FnOnce(Reply<T>) -> CampaignMsg,
    ) -> Result<T, EngineError> {
        let permit = self.admission.admit()?;
        self.call_actor_with(actor, permit, msg).await
    }

    /// [`Engine::call_actor`] with a permit already taken.
    async fn call_actor_with<T: Send + 'static>(
        &self,
        actor: &ActorRef<CampaignMsg>,
        permit: crate::admission::Permit,
        msg: impl FnOnce(Reply<T>) -> CampaignMsg,
    ) -> Result<T, EngineError> {
        match actor.call(|port| msg(Reply::new(port, permit)), None).await {
            Ok(CallResult::Success(r)) => r,
            // The actor died with the request in its mailbox, or is gone.
            _ => Err(EngineError::Unavailable(format!(
                "campaign actor {}",
                actor.get_id()
            ))),
        }
    }

    /// The live view of one campaign.
    pub async fn campaign(&self, campaign_id: &str) -> Result<CampaignView, EngineError> {
        self.call(campaign_id, CampaignMsg::Get).await
    }

    /// Up to `limit` campaigns in id order after `after`, and the cursor to continue
    /// from if more follow (the last id read, which is not always the last returned).
    /// Their actors are asked concurrently.
    pub async fn campaigns(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<CampaignView>, Option<String>), EngineError> {
        let store = self.ctx.store.clone();
        let after = after.map(str::to_string);
        let records =
            tokio::task::spawn_blocking(move || store.campaigns(after.as_deref(), limit + 1))
                .await
                .map_err(|e| EngineError::Actor(e.to_string()))??;
        let next = if records.len() > limit {
            records.get(limit - 1).map(|r| r.id.clone())
        } else {
            None
        };
        let asks = records.iter().take(limit).map(|r| self.campaign(&r.id));
        let mut views = Vec::with_capacity(limit.min(records.len()));
        for answer in futures::future::join_all(asks).await {
            match answer {
                Ok(v) => views.push(v),
                // Stored but not registered yet: its creation has not been answered,
                // so to clients it does not exist yet.
                Err(EngineError::CampaignNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((views, next))
    }

    /// Decides one issue request; the answer reflects durable state. With a key, a
    /// retry of the same request gets the first response again, even after a restart.
    pub async fn issue(
        &self,
        request: IssueRequest,
    ) -> Result<Idempotent<IssueOutcome>, EngineError> {
        let started = Instant::now();
        let result = match self.actor(&request.campaign_id) {
            Ok(actor) => {
                self.call_actor(&actor, |reply| CampaignMsg::Issue(request, reply))
                    .await
            }
            Err(e) => Err(e),
        };
        let outcome = outcome_metrics::decided(&result).map_or_else(|l| l, IssueOutcome::code);
        self.metrics.issue(outcome, started.elapsed().as_secs_f64());
        result
    }

    /// Decides an issue for each user of the batch, in order, each as [`Engine::issue`]
    /// would (limit, stock, window), and answers once all of them are durable, which
    /// they become together: one journal record holds them all.
    pub async fn issue_batch(
        &self,
        batch: IssueBatch,
    ) -> Result<Idempotent<BatchOutcome>, EngineError> {
        let n = batch.user_ids.len();
        if n == 0 || n > MAX_BATCH_USERS {
            return Err(EngineError::InvalidInput(format!(
                "user_ids must hold 1 to {MAX_BATCH_USERS} user ids"
            )));
        }
        let result = async {
            let actor = self.actor(&batch.campaign_id)?;
            // As many places under the cap as the decisions it carries.
            let permit = self.admission.admit_weighing(n)?;
            self.call_actor_with(&actor, permit, |reply| {
                CampaignMsg::IssueBatch(batch, reply)
            })
            .await
        }
        .await;
        match outcome_metrics::decided(&result) {
            Ok(b) => b
                .results
                .iter()
                .for_each(|(_, o)| self.metrics.issue_decision(o.code())),
            Err(label) => self.metrics.issue_decision(label),
        }
        result
    }

    /// One coupon by id, as stored, with its status as of now. A store read: call it
    /// off the async workers.
    pub fn coupon(&self, coupon_id: &str) -> Result<Coupon, EngineError> {
        let (cid, seq) = parse_coupon_id(coupon_id).ok_or(EngineError::CouponNotFound)?;
        let now = self.ctx.clock.now();
        let campaign = self
            .ctx
            .store
            .campaign(cid)?
            .ok_or(EngineError::CouponNotFound)?;
        self.ctx
            .coupon(cid, campaign.ordinal, seq)?
            .map(|r| Coupon::at(r, now))
            .ok_or(EngineError::CouponNotFound)
    }

    /// The id of the coupon a code names, in O(1): the code decodes to (campaign ordinal,
    /// seq) under the code key, and the ordinal names the campaign. A mistyped code is
    /// [`EngineError::InvalidCode`]; a well-formed code of no campaign here is
    /// `CouponNotFound`. Whether that coupon exists is for the read or the decision the
    /// id is then given to (they answer `CouponNotFound` for a seq never issued).
    pub fn coupon_id_of_code(&self, code: &str) -> Result<String, EngineError> {
        let (ordinal, seq) = self.ctx.codes.decode(code)?;
        let campaign = self
            .index
            .campaign_of(ordinal)
            .ok_or(EngineError::CouponNotFound)?;
        Ok(crate::ids::coupon_id(&campaign, seq))
    }

    /// Up to `limit` coupons of a campaign that pass `filter`, in seq order, after seq
    /// `after` (from the first without), reading at most about `max_read` coupons: a
    /// filter that few coupons pass returns a short page with where to go on from,
    /// rather than reading the whole campaign in one call. From the store, as every
    /// coupon read is (what a client has been answered is in it): call it off the async
    /// workers.
    pub fn campaign_coupons(
        &self,
        campaign_id: &str,
        filter: CampaignCouponFilter,
        after: Option<u64>,
        limit: usize,
        max_read: usize,
    ) -> Result<CouponScan, EngineError> {
        let record = match is_campaign_id(campaign_id) {
            true => self.ctx.store.campaign(campaign_id)?,
            false => None,
        };
        let record = record.ok_or(EngineError::CampaignNotFound)?;
        let now = self.ctx.clock.now();
        let mut from = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        let mut last_out = None;
        let mut read = 0usize;
        loop {
            let chunk = self.ctx.store.coupons_from(
                campaign_id,
                from,
                (limit + 1).clamp(64, SCAN_CHUNK),
            )?;
            let Some(last) = chunk.last().map(|c| c.seq) else {
                return Ok(CouponScan {
                    coupons: out,
                    next_after: None,
                });
            };
            for c in chunk {
                read += 1;
                let seq = c.seq;
                let passes = filter
                    .status
                    .is_none_or(|s| crate::model::effective_status(&c, now) == s)
                    && filter.issued_from_us.is_none_or(|t| c.issued_at >= t)
                    && filter.issued_before_us.is_none_or(|t| c.issued_at < t);
                if passes {
                    if out.len() == limit {
                        // One more passes: the page is full and more follow.
                        return Ok(CouponScan {
                            coupons: out,
                            next_after: last_out,
                        });
                    }
                    out.push(Coupon::at(self.ctx.with_code(c, record.ordinal), now));
                    last_out = Some(seq);
                }
                if read >= max_read {
                    // Everything up to `seq` was looked at.
                    return Ok(CouponScan {
                        coupons: out,
                        next_after: Some(seq),
                    });
                }
            }
            from = last + 1;
        }
    }

    /// Redeems a coupon for its holder, or cancels its redemption.
    pub async fn use_coupon(
        &self,
        request: CouponUse,
    ) -> Result<Idempotent<CouponChange>, EngineError> {
        let action = request.action;
        let result = match parse_coupon_id(&request.coupon_id) {
            None => Err(EngineError::CouponNotFound),
            Some((cid, seq)) => match self.actor(cid) {
                Ok(actor) => {
                    self.call_actor(&actor, |reply| CampaignMsg::UseCoupon {
                        seq,
                        request,
                        reply,
                    })
                    .await
                }
                Err(e) => Err(e),
            },
        };
        let result = match result {
            // The coupon's campaign does not exist, so neither does the coupon.
            Err(EngineError::CampaignNotFound) => Err(EngineError::CouponNotFound),
            other => other,
        };
        let outcome = outcome_metrics::decided(&result).map_or_else(|l| l, CouponChange::code);
        self.metrics.coupon_use(action.as_str(), outcome);
        result
    }

    /// Pauses, resumes, renames, moves `ends_at`, or changes the stock of a campaign.
    pub async fn update_campaign(
        &self,
        campaign_id: &str,
        patch: CampaignPatch,
    ) -> Result<CampaignView, EngineError> {
        self.call(campaign_id, |reply| CampaignMsg::Update(patch, reply))
            .await
    }

    /// Ends issuance now; issued coupons stay valid.
    pub async fn close_campaign(&self, campaign_id: &str) -> Result<CampaignView, EngineError> {
        self.call(campaign_id, CampaignMsg::Close).await
    }

    /// Deletes a campaign that has issued nothing.
    pub async fn delete_campaign(&self, campaign_id: &str) -> Result<(), EngineError> {
        let actor = self.actor(campaign_id)?;
        self.call(campaign_id, CampaignMsg::Delete).await?;
        self.directory.remove(campaign_id);
        actor.stop(Some("deleted".into()));
        Ok(())
    }

    /// Forgets idempotency records older than 24 hours now, instead of at the next
    /// minute's timer; returns how many.
    pub async fn prune_idempotency(&self) -> Result<usize, EngineError> {
        idempotency::prune(&self.ctx).await
    }

    /// Live statistics (after expiring what is due).
    pub async fn stats(&self, campaign_id: &str) -> Result<CampaignStats, EngineError> {
        self.call(campaign_id, CampaignMsg::Stats).await
    }

    /// A user's coupons, `limit` at a time after the coupon id `after`, optionally of
    /// one campaign and of one status (as of now), and whether more follow. From the
    /// in-memory index, then the store: call it off the async workers.
    pub fn user_coupons(
        &self,
        user_id: &str,
        filter: CouponFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Coupon>, bool), EngineError> {
        let after = match after {
            Some(a) => Some(parse_coupon_id(a).ok_or(EngineError::CouponNotFound)?),
            None => None,
        };
        let now = self.ctx.clock.now();
        let mut out = Vec::new();
        for (cid, ordinal, seq) in self.index.coupons_of(user_id) {
            if filter.campaign_id.is_some_and(|c| c != &*cid)
                || after.is_some_and(|(a, s)| (&*cid, seq) <= (a, s))
            {
                continue;
            }
            let Some(record) = self.ctx.coupon(&cid, ordinal, seq)? else {
                continue;
            };
            // A key collision in the index: not this user's coupon.
            if record.user_id != user_id {
                continue;
            }
            if filter
                .status
                .is_some_and(|s| crate::model::effective_status(&record, now) != s)
            {
                continue;
            }
            out.push(Coupon::at(record, now));
            if out.len() > limit {
                break;
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    /// Follows a campaign's durable public state: its latest event now, and each later
    /// one. Refused for an unknown or deleted campaign, and once the feeds are closed.
    pub fn subscribe_campaign(
        &self,
        campaign_id: &str,
    ) -> Result<CampaignSubscription, EngineError> {
        if !is_campaign_id(campaign_id) {
            return Err(EngineError::CampaignNotFound);
        }
        self.feeds.subscribe(campaign_id)
    }

    /// Follows every campaign of a store (any store id: one with no campaign yet is
    /// followed all the same). Refused once the feeds are closed.
    pub fn subscribe_store(&self, store_id: &str) -> Result<StoreSubscription, EngineError> {
        self.feeds.subscribe_store(store_id)
    }

    /// Ends every live stream and refuses new ones: the first step of a shutdown, since
    /// a stream would otherwise hold its connection open to the end of the grace period.
    pub fn close_feeds(&self) {
        self.feeds.close();
    }

    /// Stops the campaign actors once their mailboxes are empty, then commits and
    /// flushes everything queued and stops the committer. Call it after the API has
    /// stopped taking requests.
    pub async fn shutdown(&self, timeout: Duration) {
        self.feeds.close();
        // The mailer first: a send in progress is abandoned (its job stays in the
        // outbox and goes out again after the restart, with the same Message-ID).
        if let Some(m) = &self.mailer {
            m.stop(timeout).await;
        }
        self.supervisor
            .get_cell()
            .drain_children_and_wait(Some(timeout))
            .await;
        let _ = self.supervisor.stop_and_wait(None, Some(timeout)).await;
        self.directory.clear();
        let committer = self.ctx.committer.clone();
        let _ = tokio::task::spawn_blocking(move || committer.shutdown()).await;
    }

    /// The campaign's actor, for the actor tests.
    #[cfg(test)]
    pub(crate) fn actor_of(&self, campaign_id: &str) -> ActorRef<CampaignMsg> {
        self.directory
            .lookup(campaign_id)
            .unwrap_or_else(|| panic!("no actor for {campaign_id}"))
    }

    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.ctx.store
    }

    #[cfg(test)]
    pub(crate) fn admission(&self) -> &Admission {
        &self.admission
    }

    #[cfg(test)]
    pub(crate) fn committer(&self) -> &firstcome_storage::Committer {
        &self.ctx.committer
    }

    #[cfg(test)]
    pub(crate) fn live(&self) -> &LiveSubmissions {
        &self.live
    }
}
