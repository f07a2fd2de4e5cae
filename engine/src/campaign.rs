//! [`CampaignActor`]: the single owner of one campaign's state.
//!
//! Every decision about a campaign (issue, redeem, cancel a redemption, expire, change
//! or delete the campaign) is made here, one message at a time, against the in-memory
//! [`Ledger`] and statistics. The actor never waits for the disk: it hands each
//! decision's writes and its reply to the [`Committer`](firstcome_storage::Committer)
//! and takes the next message. The reply leaves when the committer has flushed the batch
//! that holds the decision (and everything decided before it), so the caller never hears
//! of a change that a crash could take back, nor of a refusal that recovery would not
//! repeat.
//!
//! The committer applies writes on its own thread, a little after the decision. Until a
//! change is reported settled, the actor reads its coupons and idempotency records
//! through its own `unsettled` maps, so it always decides against its latest state.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use firstcome_storage::{
    CampaignRecord, CouponRecord, CouponStatus, IdempotencyRecord, StatsRecord, Writes,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::EngineError;
use crate::engine::{KeyClaim, Shared};
use crate::ids::coupon_id;
use crate::ledger::{Decision, Ledger};
use crate::mail::{self, Contact, MailKind};
use crate::model::{
    self, CampaignPatch, CampaignStats, CampaignView, Coupon, CouponChange,
    CouponStatus as Effective, IdempotencyKey, Idempotent, IssueOutcome, day_of,
};

pub type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// How often the actor looks for coupons whose validity has passed.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// The most coupons one expiry round handles; a longer backlog continues at once in
/// another message, so other requests interleave.
const EXPIRY_ROUND: usize = 1000;
/// Before the next round of a backlog: long enough for the committer to apply this
/// round's index removals, which the next round's scan of the store must not see again.
const EXPIRY_BACKLOG_PAUSE: Duration = Duration::from_millis(5);

pub enum CampaignMsg {
    Issue {
        user_id: String,
        /// Sets the user's contact (in the same batch as the decision) before deciding.
        contact: Option<Contact>,
        idempotency: Option<IdempotencyKey<IssueOutcome>>,
        reply: Reply<Idempotent<IssueOutcome>>,
    },
    Get(Reply<CampaignView>),
    /// Redeem (or cancel the redemption of) coupon `seq` of this campaign.
    UseCoupon {
        request: CouponUse,
        idempotency: Option<IdempotencyKey<CouponChange>>,
        reply: Reply<Idempotent<CouponChange>>,
    },
    Update(CampaignPatch, Reply<CampaignView>),
    /// End issuance now; issued coupons stay valid.
    Close(Reply<CampaignView>),
    /// Delete the campaign; refused once it has issued a coupon.
    Delete(Reply<()>),
    /// Expire what is due, then answer with the statistics.
    Stats(Reply<CampaignStats>),
    /// Expire what is due (the timer, or the rest of a long backlog).
    ExpireDue,
    /// Every change numbered up to `change` is applied and durable, so the store now
    /// holds it (sent by the completion of that change's commit).
    Settled {
        change: u64,
    },
    /// Makes the handler fail, to test supervision.
    #[cfg(test)]
    InjectFailure,
}

/// A redeem (`redeem: true`) or cancel-redemption request.
#[derive(Debug, Clone)]
pub struct CouponUse {
    pub seq: u64,
    pub user_id: String,
    pub order_id: Option<String>,
    pub redeem: bool,
}

/// The actor. It holds only read-only configuration; the mutable state is
/// [`CampaignState`], built in `pre_start`.
pub struct CampaignActor {
    pub(crate) shared: Arc<Shared>,
}

pub struct CampaignState {
    record: CampaignRecord,
    ledger: Ledger,
    stats: StatsRecord,
    /// Coupon changes submitted but not yet settled, by seq, with their change number.
    unsettled: HashMap<u64, (u64, CouponRecord)>,
    /// (change, seq) in change order, so that settling pops from the front instead of
    /// scanning every pending change.
    settle_order: VecDeque<(u64, u64)>,
    /// Where the next expiry round continues, while a backlog is being worked off: the
    /// entries before it were handled, and their removal may not be applied yet.
    expiry_cursor: Option<(i64, u64)>,
    /// Like `expiry_cursor`, for the reminder index.
    reminder_cursor: Option<(i64, u64)>,
    /// The campaign's activation was announced to its store's subscribers (or it has no
    /// store, or mail is off).
    announced: bool,
    next_change: u64,
    /// Set by a successful delete: everything after it hears "not found".
    deleted: bool,
}

