//! [`CampaignActor`]: the single owner of one campaign's state.
//!
//! Every decision about a campaign (issue, redeem, cancel a redemption, expire, change
//! or delete the campaign) is made here, one message at a time, against the in-memory
//! [`Ledger`] and statistics. The actor never waits for the disk: it hands each
//! decision's writes and its reply to the [`Committer`](firstcome_storage::Committer)
//! and takes the next message. The reply leaves when the committer has made the batch durable
//! that holds the decision (and everything decided before it), so the caller never hears
//! of a change that a crash could take back, nor of a refusal that recovery would not
//! repeat.
//!
//! - this file: the message enum, the state, recovery in `pre_start`, and dispatch;
//! - `batch`: the campaign's own group commit (one record for the coupons of many
//!   decisions) and answers that need no trip through the committer;
//! - `decide`: the decisions (issue, redeem and cancel, update, close);
//! - `timers`: the timed duties (announcement, reminders, expiry);
//! - `unsettled`: the overlay of changes not yet applied by the committer.

mod batch;
mod decide;
mod timers;
mod unsettled;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use std::collections::BTreeSet;

use firstcome_storage::{CampaignRecord, CouponRecord, IdempotencyRecord, StatsRecord, Writes};

pub(crate) use batch::LiveSubmissions;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::admission::Reply;
use crate::context::Context;
use crate::error::EngineError;
use crate::feed::Feeds;
use crate::idempotency::{Durability, Earlier, KeyClaims};
use crate::ledger::{Durable, Ledger};
use crate::mail::MailHandle;
use crate::model::{
    self, BatchOutcome, CampaignPatch, CampaignStats, CampaignView, CouponChange, IdempotencyKey,
    Idempotent, IssueOutcome,
};
use crate::request::{CouponUse, IssueBatch, IssueRequest};
use crate::user_index::UserIndex;
use batch::{Deliver, Effects, Submissions, SubmissionsConfig};
use unsettled::Unsettled;

/// How often the actor looks for coupons whose validity has passed.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// Before the next round of a backlog: long enough for the committer to apply this
/// round's index removals, which the next round's scan of the store must not see again.
const EXPIRY_BACKLOG_PAUSE: Duration = Duration::from_millis(5);

pub(crate) enum CampaignMsg {
    Issue(IssueRequest, Reply<Idempotent<IssueOutcome>>),
    /// Issue to each of many users: one decision each, all in one batch (so one journal
    /// record: durable together or not at all).
    IssueBatch(IssueBatch, Reply<Idempotent<BatchOutcome>>),
    /// Redeem (or cancel the redemption of) coupon `seq` of this campaign.
    UseCoupon {
        seq: u64,
        request: CouponUse,
        reply: Reply<Idempotent<CouponChange>>,
    },
    Get(Reply<CampaignView>),
    Update(CampaignPatch, Reply<CampaignView>),
    /// End issuance now; issued coupons stay valid.
    Close(Reply<CampaignView>),
    /// Delete the campaign; refused once it has issued a coupon.
    Delete(Reply<()>),
    /// Expire what is due, then answer with the statistics.
    Stats(Reply<CampaignStats>),
    /// Expire what is due (the timer, or the rest of a long backlog).
    ExpireDue,
    /// A submission completed: every change numbered up to `change` is in the store.
    Settled {
        change: u64,
    },
    /// Makes the handler fail, to test supervision.
    #[cfg(test)]
    InjectFailure,
    /// Makes the handler panic: unlike a failure, the batch is not flushed first.
    #[cfg(test)]
    InjectPanic,
}

impl CampaignMsg {
    /// Answers `Overloaded`, deciding nothing, if this is a client's request that has
    /// waited longer than `deadline` since its admission (`None`); else hands the
    /// message back. An answer that says nothing of the campaign's state needs no commit.
    fn shed_if_older_than(self, deadline: Duration) -> Option<CampaignMsg> {
        use EngineError::Overloaded;
        let late = |waited: Duration| waited > deadline;
        match self {
            CampaignMsg::Issue(_, r) if late(r.waited()) => r.send(Err(Overloaded)),
            CampaignMsg::IssueBatch(_, r) if late(r.waited()) => r.send(Err(Overloaded)),
            CampaignMsg::UseCoupon { reply, .. } if late(reply.waited()) => {
                reply.send(Err(Overloaded))
            }
            CampaignMsg::Get(r) | CampaignMsg::Update(_, r) | CampaignMsg::Close(r)
                if late(r.waited()) =>
            {
                r.send(Err(Overloaded))
            }
            CampaignMsg::Delete(r) if late(r.waited()) => r.send(Err(Overloaded)),
            CampaignMsg::Stats(r) if late(r.waited()) => r.send(Err(Overloaded)),
            // Timers, settlements, and requests in time.
            other => return Some(other),
        }
        None
    }
}

