//! One campaign's own group commit.
//!
//! sled's cost is per key written, so a campaign writes the coupons of many decisions as
//! one record. While its previous submission is in flight, the actor gathers what it
//! decides into a [`Batch`]; when that submission completes (or the batch grows past
//! [`MAX_BATCH_COUPONS`]) it submits the batch: one issued-group record, its statistics
//! once, and every decision's other writes, atomically. The committer still groups the
//! submissions of all campaigns into one flush.
//!
//! A reply that depends on nothing pending (a refusal, a read, when nothing is in the batch
//! or in flight) is answered at once, with no trip through the committer; one that depends
//! only on the submission in flight waits for that submission ([`InFlight::after`]); any
//! other rides with the batch.

use std::collections::BTreeSet;
use std::sync::Mutex;

use firstcome_storage::{IdempotencyRecord, IssuedCoupon, StorageError, Writes};

use crate::idempotency::Claim;

/// A batch is submitted once it holds this many new coupons, even while the previous one
/// is in flight: it bounds a group record's size (and the memory of a batch).
pub(super) const MAX_BATCH_COUPONS: usize = 4096;

/// What happens when a submission completes: a reply sent, a claim released.
pub(super) type Deliver = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// Decisions gathered for the campaign's next submission.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) writes: Writes,
    /// New coupons, in seq order: one group record.
    pub(super) issued: Vec<IssuedCoupon>,
    /// UTC days whose counts changed (written once per batch, with the totals).
    pub(super) stats_changed: bool,
    pub(super) days: BTreeSet<i32>,
    /// Idempotency claims whose records are in `writes`, released by the completion.
    pub(super) claims: Vec<Claim>,
    /// Records to make visible to other actors' replays once `writes` are submitted.
    pub(super) publish: Vec<(String, IdempotencyRecord)>,
    pub(super) mail_jobs: i64,
    pub(super) wake_mail: bool,
    /// The last unsettled change in the batch, settled when it is durable.
    pub(super) change: Option<u64>,
    /// In decision order, after the writes are durable.
    pub(super) replies: Vec<Deliver>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.issued.is_empty()
            && !self.stats_changed
            && self.replies.is_empty()
            && self.claims.is_empty()
    }
}

/// The latest submission of a campaign, until it completes.
#[derive(Default)]
pub(super) struct InFlight {
    /// A std Mutex: held to push or take one closure, never across an await.
    state: Mutex<InFlightState>,
}

#[derive(Default)]
struct InFlightState {
    done: Option<Result<(), StorageError>>,
    waiting: Vec<Deliver>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightState> {
        // Consistent even if poisoned: every operation is one push or one take.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn is_done(&self) -> bool {
        self.lock().done.is_some()
    }

    /// Runs `deliver` once this submission is durable (or failed): at once if it is.
    pub(super) fn after(&self, deliver: Deliver) {
        let mut s = self.lock();
        match &s.done {
            Some(result) => {
                let result = result.clone();
                drop(s);
                deliver(result);
            }
            None => s.waiting.push(deliver),
        }
    }

    /// Called by the completion, after the submission's own replies.
    pub(super) fn complete(&self, result: Result<(), StorageError>) {
        let waiting = {
            let mut s = self.lock();
            s.done = Some(result.clone());
            std::mem::take(&mut s.waiting)
        };
        for deliver in waiting {
            deliver(result.clone());
        }
    }
}
