//! The mail reads: contacts, subscriptions in both directions, the outbox and its due
//! index, dead letters, and announcements with the fan-outs still expanding them.

use super::{Store, corrupt};
use crate::error::StorageError;
use crate::records::{ContactRecord, FanOutRecord, MailJob};
use crate::{keys, records};

impl Store {
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
        let from = after.map(|a| keys::after(keys::pair(kind, first, a)));
        let mut out = Vec::new();
        for item in self.scan(&prefix, from, None).take(limit) {
            let (k, _) = item?;
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
        let prefix = [keys::MAIL_DUE];
        let mut end = prefix.to_vec();
        end.extend_from_slice(&keys::ordered_i64(now.saturating_add(1)));
        let mut out = Vec::new();
        // The limit counts the jobs returned, not the skipped ones.
        for item in self.scan(&prefix, None, Some(end)) {
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
        for item in self.scan(&[keys::MAIL_JOB], None, None) {
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
        let from = after.map(|a| keys::after(keys::simple(keys::MAIL_DEAD, a)));
        let mut out = Vec::new();
        for item in self.scan(&[keys::MAIL_DEAD], from, None).take(limit) {
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
        for item in self.scan(&[keys::FAN_OUT], None, None).take(limit) {
            let (_, v) = item?;
            out.push(records::decode("fan out", &v)?);
        }
        Ok(out)
    }
}
