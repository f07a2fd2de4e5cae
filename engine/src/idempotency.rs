//! Idempotency keys: claims on keys being decided, replay of kept responses, and the
//! pruning of old records.
//!
//! Keys are global: the same key sent to another campaign is a reused key. Each
//! campaign actor sees only its own decisions, so without a shared claim two actors
//! could both decide one new key at the same instant. [`KeyClaims`] holds every key
//! that is decided but not yet in the store; a [`Claim`] is the guard of one such key.
//! It releases the key when dropped. The decision hands it to the completion of the
//! commit that writes the key's record, so the key is released once, after the record is
//! in the store (or the commit failed, and a retry decides afresh), whatever else
//! happens: that is the only release path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firstcome_storage::{IdempotencyRecord, StorageError, Store, Writes};

use crate::context::Context;
use crate::error::EngineError;
use crate::model::StoredResponse;

/// How long a response is kept for its idempotency key (at least).
pub(crate) const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often old records are pruned.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The most records one pruning round removes (one atomic batch).
const PRUNE_ROUND: usize = 10_000;

/// Keys decided (or being decided) and not yet in the store, across all campaigns.
#[derive(Default)]
pub(crate) struct KeyClaims {
    /// A std Mutex, not a Tokio one: held for a map operation and at most one sled
    /// read, never across an await.
    in_flight: Mutex<HashMap<String, InFlight>>,
}

struct InFlight {
    fingerprint: [u8; 16],
    /// `None` while the claiming actor is deciding.
    record: Option<IdempotencyRecord>,
}

/// What a key was used for before.
#[derive(Debug)]
pub(crate) enum Earlier {
    /// The same request: its first response.
    Replay(StoredResponse),
    /// Another request (another fingerprint).
    Reused,
    /// The same request, being decided by another actor this instant. The fingerprint
    /// names the campaign, so this cannot happen; the caller answers "retry" rather
    /// than guess.
    Deciding,
}

/// Whether what a key was used for is durable yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// In the store: an answer built on it may go at once.
    Durable,
    /// Another decision's claim, whose commit is submitted (or being decided): an answer
    /// built on it must go after that commit, so no answer contradicts what a crash
    /// would leave.
    Pending,
}

/// The guard of a claimed key: dropping it releases the key.
pub(crate) struct Claim {
    claims: Arc<KeyClaims>,
    key: String,
}

impl KeyClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        // A panic while holding it leaves the map consistent (every operation is one
        // insert, get or remove), so a poisoned lock is still good to use.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `key` was used for before, if anything: a claim (decided or being decided)
    /// or a stored record. If it was never used, claims it, atomically, so that no other
    /// actor can decide the same key meanwhile.
    pub(crate) fn claim(
        self: &Arc<Self>,
        store: &Store,
        key: &str,
        fingerprint: [u8; 16],
    ) -> Result<Result<Claim, (Earlier, Durability)>, StorageError> {
        let mut in_flight = self.lock();
        let earlier = |f: [u8; 16], r: Option<&IdempotencyRecord>| match r {
            _ if f != fingerprint => Earlier::Reused,
            Some(r) => Earlier::Replay(StoredResponse::from(r)),
            None => Earlier::Deciding,
        };
        if let Some(c) = in_flight.get(key) {
            let e = earlier(c.fingerprint, c.record.as_ref());
            return Ok(Err((e, Durability::Pending)));
        }
        // Under the lock: a claim is released only after its record is durable, so
        // between the two looks nothing can slip through, and what the store has is
        // durable.
        if let Some(r) = store.idempotency(key)? {
            let e = earlier(r.fingerprint, Some(&r));
            return Ok(Err((e, Durability::Durable)));
        }
        in_flight.insert(
            key.to_string(),
            InFlight {
                fingerprint,
                record: None,
            },
        );
        Ok(Ok(Claim {
            claims: self.clone(),
            key: key.to_string(),
        }))
    }
}

impl KeyClaims {
    /// Makes the decided response for `key` visible to replays by other actors. Call it
    /// only after the record's writes are submitted: a replay then queues its reply
    /// behind them, so it never outruns the record. (If the commit has completed already,
    /// the claim is gone and the store answers instead.)
    pub(crate) fn publish(&self, key: &str, record: IdempotencyRecord) {
        if let Some(c) = self.lock().get_mut(key) {
            c.record = Some(record);
        }
    }
}

impl Claim {
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.key);
    }
}

impl From<&IdempotencyRecord> for StoredResponse {
    fn from(r: &IdempotencyRecord) -> Self {
        StoredResponse {
            status: r.status,
            content_type: r.content_type.clone(),
            body: r.body.clone(),
        }
    }
}

/// Removes idempotency records older than [`IDEMPOTENCY_TTL`], one round at most;
/// returns how many.
pub(crate) async fn prune(ctx: &Context) -> Result<usize, EngineError> {
    let before_us = ctx.now_us() - IDEMPOTENCY_TTL.as_micros() as i64;
    let old = ctx.store.idempotency_older_than(before_us, PRUNE_ROUND)?;
    if old.is_empty() {
        return Ok(0);
    }
    let mut writes = Writes::new();
    for (created_at_us, key) in &old {
        writes.remove_idempotency(key, *created_at_us);
    }
    if let Err(e) = ctx.commit(writes).await {
        tracing::warn!(error = %e, "pruning idempotency records failed");
        return Err(e.into());
    }
    tracing::debug!(pruned = old.len(), "idempotency records pruned");
    Ok(old.len())
}
