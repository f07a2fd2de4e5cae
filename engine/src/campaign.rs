//! [`CampaignActor`]: the single owner of one campaign's state.
//!
//! Every decision about a campaign (issue or refuse) is made here, one message at a
//! time, against the in-memory [`Ledger`]. The actor never waits for the disk: it hands
//! each decision's writes and its reply to the [`Committer`](firstcome_storage::Committer)
//! and takes the next message. The reply leaves when the committer has flushed the batch
//! that holds the decision (and everything decided before it), so the caller never hears
//! of a coupon that a crash could take back, nor of a refusal that recovery would not
//! repeat.

use std::collections::HashMap;
use std::sync::Arc;

use firstcome_storage::{CampaignRecord, CouponRecord, CouponStatus, Writes};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::EngineError;
use crate::engine::Shared;
use crate::ids::coupon_id;
use crate::ledger::{Decision, Ledger};
use crate::model::{
    self, CampaignView, Coupon, CouponChange, CouponStatus as Effective, IssueOutcome,
};

pub type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

pub enum CampaignMsg {
    Issue {
        user_id: String,
        reply: Reply<IssueOutcome>,
    },
    Get(Reply<CampaignView>),
    /// Redeem coupon `seq` of this campaign for `user_id`.
    Redeem {
        seq: u64,
        user_id: String,
        order_id: Option<String>,
        reply: Reply<CouponChange>,
    },
    /// Undo a redemption (an order was cancelled).
    CancelRedemption {
        seq: u64,
        user_id: String,
        order_id: Option<String>,
        reply: Reply<CouponChange>,
    },
    /// A coupon change this actor submitted is applied and durable (sent by the
    /// change's completion), so the store now holds it.
    Settled {
        seq: u64,
        change: u64,
    },
    /// Makes the handler fail, to test supervision.
    #[cfg(test)]
    InjectFailure,
}

/// The actor. It holds only read-only configuration; the mutable state is
/// [`CampaignState`], built in `pre_start`.
pub struct CampaignActor {
    pub(crate) shared: Arc<Shared>,
}

/// A redeem (or, with `redeem` false, a cancel-redemption) request.
struct CouponUse {
    seq: u64,
    user_id: String,
    order_id: Option<String>,
    redeem: bool,
}

pub struct CampaignState {
    record: CampaignRecord,
    ledger: Ledger,
    /// Coupon changes submitted but not yet reported settled, by seq, with a change
    /// number. The committer applies writes on its own thread, so until a change settles
    /// the store may still hold the previous version; decisions read through this map.
    unsettled: HashMap<u64, (u64, CouponRecord)>,
    next_change: u64,
}

