//! The engine's requests about mail: contacts, subscriptions and dead letters. Each
//! change is committed (durable) before it is answered, like every other change.

use firstcome_storage::{ContactRecord, MailJob, Writes};

use super::Engine;
use crate::error::EngineError;
use crate::mail::Contact;
use crate::model::Page;

impl Engine {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&firstcome_storage::Store) -> Result<T, firstcome_storage::StorageError>
        + Send
        + 'static,
    ) -> Result<T, EngineError> {
        let store = self.ctx.store.clone();
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
        let record = contact.record(self.ctx.now_us());
        let mut writes = Writes::new();
        writes.put_contact(user_id, &record)?;
        self.ctx.commit(writes).await?;
        Ok(record)
    }

    pub fn contact(&self, user_id: &str) -> Result<ContactRecord, EngineError> {
        self.ctx
            .store
            .contact(user_id)?
            .ok_or(EngineError::ContactNotFound)
    }

    /// Forgets a user's contact; mail already queued for them still goes out.
    pub async fn delete_contact(&self, user_id: &str) -> Result<(), EngineError> {
        let _user = self.user_locks.lock(user_id).await;
        self.contact(user_id)?;
        let mut writes = Writes::new();
        writes.remove_contact(user_id);
        self.ctx.commit(writes).await?;
        Ok(())
    }

    /// Subscribes a user to a store's new campaigns; `false` if they already were.
    pub async fn subscribe(&self, user_id: &str, store_id: &str) -> Result<bool, EngineError> {
        let _user = self.user_locks.lock(user_id).await;
        if self.ctx.store.is_subscribed(user_id, store_id)? {
            return Ok(false);
        }
        let mut writes = Writes::new();
        writes.put_subscription(user_id, store_id);
        self.ctx.commit(writes).await?;
        Ok(true)
    }

    pub async fn unsubscribe(&self, user_id: &str, store_id: &str) -> Result<(), EngineError> {
        let _user = self.user_locks.lock(user_id).await;
        if !self.ctx.store.is_subscribed(user_id, store_id)? {
            return Err(EngineError::SubscriptionNotFound);
        }
        let mut writes = Writes::new();
        writes.remove_subscription(user_id, store_id);
        self.ctx.commit(writes).await?;
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
            .ctx
            .store
            .dead_letter(job_id)?
            .ok_or(EngineError::DeadLetterNotFound)?;
        let now = self.ctx.now_us();
        job.created_at = now;
        job.due_at = now;
        job.attempts = 0;
        job.dead_at = None;
        let mut writes = Writes::new();
        writes.remove_dead_letter(job_id);
        writes.put_mail_job(&job)?;
        self.ctx.commit(writes).await?;
        mailer.handle.committed(1);
        Ok(job)
    }

    /// How many jobs wait in the outbox (a scan: for tests and tools).
    pub async fn outbox_len(&self) -> Result<usize, EngineError> {
        self.blocking(|s| s.outbox_len()).await
    }
}
