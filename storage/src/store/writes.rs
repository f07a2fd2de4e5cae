#[cfg(test)]
use super::HOLDER_CHUNK;
use crate::error::StorageError;
use crate::records::{
    CampaignRecord, ContactRecord, CouponRecord, FanOutRecord, IdempotencyRecord, IssuedCoupon,
    MailJob, StatsRecord,
};
use crate::{keys, records};

/// The writes of one decision. The committer makes them durable atomically, in one
/// journal record with the other decisions of its group, then applies them to sled. Encoding happens here, on the deciding
/// actor's thread, so the committer thread only copies bytes.
#[derive(Debug, Default)]
pub struct Writes {
    /// Key and new value; `None` removes the key.
    pub(crate) ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Writes {
    pub fn new() -> Self {
        Writes::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Appends another decision's writes, in order (a later write of a key wins).
    pub fn extend(&mut self, other: Writes) {
        if self.ops.is_empty() {
            self.ops = other.ops;
        } else {
            self.ops.extend(other.ops);
        }
    }

    pub fn put_campaign(&mut self, c: &CampaignRecord) -> Result<(), StorageError> {
        self.ops
            .push((keys::campaign(&c.id), Some(records::encode_campaign(c)?)));
        Ok(())
    }

    /// A coupon as it is after a change (redeemed, its redemption cancelled, expired by
    /// an operation). It overrides the coupon's entry in its issued group.
    pub fn put_coupon(&mut self, c: &CouponRecord) -> Result<(), StorageError> {
        self.ops.push((
            keys::coupon(&c.campaign_id, c.seq),
            Some(records::encode_coupon(c)?),
        ));
        Ok(())
    }

    /// The coupons one commit issued for a campaign, seqs `first .. first + len` in
    /// order, as one record: one sled key however many coupons (sled's cost is per key).
    pub fn put_issued_group(
        &mut self,
        campaign_id: &str,
        coupons: &[IssuedCoupon],
    ) -> Result<(), StorageError> {
        let Some(first) = coupons.first() else {
            return Ok(());
        };
        // Paired with recovery, which refuses a gap: a group is gap-free in itself.
        assert!(
            coupons
                .iter()
                .enumerate()
                .all(|(i, c)| c.seq == first.seq + i as u64),
            "an issued group out of seq order"
        );
        self.ops.push((
            keys::issued_group(campaign_id, first.seq),
            Some(records::encode_issued_group(coupons)?),
        ));
        Ok(())
    }

    /// Every coupon before `seq` whose expiry is not indexed has been looked at by the
    /// campaign's expiry walk.
    pub fn put_expiry_walk(&mut self, campaign_id: &str, seq: u64) -> Result<(), StorageError> {
        self.ops
            .push((keys::progress(campaign_id), Some(records::encode(&seq)?)));
        Ok(())
    }

    /// The holders of seqs `chunk * HOLDER_CHUNK ..` (exactly `HOLDER_CHUNK` of them), as
    /// format 1 wrote them: only tests write them now, to check that they are read.
    #[cfg(test)]
    pub(crate) fn put_holder_chunk<S: AsRef<str> + serde::Serialize>(
        &mut self,
        campaign_id: &str,
        chunk: u32,
        users: &[S],
    ) -> Result<(), StorageError> {
        debug_assert_eq!(users.len() as u64, HOLDER_CHUNK);
        self.ops.push((
            keys::holder_chunk(campaign_id, chunk),
            Some(records::encode(&users)?),
        ));
        Ok(())
    }

    /// Removes a campaign that never issued a coupon: its record, statistics, and an
    /// announcement not yet expanded (mail already queued for it still goes).
    pub fn delete_campaign(&mut self, campaign_id: &str) {
        self.ops.push((keys::campaign(campaign_id), None));
        self.ops.push((keys::stats(campaign_id), None));
        self.ops
            .push((keys::simple(keys::ANNOUNCED, campaign_id), None));
        self.ops
            .push((keys::simple(keys::FAN_OUT, campaign_id), None));
        self.ops.push((keys::progress(campaign_id), None));
    }

    /// The campaign's totals, and the counts of the given days only: a change touches
    /// one or two days, and a long campaign has hundreds.
    pub fn put_stats(
        &mut self,
        campaign_id: &str,
        s: &StatsRecord,
        days: &[i32],
    ) -> Result<(), StorageError> {
        let totals = (s.redeemed, s.expired);
        self.ops
            .push((keys::stats(campaign_id), Some(records::encode(&totals)?)));
        for day in days {
            if let Some(d) = s.per_day.get(day) {
                self.ops.push((
                    keys::stats_day(campaign_id, *day),
                    Some(records::encode(d)?),
                ));
            }
        }
        Ok(())
    }

    /// Enters coupon `seq` in the campaign's expiry index.
    pub fn put_expiry(&mut self, campaign_id: &str, expires_at: i64, seq: u64) {
        self.ops
            .push((keys::expiry(campaign_id, expires_at, seq), Some(Vec::new())));
    }

    pub fn remove_expiry(&mut self, campaign_id: &str, expires_at: i64, seq: u64) {
        self.ops
            .push((keys::expiry(campaign_id, expires_at, seq), None));
    }

    pub fn put_idempotency(
        &mut self,
        key: &str,
        r: &IdempotencyRecord,
    ) -> Result<(), StorageError> {
        self.ops
            .push((keys::idempotency(key), Some(records::encode(r)?)));
        self.ops
            .push((keys::idempotency_age(r.created_at, key), Some(Vec::new())));
        Ok(())
    }

    pub fn remove_idempotency(&mut self, key: &str, created_at: i64) {
        self.ops.push((keys::idempotency(key), None));
        self.ops
            .push((keys::idempotency_age(created_at, key), None));
    }

    pub fn put_meta(&mut self, name: &str, value: &[u8]) {
        self.ops.push((keys::meta(name), Some(value.to_vec())));
    }

    pub fn put_contact(&mut self, user_id: &str, c: &ContactRecord) -> Result<(), StorageError> {
        self.ops.push((
            keys::simple(keys::CONTACT, user_id),
            Some(records::encode(c)?),
        ));
        Ok(())
    }

    pub fn remove_contact(&mut self, user_id: &str) {
        self.ops.push((keys::simple(keys::CONTACT, user_id), None));
    }

    /// Both directions of a subscription, always together.
    pub fn put_subscription(&mut self, user_id: &str, store_id: &str) {
        self.ops.push((
            keys::pair(keys::SUBSCRIBER, store_id, user_id),
            Some(Vec::new()),
        ));
        self.ops.push((
            keys::pair(keys::SUBSCRIPTION, user_id, store_id),
            Some(Vec::new()),
        ));
    }

    pub fn remove_subscription(&mut self, user_id: &str, store_id: &str) {
        self.ops
            .push((keys::pair(keys::SUBSCRIBER, store_id, user_id), None));
        self.ops
            .push((keys::pair(keys::SUBSCRIPTION, user_id, store_id), None));
    }

    /// Queues a mail job (or replaces the job of the same id): the job and its entry in
    /// the due index.
    pub fn put_mail_job(&mut self, job: &MailJob) -> Result<(), StorageError> {
        self.ops.push((
            keys::simple(keys::MAIL_JOB, &job.id),
            Some(records::encode(job)?),
        ));
        self.ops
            .push((keys::mail_due(job.due_at, &job.id), Some(Vec::new())));
        Ok(())
    }

    /// Takes a job out of the outbox (it was sent, or is moving): the job and the due
    /// entry it was queued under.
    pub fn remove_mail_job(&mut self, job_id: &str, due_at: i64) {
        self.ops.push((keys::simple(keys::MAIL_JOB, job_id), None));
        self.ops.push((keys::mail_due(due_at, job_id), None));
    }

    pub fn put_dead_letter(&mut self, job: &MailJob) -> Result<(), StorageError> {
        self.ops.push((
            keys::simple(keys::MAIL_DEAD, &job.id),
            Some(records::encode(job)?),
        ));
        Ok(())
    }

    pub fn remove_dead_letter(&mut self, job_id: &str) {
        self.ops.push((keys::simple(keys::MAIL_DEAD, job_id), None));
    }

    /// Enters coupon `seq` in the campaign's reminder index, due at `at`.
    pub fn put_reminder(&mut self, campaign_id: &str, at: i64, seq: u64) {
        self.ops.push((
            keys::timed(keys::REMINDER, campaign_id, at, seq),
            Some(Vec::new()),
        ));
    }

    pub fn remove_reminder(&mut self, campaign_id: &str, at: i64, seq: u64) {
        self.ops
            .push((keys::timed(keys::REMINDER, campaign_id, at, seq), None));
    }

    /// Marks the campaign's activation as announced to its store's subscribers.
    pub fn put_announced(&mut self, campaign_id: &str) {
        self.ops
            .push((keys::simple(keys::ANNOUNCED, campaign_id), Some(Vec::new())));
    }

    pub fn put_fan_out(&mut self, f: &FanOutRecord) -> Result<(), StorageError> {
        self.ops.push((
            keys::simple(keys::FAN_OUT, &f.campaign.id),
            Some(records::encode(f)?),
        ));
        Ok(())
    }

    pub fn remove_fan_out(&mut self, campaign_id: &str) {
        self.ops
            .push((keys::simple(keys::FAN_OUT, campaign_id), None));
    }
}
