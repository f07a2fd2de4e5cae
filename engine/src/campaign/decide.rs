//! The decisions of a campaign actor: issue, redeem and cancel, change and close the
//! campaign. Each reads and changes the actor's state and gathers its writes in
//! [`Effects`]; the caller submits them and replies once they are durable.

use firstcome_storage::{CouponRecord, CouponStatus, IssuedCoupon};
use ractor::ActorProcessingErr;

use super::{CampaignActor, CampaignState, Effects};
use crate::error::EngineError;
use crate::feed::RecordChange;
use crate::ids::coupon_id;
use crate::ledger::Decision;
use crate::mail::{self, Contact, MailKind};
use crate::model::{
    self, CampaignPatch, CampaignStats, CampaignView, Coupon, CouponChange,
    CouponStatus as Effective, IssueOutcome, day_of,
};
use crate::request::{CouponAction, CouponUse};

impl CampaignActor {
    pub(super) fn issue(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
        user_id: String,
        contact: Option<Contact>,
    ) -> Result<Result<IssueOutcome, EngineError>, ActorProcessingErr> {
        let now = self.ctx.clock.now();
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
            Decision::Issue { seq } => {
                // Gap-free seqs: each new coupon is the next one (recovery refuses a gap
                // in what is read back), and never beyond the stock (asserted again where
                // the count is read, in `view`).
                assert_eq!(seq + 1, state.ledger.issued(), "seq {seq} out of order");
                assert!(state.ledger.issued() <= rec.total_stock, "stock exceeded");
                seq
            }
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
            code: self.ctx.codes.code(rec.ordinal, seq),
            user_id,
            issued_at,
            expires_at: model::expires_at(rec, issued_at),
            status: CouponStatus::Issued,
            redeemed_at: None,
            order_id: None,
        };
        // Expiry in seq order needs no index entry; one that would expire before an
        // earlier coupon (the end moved earlier, the clock stepped back) gets one.
        let order = coupon.expires_at.unwrap_or(i64::MAX);
        let expiry_indexed = order < state.expiry.last_in_order;
        if expiry_indexed {
            if let Some(at) = coupon.expires_at {
                effects.writes.put_expiry(&rec.id, at, seq);
            }
            state.expiry.indexed.insert(seq);
        } else {
            state.expiry.last_in_order = order;
        }
        effects.issued.push(IssuedCoupon {
            seq,
            user_id: coupon.user_id.clone(),
            issued_at,
            expires_at: coupon.expires_at,
            expiry_indexed,
        });
        if let Some(m) = &self.mail {
            // The confirmation goes in the same batch as the coupon: durable together.
            let contact = match contact {
                Some(c) => Some(c),
                None => self.ctx.store.contact(&coupon.user_id)?,
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
                let remind_at = at.saturating_sub(m.reminder_before_us);
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
    pub(super) fn expire(
        state: &mut CampaignState,
        effects: &mut Effects,
        mut coupon: CouponRecord,
    ) -> Result<CouponRecord, ActorProcessingErr> {
        let at = coupon.expires_at.unwrap_or_default();
        coupon.status = CouponStatus::Expired;
        effects.writes.put_coupon(&coupon)?;
        if !state.expiry.walked(coupon.seq) {
            effects
                .writes
                .remove_expiry(&state.record.id, at, coupon.seq);
        }
        Self::count_expiry(state, effects, at);
        effects.coupons.push(coupon.clone());
        Ok(coupon)
    }

    /// Counts one expiry at `at` (once per coupon: see `expire` and the walk).
    pub(super) fn count_expiry(state: &mut CampaignState, effects: &mut Effects, at: i64) {
        state.stats.expired += 1;
        metrics::counter!("firstcome_coupons_expired_total").increment(1);
        state.stats.per_day.entry(day_of(at)).or_default().expired += 1;
        effects.days.push(day_of(at));
    }

    /// Redeems coupon `seq` for its holder, or cancels its redemption.
    pub(super) fn use_coupon(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
        seq: u64,
        req: CouponUse,
    ) -> Result<Result<CouponChange, EngineError>, ActorProcessingErr> {
        let Some(mut coupon) = self.coupon(state, seq)? else {
            return Ok(Err(EngineError::CouponNotFound));
        };
        let now = self.ctx.clock.now();
        if coupon.user_id != req.user_id {
            return Ok(Ok(CouponChange::NotOwner));
        }
        let effective = model::effective_status(&coupon, now);
        if effective == Effective::Expired
            && coupon.status == CouponStatus::Issued
            && !state.expiry.walked(seq)
        {
            // Expired for every operation the moment its time passes: make it durable
            // now rather than wait for the expiry tick. (A walked coupon is counted by
            // the walk, which finds it still issued; writing it here would count it
            // twice.)
            coupon = Self::expire(state, effects, coupon)?;
        }
        let redeem = req.action == CouponAction::Redeem;
        let refusal = if redeem {
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
        if redeem {
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
                    // The expiry round dropped its index entry while it was redeemed (a
                    // walked coupon has none: the walk has not reached it yet).
                    if !state.expiry.walked(coupon.seq) {
                        effects.writes.put_expiry(&state.record.id, at, coupon.seq);
                    }
                    effects.writes.put_coupon(&coupon)?;
                }
                None => effects.writes.put_coupon(&coupon)?,
            }
        }
        effects.coupons.push(coupon.clone());
        Ok(Ok(CouponChange::Done(Coupon::at(coupon, now))))
    }

    pub(super) fn update(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
        patch: &CampaignPatch,
    ) -> Result<Result<CampaignView, EngineError>, ActorProcessingErr> {
        let now = self.ctx.clock.now();
        let mut record = state.record.clone();
        if let Err(e) = patch.apply(&mut record, state.ledger.issued(), now) {
            return Ok(Err(e));
        }
        effects.writes.put_campaign(&record)?;
        effects.record = Some(RecordChange::Record(Box::new(record.clone())));
        state.ledger.set_total_stock(record.total_stock);
        state.record = record;
        Ok(Ok(self.view(state)))
    }

    pub(super) fn close(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<CampaignView, ActorProcessingErr> {
        let now_us = self.ctx.now_us();
        if state.record.ends_at.is_none_or(|e| e > now_us) {
            state.record.ends_at = Some(now_us);
            effects.writes.put_campaign(&state.record)?;
            effects.record = Some(RecordChange::Record(Box::new(state.record.clone())));
        }
        Ok(self.view(state))
    }

    pub(super) fn stats(&self, state: &CampaignState) -> CampaignStats {
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

    /// Deletes a campaign that has issued nothing.
    pub(super) fn delete(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<(), EngineError> {
        if state.ledger.issued() > 0 {
            return Err(EngineError::CampaignHasCoupons);
        }
        effects.writes.delete_campaign(&state.record.id);
        effects.record = Some(RecordChange::Deleted);
        // No user lists a coupon of it: it has none.
        self.index.forget_campaign(state.record.ordinal);
        state.deleted = true;
        Ok(())
    }
}
