//! The typed reads of campaigns, coupons and their indexes: a user's coupons,
//! statistics, the expiry and reminder time indexes, and idempotency records.

use super::{Store, corrupt};
use crate::{
    CampaignRecord, CouponRecord, IdempotencyRecord, StatsRecord, StorageError, keys, records,
};

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

    pub fn coupon(
        &self,
        campaign_id: &str,
        seq: u64,
    ) -> Result<Option<CouponRecord>, StorageError> {
        self.db
            .get(keys::coupon(campaign_id, seq))?
            .map(|v| records::decode_coupon(&v))
            .transpose()
    }

    /// A user's coupons in (campaign id, seq) order, starting after `after`: those of
    /// `campaign` only if given, and only those `keep` accepts, up to `limit`.
    pub fn user_coupons(
        &self,
        user_id: &str,
        campaign: Option<&str>,
        after: Option<(&str, u64)>,
        limit: usize,
        keep: impl Fn(&CouponRecord) -> bool,
    ) -> Result<Vec<CouponRecord>, StorageError> {
        let user = keys::user_prefix(user_id);
        let mut prefix = user.clone();
        if let Some(c) = campaign {
            prefix.extend_from_slice(c.as_bytes());
        }
        let from = after.map(|(cid, seq)| keys::after(keys::user_coupon(user_id, cid, seq)));
        let mut out = Vec::new();
        // The limit counts the coupons kept, not the index entries read.
        for item in self.scan(&prefix, from, None) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let (cid, seq) = keys::split_user_coupon_tail(&k[user.len()..])
                .ok_or_else(|| corrupt("user index key", &format!("{k:?}")))?;
            match self.coupon(cid, seq)? {
                Some(c) if keep(&c) => out.push(c),
                Some(_) => {}
                None => {
                    return Err(StorageError::Corrupt {
                        what: "user index",
                        detail: format!("points at missing coupon {cid}/{seq}"),
                    });
                }
            }
        }
        Ok(out)
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