/// How an actor starts.
pub(crate) enum Start {
    /// A campaign just created (and durable): nothing to recover.
    New(CampaignRecord),
    /// A campaign found in the store, at start-up or after its actor failed.
    Recover(CampaignRecord),
}

/// The actor. It holds only read-only handles; the mutable state is
/// [`CampaignState`], built in `pre_start`.
#[derive(Clone)]
pub(crate) struct CampaignActor {
    pub(crate) ctx: Arc<Context>,
    pub(crate) claims: Arc<KeyClaims>,
    pub(crate) index: Arc<UserIndex>,
    /// `None` when mail is off: then no decision writes mail jobs.
    pub(crate) mail: Option<Arc<MailHandle>>,
    pub(crate) live: Arc<LiveSubmissions>,
    /// The campaigns' public state for live subscribers, told by the completions.
    pub(crate) feeds: Arc<Feeds>,
    /// A request that waited longer than this since its admission is answered
    /// `Overloaded` before any work (`EngineConfig::queue_deadline`).
    pub(crate) queue_deadline: Duration,
}

pub(crate) struct CampaignState {
    record: CampaignRecord,
    ledger: Ledger,
    stats: StatsRecord,
    unsettled: Unsettled,
    /// Where the next expiry round continues, while a backlog is being worked off: the
    /// entries before it were handled, and their removal may not be applied yet.
    expiry_cursor: Option<(i64, u64)>,
    /// Like `expiry_cursor`, for the reminder index.
    reminder_cursor: Option<(i64, u64)>,
    /// The campaign's activation was announced to its store's subscribers (or it has no
    /// store, or mail is off).
    announced: bool,
    /// Set by a successful delete: everything after it hears "not found".
    deleted: bool,
    /// Decided and not yet submitted, and the submissions in flight (`batch`).
    submissions: Arc<Submissions>,
    expiry: ExpiryOrder,
}

impl CampaignState {
    fn new(
        record: CampaignRecord,
        ledger: Ledger,
        stats: StatsRecord,
        announced: bool,
        expiry: ExpiryOrder,
        submissions: Arc<Submissions>,
    ) -> CampaignState {
        CampaignState {
            record,
            ledger,
            stats,
            unsettled: Unsettled::default(),
            expiry_cursor: None,
            reminder_cursor: None,
            announced,
            deleted: false,
            submissions,
            expiry,
        }
    }
}

/// How the campaign finds coupons whose validity passed (see `timers`).
struct ExpiryOrder {
    /// Coupons before it are format-1 records, in the time index.
    first_group_seq: u64,
    /// Every group coupon before it that is not indexed was looked at by the walk.
    walk: u64,
    /// Group coupons whose expiry is in the time index, out of seq order.
    indexed: BTreeSet<u64>,
    /// The expiry of the last group coupon in seq order (`i64::MAX` for none).
    last_in_order: i64,
    /// When the coupon the walk stopped at expires: no walk before then.
    next_due: Option<i64>,
}

impl ExpiryOrder {
    /// Whether the walk, not the time index, expires coupon `seq`.
    fn walked(&self, seq: u64) -> bool {
        seq >= self.first_group_seq && !self.indexed.contains(&seq)
    }
}

