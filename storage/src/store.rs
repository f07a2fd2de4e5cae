use std::path::PathBuf;

use crate::{
    CampaignRecord, ContactRecord, CouponRecord, FanOutRecord, IdempotencyRecord, MailJob,
    StatsRecord, StorageError, keys, records,
};

/// How many coupons one holder chunk covers. When a campaign has issued a multiple of
/// this, its actor writes the chunk: the user ids of those coupons in seq order, in one
/// value. Recovery reads chunks (a few large values) instead of every coupon record,
/// and only scans the coupons after the last chunk.
pub const HOLDER_CHUNK: u64 = 65_536;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `None` opens a temporary database that disappears when dropped (tests, benches).
    pub path: Option<PathBuf>,
    /// sled's page cache in bytes. sled's own default is 1 GiB, too much for a
    /// service that shares its machine.
    pub cache_capacity: u64,
}

impl StoreConfig {
    pub fn temporary() -> Self {
        StoreConfig {
            path: None,
            cache_capacity: 64 * 1024 * 1024,
        }
    }
}

/// The database. Cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

/// What recovery found for one campaign: the holder of every durable coupon, by seq.
#[derive(Debug, Default)]
pub struct Recovered {
    pub holders: Vec<String>,
    /// How many of them came from holder chunks (the rest from coupon records).
    pub from_chunks: u64,
}

