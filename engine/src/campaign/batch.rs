//! One campaign's own group commit.
//!
//! sled's cost is per key written, so a campaign writes the coupons of many decisions as
//! one record. While its previous submission is in flight, the actor gathers what it
//! decides into a [`Batch`]. The batch is submitted (one issued-group record, its
//! statistics once, and every decision's other writes, atomically) by whichever comes
//! first:
//! - the completion of the submission in flight, on the committer thread, the moment its
//!   replies are out. So the committer starts the next group commit with everything the
//!   actor decided meanwhile, and no wake-up of the actor (and of the committer after it)
//!   sits between two group commits: under load those two wake-ups took longer than the
//!   fdatasync itself (docs/performance.md, Pipelined submissions);
//! - the actor, after a message, when nothing is in flight (or the batch is full,
//!   [`MAX_BATCH_COUPONS`], or the actor is failing or stopping).
//!
//! Both sides take the same lock for it, and submit while they hold it, so submissions
//! reach the committer in the order their batches were decided.
//!
//! A reply that depends on nothing pending (a refusal, a read, when nothing is in the batch
//! or in flight) is answered at once, with no trip through the committer; one that depends
//! only on the submission in flight waits for that submission ([`InFlight::after`]); any
//! other rides with the batch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use firstcome_storage::{
    Completion, CouponRecord, DayStats, IdempotencyRecord, IssuedCoupon, StatsRecord, StorageError,
    Writes,
};

use crate::context::Context;
use crate::feed::{CampaignFeed, RecordChange};
use crate::idempotency::{Claim, KeyClaims};
use crate::ledger::user_key;
use crate::mail::MailHandle;
use crate::user_index::UserIndex;

/// A batch is submitted once it holds this many new coupons, even while the previous one
/// is in flight: it bounds a group record's size (and the memory of a batch).
pub(super) const MAX_BATCH_COUPONS: usize = 4096;

/// What happens when a submission completes: a reply sent, a claim released.
pub(super) type Deliver = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// Tells the actor that every change numbered up to this one is applied (`Unsettled`).
pub(super) type Settled = Box<dyn Fn(u64) + Send + Sync>;

/// One decision's effects, gathered before they join the batch.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) writes: Writes,
    /// New coupons (into the batch's group record), in seq order.
    pub(super) issued: Vec<IssuedCoupon>,
    /// Coupons changed after their issue (tracked as unsettled until applied; the
    /// actor takes them before the rest joins the batch).
    pub(super) coupons: Vec<CouponRecord>,
    /// The claim of the idempotency key whose record these writes hold, and the record.
    pub(super) claim: Option<(Claim, IdempotencyRecord)>,
    /// UTC days whose counts this decision changed: the totals and these days go in the
    /// batch as they are after the decision.
    pub(super) days: Vec<i32>,
    /// Mail jobs written (the dispatcher is woken once they are durable).
    pub(super) mail_jobs: i64,
    /// Wake the dispatcher even without jobs (an announcement to expand).
    pub(super) wake_mail: bool,
    /// The decision changed the campaign itself (its live feed hears of it once durable).
    pub(super) record: Option<RecordChange>,
}

impl Effects {
    fn writes(&self) -> bool {
        !self.writes.is_empty()
            || !self.issued.is_empty()
            || !self.days.is_empty()
            || self.claim.is_some()
    }
}

/// Decisions gathered for the campaign's next submission.
#[derive(Default)]
struct Batch {
    writes: Writes,
    /// New coupons, in seq order: one group record.
    issued: Vec<IssuedCoupon>,
    /// The statistics as the batch's last decision left them: the totals, and the days
    /// whose counts changed (written once per batch).
    totals: Option<(u64, u64)>,
    days: BTreeMap<i32, DayStats>,
    /// Idempotency claims whose records are in `writes`, released by the completion.
    claims: Vec<Claim>,
    /// Records to make visible to other actors' replays once `writes` are submitted.
    publish: Vec<(String, IdempotencyRecord)>,
    mail_jobs: i64,
    wake_mail: bool,
    /// The batch's last change to the campaign itself, for its feed.
    record: Option<RecordChange>,
    /// The last unsettled change in the batch, settled when it is durable.
    change: Option<u64>,
    /// In decision order, after the writes are durable.
    replies: Vec<Deliver>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.issued.is_empty()
            && self.totals.is_none()
            && self.replies.is_empty()
            && self.claims.is_empty()
    }
}