impl CampaignActor {
    /// Adds the effects to the batch and sends `value` to `reply` once they, and
    /// everything decided before them, are durable; an error instead if the commit
    /// failed. A reply that adds no writes goes at once if nothing is pending, or after the
    /// submission in flight if only that is pending.
    fn commit_and_reply<T: Send + 'static>(
        &self,
        state: &mut CampaignState,
        mut effects: Effects,
        reply: Option<Reply<T>>,
        value: Result<T, EngineError>,
    ) -> Result<(), ActorProcessingErr> {
        let change = state.unsettled.track(std::mem::take(&mut effects.coupons));
        let deliver = reply.map(|reply| -> Deliver {
            Box::new(move |committed| {
                reply.send(match committed {
                    Ok(()) => value,
                    Err(e) => Err(EngineError::from(e)),
                })
            })
        });
        state
            .submissions
            .add(effects, change, &state.stats, deliver);
        Ok(())
    }

    /// Submits the batch unless a submission is in flight (whose completion submits it);
    /// `now`: anyway (the actor is failing or stopping).
    fn flush(&self, state: &CampaignState, now: bool) -> Result<(), ActorProcessingErr> {
        state.submissions.flush(now)?;
        Ok(())
    }

    /// Answers `value` once everything decided before it is durable, with no writes of
    /// its own: so no refusal or read contradicts what a crash would leave.
    fn reply_after_commits<T: Send + 'static>(
        &self,
        state: &mut CampaignState,
        reply: Reply<T>,
        value: Result<T, EngineError>,
    ) -> Result<(), ActorProcessingErr> {
        self.commit_and_reply(state, Effects::default(), Some(reply), value)
    }

    fn view(&self, state: &CampaignState) -> CampaignView {
        let issued = state.ledger.issued();
        // Paired with the assertion where a coupon is decided: stock is never exceeded.
        assert!(
            issued <= state.record.total_stock,
            "campaign {}: {issued} issued of {}",
            state.record.id,
            state.record.total_stock
        );
        CampaignView {
            status: model::status(&state.record, issued, self.ctx.clock.now()),
            issued,
            record: state.record.clone(),
        }
    }

    /// A coupon as this actor last decided it: its unsettled change, else the store.
    fn coupon(
        &self,
        state: &CampaignState,
        seq: u64,
    ) -> Result<Option<CouponRecord>, ActorProcessingErr> {
        Ok(match state.unsettled.get(seq) {
            Some(c) => Some(c.clone()),
            None => self
                .ctx
                .coupon(&state.record.id, state.record.ordinal, seq)?,
        })
    }

    /// The coupon's change since its issue, if it has one (unsettled, or its `k` record).
    fn changed_coupon(
        &self,
        state: &CampaignState,
        seq: u64,
    ) -> Result<Option<CouponRecord>, ActorProcessingErr> {
        Ok(match state.unsettled.get(seq) {
            Some(c) => Some(c.clone()),
            None => self.ctx.store.changed_coupon(&state.record.id, seq)?,
        })
    }

    /// Decides a request that may carry an idempotency key: a retry gets the first
    /// response, a reused key a refusal, anything else `decide`, whose response is
    /// rendered once and kept for the key in the same batch as the decision's writes.
    fn idempotent<T: Send + 'static>(
        &self,
        state: &mut CampaignState,
        idempotency: Option<IdempotencyKey<T>>,
        reply: Reply<Idempotent<T>>,
        decide: impl FnOnce(
            &Self,
            &mut CampaignState,
            &mut Effects,
        ) -> Result<Result<T, EngineError>, ActorProcessingErr>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(idem) = idempotency else {
            let mut effects = Effects::default();
            let outcome = decide(self, state, &mut effects)?;
            let answer = outcome.map(Idempotent::Fresh);
            return self.commit_and_reply(state, effects, Some(reply), answer);
        };
        let claim = match self
            .claims
            .claim(&self.ctx.store, &idem.key, idem.fingerprint)?
        {
            Ok(claim) => claim,
            Err((earlier, durability)) => {
                let answer = match earlier {
                    Earlier::Reused => Ok(Idempotent::KeyReused),
                    Earlier::Replay(response) => Ok(Idempotent::Replay(response)),
                    Earlier::Deciding => Err(EngineError::Unavailable(idem.key.clone())),
                };
                if durability == Durability::Pending {
                    // Built on another actor's decision, whose commit is submitted: an
                    // empty commit queued now completes after it.
                    self.ctx.committer.submit(
                        Writes::new(),
                        Box::new(move |committed| {
                            reply.send(committed.map_err(EngineError::from).and(answer))
                        }),
                    );
                    return Ok(());
                }
                return self.reply_after_commits(state, reply, answer);
            }
        };
        // From here every way out drops the claim or hands it to the completion: a
        // failed decision (`?`) releases the key with the guard.
        let mut effects = Effects::default();
        let value = match decide(self, state, &mut effects)? {
            Ok(value) => value,
            // Nothing is kept for an error: the claim goes now, and a retry decides afresh.
            Err(e) => {
                drop(claim);
                return self.commit_and_reply(state, effects, Some(reply), Err(e));
            }
        };
        let response = (idem.render)(&value);
        let record = IdempotencyRecord {
            fingerprint: idem.fingerprint,
            status: response.status,
            content_type: response.content_type.clone(),
            body: response.body.clone(),
            created_at: self.ctx.now_us(),
        };
        effects.writes.put_idempotency(claim.key(), &record)?;
        // Published once the batch is submitted (`flush`).
        effects.claim = Some((claim, record));
        self.commit_and_reply(
            state,
            effects,
            Some(reply),
            Ok(Idempotent::Recorded { value, response }),
        )
    }
}

