//! The typed reads of campaigns, coupons (from their `k` record or their issued group),
//! statistics, the expiry and reminder time indexes, and idempotency records.

use super::{Store, corrupt};
use crate::error::StorageError;
use crate::records::{
    CampaignRecord, CouponRecord, CouponStatus, IdempotencyRecord, IssuedCoupon, StatsRecord,
};
use crate::{keys, records};

/// The first seq of a group, from its key.
pub(super) fn group_first_seq(prefix: &[u8], key: &[u8]) -> Result<u64, StorageError> {
    key.get(prefix.len()..)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt("issued group key", "length"))
}

/// A coupon as its group issued it, with no change since: `issued`, or `expired` if the
/// expiry walk (at `walk`) passed it. The code is left empty: the engine derives codes.
fn as_issued(campaign_id: &str, c: IssuedCoupon, walk: Option<u64>) -> CouponRecord {
    // The expiry walk writes where it got to, not each coupon: one it passed without a
    // change of its own was due, and counted, so it is stored expired.
    let walked = !c.expiry_indexed && c.expires_at.is_some() && walk.is_some_and(|w| c.seq < w);
    CouponRecord {
        campaign_id: campaign_id.to_string(),
        seq: c.seq,
        user_id: c.user_id,
        code: String::new(),
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        status: if walked {
            CouponStatus::Expired
        } else {
            CouponStatus::Issued
        },
        redeemed_at: None,
        order_id: None,
    }
}

impl Store {
    pub fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>, StorageError> {
        self.db
            .get(keys::campaign(id))?
            .map(|v| records::decode_campaign(&v))
            .transpose()
    }

    /// Campaigns in id order, starting after `after`.
    pub fn campaigns(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CampaignRecord>, StorageError> {
        let from = after.map(|a| keys::after(keys::campaign(a)));
        let mut out = Vec::new();
        for item in self.scan(&[keys::CAMPAIGN], from, None).take(limit) {
            let (_, v) = item?;
            out.push(records::decode_campaign(&v)?);
        }
        Ok(out)
    }

    /// One coupon as stored: its `k` record if it changed after its issue (or was
    /// written by format 1), else its entry in the issued group that holds it. A coupon
    /// from a group has an empty `code`: the engine derives codes (it holds the key).
    pub fn coupon(
        &self,
        campaign_id: &str,
        seq: u64,
    ) -> Result<Option<CouponRecord>, StorageError> {
        if let Some(v) = self.db.get(keys::coupon(campaign_id, seq))? {
            return records::decode_coupon(&v).map(Some);
        }
        let Some(c) = self.issued_coupon(campaign_id, seq)? else {
            return Ok(None);
        };
        let walk = self.expiry_walk(campaign_id)?;
        Ok(Some(as_issued(campaign_id, c, walk)))
    }

    /// Up to `limit` coupons of the campaign from seq `from` on, in seq order, each as
    /// [`Store::coupon`] reads it: two range scans merged (the changed coupons' `k`
    /// records, and the issued groups), so reading a campaign through costs a few
    /// reads per `limit` coupons, not one per coupon.
    pub fn coupons_from(
        &self,
        campaign_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<CouponRecord>, StorageError> {
        let mut changed = Vec::new();
        let prefix = keys::coupon_prefix(campaign_id);
        for item in self
            .scan(&prefix, Some(keys::coupon(campaign_id, from)), None)
            .take(limit)
        {
            let (_, v) = item?;
            changed.push(records::decode_coupon(&v)?);
        }
        let walk = self.expiry_walk(campaign_id)?;
        let issued = self.issued_from(campaign_id, from, limit)?;
        let mut out = Vec::with_capacity(limit.min(changed.len() + issued.len()));
        let (mut changed, mut issued) = (
            changed.into_iter().peekable(),
            issued.into_iter().peekable(),
        );
        while out.len() < limit {
            let next = match (changed.peek(), issued.peek()) {
                (None, None) => break,
                (Some(k), Some(g)) if k.seq == g.seq => {
                    issued.next();
                    changed.next()
                }
                (Some(k), Some(g)) if k.seq < g.seq => changed.next(),
                (Some(_), None) => changed.next(),
                (_, Some(_)) => issued.next().map(|c| as_issued(campaign_id, c, walk)),
            };
            out.extend(next);
        }
        // Paired with the gap check of recovery: what a campaign holds is seq order.
        debug_assert!(out.windows(2).all(|w| w[0].seq < w[1].seq));
        Ok(out)
    }

    /// The coupon's `k` record only: its change since its issue (or its format-1 record).
    pub fn changed_coupon(
        &self,
        campaign_id: &str,
        seq: u64,
    ) -> Result<Option<CouponRecord>, StorageError> {
        self.db
            .get(keys::coupon(campaign_id, seq))?
            .map(|v| records::decode_coupon(&v))
            .transpose()
    }

    /// The group that holds `seq`: the last one that starts at or before it (its first
    /// seq and its value).
    fn group_holding(
        &self,
        campaign_id: &str,
        seq: u64,
    ) -> Result<Option<(u64, sled::IVec)>, StorageError> {
        let prefix = keys::simple(keys::ISSUED_GROUP, campaign_id);
        let upto = keys::after(keys::issued_group(campaign_id, seq));
        match self.last_before(&prefix, upto) {
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((group_first_seq(&prefix, &k)?, v)))
            }
            None => Ok(None),
        }
    }

    /// Coupon `seq` as its group issued it, ignoring later changes.
    pub fn issued_coupon(
        &self,
        campaign_id: &str,
        seq: u64,
    ) -> Result<Option<IssuedCoupon>, StorageError> {
        let Some((first, v)) = self.group_holding(campaign_id, seq)? else {
            return Ok(None);
        };
        let coupons = records::decode_issued_group(first, &v)?;
        Ok(coupons.into_iter().nth((seq - first) as usize))
    }

