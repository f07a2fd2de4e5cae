//! [`Engine`]: the engine's front door, used by the API, the benches and the tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use firstcome_storage::{Committer, CommitterConfig, StorageError, Store, Writes};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use rand::RngCore;

use crate::EngineError;
use crate::campaign::{CampaignMsg, CouponUse};
use crate::clock::Clock;
use crate::codes::CouponCodes;
use crate::ids::{is_campaign_id, parse_coupon_id};
use crate::model::{
    CampaignPatch, CampaignStats, CampaignView, Coupon, CouponChange, IdempotencyKey, Idempotent,
    IssueOutcome, NewCampaign,
};
use crate::supervisor::{CampaignSupervisor, SupervisorMsg};

/// What every actor of one engine shares: read-only handles, and the directory of
/// campaign actors.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) committer: Committer,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) codes: CouponCodes,
    /// Campaign id -> its actor. A std RwLock, not a Tokio one: no await happens while
    /// it is held. It guards the directory only, never campaign state: all of that
    /// lives inside the actors.
    directory: RwLock<HashMap<String, ActorRef<CampaignMsg>>>,
    /// Idempotency keys decided but not yet in the store, across all campaigns. Keys are
    /// global (the same key on another campaign is a reused key), but each actor sees
    /// only its own decisions; without this map two actors could both decide one new
    /// key at the same instant. A std Mutex: held for a map operation and at most one
    /// sled read, never across an await.
    pub(crate) keys_in_flight: Mutex<HashMap<String, KeyClaim>>,
    /// `None` when mail is off: then no decision writes mail jobs.
    pub(crate) mail: Option<Arc<crate::mail::MailShared>>,
    pub(crate) user_locks: crate::mail::UserLocks,
}

/// A key an actor is deciding or has decided, until its record is in the store.
#[derive(Debug, Clone)]
pub(crate) struct KeyClaim {
    pub(crate) fingerprint: [u8; 16],
    /// `None` while the claiming actor is deciding.
    pub(crate) record: Option<firstcome_storage::IdempotencyRecord>,
}

impl Shared {
    pub(crate) fn register(&self, id: String, actor: ActorRef<CampaignMsg>) {
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, actor);
    }

    fn lookup(&self, id: &str) -> Option<ActorRef<CampaignMsg>> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

/// Submits `writes` and waits until they are durable.
pub(crate) async fn commit(committer: &Committer, writes: Writes) -> Result<(), StorageError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    committer.submit(
        writes,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.await.unwrap_or(Err(StorageError::CommitterStopped))
}

#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub committer: CommitterConfig,
    /// `None` turns mail off: no jobs are written and no mailer runs.
    pub mail: Option<crate::mail::MailConfig>,
}

/// Removes idempotency records older than their time to live; returns how many.
pub(crate) async fn prune_idempotency(shared: &Shared) -> Result<usize, EngineError> {
    const ROUND: usize = 10_000;
    let before =
        shared.clock.now().as_microsecond() - crate::supervisor::IDEMPOTENCY_TTL.as_micros() as i64;
    let old = shared.store.idempotency_older_than(before, ROUND)?;
    if old.is_empty() {
        return Ok(0);
    }
    let mut writes = Writes::new();
    for (at, key) in &old {
        writes.remove_idempotency(key, *at);
    }
    if let Err(e) = commit(&shared.committer, writes).await {
        tracing::warn!(error = %e, "pruning idempotency records failed");
        return Err(e.into());
    }
    tracing::debug!(pruned = old.len(), "idempotency records pruned");
    Ok(old.len())
}

/// Which of a user's coupons to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct CouponFilter<'a> {
    pub campaign_id: Option<&'a str>,
    pub status: Option<crate::model::CouponStatus>,
}

/// The answer to a request sent without a key, which is always decided afresh.
fn fresh<T>(answer: Idempotent<T>) -> Result<T, EngineError> {
    match answer {
        Idempotent::Fresh(v) => Ok(v),
        _ => Err(EngineError::Actor("idempotent answer without a key".into())),
    }
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    supervisor: ActorRef<SupervisorMsg>,
    pub(crate) mailer: Option<Arc<crate::mail::Mailer>>,
}