/// A campaign's batch and submissions, shared by its actor and the completions of its
/// submissions.
pub(super) struct Submissions {
    // A std Mutex, not a Tokio one: held to add one decision or to take and submit the
    // batch, never across an await.
    pending: Mutex<Pending>,
    id: String,
    ordinal: u64,
    ctx: Arc<Context>,
    claims: Arc<KeyClaims>,
    index: Arc<UserIndex>,
    /// How far the index lists this campaign's coupons (`ledger::Durable::indexed`).
    indexed: Arc<AtomicU64>,
    mail: Option<Arc<MailHandle>>,
    settled: Settled,
    feed: Arc<CampaignFeed>,
}

struct Pending {
    batch: Batch,
    /// The latest submission, until it completes.
    in_flight: Option<Arc<InFlight>>,
    /// The seq the next issued group starts at (paired with recovery's gap check).
    next_group_seq: u64,
    /// A later incarnation of the actor took over: what this one left undecided is
    /// dropped unanswered, and nothing more is submitted (it would land after the new
    /// actor's recovery).
    closed: bool,
    /// A batch could not be encoded: its requests got the error, and the actor fails
    /// at its next flush, so that its replacement recovers from what is stored.
    failed: Option<StorageError>,
}

pub(super) struct SubmissionsConfig {
    pub(super) id: String,
    pub(super) ordinal: u64,
    pub(super) next_group_seq: u64,
    pub(super) ctx: Arc<Context>,
    pub(super) claims: Arc<KeyClaims>,
    pub(super) index: Arc<UserIndex>,
    pub(super) indexed: Arc<AtomicU64>,
    pub(super) mail: Option<Arc<MailHandle>>,
    pub(super) settled: Settled,
    pub(super) feed: Arc<CampaignFeed>,
}

