//! The engine's requests about mail: contacts, subscriptions and dead letters. Each
//! change is committed (durable) before it is answered, like every other change.

use firstcome_storage::{ContactRecord, MailJob, Writes};

use crate::EngineError;
use crate::engine::{Engine, commit};

/// Where a user wants their mail, as given by a client (checked by [`Contact::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub email: String,
    pub locale: Option<String>,
}

/// The longest address SMTP carries (RFC 5321's path limit less the brackets).
const MAX_EMAIL_LEN: usize = 254;

impl Contact {
    /// Checks the address (lettre's parser: `local@domain`, no display name) and the
    /// language tag (`en`, `ko-KR`: letters, digits and hyphens, a letter first).
    pub fn new(email: &str, locale: Option<&str>) -> Result<Contact, EngineError> {
        let email = email.trim();
        if email.len() > MAX_EMAIL_LEN {
            return Err(EngineError::InvalidInput(format!(
                "email is longer than {MAX_EMAIL_LEN} characters"
            )));
        }
        if email.parse::<lettre::Address>().is_err() {
            return Err(EngineError::InvalidInput(format!(
                "email {email:?} is not an e-mail address"
            )));
        }
        if let Some(l) = locale {
            let ok = (2..=35).contains(&l.len())
                && l.starts_with(|c: char| c.is_ascii_alphabetic())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                return Err(EngineError::InvalidInput(format!(
                    "locale {l:?} is not a language tag such as \"en\" or \"ko-KR\""
                )));
            }
        }
        Ok(Contact {
            email: email.to_string(),
            locale: locale.map(str::to_string),
        })
    }

    pub(crate) fn record(&self, now: i64) -> ContactRecord {
        ContactRecord {
            email: self.email.clone(),
            locale: self.locale.clone(),
            updated_at: now,
        }
    }
}

/// A page and the cursor to continue after it, if more may follow.
pub type Page<T> = (Vec<T>, Option<String>);

/// Serialises the read-then-write requests of one user (delete a contact, subscribe,
/// unsubscribe), so that of two identical requests at once exactly one is told it made
/// the change. Striped by user: different users never wait for each other's commits
/// (except on a shared stripe). Tokio mutexes: held across the commit's await.
pub(crate) struct UserLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl UserLocks {
    pub(crate) fn new() -> UserLocks {
        UserLocks {
            stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    async fn lock(&self, user_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<siphasher::sip::SipHasher13>::default().hash_one(user_id);
        self.stripes[(h % self.stripes.len() as u64) as usize]
            .lock()
            .await
    }
}

impl Engine {
    fn now_us(&self) -> i64 {
        self.shared.clock.now().as_microsecond()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&firstcome_storage::Store) -> Result<T, firstcome_storage::StorageError>
        + Send
        + 'static,
    ) -> Result<T, EngineError> {
        let store = self.shared.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| EngineError::Actor(e.to_string()))?
            .map_err(EngineError::from)
    }

    /// Registers (or replaces) where a user's mail goes.
    pub async fn set_contact(
        &self,
        user_id: &str,
        contact: &Contact,
    ) -> Result<ContactRecord, EngineError> {
        let record = contact.record(self.now_us());
        let mut writes = Writes::new();
        writes.put_contact(user_id, &record)?;
        commit(&self.shared.committer, writes).await?;
        Ok(record)
    }

    pub fn contact(&self, user_id: &str) -> Result<ContactRecord, EngineError> {
        self.shared
            .store
            .contact(user_id)?
            .ok_or(EngineError::ContactNotFound)
    }

    /// Forgets a user's contact; mail already queued for them still goes out.
    pub async fn delete_contact(&self, user_id: &str) -> Result<(), EngineError> {
        let _user = self.shared.user_locks.lock(user_id).await;
        self.contact(user_id)?;
        let mut writes = Writes::new();
        writes.remove_contact(user_id);
        commit(&self.shared.committer, writes).await?;
        Ok(())
    }

    /// Subscribes a user to a store's new campaigns; `false` if they already were.
    pub async fn subscribe(&self, user_id: &str, store_id: &str) -> Result<bool, EngineError> {
        let _user = self.shared.user_locks.lock(user_id).await;
        if self.shared.store.is_subscribed(user_id, store_id)? {
            return Ok(false);
        }
        let mut writes = Writes::new();
        writes.put_subscription(user_id, store_id);
        commit(&self.shared.committer, writes).await?;
        Ok(true)
    }

    pub async fn unsubscribe(&self, user_id: &str, store_id: &str) -> Result<(), EngineError> {
        let _user = self.shared.user_locks.lock(user_id).await;
        if !self.shared.store.is_subscribed(user_id, store_id)? {
            return Err(EngineError::SubscriptionNotFound);
        }
        let mut writes = Writes::new();
        writes.remove_subscription(user_id, store_id);
        commit(&self.shared.committer, writes).await?;
        Ok(())
    }

    /// The stores a user subscribes to, in id order.
    pub async fn subscriptions(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<String>, EngineError> {
        let (user, after) = (user_id.to_string(), after.map(str::to_string));
        let mut stores = self
            .blocking(move |s| s.subscriptions(&user, after.as_deref(), limit + 1))
            .await?;
        let next = (stores.len() > limit).then(|| stores[limit - 1].clone());
        stores.truncate(limit);
        Ok((stores, next))
    }

    /// Mail given up on, in id order.
    pub async fn dead_letters(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<MailJob>, EngineError> {
        let after = after.map(str::to_string);
        let mut jobs = self
            .blocking(move |s| s.dead_letters(after.as_deref(), limit + 1))
            .await?;
        let next = (jobs.len() > limit).then(|| jobs[limit - 1].id.clone());
        jobs.truncate(limit);
        Ok((jobs, next))
    }

    /// Puts a dead letter back in the outbox, due now, with a fresh retry budget.
    pub async fn retry_dead_letter(&self, job_id: &str) -> Result<MailJob, EngineError> {
        let mailer = self.mailer.as_ref().ok_or(EngineError::MailDisabled)?;
        // One retry at a time: two at once could both read the letter and queue it
        // twice under different due times. A Tokio Mutex: held across the commit.
        let _one_at_a_time = mailer.retry_lock.lock().await;
        let mut job = self
            .shared
            .store
            .dead_letter(job_id)?
            .ok_or(EngineError::DeadLetterNotFound)?;
        let now = self.now_us();
        job.created_at = now;
        job.due_at = now;
        job.attempts = 0;
        job.dead_at = None;
        let mut writes = Writes::new();
        writes.remove_dead_letter(job_id);
        writes.put_mail_job(&job)?;
        commit(&self.shared.committer, writes).await?;
        if let Some(mail) = &self.shared.mail {
            mail.committed(1);
        }
        Ok(job)
    }

    /// How many jobs wait in the outbox (a scan: for tests and tools).
    pub async fn outbox_len(&self) -> Result<usize, EngineError> {
        self.blocking(|s| s.outbox_len()).await
    }
}
