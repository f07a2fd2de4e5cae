//! [`Unsettled`]: the coupon changes a campaign actor has decided and submitted, but the
//! committer has not yet reported applied.
//!
//! The committer applies writes on its own thread, a little after the decision. Until a
//! change is settled the store still holds the coupon as it was, so the actor reads its
//! coupons through this overlay first: it always decides against its latest state (two
//! redeems queued back to back must not both see an unredeemed coupon).

use std::collections::{HashMap, VecDeque};

use firstcome_storage::CouponRecord;

/// Coupons changed since the store last caught up, by seq.
#[derive(Default)]
pub(crate) struct Unsettled {
    /// The latest change of each coupon, with the number of the change that made it.
    latest: HashMap<u64, (u64, CouponRecord)>,
    /// (change, seq) in change order, so that settling pops from the front instead of
    /// scanning every pending change.
    order: VecDeque<(u64, u64)>,
    next_change: u64,
}

impl Unsettled {
    /// The coupon as last changed, if a change of it is not yet in the store.
    pub(crate) fn get(&self, seq: u64) -> Option<&CouponRecord> {
        self.latest.get(&seq).map(|(_, c)| c)
    }

    /// Records the coupons one decision changed; returns the change number to settle
    /// once its commit completes, or `None` if it changed no coupon.
    pub(crate) fn track(&mut self, coupons: Vec<CouponRecord>) -> Option<u64> {
        if coupons.is_empty() {
            return None;
        }
        let change = self.next_change;
        self.next_change += 1;
        for c in coupons {
            self.order.push_back((change, c.seq));
            self.latest.insert(c.seq, (change, c));
        }
        Some(change)
    }

    /// Every change numbered up to `change` is in the store: forget those, unless the
    /// coupon changed again since (then the later change stays until it settles).
    pub(crate) fn settle(&mut self, change: u64) {
        while let Some(&(c, seq)) = self.order.front() {
            if c > change {
                break;
            }
            self.order.pop_front();
            if self
                .latest
                .get(&seq)
                .is_some_and(|(latest, _)| *latest == c)
            {
                self.latest.remove(&seq);
            }
        }
        // Paired with `track`: nothing outlives the settling of its own change.
        debug_assert!(self.latest.values().all(|(c, _)| *c > change));
    }
}

#[cfg(test)]
mod tests {
    use firstcome_storage::CouponStatus;

    use super::*;

    fn coupon(seq: u64, order: &str) -> CouponRecord {
        CouponRecord {
            campaign_id: "cccccccccccccccc".into(),
            seq,
            code: String::new(),
            user_id: "u".into(),
            issued_at: 0,
            expires_at: None,
            status: CouponStatus::Redeemed,
            redeemed_at: Some(1),
            order_id: Some(order.into()),
        }
    }

    #[test]
    fn a_coupon_changed_again_stays_until_its_latest_change_settles() {
        let mut u = Unsettled::default();
        assert_eq!(u.track(Vec::new()), None);
        let first = u.track(vec![coupon(7, "a")]).unwrap();
        let second = u.track(vec![coupon(7, "b")]).unwrap();
        u.settle(first);
        assert_eq!(u.get(7).unwrap().order_id.as_deref(), Some("b"));
        u.settle(second);
        assert!(u.get(7).is_none());
    }
}