impl Engine {
    /// Recovers every campaign in `store` (each actor rebuilds its own state) and
    /// starts the committer. Returns when all campaigns are ready to answer.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
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
        let committer = Committer::start(store.clone(), config.committer);
        let shared = Arc::new(Shared {
            store,
            committer,
            clock,
            codes: CouponCodes::from_key(key),
            directory: RwLock::new(HashMap::new()),
            keys_in_flight: Mutex::new(HashMap::new()),
            mail: config.mail.as_ref().map(crate::mail::Mailer::prepare),
            user_locks: crate::mail::UserLocks::new(),
        });
        let started = Instant::now();
        let count = records.len();
        let (supervisor, _) = Actor::spawn(
            None,
            CampaignSupervisor {
                shared: shared.clone(),
            },
            records,
        )
        .await
        .map_err(|e| {
            shared.committer.shutdown();
            EngineError::Actor(e.to_string())
        })?;
        tracing::info!(
            campaigns = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "engine recovered"
        );
        let mailer = match (config.mail, &shared.mail) {
            (Some(cfg), Some(mail)) => {
                match crate::mail::Mailer::start(shared.clone(), mail.clone(), cfg).await {
                    Ok(m) => Some(Arc::new(m)),
                    Err(e) => {
                        supervisor.stop(None);
                        shared.committer.shutdown();
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        Ok(Engine {
            shared,
            supervisor,
            mailer,
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Group-commit counts since start (groups that wrote, requests they released).
    pub fn commit_stats(&self) -> firstcome_storage::CommitStats {
        self.shared.committer.stats()
    }

    /// False once the store has failed a commit: this process writes nothing more.
    pub fn is_healthy(&self) -> bool {
        self.shared.committer.is_healthy()
    }

    pub async fn create_campaign(&self, spec: NewCampaign) -> Result<CampaignView, EngineError> {
        match self
            .supervisor
            .call(|reply| SupervisorMsg::Create(Box::new(spec), reply), None)
            .await
        {
            Ok(CallResult::Success(r)) => r,
            _ => Err(EngineError::Unavailable("supervisor".into())),
        }
    }

    fn actor(&self, campaign_id: &str) -> Result<ActorRef<CampaignMsg>, EngineError> {
        if !is_campaign_id(campaign_id) {
            return Err(EngineError::CampaignNotFound);
        }
        self.shared
            .lookup(campaign_id)
            .ok_or(EngineError::CampaignNotFound)
    }

    async fn call<T: Send + 'static>(
        &self,
        campaign_id: &str,
        msg: impl FnOnce(crate::campaign::Reply<T>) -> CampaignMsg,
    ) -> Result<T, EngineError> {
        let actor = self.actor(campaign_id)?;
        match actor.call(msg, None).await {
            Ok(CallResult::Success(r)) => r,
            // The actor died with the request in its mailbox, or is gone.
            _ => Err(EngineError::Unavailable(campaign_id.to_string())),
        }
    }

    /// The live view of one campaign.
    pub async fn campaign(&self, campaign_id: &str) -> Result<CampaignView, EngineError> {
        self.call(campaign_id, CampaignMsg::Get).await
    }

    /// Up to `limit` campaigns in id order after `after`, and the cursor to continue
    /// from if more follow (the last id read, which is not always the last returned).
    pub async fn campaigns(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<CampaignView>, Option<String>), EngineError> {
        let store = self.shared.store.clone();
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
        let mut views = Vec::with_capacity(limit.min(records.len()));
        for r in records.into_iter().take(limit) {
            match self.campaign(&r.id).await {
                Ok(v) => views.push(v),
                // Stored but not registered yet: its creation has not been answered,
                // so to clients it does not exist yet.
                Err(EngineError::CampaignNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((views, next))
    }

    /// Decides one issue request; the answer reflects durable state.
    pub async fn issue(
        &self,
        campaign_id: &str,
        user_id: &str,
    ) -> Result<IssueOutcome, EngineError> {
        fresh(self.issue_idempotent(campaign_id, user_id, None).await?)
    }

    /// [`Engine::issue`] with an optional idempotency key: a retry of the same request
    /// gets the first response again, even after a restart.
    pub async fn issue_idempotent(
        &self,
        campaign_id: &str,
        user_id: &str,
        idempotency: Option<IdempotencyKey<IssueOutcome>>,
    ) -> Result<Idempotent<IssueOutcome>, EngineError> {
        self.issue_with_contact(campaign_id, user_id, None, idempotency)
            .await
    }

    /// [`Engine::issue_idempotent`] that also sets the user's contact, in the same
    /// atomic batch as the decision (so the confirmation goes to this address).
    pub async fn issue_with_contact(
        &self,
        campaign_id: &str,
        user_id: &str,
        contact: Option<crate::mail::Contact>,
        idempotency: Option<IdempotencyKey<IssueOutcome>>,
    ) -> Result<Idempotent<IssueOutcome>, EngineError> {
        let started = Instant::now();
        let user_id = user_id.to_string();
        let result = self
            .call(campaign_id, |reply| CampaignMsg::Issue {
                user_id,
                contact,
                idempotency,
                reply,
            })
            .await;
        let outcome = match &result {
            Ok(Idempotent::Fresh(o)) => o.code(),
            Ok(Idempotent::Replay(_)) => "replayed",
            Ok(Idempotent::KeyReused) => "idempotency_key_reused",
            Err(EngineError::CampaignNotFound) => "campaign_not_found",
            Err(_) => "error",
        };
        metrics::counter!("firstcome_issue_total", "outcome" => outcome).increment(1);
        metrics::histogram!("firstcome_issue_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// One coupon by id, as stored, with its status as of now.
    pub fn coupon(&self, coupon_id: &str) -> Result<Coupon, EngineError> {
        let (cid, seq) = parse_coupon_id(coupon_id).ok_or(EngineError::CouponNotFound)?;
        let now = self.shared.clock.now();
        self.shared
            .store
            .coupon(cid, seq)?
            .map(|r| Coupon::at(r, now))
            .ok_or(EngineError::CouponNotFound)
    }

    /// Redeems a coupon for its holder (`order_id` is kept for cancellation).
    pub async fn redeem(
        &self,
        coupon_id: &str,
        user_id: &str,
        order_id: Option<String>,
    ) -> Result<CouponChange, EngineError> {
        let req = (coupon_id, user_id, order_id, true);
        fresh(self.use_coupon(req, None).await?)
    }

    /// Undoes a redemption; with `order_id`, only for that order.
    pub async fn cancel_redemption(
        &self,
        coupon_id: &str,
        user_id: &str,
        order_id: Option<String>,
    ) -> Result<CouponChange, EngineError> {
        let req = (coupon_id, user_id, order_id, false);
        fresh(self.use_coupon(req, None).await?)
    }

    /// Redeem (`redeem` true) or cancel-redemption, with an optional idempotency key.
    pub async fn use_coupon(
        &self,
        (coupon_id, user_id, order_id, redeem): (&str, &str, Option<String>, bool),
        idempotency: Option<IdempotencyKey<CouponChange>>,
    ) -> Result<Idempotent<CouponChange>, EngineError> {
        let (cid, seq) = parse_coupon_id(coupon_id).ok_or(EngineError::CouponNotFound)?;
        let request = CouponUse {
            seq,
            user_id: user_id.to_string(),
            order_id,
            redeem,
        };
        let result = self
            .call(cid, |reply| CampaignMsg::UseCoupon {
                request,
                idempotency,
                reply,
            })
            .await;
        let result = match result {
            // The coupon's campaign does not exist, so neither does the coupon.
            Err(EngineError::CampaignNotFound) => Err(EngineError::CouponNotFound),
            other => other,
        };
        let outcome = match &result {
            Ok(Idempotent::Fresh(c)) => c.code(),
            Ok(Idempotent::Replay(_)) => "replayed",
            Ok(Idempotent::KeyReused) => "idempotency_key_reused",
            Err(EngineError::CouponNotFound) => "coupon_not_found",
            Err(_) => "error",
        };
        let action = if redeem {
            "redeem"
        } else {
            "cancel_redemption"
        };
        metrics::counter!("firstcome_coupon_use_total", "action" => action, "outcome" => outcome)
            .increment(1);
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
        self.shared
            .directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(campaign_id);
        actor.stop(Some("deleted".into()));
        Ok(())
    }

    /// Forgets idempotency records older than 24 hours now, instead of at the next
    /// minute's timer; returns how many.
    pub async fn prune_idempotency(&self) -> Result<usize, EngineError> {
        prune_idempotency(&self.shared).await
    }

    /// Live statistics (after expiring what is due).
    pub async fn stats(&self, campaign_id: &str) -> Result<CampaignStats, EngineError> {
        self.call(campaign_id, CampaignMsg::Stats).await
    }

    /// A user's coupons, `limit` at a time after the coupon id `after`, optionally of
    /// one campaign and of one status (as of now), and whether more follow.
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
        let now = self.shared.clock.now();
        let keep = |r: &firstcome_storage::CouponRecord| {
            filter
                .status
                .is_none_or(|s| crate::model::effective_status(r, now) == s)
        };
        let mut records =
            self.shared
                .store
                .user_coupons(user_id, filter.campaign_id, after, limit + 1, keep)?;
        let more = records.len() > limit;
        records.truncate(limit);
        Ok((
            records.into_iter().map(|r| Coupon::at(r, now)).collect(),
            more,
        ))
    }

    /// Stops the campaign actors once their mailboxes are empty, then commits and
    /// flushes everything queued and stops the committer. Call it after the API has
    /// stopped taking requests.
    pub async fn shutdown(&self, timeout: Duration) {
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
        self.shared
            .directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let committer = self.shared.committer.clone();
        let _ = tokio::task::spawn_blocking(move || committer.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use firstcome_storage::{Store, StoreConfig};

    use super::*;
    use crate::model::CouponValidity;
    use crate::{IssueOutcome, SystemClock};

    fn spec(name: &str, stock: u64) -> NewCampaign {
        NewCampaign {
            name: name.into(),
            total_stock: stock,
            per_user_limit: 1,
            starts_at: None,
            ends_at: None,
            validity: CouponValidity::UntilCampaignEnds,
            store_id: None,
            discount: None,
        }
    }

    async fn engine(dir: &std::path::Path) -> Engine {
        let store = Store::open(&StoreConfig {
            path: Some(dir.join("store")),
            cache_capacity: 8 << 20,
        })
        .unwrap();
        Engine::start(store, Arc::new(SystemClock), EngineConfig::default())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_campaign_is_restarted_alone_and_keeps_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let a = engine
            .create_campaign(spec("a", 10))
            .await
            .unwrap()
            .record
            .id;
        let b = engine
            .create_campaign(spec("b", 10))
            .await
            .unwrap()
            .record
            .id;
        for user in ["a1", "a2"] {
            assert!(matches!(
                engine.issue(&a, user).await.unwrap(),
                IssueOutcome::Issued(_)
            ));
        }
        assert!(matches!(
            engine.issue(&b, "b1").await.unwrap(),
            IssueOutcome::Issued(_)
        ));
        let a_before = engine.shared.lookup(&a).unwrap().get_id();
        let b_before = engine.shared.lookup(&b).unwrap().get_id();

        engine
            .shared
            .lookup(&a)
            .unwrap()
            .cast(CampaignMsg::InjectFailure)
            .unwrap();
        // Wait for the supervisor to register the replacement (bounded).
        let restarted = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if engine.shared.lookup(&a).unwrap().get_id() != a_before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(restarted.is_ok(), "campaign a was not restarted");

        // a rebuilt its ledger from the store; b never noticed.
        assert_eq!(engine.campaign(&a).await.unwrap().issued, 2);
        assert!(matches!(
            engine.issue(&a, "a1").await.unwrap(),
            IssueOutcome::AlreadyIssued { .. }
        ));
        assert!(matches!(
            engine.issue(&a, "a3").await.unwrap(),
            IssueOutcome::Issued(_)
        ));
        assert_eq!(engine.shared.lookup(&b).unwrap().get_id(), b_before);
        assert_eq!(engine.campaign(&b).await.unwrap().issued, 1);
        engine.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_with_decisions_in_flight_never_reissues_a_promised_coupon() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let id = engine
            .create_campaign(spec("racy", 100_000))
            .await
            .unwrap()
            .record
            .id;
        let actor = engine.shared.lookup(&id).unwrap();
        let old_id = actor.get_id();
        // 300 decisions queued in order, then the failure right behind them: when the
        // replacement starts, some of those decisions are still in the committer.
        let mut replies = Vec::new();
        for i in 0..300 {
            let (tx, rx) = ractor::concurrency::oneshot();
            let user_id = format!("u{i}");
            actor
                .send_message(CampaignMsg::Issue {
                    user_id: user_id.clone(),
                    contact: None,
                    idempotency: None,
                    reply: tx.into(),
                })
                .unwrap();
            replies.push((user_id, rx));
        }
        actor.cast(CampaignMsg::InjectFailure).unwrap();
        let mut promised = Vec::new();
        for (user, rx) in replies {
            match rx.await.unwrap().unwrap() {
                Idempotent::Fresh(IssueOutcome::Issued(c)) => promised.push((user, c)),
                other => panic!("{other:?}"),
            }
        }
        tokio::time::timeout(Duration::from_secs(10), async {
            while engine.shared.lookup(&id).unwrap().get_id() == old_id {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("restarted");
        for i in 300..400 {
            let user = format!("u{i}");
            match engine.issue(&id, &user).await.unwrap() {
                IssueOutcome::Issued(c) => promised.push((user, c)),
                other => panic!("{other:?}"),
            }
        }
        let mut seqs = std::collections::HashSet::new();
        for (user, c) in &promised {
            let (_, seq) = crate::ids::parse_coupon_id(&c.id).unwrap();
            assert!(seqs.insert(seq), "seq {seq} promised twice");
            let stored = engine.shared.store.coupon(&id, seq).unwrap().unwrap();
            assert_eq!(&stored.user_id, user, "coupon {} was given away", c.id);
        }
        assert_eq!(engine.campaign(&id).await.unwrap().issued, 400);
        engine.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redeems_queued_back_to_back_see_each_others_unapplied_writes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let id = engine
            .create_campaign(spec("once", 1))
            .await
            .unwrap()
            .record
            .id;
        let coupon = match engine.issue(&id, "holder").await.unwrap() {
            IssueOutcome::Issued(c) => c,
            other => panic!("{other:?}"),
        };
        let (_, seq) = crate::ids::parse_coupon_id(&coupon.id).unwrap();
        let actor = engine.shared.lookup(&id).unwrap();
        // All 50 sit in the mailbox before the first redemption's write is applied by
        // the committer: only the actor's own record of it can refuse the other 49.
        let mut replies = Vec::new();
        for i in 0..50 {
            let (tx, rx) = ractor::concurrency::oneshot();
            actor
                .send_message(CampaignMsg::UseCoupon {
                    request: CouponUse {
                        seq,
                        user_id: "holder".into(),
                        order_id: Some(format!("o{i}")),
                        redeem: true,
                    },
                    idempotency: None,
                    reply: tx.into(),
                })
                .unwrap();
            replies.push(rx);
        }
        let mut done = 0;
        for rx in replies {
            match rx.await.unwrap().unwrap() {
                Idempotent::Fresh(CouponChange::Done(_)) => done += 1,
                Idempotent::Fresh(CouponChange::AlreadyRedeemed) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(done, 1);
        assert_eq!(
            engine.coupon(&coupon.id).unwrap().order_id.as_deref(),
            Some("o0")
        );
        engine.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_queued_just_before_a_failure_survives_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let id = engine
            .create_campaign(spec("patched", 100))
            .await
            .unwrap()
            .record
            .id;
        let actor = engine.shared.lookup(&id).unwrap();
        let old = actor.get_id();
        // The pause is decided and queued for commit; the failure follows at once, so the
        // supervisor may reload the record before the committer applied the pause.
        let (tx, rx) = ractor::concurrency::oneshot();
        let patch = CampaignPatch {
            paused: Some(true),
            total_stock: Some(5),
            ..CampaignPatch::default()
        };
        actor
            .send_message(CampaignMsg::Update(patch, tx.into()))
            .unwrap();
        actor.cast(CampaignMsg::InjectFailure).unwrap();
        let view = rx.await.unwrap().unwrap();
        assert!(view.record.paused);
        tokio::time::timeout(Duration::from_secs(10), async {
            while engine.shared.lookup(&id).unwrap().get_id() == old {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("restarted");
        let after = engine.campaign(&id).await.unwrap();
        assert!(after.record.paused, "the acknowledged pause was lost");
        assert_eq!(after.record.total_stock, 5);
        assert_eq!(
            engine.issue(&id, "u").await.unwrap(),
            IssueOutcome::NotActive(crate::NotActiveReason::Paused)
        );
        engine.shutdown(Duration::from_secs(5)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_users_racing_for_the_last_coupon_get_one_coupon_and_one_sold_out() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path()).await;
        let id = engine
            .create_campaign(spec("one", 1))
            .await
            .unwrap()
            .record
            .id;
        let (first, second) = tokio::join!(engine.issue(&id, "x"), engine.issue(&id, "y"));
        let outcomes = [first.unwrap(), second.unwrap()];
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, IssueOutcome::Issued(_)))
                .count(),
            1
        );
        assert!(outcomes.contains(&IssueOutcome::SoldOut));
        let store = engine.shared.store.clone();
        assert_eq!(store.recover_holders(&id).unwrap().holders.len(), 1);
        engine.shutdown(Duration::from_secs(5)).await;
    }
}