impl Actor for CampaignActor {
    type Msg = CampaignMsg;
    type State = CampaignState;
    type Arguments = Start;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        start: Start,
    ) -> Result<Self::State, ActorProcessingErr> {
        let record = match start {
            // Nothing is stored for it but its record: an empty ledger, no statistics,
            // and (with mail on) not announced yet.
            Start::New(record) => {
                self.index.register_campaign(record.ordinal, &record.id);
                let indexed = Arc::new(AtomicU64::new(0));
                let ledger = Ledger::over_index(
                    record.total_stock,
                    record.per_user_limit,
                    0,
                    self.durable(&record, &indexed),
                );
                let announced = self.mail.is_none();
                let expiry = ExpiryOrder {
                    first_group_seq: 0,
                    walk: 0,
                    indexed: BTreeSet::new(),
                    last_in_order: i64::MIN,
                    next_due: None,
                };
                let submissions = self.submissions(&myself, &record, 0, indexed);
                return Ok(CampaignState::new(
                    record,
                    ledger,
                    StatsRecord::default(),
                    announced,
                    expiry,
                    submissions,
                ));
            }
            Start::Recover(record) => record,
        };
        // If this actor replaces one that failed, nothing that one left undecided may
        // be submitted from now on: it would land behind the barrier below.
        self.live.close_previous(&record.id);
        // A barrier first: if this actor replaces one that failed, that actor's last
        // submissions may still be queued in the committer. The committer works in order,
        // so once this empty commit completes they are applied, and recovery sees them
        // (otherwise a coupon already promised to one user could be issued to another).
        // Its batch not yet submitted was closed above (and by the supervisor, before it
        // read the record back): dropped, unanswered.
        self.ctx.commit(Writes::new()).await?;
        let store = self.ctx.store.clone();
        let id = record.id.clone();
        let started = std::time::Instant::now();
        // Reading and indexing up to a million holders is blocking work (hundreds of
        // milliseconds): keep it off the async workers.
        let (recovered, stats) = tokio::task::spawn_blocking(move || {
            let stats = store.stats(&id)?;
            store.recover_holders(&id).map(|r| (r, stats))
        })
        .await??;
        let issued = recovered.holders.len() as u64;
        // Paired with the assertion in `view`: a store that holds more coupons than the
        // stock is damaged, and is refused rather than served.
        if issued > record.total_stock {
            return Err(format!(
                "campaign {}: the store holds {issued} coupons of a stock of {}",
                record.id, record.total_stock
            )
            .into());
        }
        // A replacement finds its campaign indexed already, by its predecessor (whose
        // completions all ran before the barrier above): adding the holders again would
        // list them twice.
        if self.index.register_campaign(record.ordinal, &record.id) {
            self.index.add_holders(record.ordinal, &recovered.holders);
        }
        let indexed = Arc::new(AtomicU64::new(issued));
        let ledger = Ledger::over_index(
            record.total_stock,
            record.per_user_limit,
            issued,
            self.durable(&record, &indexed),
        );
        tracing::debug!(
            campaign = %record.id,
            issued,
            from_chunks = recovered.from_chunks,
            in_groups = issued - recovered.first_group_seq,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "campaign recovered"
        );
        // Mail off: nothing to announce. Otherwise ask the store (a campaign announced
        // before a restart stays announced).
        let announced = self.mail.is_none() || self.ctx.store.is_announced(&record.id)?;
        let expiry = ExpiryOrder {
            first_group_seq: recovered.first_group_seq,
            walk: recovered.expiry_walk,
            indexed: recovered.expiry_indexed.into_iter().collect(),
            last_in_order: recovered.last_in_order_expiry,
            next_due: None,
        };
        let submissions = self.submissions(&myself, &record, issued, indexed);
        Ok(CampaignState::new(
            record,
            ledger,
            stats,
            announced,
            expiry,
            submissions,
        ))
    }

    /// A graceful stop (the engine's shutdown drains the mailbox first) submits what the
    /// last messages decided, so their requests are answered. Nothing depends on it:
    /// ractor skips `post_stop` after a kill or a panic, and nothing in a batch has been
    /// acknowledged yet.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.flush(state, true)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The timer task ends by itself when the actor stops (sending fails).
        myself.send_interval(EXPIRY_TICK, || CampaignMsg::ExpireDue);
        // A campaign created active is announced now, not a tick later.
        if !state.announced {
            let _ = myself.cast(CampaignMsg::ExpireDue);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A client that has waited this long gets an answer worth less than the work:
        // shed, as admission sheds at the door. Nothing is decided.
        let Some(message) = message.shed_if_older_than(self.queue_deadline) else {
            metrics::counter!("firstcome_requests_shed_total").increment(1);
            return Ok(());
        };
        let handled = if state.deleted {
            self.refuse_deleted(state, message)
        } else {
            self.dispatch(&myself, state, message)
        };
        if let Err(e) = handled {
            // The actor fails and the supervisor replaces it. What it decided before
            // this message stands (a failed decision adds nothing to the batch): submit
            // it now, so those requests are answered; the replacement's barrier commit
            // waits for it before recovering.
            self.flush(state, true)?;
            return Err(e);
        }
        // After every message: the batch goes now if nothing is in flight; otherwise the
        // completion in flight submits it, so under load one submission carries
        // everything decided meanwhile.
        self.flush(state, false)
    }
}