/// The writes of one decision. The committer applies them atomically, in one sled
/// batch with the other decisions of its group. Encoding happens here, on the deciding
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

    pub fn put_campaign(&mut self, c: &CampaignRecord) -> Result<(), StorageError> {
        self.ops
            .push((keys::campaign(&c.id), Some(records::encode_campaign(c)?)));
        Ok(())
    }

    /// The coupon and its entry in the user's index, always together.
    pub fn put_coupon(&mut self, c: &CouponRecord) -> Result<(), StorageError> {
        self.ops.push((
            keys::coupon(&c.campaign_id, c.seq),
            Some(records::encode_coupon(c)?),
        ));
        self.ops.push((
            keys::user_coupon(&c.user_id, &c.campaign_id, c.seq),
            Some(Vec::new()),
        ));
        Ok(())
    }

    /// The holders of seqs `chunk * HOLDER_CHUNK ..` (exactly `HOLDER_CHUNK` of them).
    pub fn put_holder_chunk<S: AsRef<str> + serde::Serialize>(
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

impl Store {
    pub fn open(cfg: &StoreConfig) -> Result<Store, StorageError> {
        let mut sled_cfg = sled::Config::new()
            .cache_capacity(cfg.cache_capacity)
            // The committer flushes whenever a reply waits on a write; a timer flush on
            // top would only compete with it for the disk.
            .flush_every_ms(None);
        sled_cfg = match &cfg.path {
            Some(p) => sled_cfg.path(p),
            None => sled_cfg.temporary(true),
        };
        // sled releases its file lock a moment after the last handle of a closed
        // database is dropped (its background threads finish first), so an open right
        // after a close in the same process can find it still held. Retry briefly; a
        // lock held by another process stays an error.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match sled_cfg.open() {
                Ok(db) => return Ok(Store { db }),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && waited < std::time::Duration::from_secs(3) =>
                {
                    let pause = std::time::Duration::from_millis(20);
                    std::thread::sleep(pause);
                    waited += pause;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies the writes of many decisions as one atomic sled batch. Visible to
    /// readers at once; durable only after the next [`Store::flush`].
    pub(crate) fn apply_all(
        &self,
        groups: impl Iterator<Item = Writes>,
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for writes in groups {
            for (k, v) in writes.ops {
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn apply(&self, writes: Writes) -> Result<(), StorageError> {
        self.apply_all(std::iter::once(writes))
    }

    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }

    /// A metadata value, created (and flushed) by `init` the first time it is asked for.
    /// Used at start-up, before the committer runs.
    pub fn meta_or_init(
        &self,
        name: &str,
        init: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StorageError> {
        let key = keys::meta(name);
        if let Some(v) = self.db.get(&key)? {
            return Ok(v.to_vec());
        }
        let value = init();
        // compare_and_swap so that a concurrent initialiser cannot overwrite ours.
        match self
            .db
            .compare_and_swap(&key, None as Option<&[u8]>, Some(value.clone()))?
        {
            Ok(()) => {
                self.db.flush()?;
                Ok(value)
            }
            Err(cas) => Ok(cas.current.map(|v| v.to_vec()).unwrap_or(value)),
        }
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get(keys::meta(name))?.map(|v| v.to_vec()))
    }

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
        let start = match after {
            Some(a) => {
                let mut k = keys::campaign(a);
                k.push(0); // the smallest key after `a`
                k
            }
            None => vec![keys::CAMPAIGN],
        };
        let mut out = Vec::new();
        for item in self.db.range(start..vec![keys::CAMPAIGN + 1]) {
            if out.len() >= limit {
                break;
            }
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
        let start = match after {
            Some((cid, seq)) => {
                let mut k = keys::user_coupon(user_id, cid, seq);
                k.push(0);
                k.max(prefix.clone())
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.db.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
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
        for item in self.db.scan_prefix(&totals) {
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
        let start = match after {
            Some((at, seq)) => {
                let mut k = keys::timed(kind, campaign_id, at, seq);
                k.push(0); // the smallest key after it
                k
            }
            None => prefix.clone(),
        };
        // Everything up to and including `now`: the key after (now, u64::MAX).
        let end = keys::timed(kind, campaign_id, now, u64::MAX);
        if start > end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.db.range(start..=end).take(limit) {
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
        let start = vec![keys::IDEMPOTENCY_AGE];
        let mut end = vec![keys::IDEMPOTENCY_AGE];
        end.extend_from_slice(&keys::ordered_i64(before));
        let mut out = Vec::new();
        for item in self.db.range(start..end).take(limit) {
            let (k, _) = item?;
            let at = keys::from_ordered_i64(&k[1..9]).ok_or_else(|| corrupt("age key", "short"))?;
            let key =
                String::from_utf8(k[9..].to_vec()).map_err(|_| corrupt("age key", "utf-8"))?;
            out.push((at, key));
        }
        Ok(out)
    }

    pub fn contact(&self, user_id: &str) -> Result<Option<ContactRecord>, StorageError> {
        self.db
            .get(keys::simple(keys::CONTACT, user_id))?
            .map(|v| records::decode("contact", &v))
            .transpose()
    }

    pub fn is_subscribed(&self, user_id: &str, store_id: &str) -> Result<bool, StorageError> {
        Ok(self
            .db
            .contains_key(keys::pair(keys::SUBSCRIPTION, user_id, store_id))?)
    }

    /// The stores a user subscribes to, in id order, after `after`.
    pub fn subscriptions(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        self.pairs(keys::SUBSCRIPTION, user_id, after, limit)
    }

    /// A store's subscribers, in user id order, after `after`.
    pub fn subscribers(
        &self,
        store_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        self.pairs(keys::SUBSCRIBER, store_id, after, limit)
    }

    fn pairs(
        &self,
        kind: u8,
        first: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let prefix = keys::pair(kind, first, "");
        let start = match after {
            Some(a) => {
                let mut k = keys::pair(kind, first, a);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.db.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(
                String::from_utf8(k[prefix.len()..].to_vec())
                    .map_err(|_| corrupt("subscription key", "utf-8"))?,
            );
        }
        Ok(out)
    }

    pub fn mail_job(&self, job_id: &str) -> Result<Option<MailJob>, StorageError> {
        self.db
            .get(keys::simple(keys::MAIL_JOB, job_id))?
            .map(|v| records::decode("mail job", &v))
            .transpose()
    }

    /// Up to `limit` (due_at, job id) of the outbox due at or before `now`, in due order,
    /// skipping those `skip` names (already being sent).
    pub fn due_mail(
        &self,
        now: i64,
        limit: usize,
        skip: impl Fn(&str) -> bool,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let start = vec![keys::MAIL_DUE];
        let mut end = vec![keys::MAIL_DUE];
        end.extend_from_slice(&keys::ordered_i64(now.saturating_add(1)));
        let mut out = Vec::new();
        for item in self.db.range(start..end) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if k.len() < 9 {
                return Err(corrupt("mail due key", "short"));
            }
            let at =
                keys::from_ordered_i64(&k[1..9]).ok_or_else(|| corrupt("mail due key", "short"))?;
            let id = std::str::from_utf8(&k[9..]).map_err(|_| corrupt("mail due key", "utf-8"))?;
            if !skip(id) {
                out.push((at, id.to_string()));
            }
        }
        Ok(out)
    }

    /// How many mail jobs wait in the outbox (a full scan: for start-up and tests).
    pub fn outbox_len(&self) -> Result<usize, StorageError> {
        let mut n = 0;
        for item in self.db.scan_prefix([keys::MAIL_JOB]) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    pub fn dead_letter(&self, job_id: &str) -> Result<Option<MailJob>, StorageError> {
        self.db
            .get(keys::simple(keys::MAIL_DEAD, job_id))?
            .map(|v| records::decode("dead letter", &v))
            .transpose()
    }

    /// Dead letters in id order, after `after`.
    pub fn dead_letters(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MailJob>, StorageError> {
        let start = match after {
            Some(a) => {
                let mut k = keys::simple(keys::MAIL_DEAD, a);
                k.push(0);
                k
            }
            None => vec![keys::MAIL_DEAD],
        };
        let mut out = Vec::new();
        for item in self.db.range(start..vec![keys::MAIL_DEAD + 1]) {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            out.push(records::decode("dead letter", &v)?);
        }
        Ok(out)
    }

    pub fn is_announced(&self, campaign_id: &str) -> Result<bool, StorageError> {
        Ok(self
            .db
            .contains_key(keys::simple(keys::ANNOUNCED, campaign_id))?)
    }

    /// Announcements still being expanded, up to `limit`.
    pub fn fan_outs(&self, limit: usize) -> Result<Vec<FanOutRecord>, StorageError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix([keys::FAN_OUT]).take(limit) {
            let (_, v) = item?;
            out.push(records::decode("fan out", &v)?);
        }
        Ok(out)
    }

    /// Rebuilds the holder of every durable coupon of a campaign: holder chunks first,
    /// then the coupon records after the last chunk. Fails if the durable coupons are
    /// not a gap-free prefix, which the committer guarantees they are.
    pub fn recover_holders(&self, campaign_id: &str) -> Result<Recovered, StorageError> {
        let mut holders: Vec<String> = Vec::new();
        for item in self.db.scan_prefix(keys::holder_chunk_prefix(campaign_id)) {
            let (k, v) = item?;
            let expected = (holders.len() as u64 / HOLDER_CHUNK) as u32;
            let chunk = u32::from_be_bytes(
                k[k.len() - 4..]
                    .try_into()
                    .map_err(|_| corrupt("holder chunk key", "short key"))?,
            );
            if chunk != expected {
                return Err(corrupt(
                    "holder chunks",
                    &format!("expected chunk {expected}, found {chunk}"),
                ));
            }
            let users: Vec<String> = records::decode("holder chunk", &v)?;
            if users.len() as u64 != HOLDER_CHUNK {
                return Err(corrupt("holder chunk", "wrong length"));
            }
            holders.extend(users);
        }
        let from_chunks = holders.len() as u64;
        let start = keys::coupon(campaign_id, from_chunks);
        let prefix = keys::coupon_prefix(campaign_id);
        for item in self.db.range(start..) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let c: CouponRecord = records::decode_coupon(&v)?;
            if c.seq != holders.len() as u64 {
                return Err(corrupt(
                    "coupons",
                    &format!("gap: expected seq {}, found {}", holders.len(), c.seq),
                ));
            }
            holders.push(c.user_id);
        }
        Ok(Recovered {
            holders,
            from_chunks,
        })
    }
}

fn corrupt(what: &'static str, detail: &str) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CouponRecord, CouponStatus};

    const CID: &str = "cccccccccccccccc";

    fn coupon(seq: u64) -> CouponRecord {
        CouponRecord {
            campaign_id: CID.into(),
            seq,
            user_id: format!("u{seq}"),
            code: String::new(),
            issued_at: 0,
            expires_at: None,
            status: CouponStatus::Issued,
            redeemed_at: None,
            order_id: None,
        }
    }

    #[test]
    fn holder_chunks_and_the_coupons_after_them_recover_in_order() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let n = HOLDER_CHUNK + 3;
        for seq in 0..n {
            let mut w = Writes::new();
            w.put_coupon(&coupon(seq)).unwrap();
            store.apply(w).unwrap();
        }
        // Without a chunk, recovery reads every coupon.
        let r = store.recover_holders(CID).unwrap();
        assert_eq!((r.holders.len() as u64, r.from_chunks), (n, 0));
        // With chunk 0, it reads the chunk and only the 3 coupons after it. Make the
        // chunk differ from the coupons to prove it is what recovery used.
        let users: Vec<String> = (0..HOLDER_CHUNK).map(|s| format!("chunked{s}")).collect();
        let mut w = Writes::new();
        w.put_holder_chunk(CID, 0, &users).unwrap();
        store.apply(w).unwrap();
        let r = store.recover_holders(CID).unwrap();
        assert_eq!(r.from_chunks, HOLDER_CHUNK);
        assert_eq!(r.holders.len() as u64, n);
        assert_eq!(r.holders[5], "chunked5");
        assert_eq!(r.holders[HOLDER_CHUNK as usize], format!("u{HOLDER_CHUNK}"));
    }

    #[test]
    fn a_gap_in_the_coupons_is_refused() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        for seq in [0, 1, 3] {
            let mut w = Writes::new();
            w.put_coupon(&coupon(seq)).unwrap();
            store.apply(w).unwrap();
        }
        assert!(matches!(
            store.recover_holders(CID),
            Err(StorageError::Corrupt { .. })
        ));
    }
}

#[cfg(test)]
mod stats_tests {
    use super::*;
    use crate::DayStats;

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