impl Submissions {
    pub(super) fn new(c: SubmissionsConfig) -> Arc<Submissions> {
        Arc::new(Submissions {
            pending: Mutex::new(Pending {
                batch: Batch::default(),
                in_flight: None,
                next_group_seq: c.next_group_seq,
                closed: false,
                failed: None,
            }),
            id: c.id,
            ordinal: c.ordinal,
            ctx: c.ctx,
            claims: c.claims,
            index: c.index,
            indexed: c.indexed,
            mail: c.mail,
            settled: c.settled,
            feed: c.feed,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Consistent even if poisoned: every operation leaves the batch whole.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a decision's effects to the batch, and `deliver` to run once they, and
    /// everything decided before them, are durable (`stats`: the statistics after it).
    /// A delivery with no writes goes at once if nothing is pending, or after the
    /// submission in flight if only that is pending.
    /// `change`: the decision's unsettled change, if it changed coupons.
    pub(super) fn add(
        &self,
        a: Effects,
        change: Option<u64>,
        stats: &StatsRecord,
        deliver: Option<Deliver>,
    ) {
        let writes = a.writes();
        let mut p = self.lock();
        if let Some(e) = p.failed.clone() {
            // The ledger holds decisions of the batch that was lost: nothing it says now
            // may go out (the actor fails at its next flush).
            drop(p);
            if let Some(deliver) = deliver {
                deliver(Err(e));
            }
            return;
        }
        if writes {
            let b = &mut p.batch;
            b.writes.extend(a.writes);
            b.issued.extend(a.issued);
            if !a.days.is_empty() {
                b.totals = Some((stats.redeemed, stats.expired));
                for day in a.days {
                    if let Some(d) = stats.per_day.get(&day) {
                        b.days.insert(day, *d);
                    }
                }
            }
            if let Some((claim, record)) = a.claim {
                b.publish.push((claim.key().to_string(), record));
                b.claims.push(claim);
            }
            b.mail_jobs += a.mail_jobs;
            b.wake_mail |= a.wake_mail;
            if a.record.is_some() {
                b.record = a.record;
            }
            if change.is_some() {
                b.change = change;
            }
        }
        let Some(deliver) = deliver else {
            return;
        };
        if writes || !p.batch.is_empty() {
            p.batch.replies.push(deliver);
            return;
        }
        let in_flight = p.in_flight.clone();
        drop(p);
        match in_flight {
            Some(f) => f.after(deliver),
            None => deliver(Ok(())),
        }
    }

    /// Called by the actor after every message: submits the batch unless a submission
    /// is in flight, whose completion will (`now`: submit anyway, the actor is failing or
    /// stopping). An error means the actor must fail (a batch could not be encoded).
    pub(super) fn flush(self: &Arc<Self>, now: bool) -> Result<(), StorageError> {
        let mut p = self.lock();
        if let Some(e) = &p.failed {
            return Err(e.clone());
        }
        if p.closed || p.batch.is_empty() {
            return Ok(());
        }
        let busy = p.in_flight.as_ref().is_some_and(|f| !f.is_done());
        if busy && !now && p.batch.issued.len() < MAX_BATCH_COUPONS {
            return Ok(());
        }
        let refused = self.submit(&mut p);
        let failed = p.failed.clone();
        drop(p);
        if let Some(done) = refused {
            done(Err(StorageError::CommitterStopped));
        }
        failed.map_or(Ok(()), Err)
    }

    /// A later incarnation takes over (see `Pending::closed`).
    pub(super) fn close(&self) {
        let mut p = self.lock();
        p.closed = true;
        // Dropped, not answered: their callers hear that the campaign was unavailable.
        p.batch = Batch::default();
    }

    /// The completion of the submission `done`: if it is the latest and the actor decided
    /// more meanwhile, that goes now, from the committer thread.
    fn completed(self: &Arc<Self>, done: &Arc<InFlight>, result: Result<(), StorageError>) {
        let mut p = self.lock();
        // Under the lock, so that the actor sees either the submission still in flight
        // (and leaves the batch to this completion) or done (and submits it itself).
        done.complete(result);
        let latest = p.in_flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, done));
        if !latest || p.closed || p.failed.is_some() || p.batch.is_empty() {
            return;
        }
        let refused = self.submit(&mut p);
        drop(p);
        if let Some(done) = refused {
            done(Err(StorageError::CommitterStopped));
        }
    }

    /// Takes the batch and submits it: one group record for its new coupons, its
    /// statistics once, the rest of its writes, and a completion that answers its replies
    /// in order. Called with the lock held, so submissions keep the batches' order. A
    /// completion the committer refused (it has stopped) is handed back, to be run once
    /// the lock is released.
    fn submit(self: &Arc<Self>, p: &mut Pending) -> Option<Completion> {
        let mut b = std::mem::take(&mut p.batch);
        if let Err(e) = self.encode(&mut b, p.next_group_seq) {
            tracing::error!(campaign = %self.id, error = %e, "a batch could not be encoded");
            for deliver in b.replies {
                deliver(Err(e.clone()));
            }
            p.failed = Some(e);
            return None;
        }
        p.next_group_seq += b.issued.len() as u64;
        // Seqs are dense from 0: the campaign's durable count once this submission is.
        let issued_total = p.next_group_seq;
        let record = b.record.take();
        let in_flight = Arc::new(InFlight::default());
        p.in_flight = Some(in_flight.clone());
        let new_keys: Vec<(u128, u64)> = b
            .issued
            .iter()
            .map(|c| (user_key(&c.user_id), c.seq))
            .collect();
        let mail = self.mail.clone().filter(|_| b.mail_jobs > 0 || b.wake_mail);
        let (mail_jobs, claims, replies, change) = (b.mail_jobs, b.claims, b.replies, b.change);
        let this = self.clone();
        let completion: Completion = Box::new(move |committed| {
            // The keys' records are in the store now (or the store failed: then a
            // retry decides afresh). Either way the claims go before anyone hears.
            drop(claims);
            if committed.is_ok() {
                // Before the replies: whoever hears of a coupon finds it listed.
                this.index.add(this.ordinal, &new_keys);
                if let Some(&(_, last)) = new_keys.last() {
                    // After the index has them: the ledger may forget them then.
                    this.indexed.fetch_max(last + 1, Ordering::Release);
                }
                if let Some(mail) = mail {
                    mail.committed(mail_jobs);
                }
                // Before the replies too: the sell-out's publication starts before the
                // last winner hears.
                this.feed.committed(issued_total, record);
            }
            for deliver in replies {
                deliver(committed.clone());
            }
            if let Some(change) = change.filter(|_| committed.is_ok()) {
                (this.settled)(change);
            }
            this.completed(&in_flight, committed);
        });
        if let Err(refused) = self.ctx.committer.try_submit(b.writes, completion) {
            return Some(refused);
        }
        // Only now, after the writes are queued: a replay by another actor then queues
        // its reply behind them, so it never outruns the record.
        for (key, record) in b.publish {
            self.claims.publish(&key, record);
        }
        None
    }

    fn encode(&self, b: &mut Batch, next_group_seq: u64) -> Result<(), StorageError> {
        if let Some(first) = b.issued.first() {
            // Paired with recovery's gap check: groups follow each other without a gap.
            assert_eq!(
                first.seq, next_group_seq,
                "campaign {}: group out of order",
                self.id
            );
            b.writes.put_issued_group(&self.id, &b.issued)?;
        }
        if let Some((redeemed, expired)) = b.totals {
            let days: Vec<i32> = b.days.keys().copied().collect();
            let stats = StatsRecord {
                redeemed,
                expired,
                per_day: std::mem::take(&mut b.days),
            };
            b.writes.put_stats(&self.id, &stats, &days)?;
        }
        Ok(())
    }
}

/// One submission of a campaign, until it completes.
#[derive(Default)]
pub(super) struct InFlight {
    /// A std Mutex: held to push or take one closure, never across an await.
    state: Mutex<InFlightState>,
}

#[derive(Default)]
struct InFlightState {
    done: Option<Result<(), StorageError>>,
    waiting: Vec<Deliver>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, InFlightState> {
        // Consistent even if poisoned: every operation is one push or one take.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_done(&self) -> bool {
        self.lock().done.is_some()
    }