impl CampaignActor {
    fn dispatch(
        &self,
        myself: &ActorRef<CampaignMsg>,
        state: &mut CampaignState,
        message: CampaignMsg,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CampaignMsg::Issue(request, reply) => {
                let IssueRequest {
                    user_id,
                    contact,
                    idempotency,
                    ..
                } = request;
                self.idempotent(state, idempotency, reply, |this, state, effects| {
                    this.issue(state, effects, user_id, contact)
                })?;
            }
            CampaignMsg::IssueBatch(batch, reply) => {
                let IssueBatch {
                    user_ids,
                    idempotency,
                    ..
                } = batch;
                self.idempotent(state, idempotency, reply, |this, state, effects| {
                    // Every decision's writes go into the one `effects`, which joins the
                    // batch whole: the batch is submitted as one journal record.
                    let mut results = Vec::with_capacity(user_ids.len());
                    for user_id in user_ids {
                        match this.issue(state, effects, user_id.clone(), None)? {
                            Ok(outcome) => results.push((user_id, outcome)),
                            // Never today (`issue` decides or fails the actor). If it
                            // did, the users before would be decided and in `effects`:
                            // fail the actor rather than commit part of the batch (its
                            // replacement recovers what is durable).
                            Err(e) => return Err(format!("a bulk issue failed: {e}").into()),
                        }
                    }
                    Ok(Ok(BatchOutcome { results }))
                })?;
            }
            CampaignMsg::UseCoupon {
                seq,
                mut request,
                reply,
            } => {
                let idempotency = request.idempotency.take();
                self.idempotent(state, idempotency, reply, |this, state, effects| {
                    this.use_coupon(state, effects, seq, request)
                })?;
            }
            CampaignMsg::Get(reply) => {
                let view = self.view(state);
                self.reply_after_commits(state, reply, Ok(view))?;
            }
            CampaignMsg::Update(patch, reply) => {
                let mut effects = Effects::default();
                let view = self.update(state, &mut effects, &patch)?;
                self.commit_and_reply(state, effects, Some(reply), view)?;
            }
            CampaignMsg::Close(reply) => {
                let mut effects = Effects::default();
                let view = self.close(state, &mut effects)?;
                self.commit_and_reply(state, effects, Some(reply), Ok(view))?;
            }
            CampaignMsg::Delete(reply) => {
                let mut effects = Effects::default();
                let result = self.delete(state, &mut effects);
                self.commit_and_reply(state, effects, Some(reply), result)?;
            }
            CampaignMsg::Stats(reply) => {
                // Expire what is due first, so that the counts are exact at this moment
                // (a long backlog is finished by the ExpireDue it schedules).
                let mut effects = Effects::default();
                if self.expire_due(state, &mut effects)? {
                    myself.send_after(EXPIRY_BACKLOG_PAUSE, || CampaignMsg::ExpireDue);
                }
                let stats = self.stats(state);
                self.commit_and_reply(state, effects, Some(reply), Ok(stats))?;
            }
            CampaignMsg::ExpireDue => {
                let mut effects = Effects::default();
                let more = self.timed_duties(state, &mut effects)?;
                if !effects.writes.is_empty() {
                    self.commit_and_reply::<()>(state, effects, None, Ok(()))?;
                }
                if more {
                    myself.send_after(EXPIRY_BACKLOG_PAUSE, || CampaignMsg::ExpireDue);
                }
            }
            CampaignMsg::Settled { change } => state.unsettled.settle(change),
            #[cfg(test)]
            CampaignMsg::InjectFailure => return Err("injected failure".into()),
            #[cfg(test)]
            CampaignMsg::InjectPanic => panic!("injected panic"),
        }
        Ok(())
    }
}