impl CampaignActor {
    /// Sends `value` to `reply` once every write submitted so far, `writes` included,
    /// is durable; an error instead if the commit failed.
    fn reply_when_durable<T: Send + 'static>(
        &self,
        writes: Writes,
        reply: Reply<T>,
        value: Result<T, EngineError>,
    ) {
        self.shared.committer.submit(
            writes,
            Box::new(move |committed| {
                let answer = match committed {
                    Ok(()) => value,
                    Err(e) => Err(EngineError::Storage(e)),
                };
                // The caller may have gone (client disconnected): nothing to do then.
                let _ = reply.send(answer);
            }),
        );
    }

    fn view(&self, state: &CampaignState) -> CampaignView {
        let issued = state.ledger.issued();
        CampaignView {
            status: model::status(&state.record, issued, self.shared.clock.now()),
            issued,
            record: state.record.clone(),
        }
    }

    fn issue(
        &self,
        state: &mut CampaignState,
        user_id: String,
        reply: Reply<IssueOutcome>,
    ) -> Result<(), ActorProcessingErr> {
        let now = self.shared.clock.now();
        if let Err(reason) = model::window(&state.record, now) {
            self.reply_when_durable(Writes::new(), reply, Ok(IssueOutcome::NotActive(reason)));
            return Ok(());
        }
        let rec = &state.record;
        let seq = match state.ledger.decide(&user_id) {
            Decision::Issue { seq } => seq,
            Decision::AlreadyIssued(seqs) => {
                let coupon_ids = seqs.iter().map(|s| coupon_id(&rec.id, *s)).collect();
                self.reply_when_durable(
                    Writes::new(),
                    reply,
                    Ok(IssueOutcome::AlreadyIssued { coupon_ids }),
                );
                return Ok(());
            }
            Decision::SoldOut => {
                self.reply_when_durable(Writes::new(), reply, Ok(IssueOutcome::SoldOut));
                return Ok(());
            }
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
        let mut writes = Writes::new();
        // An encoding failure here would leave the ledger ahead of the store: fail the
        // actor (`?`) so that the supervisor rebuilds it from what is durable.
        writes.put_coupon(&coupon)?;
        for chunk in state.ledger.take_full_chunks() {
            writes.put_holder_chunk(&rec.id, chunk.chunk, &chunk.users)?;
        }
        self.reply_when_durable(
            writes,
            reply,
            Ok(IssueOutcome::Issued(Coupon::at(coupon, now))),
        );
        Ok(())
    }

    /// Redeem and cancel-redemption: read the coupon (the store already holds this
    /// actor's own latest writes, flushed or not), decide, write, reply when durable.
    fn change_coupon(
        &self,
        myself: &ActorRef<CampaignMsg>,
        state: &mut CampaignState,
        CouponUse {
            seq,
            user_id,
            order_id,
            redeem,
        }: CouponUse,
        reply: Reply<CouponChange>,
    ) -> Result<(), ActorProcessingErr> {
        let current = match state.unsettled.get(&seq) {
            Some((_, c)) => Some(c.clone()),
            None => self.shared.store.coupon(&state.record.id, seq)?,
        };
        let Some(mut coupon) = current else {
            self.reply_when_durable(Writes::new(), reply, Err(EngineError::CouponNotFound));
            return Ok(());
        };
        let now = self.shared.clock.now();
        let effective = model::effective_status(&coupon, now);
        let refusal = if coupon.user_id != user_id {
            Some(CouponChange::NotOwner)
        } else if redeem {
            match effective {
                Effective::Redeemed => Some(CouponChange::AlreadyRedeemed),
                Effective::Expired => Some(CouponChange::Expired),
                Effective::Issued => None,
            }
        } else if effective != Effective::Redeemed {
            Some(CouponChange::NotRedeemed)
        } else if order_id.is_some() && order_id != coupon.order_id {
            Some(CouponChange::OrderMismatch)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.reply_when_durable(Writes::new(), reply, Ok(refusal));
            return Ok(());
        }
        if redeem {
            coupon.status = CouponStatus::Redeemed;
            coupon.redeemed_at = Some(now.as_microsecond());
            coupon.order_id = order_id;
        } else {
            // Back to issued, unless its validity passed meanwhile: then it is expired.
            let past = coupon.expires_at.is_some_and(|e| now.as_microsecond() >= e);
            coupon.status = if past {
                CouponStatus::Expired
            } else {
                CouponStatus::Issued
            };
            coupon.redeemed_at = None;
            coupon.order_id = None;
        }
        let mut writes = Writes::new();
        writes.put_coupon(&coupon)?;
        let change = state.next_change;
        state.next_change += 1;
        state.unsettled.insert(seq, (change, coupon.clone()));
        let changed = CouponChange::Done(Coupon::at(coupon, now));
        let me = myself.clone();
        self.shared.committer.submit(
            writes,
            Box::new(move |committed| {
                let answer = match committed {
                    Ok(()) => {
                        let _ = me.cast(CampaignMsg::Settled { seq, change });
                        Ok(changed)
                    }
                    Err(e) => Err(EngineError::Storage(e)),
                };
                let _ = reply.send(answer);
            }),
        );
        Ok(())
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
        let (mut ledger, from_chunks) = tokio::task::spawn_blocking(move || {
            store.recover_holders(&id).map(|r| {
                let from_chunks = r.from_chunks;
                (Ledger::recover(stock, limit, r), from_chunks)
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
            unsettled: HashMap::new(),
            next_change: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CampaignMsg::Issue { user_id, reply } => self.issue(state, user_id, reply)?,
            CampaignMsg::Get(reply) => {
                let view = self.view(state);
                self.reply_when_durable(Writes::new(), reply, Ok(view));
            }
            CampaignMsg::Redeem {
                seq,
                user_id,
                order_id,
                reply,
            } => {
                let req = CouponUse {
                    seq,
                    user_id,
                    order_id,
                    redeem: true,
                };
                self.change_coupon(&myself, state, req, reply)?
            }
            CampaignMsg::CancelRedemption {
                seq,
                user_id,
                order_id,
                reply,
            } => {
                let req = CouponUse {
                    seq,
                    user_id,
                    order_id,
                    redeem: false,
                };
                self.change_coupon(&myself, state, req, reply)?
            }
            CampaignMsg::Settled { seq, change } => {
                // Only if no later change of the same coupon is still on its way.
                if state.unsettled.get(&seq).is_some_and(|(c, _)| *c == change) {
                    state.unsettled.remove(&seq);
                }
            }
            #[cfg(test)]
            CampaignMsg::InjectFailure => return Err("injected failure".into()),
        }
        Ok(())
    }
}