    /// Runs `deliver` once this submission is durable (or failed): at once if it is.
    fn after(&self, deliver: Deliver) {
        let mut s = self.lock();
        match &s.done {
            Some(result) => {
                let result = result.clone();
                drop(s);
                deliver(result);
            }
            None => s.waiting.push(deliver),
        }
    }

    /// Called by the completion, after the submission's own replies.
    fn complete(&self, result: Result<(), StorageError>) {
        let waiting = {
            let mut s = self.lock();
            s.done = Some(result.clone());
            std::mem::take(&mut s.waiting)
        };
        for deliver in waiting {
            deliver(result.clone());
        }
    }
}

/// The submissions of each campaign's current actor, by campaign id. When an actor fails,
/// the supervisor closes its submissions before its barrier commit (and the replacement
/// once more in `pre_start`), so nothing the failed actor left undecided (a panic skips
/// the flush of the failing message) is submitted behind that barrier, where the
/// campaign record and the recovery would not see it. One entry per campaign, like the
/// directory; weak, so an entry keeps nothing alive.
#[derive(Default)]
pub(crate) struct LiveSubmissions {
    // A std Mutex: held for one map operation, never across an await.
    by_campaign: Mutex<std::collections::HashMap<String, std::sync::Weak<Submissions>>>,
}

impl LiveSubmissions {
    /// Closes the submissions of the campaign's last actor, if any still exist.
    pub(crate) fn close_previous(&self, campaign_id: &str) {
        let previous = self
            .by_campaign
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(campaign_id);
        if let Some(previous) = previous.and_then(|w| w.upgrade()) {
            previous.close();
        }
    }

    /// Whether the campaign's current actor has open submissions (for the actor tests).
    #[cfg(test)]
    pub(crate) fn is_live(&self, campaign_id: &str) -> bool {
        self.by_campaign
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(campaign_id)
            .is_some_and(|w| w.strong_count() > 0)
    }

    pub(super) fn register(&self, campaign_id: &str, submissions: &Arc<Submissions>) {
        self.by_campaign
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(campaign_id.to_string(), Arc::downgrade(submissions));
    }
}