impl CampaignActor {
    /// The new actor's batch and submissions, registered as the campaign's current ones.
    fn submissions(
        &self,
        myself: &ActorRef<CampaignMsg>,
        record: &CampaignRecord,
        next_group_seq: u64,
        indexed: Arc<AtomicU64>,
    ) -> Arc<Submissions> {
        let me = myself.clone();
        // Durable: a new campaign has its record committed and nothing issued, a
        // recovered one what recovery read back.
        let feed = self.feeds.register(record, next_group_seq);
        let submissions = Submissions::new(SubmissionsConfig {
            id: record.id.clone(),
            ordinal: record.ordinal,
            next_group_seq,
            ctx: self.ctx.clone(),
            claims: self.claims.clone(),
            index: self.index.clone(),
            indexed,
            mail: self.mail.clone(),
            settled: Box::new(move |change| {
                let _ = me.cast(CampaignMsg::Settled { change });
            }),
            feed,
        });
        self.live.register(&record.id, &submissions);
        submissions
    }

    /// The ledger's view of the campaign's durable holders: the user index.
    fn durable(&self, record: &CampaignRecord, indexed: &Arc<AtomicU64>) -> Durable {
        Durable {
            index: self.index.clone(),
            ordinal: record.ordinal,
            indexed: indexed.clone(),
        }
    }

    /// Requests queued behind a delete hear "not found", but only once the delete is
    /// durable, like any other refusal.
    fn refuse_deleted(
        &self,
        state: &mut CampaignState,
        message: CampaignMsg,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CampaignMsg::Issue(_, reply) => {
                self.reply_after_commits(state, reply, Err(EngineError::CampaignNotFound))
            }
            CampaignMsg::IssueBatch(_, reply) => {
                self.reply_after_commits(state, reply, Err(EngineError::CampaignNotFound))
            }
            CampaignMsg::UseCoupon { reply, .. } => {
                self.reply_after_commits(state, reply, Err(EngineError::CampaignNotFound))
            }
            CampaignMsg::Get(reply) | CampaignMsg::Update(_, reply) | CampaignMsg::Close(reply) => {
                self.reply_after_commits(state, reply, Err(EngineError::CampaignNotFound))
            }
            CampaignMsg::Delete(reply) => {
                self.reply_after_commits(state, reply, Err(EngineError::CampaignNotFound))
            }
            CampaignMsg::Stats(reply) => {
                self.reply_after_commits(state, reply, Err(EngineError::CampaignNotFound))
            }
            CampaignMsg::ExpireDue | CampaignMsg::Settled { .. } => Ok(()),
            #[cfg(test)]
            CampaignMsg::InjectFailure | CampaignMsg::InjectPanic => Ok(()),
        }
    }
}