    /// Up to `limit` coupons of the issued groups from seq `from` on, in seq order, as
    /// issued (the expiry walk).
    pub fn issued_from(
        &self,
        campaign_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<IssuedCoupon>, StorageError> {
        let prefix = keys::simple(keys::ISSUED_GROUP, campaign_id);
        // Start at the group that holds `from`, then read on.
        let start = self
            .group_holding(campaign_id, from)?
            .map_or(from, |(first, _)| first);
        let mut out = Vec::new();
        for item in self.scan(&prefix, Some(keys::issued_group(campaign_id, start)), None) {
            let (k, v) = item?;
            let first = group_first_seq(&prefix, &k)?;
            for c in records::decode_issued_group(first, &v)? {
                if c.seq >= from {
                    out.push(c);
                }
            }
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Ok(out)
    }

    /// How far the campaign's expiry walk has come, if it has started.
    pub fn expiry_walk(&self, campaign_id: &str) -> Result<Option<u64>, StorageError> {
        self.db
            .get(keys::progress(campaign_id))?
            .map(|v| records::decode("expiry walk", &v))
            .transpose()
    }

    pub fn stats(&self, campaign_id: &str) -> Result<StatsRecord, StorageError> {
        let mut out = StatsRecord::default();
        let totals = keys::stats(campaign_id);
        for item in self.scan(&totals, None, None) {
            let (k, v) = item?;
            if k.len() == totals.len() {
                (out.redeemed, out.expired) = records::decode("stats", &v)?;
            } else {
                let b: [u8; 4] = k[totals.len()..]
                    .try_into()
                    .map_err(|_| corrupt("stats day key", "length"))?;
                let day = (u32::from_be_bytes(b) ^ (1 << 31)) as i32;
                out.per_day.insert(day, records::decode("stats day", &v)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` (expires_at, seq) of the campaign's expiry index with expires_at at
    /// or before `now`, oldest first, starting after `after`.
    pub fn due_expiries(
        &self,
        campaign_id: &str,
        after: Option<(i64, u64)>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(i64, u64)>, StorageError> {
        self.due_timed(keys::EXPIRY, campaign_id, after, now, limit)
    }

    /// [`Store::due_expiries`] for the reminder index.
    pub fn due_reminders(
        &self,
        campaign_id: &str,
        after: Option<(i64, u64)>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(i64, u64)>, StorageError> {
        self.due_timed(keys::REMINDER, campaign_id, after, now, limit)
    }

    fn due_timed(
        &self,
        kind: u8,
        campaign_id: &str,
        after: Option<(i64, u64)>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(i64, u64)>, StorageError> {
        let prefix = keys::simple(kind, campaign_id);
        let from = after.map(|(at, seq)| keys::after(keys::timed(kind, campaign_id, at, seq)));
        // Everything up to and including `now`: below the key after (now, u64::MAX).
        let before = keys::after(keys::timed(kind, campaign_id, now, u64::MAX));
        let mut out = Vec::new();
        for item in self.scan(&prefix, from, Some(before)).take(limit) {
            let (k, _) = item?;
            let tail = &k[prefix.len()..];
            if tail.len() != 16 {
                return Err(corrupt("time index key", "length"));
            }
            let (at, seq) = tail.split_at(8);
            let at =
                keys::from_ordered_i64(at).ok_or_else(|| corrupt("time index key", "short"))?;
            let seq = u64::from_be_bytes(
                seq.try_into()
                    .map_err(|_| corrupt("time index key", "short"))?,
            );
            out.push((at, seq));
        }
        Ok(out)
    }

    pub fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StorageError> {
        self.db
            .get(keys::idempotency(key))?
            .map(|v| records::decode("idempotency", &v))
            .transpose()
    }

    /// Up to `limit` (created_at, key) of idempotency records created before `before`.
    pub fn idempotency_older_than(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let prefix = [keys::IDEMPOTENCY_AGE];
        let mut end = prefix.to_vec();
        end.extend_from_slice(&keys::ordered_i64(before));
        let mut out = Vec::new();
        for item in self.scan(&prefix, None, Some(end)).take(limit) {
            let (k, _) = item?;
            let at = keys::from_ordered_i64(&k[1..9]).ok_or_else(|| corrupt("age key", "short"))?;
            let key =
                String::from_utf8(k[9..].to_vec()).map_err(|_| corrupt("age key", "utf-8"))?;
            out.push((at, key));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::{DayStats, StatsRecord, Store, StoreConfig, Writes};

    #[test]
    fn stats_round_trip_with_only_the_changed_days_written() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let cid = "dddddddddddddddd";
        let mut s = StatsRecord {
            redeemed: 3,
            expired: 1,
            ..StatsRecord::default()
        };
        for day in [-2, 0, 20_000] {
            s.per_day.insert(
                day,
                DayStats {
                    issued: day.unsigned_abs() as u64 + 1,
                    ..DayStats::default()
                },
            );
        }
        let mut w = Writes::new();
        w.put_stats(cid, &s, &[-2, 0, 20_000]).unwrap();
        store.apply(w).unwrap();
        assert_eq!(store.stats(cid).unwrap(), s);
        // A later change writes one day; the others stay as they were.
        s.per_day.get_mut(&0).unwrap().redeemed = 9;
        s.redeemed = 4;
        let mut w = Writes::new();
        w.put_stats(cid, &s, &[0]).unwrap();
        assert_eq!(w.len(), 2);
        store.apply(w).unwrap();
        assert_eq!(store.stats(cid).unwrap(), s);
        assert_eq!(
            store.stats("eeeeeeeeeeeeeeee").unwrap(),
            StatsRecord::default()
        );
    }
}