/// One decision's effects, gathered before they are submitted.
#[derive(Default)]
struct Effects {
    writes: Writes,
    coupons: Vec<CouponRecord>,
    keys: Vec<String>,
    /// UTC days whose counts this decision changed (the totals are written with them).
    days: Vec<i32>,
    /// Mail jobs written (the dispatcher is woken once they are durable).
    mail_jobs: i64,
    /// Wake the dispatcher even without jobs (an announcement to expand).
    wake_mail: bool,
}

impl CampaignActor {
    /// Submits the effects and sends `value` to `reply` once they, and everything
    /// submitted before them, are durable; an error instead if the commit failed.
    fn commit_and_reply<T: Send + 'static>(
        &self,
        myself: &ActorRef<CampaignMsg>,
        state: &mut CampaignState,
        mut effects: Effects,
        reply: Option<Reply<T>>,
        value: Result<T, EngineError>,
    ) -> Result<(), ActorProcessingErr> {
        if !effects.days.is_empty() {
            effects.days.sort_unstable();
            effects.days.dedup();
            effects
                .writes
                .put_stats(&state.record.id, &state.stats, &effects.days)?;
        }
        let tracked = !effects.coupons.is_empty();
        let change = state.next_change;
        if tracked {
            state.next_change += 1;
            for c in effects.coupons {
                state.settle_order.push_back((change, c.seq));
                state.unsettled.insert(c.seq, (change, c));
            }
        }
        let me = myself.clone();
        let claimed = effects.keys;
        // Only keyed requests need the shared state in their completion.
        let shared = (!claimed.is_empty()).then(|| self.shared.clone());
        let mail_jobs = effects.mail_jobs;
        let mail = self
            .shared
            .mail
            .clone()
            .filter(|_| mail_jobs > 0 || effects.wake_mail);
        self.shared.committer.submit(
            effects.writes,
            Box::new(move |committed| {
                // The records are in the store now (or the store failed: then a retry
                // decides afresh). Either way the claims go, whatever the actor's fate.
                if let Some(shared) = shared {
                    release_keys(&shared, claimed.iter());
                }
                let answer = match committed {
                    Ok(()) => {
                        if let Some(mail) = mail {
                            mail.committed(mail_jobs);
                        }
                        if tracked {
                            let _ = me.cast(CampaignMsg::Settled { change });
                        }
                        value
                    }
                    Err(e) => Err(EngineError::Storage(e)),
                };
                // The caller may have gone (client disconnected): nothing to do then.
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }),
        );
        Ok(())
    }

    /// "Not found" for a request to a deleted campaign, after the delete is durable.
    fn refuse_gone<T: Send + 'static>(
        &self,
        myself: &ActorRef<CampaignMsg>,
        state: &mut CampaignState,
        reply: Reply<T>,
    ) -> Result<(), ActorProcessingErr> {
        let gone = Err(EngineError::CampaignNotFound);
        self.commit_and_reply(myself, state, Effects::default(), Some(reply), gone)
    }

    fn view(&self, state: &CampaignState) -> CampaignView {
        let issued = state.ledger.issued();
        CampaignView {
            status: model::status(&state.record, issued, self.shared.clock.now()),
            issued,
            record: state.record.clone(),
        }
    }

    fn coupon(
        &self,
        state: &CampaignState,
        seq: u64,
    ) -> Result<Option<CouponRecord>, ActorProcessingErr> {
        Ok(match state.unsettled.get(&seq) {
            Some((_, c)) => Some(c.clone()),
            None => self.shared.store.coupon(&state.record.id, seq)?,
        })
    }

    /// What `key` was used for before, if anything: a claim of any actor (decided or
    /// being decided) or a stored record. If it was never used, claims it for this
    /// decision, atomically, so no other actor can decide the same key meanwhile.
    fn claim_key(
        &self,
        key: &str,
        fingerprint: [u8; 16],
    ) -> Result<Option<KeyClaim>, ActorProcessingErr> {
        let mut claims = self
            .shared
            .keys_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = claims.get(key) {
            return Ok(Some(c.clone()));
        }
        // Under the lock: a claim is released only after its record is in the store, so
        // between the two looks nothing can slip through.
        if let Some(r) = self.shared.store.idempotency(key)? {
            return Ok(Some(KeyClaim {
                fingerprint: r.fingerprint,
                record: Some(r),
            }));
        }
        claims.insert(
            key.to_string(),
            KeyClaim {
                fingerprint,
                record: None,
            },
        );
        Ok(None)
    }

    /// Decides a request that may carry an idempotency key: a retry gets the first
    /// response, a reused key a refusal, anything else `decide` (whose response is kept
    /// for the key in the same batch as the decision's own writes).
    fn idempotent<T: Send + 'static>(
        &self,
        myself: &ActorRef<CampaignMsg>,
        state: &mut CampaignState,
        idempotency: Option<IdempotencyKey<T>>,
        reply: Reply<Idempotent<T>>,
        decide: impl FnOnce(
            &Self,
            &mut CampaignState,
            &mut Effects,
        ) -> Result<Result<T, EngineError>, ActorProcessingErr>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(idem) = &idempotency {
            if let Some(earlier) = self.claim_key(&idem.key, idem.fingerprint)? {
                let answer = match earlier.record {
                    _ if earlier.fingerprint != idem.fingerprint => Ok(Idempotent::KeyReused),
                    Some(r) => Ok(Idempotent::Replay(model::StoredResponse {
                        status: r.status,
                        content_type: r.content_type,
                        body: r.body,
                    })),
                    // The same request is being decided by another actor this instant.
                    // The fingerprint names the campaign, so this cannot happen; answer
                    // "retry" rather than guess.
                    None => Err(EngineError::Unavailable(idem.key.clone())),
                };
                return self.commit_and_reply(
                    myself,
                    state,
                    Effects::default(),
                    Some(reply),
                    answer,
                );
            }
        }
        let mut effects = Effects::default();
        let outcome = match decide(self, state, &mut effects) {
            Ok(o) => o,
            Err(e) => {
                if let Some(idem) = &idempotency {
                    release_keys(&self.shared, std::iter::once(&idem.key));
                }
                return Err(e);
            }
        };
        if let Some(idem) = &idempotency {
            match &outcome {
                Ok(value) => {
                    let response = (idem.render)(value);
                    let record = IdempotencyRecord {
                        fingerprint: idem.fingerprint,
                        status: response.status,
                        content_type: response.content_type,
                        body: response.body,
                        created_at: self.shared.clock.now().as_microsecond(),
                    };
                    if let Err(e) = effects.writes.put_idempotency(&idem.key, &record) {
                        release_keys(&self.shared, std::iter::once(&idem.key));
                        return Err(e.into());
                    }
                    effects.keys.push(idem.key.clone());
                    let key = idem.key.clone();
                    self.commit_and_reply(
                        myself,
                        state,
                        effects,
                        Some(reply),
                        outcome.map(Idempotent::Fresh),
                    )?;
                    // Only now, after the writes are queued: a replay by another actor
                    // queues its reply behind them, so it never outruns the record.
                    if let Some(claim) = self
                        .shared
                        .keys_in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&key)
                    {
                        claim.record = Some(record);
                    }
                    return Ok(());
                }
                // Nothing is kept for an error: a retry decides afresh.
                Err(_) => release_keys(&self.shared, std::iter::once(&idem.key)),
            }
        }
        self.commit_and_reply(
            myself,
            state,
            effects,
            Some(reply),
            outcome.map(Idempotent::Fresh),
        )
    }

    fn issue(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
        user_id: String,
        contact: Option<Contact>,
    ) -> Result<Result<IssueOutcome, EngineError>, ActorProcessingErr> {
        let now = self.shared.clock.now();
        // The contact is set whatever the outcome: the user asked for it. (Without one,
        // the stored contact is looked up only if a coupon is issued.)
        let contact = contact.map(|c| c.record(now.as_microsecond()));
        if let Some(record) = &contact {
            effects.writes.put_contact(&user_id, record)?;
        }
        if let Err(reason) = model::window(&state.record, now) {
            return Ok(Ok(IssueOutcome::NotActive(reason)));
        }
        let rec = &state.record;
        let seq = match state.ledger.decide(&user_id) {
            Decision::Issue { seq } => seq,
            Decision::AlreadyIssued(seqs) => {
                let coupon_ids = seqs.iter().map(|s| coupon_id(&rec.id, *s)).collect();
                return Ok(Ok(IssueOutcome::AlreadyIssued { coupon_ids }));
            }
            Decision::SoldOut => return Ok(Ok(IssueOutcome::SoldOut)),
        };
        let issued_at = now.as_microsecond();
        let coupon = CouponRecord {
            campaign_id: rec.id.clone(),
            seq,
            code: self.shared.codes.code(rec.ordinal, seq),
            user_id,
            issued_at,
            expires_at: model::expires_at(rec, issued_at),
            status: CouponStatus::Issued,
            redeemed_at: None,
            order_id: None,
        };
        // An encoding failure here would leave the ledger ahead of the store: fail the
        // actor (`?`) so that the supervisor rebuilds it from what is durable.
        effects.writes.put_coupon(&coupon)?;
        if let Some(at) = coupon.expires_at {
            effects.writes.put_expiry(&rec.id, at, seq);
        }
        for chunk in state.ledger.take_full_chunks() {
            effects
                .writes
                .put_holder_chunk(&rec.id, chunk.chunk, &chunk.users)?;
        }
        if let Some(m) = &self.shared.mail {
            // The confirmation goes in the same batch as the coupon: durable together.
            let contact = match contact {
                Some(c) => Some(c),
                None => self.shared.store.contact(&coupon.user_id)?,
            };
            if let Some(contact) = contact {
                let job =
                    mail::coupon_job(MailKind::Confirmation, rec, &coupon, &contact, issued_at);
                effects.writes.put_mail_job(&job)?;
                effects.mail_jobs += 1;
            }
            // A coupon issued already inside its reminder window gets no reminder: its
            // confirmation says when it expires.
            if let Some(at) = coupon.expires_at {
                let remind_at = at.saturating_sub(m.reminder_before);
                if remind_at > issued_at {
                    effects.writes.put_reminder(&rec.id, remind_at, seq);
                }
            }
        }
        let day = day_of(issued_at);
        state.stats.per_day.entry(day).or_default().issued += 1;
        effects.days.push(day);
        // A new coupon is not tracked as unsettled: nobody can name it before its reply,
        // which leaves after the commit that applies it.
        Ok(Ok(IssueOutcome::Issued(Coupon::at(coupon, now))))
    }

    /// Records the expiry of an issued coupon whose validity has passed: its status, the
    /// statistics (once: only an `issued` coupon can expire), and its index entry.
    fn expire(
        state: &mut CampaignState,
        effects: &mut Effects,
        mut coupon: CouponRecord,
    ) -> Result<CouponRecord, ActorProcessingErr> {
        let at = coupon.expires_at.unwrap_or_default();
        coupon.status = CouponStatus::Expired;
        effects.writes.put_coupon(&coupon)?;
        effects
            .writes
            .remove_expiry(&state.record.id, at, coupon.seq);
        state.stats.expired += 1;
        metrics::counter!("firstcome_coupons_expired_total").increment(1);
        state.stats.per_day.entry(day_of(at)).or_default().expired += 1;
        effects.days.push(day_of(at));
        effects.coupons.push(coupon.clone());
        Ok(coupon)
    }

    /// Expires up to `EXPIRY_ROUND` coupons whose time has come, by the expiry index.
    /// Returns whether more may be due.
    fn expire_due(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<bool, ActorProcessingErr> {
        let now = self.shared.clock.now().as_microsecond();
        let due = self.shared.store.due_expiries(
            &state.record.id,
            state.expiry_cursor,
            now,
            EXPIRY_ROUND,
        )?;
        let more = due.len() == EXPIRY_ROUND;
        // Continue after this round next time while a backlog lasts; start over once it
        // is done (by then this round's removals are applied).
        state.expiry_cursor = if more { due.last().copied() } else { None };
        for (at, seq) in due {
            match self.coupon(state, seq)? {
                Some(c) if c.status == CouponStatus::Issued && c.expires_at == Some(at) => {
                    Self::expire(state, effects, c)?;
                }
                // Redeemed (a later cancellation re-enters it), or already expired by
                // an operation: only the index entry goes.
                _ => effects.writes.remove_expiry(&state.record.id, at, seq),
            }
        }
        Ok(more)
    }

    /// Queues the reminders that have come due (up to `EXPIRY_ROUND`), each with the
    /// removal of its index entry, so each coupon is reminded once. Coupons no longer
    /// issued (redeemed, expired) and users without a contact get none. Returns whether
    /// more may be due.
    fn remind_due(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<bool, ActorProcessingErr> {
        if self.shared.mail.is_none() {
            return Ok(false);
        }
        let now = self.shared.clock.now();
        let now_us = now.as_microsecond();
        let id = state.record.id.clone();
        let due =
            self.shared
                .store
                .due_reminders(&id, state.reminder_cursor, now_us, EXPIRY_ROUND)?;
        let more = due.len() == EXPIRY_ROUND;
        state.reminder_cursor = if more { due.last().copied() } else { None };
        for (at, seq) in due {
            effects.writes.remove_reminder(&id, at, seq);
            let Some(coupon) = self.coupon(state, seq)? else {
                continue;
            };
            if model::effective_status(&coupon, now) != Effective::Issued {
                continue;
            }
            if let Some(contact) = self.shared.store.contact(&coupon.user_id)? {
                let job =
                    mail::coupon_job(MailKind::Reminder, &state.record, &coupon, &contact, now_us);
                effects.writes.put_mail_job(&job)?;
                effects.mail_jobs += 1;
            }
        }
        Ok(more)
    }

    /// Once the campaign is active for the first time, queues its announcement to the
    /// subscribers of its store (the dispatcher expands it into one job per subscriber),
    /// with the mark that it was announced, in one batch.
    fn announce(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<(), ActorProcessingErr> {
        if state.announced {
            return Ok(());
        }
        let Some(store_id) = state.record.store_id.clone() else {
            return Ok(());
        };
        let now = self.shared.clock.now();
        if model::window(&state.record, now).is_err()
            || state.ledger.issued() >= state.record.total_stock
        {
            return Ok(());
        }
        effects.writes.put_announced(&state.record.id);
        effects
            .writes
            .put_fan_out(&firstcome_storage::FanOutRecord {
                campaign: firstcome_storage::MailCampaign::of(&state.record),
                store_id,
                after_user: None,
                created_at: now.as_microsecond(),
            })?;
        effects.wake_mail = true;
        state.announced = true;
        Ok(())
    }

    fn use_coupon(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
        req: CouponUse,
    ) -> Result<Result<CouponChange, EngineError>, ActorProcessingErr> {
        let Some(mut coupon) = self.coupon(state, req.seq)? else {
            return Ok(Err(EngineError::CouponNotFound));
        };
        let now = self.shared.clock.now();
        if coupon.user_id != req.user_id {
            return Ok(Ok(CouponChange::NotOwner));
        }
        let effective = model::effective_status(&coupon, now);
        if effective == Effective::Expired && coupon.status == CouponStatus::Issued {
            // Expired for every operation the moment its time passes: make it durable
            // now rather than wait for the expiry tick.
            coupon = Self::expire(state, effects, coupon)?;
        }
        let refusal = if req.redeem {
            match effective {
                Effective::Redeemed => Some(CouponChange::AlreadyRedeemed),
                Effective::Expired => Some(CouponChange::Expired),
                Effective::Issued => None,
            }
        } else if effective != Effective::Redeemed {
            Some(CouponChange::NotRedeemed)
        } else if req.order_id.is_some() && req.order_id != coupon.order_id {
            Some(CouponChange::OrderMismatch)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return Ok(Ok(refusal));
        }
        let day = day_of(now.as_microsecond());
        effects.days.push(day);
        let today = state.stats.per_day.entry(day).or_default();
        if req.redeem {
            coupon.status = CouponStatus::Redeemed;
            coupon.redeemed_at = Some(now.as_microsecond());
            coupon.order_id = req.order_id;
            today.redeemed += 1;
            state.stats.redeemed += 1;
            effects.writes.put_coupon(&coupon)?;
        } else {
            today.cancelled += 1;
            state.stats.redeemed = state.stats.redeemed.saturating_sub(1);
            coupon.redeemed_at = None;
            coupon.order_id = None;
            coupon.status = CouponStatus::Issued;
            match coupon.expires_at {
                // Its validity passed while it was redeemed: expired, not issued.
                Some(at) if now.as_microsecond() >= at => {
                    coupon = Self::expire(state, effects, coupon)?;
                }
                Some(at) => {
                    // The expiry round dropped its index entry while it was redeemed.
                    effects.writes.put_expiry(&state.record.id, at, coupon.seq);
                    effects.writes.put_coupon(&coupon)?;
                }
                None => effects.writes.put_coupon(&coupon)?,
            }
        }
        effects.coupons.push(coupon.clone());
        Ok(Ok(CouponChange::Done(Coupon::at(coupon, now))))
    }

    fn update(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
        patch: &CampaignPatch,
    ) -> Result<Result<CampaignView, EngineError>, ActorProcessingErr> {
        let now = self.shared.clock.now();
        let mut record = state.record.clone();
        if let Err(e) = patch.apply(&mut record, state.ledger.issued(), now) {
            return Ok(Err(e));
        }
        effects.writes.put_campaign(&record)?;
        state.ledger.set_total_stock(record.total_stock);
        state.record = record;
        Ok(Ok(self.view(state)))
    }

    fn close(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<CampaignView, ActorProcessingErr> {
        let now = self.shared.clock.now().as_microsecond();
        if state.record.ends_at.is_none_or(|e| e > now) {
            state.record.ends_at = Some(now);
            effects.writes.put_campaign(&state.record)?;
        }
        Ok(self.view(state))
    }

    fn stats(&self, state: &CampaignState) -> CampaignStats {
        let issued = state.ledger.issued();
        CampaignStats {
            total_stock: state.record.total_stock,
            issued,
            redeemed: state.stats.redeemed,
            expired: state.stats.expired,
            remaining: state.record.total_stock.saturating_sub(issued),
            per_day: state
                .stats
                .per_day
                .iter()
                .map(|(d, s)| (model::date_of_day(*d), *s))
                .collect(),
        }
    }
}

impl Actor for CampaignActor {
    type Msg = CampaignMsg;
    type State = CampaignState;
    type Arguments = CampaignRecord;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        record: CampaignRecord,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A barrier first: if this actor replaces one that failed, that actor's last
        // decisions may still be queued in the committer. The committer works in order,
        // so once this empty commit completes they are applied, and recovery sees them
        // (otherwise a coupon already promised to one user could be issued to another).
        crate::engine::commit(&self.shared.committer, Writes::new()).await?;
        let store = self.shared.store.clone();
        let id = record.id.clone();
        let started = std::time::Instant::now();
        let (stock, limit) = (record.total_stock, record.per_user_limit);
        // Reading and indexing up to a million holders is blocking work (hundreds of
        // milliseconds): keep it off the async workers.
        let (mut ledger, from_chunks, stats) = tokio::task::spawn_blocking(move || {
            let stats = store.stats(&id)?;
            store.recover_holders(&id).map(|r| {
                let from_chunks = r.from_chunks;
                (Ledger::recover(stock, limit, r), from_chunks, stats)
            })
        })
        .await??;
        tracing::debug!(
            campaign = %record.id,
            issued = ledger.issued(),
            from_chunks,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "campaign recovered"
        );
        // Mail off: nothing to announce. Otherwise ask the store (a campaign announced
        // before a restart stays announced).
        let announced = self.shared.mail.is_none() || self.shared.store.is_announced(&record.id)?;
        // Chunks that filled up but whose write was lost in a crash.
        let chunks = ledger.take_full_chunks();
        if !chunks.is_empty() {
            let mut writes = Writes::new();
            for c in chunks {
                writes.put_holder_chunk(&record.id, c.chunk, &c.users)?;
            }
            self.shared.committer.submit(
                writes,
                Box::new(|r| {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "rewriting holder chunks failed");
                    }
                }),
            );
        }
        Ok(CampaignState {
            record,
            ledger,
            stats,
            unsettled: HashMap::new(),
            settle_order: VecDeque::new(),
            expiry_cursor: None,
            reminder_cursor: None,
            announced,
            next_change: 0,
            deleted: false,
        })
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
        if state.deleted {
            // Requests that were queued behind the delete hear "not found", but only once
            // the delete is durable, like any other refusal.
            match message {
                CampaignMsg::Issue { reply, .. } => self.refuse_gone(&myself, state, reply)?,
                CampaignMsg::UseCoupon { reply, .. } => self.refuse_gone(&myself, state, reply)?,
                CampaignMsg::Get(reply)
                | CampaignMsg::Update(_, reply)
                | CampaignMsg::Close(reply) => self.refuse_gone(&myself, state, reply)?,
                CampaignMsg::Delete(reply) => self.refuse_gone(&myself, state, reply)?,
                CampaignMsg::Stats(reply) => self.refuse_gone(&myself, state, reply)?,
                CampaignMsg::ExpireDue | CampaignMsg::Settled { .. } => {}
                #[cfg(test)]
                CampaignMsg::InjectFailure => {}
            }
            return Ok(());
        }
        match message {
            CampaignMsg::Issue {
                user_id,
                contact,
                idempotency,
                reply,
            } => self.idempotent(
                &myself,
                state,
                idempotency,
                reply,
                |this, state, effects| this.issue(state, effects, user_id, contact),
            )?,
            CampaignMsg::UseCoupon {
                request,
                idempotency,
                reply,
            } => self.idempotent(
                &myself,
                state,
                idempotency,
                reply,
                |this, state, effects| this.use_coupon(state, effects, request),
            )?,
            CampaignMsg::Get(reply) => {
                let view = self.view(state);
                self.commit_and_reply(&myself, state, Effects::default(), Some(reply), Ok(view))?;
            }
            CampaignMsg::Update(patch, reply) => {
                let mut effects = Effects::default();
                let view = self.update(state, &mut effects, &patch)?;
                self.commit_and_reply(&myself, state, effects, Some(reply), view)?;
            }
            CampaignMsg::Close(reply) => {
                let mut effects = Effects::default();
                let view = self.close(state, &mut effects)?;
                self.commit_and_reply(&myself, state, effects, Some(reply), Ok(view))?;
            }
            CampaignMsg::Delete(reply) => {
                let mut effects = Effects::default();
                let result = if state.ledger.issued() > 0 {
                    Err(EngineError::CampaignHasCoupons)
                } else {
                    effects.writes.delete_campaign(&state.record.id);
                    state.deleted = true;
                    Ok(())
                };
                self.commit_and_reply(&myself, state, effects, Some(reply), result)?;
            }
            CampaignMsg::Stats(reply) => {
                // Expire what is due first, so that the counts are exact at this moment
                // (a long backlog is finished by the ExpireDue it schedules).
                let mut effects = Effects::default();
                if self.expire_due(state, &mut effects)? {
                    myself.send_after(EXPIRY_BACKLOG_PAUSE, || CampaignMsg::ExpireDue);
                }
                let stats = self.stats(state);
                self.commit_and_reply(&myself, state, effects, Some(reply), Ok(stats))?;
            }
            CampaignMsg::ExpireDue => {
                let mut effects = Effects::default();
                self.announce(state, &mut effects)?;
                // Reminders before expiry: a reminder due at the same instant as the
                // expiry still finds the coupon issued.
                let more_reminders = self.remind_due(state, &mut effects)?;
                let more = self.expire_due(state, &mut effects)? || more_reminders;
                if !effects.writes.is_empty() {
                    self.commit_and_reply::<()>(&myself, state, effects, None, Ok(()))?;
                }
                if more {
                    myself.send_after(EXPIRY_BACKLOG_PAUSE, || CampaignMsg::ExpireDue);
                }
            }
            CampaignMsg::Settled { change } => {
                // Commits complete in order: everything up to `change` is in the store.
                while let Some(&(c, seq)) = state.settle_order.front() {
                    if c > change {
                        break;
                    }
                    state.settle_order.pop_front();
                    if state
                        .unsettled
                        .get(&seq)
                        .is_some_and(|(latest, _)| *latest == c)
                    {
                        state.unsettled.remove(&seq);
                    }
                }
            }
            #[cfg(test)]
            CampaignMsg::InjectFailure => return Err("injected failure".into()),
        }
        Ok(())
    }
}

/// Drops idempotency claims whose records are in the store (or whose decision failed).
fn release_keys<'a>(shared: &Shared, keys: impl Iterator<Item = &'a String>) {
    let mut claims = shared
        .keys_in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    for k in keys {
        claims.remove(k);
    }
}
