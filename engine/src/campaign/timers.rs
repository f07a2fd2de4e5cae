//! The timed duties of a campaign actor, run by its one-second tick (and by a
//! statistics request, for exact counts): the announcement of a campaign that became
//! active, reminders coming due, and the expiry of coupons whose validity passed.

use firstcome_storage::CouponStatus;
use ractor::ActorProcessingErr;

use super::{CampaignActor, CampaignState, Effects};
use crate::mail::{self, MailKind};
use crate::model::{self, CouponStatus as Effective};

/// The most coupons one expiry (or reminder) round handles; a longer backlog continues
/// at once in another message, so other requests interleave.
const EXPIRY_ROUND: usize = 1000;

impl CampaignActor {
    /// The tick's duties, in order: the announcement, then reminders, then expiry (a
    /// reminder due at the same instant as the expiry still finds the coupon issued).
    /// Returns whether a backlog remains.
    pub(super) fn timed_duties(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<bool, ActorProcessingErr> {
        self.announce(state, effects)?;
        let more_reminders = self.remind_due(state, effects)?;
        Ok(self.expire_due(state, effects)? || more_reminders)
    }

    /// Expires what has come due: by the walk, and by the time index. Returns whether
    /// more may be due.
    pub(super) fn expire_due(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<bool, ActorProcessingErr> {
        let walk_more = self.walk_expiries(state, effects)?;
        Ok(self.expire_indexed(state, effects)? || walk_more)
    }

    /// Expires, in seq order, the group coupons whose expiry is not indexed: their
    /// `expires_at` grows with their seq, so the walk stops at the first one not yet due.
    /// It writes where it got to and the statistics, nothing per coupon: a coupon stays
    /// as issued, and the clock makes it expired for every read and operation.
    fn walk_expiries(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<bool, ActorProcessingErr> {
        let now = self.ctx.now_us();
        let start = state.expiry.walk;
        // Nothing issued past the walk, or the coupon it stopped at is not due: no read.
        if start >= state.ledger.issued() || state.expiry.next_due.is_some_and(|at| at > now) {
            return Ok(false);
        }
        let coupons = self
            .ctx
            .store
            .issued_from(&state.record.id, start, EXPIRY_ROUND)?;
        let full = coupons.len() == EXPIRY_ROUND;
        let mut walk = start;
        state.expiry.next_due = None;
        for c in coupons {
            if !c.expiry_indexed {
                match c.expires_at {
                    Some(at) if at <= now => {
                        // Changed since its issue: redeemed (a cancellation after its
                        // time counts it) or expired by an operation (counted then),
                        // unless the change was a cancelled redemption.
                        let changed = self.changed_coupon(state, c.seq)?;
                        if changed.is_none_or(|k| k.status == CouponStatus::Issued) {
                            Self::count_expiry(state, effects, at);
                        }
                    }
                    not_due => {
                        state.expiry.next_due = Some(not_due.unwrap_or(i64::MAX));
                        break;
                    }
                }
            }
            walk = c.seq + 1;
        }
        if walk != start {
            state.expiry.walk = walk;
            effects.writes.put_expiry_walk(&state.record.id, walk)?;
        }
        Ok(full && state.expiry.next_due.is_none())
    }

    /// Expires up to `EXPIRY_ROUND` coupons whose time has come, by the time index
    /// (format-1 coupons and group coupons out of seq order).
    fn expire_indexed(
        &self,
        state: &mut CampaignState,
        effects: &mut Effects,
    ) -> Result<bool, ActorProcessingErr> {
        let now = self.ctx.now_us();
        let due = self.ctx.store.due_expiries(
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
        if self.mail.is_none() {
            return Ok(false);
        }
        let now = self.ctx.clock.now();
        let now_us = now.as_microsecond();
        let id = state.record.id.clone();
        let due = self
            .ctx
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
            if let Some(contact) = self.ctx.store.contact(&coupon.user_id)? {
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
        let now = self.ctx.clock.now();
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
}
