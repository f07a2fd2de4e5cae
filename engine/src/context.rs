//! [`Context`]: the bottom layer every actor of one engine stands on (the campaign
//! actors, their supervisor and the mail dispatcher): the store to read, the committer
//! to write through, the clock, and the coupon-code key.
//!
//! Nothing here knows of actors. Everything above imports it; it imports nothing above.

use std::sync::Arc;

use firstcome_storage::{Committer, CouponRecord, StorageError, Store, Writes};

use crate::clock::Clock;
use crate::codes::CouponCodes;

/// Read-only handles, shared by every actor of one engine.
pub(crate) struct Context {
    pub(crate) store: Store,
    pub(crate) committer: Committer,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) codes: CouponCodes,
}

impl Context {
    /// Now, in microseconds since the epoch (the unit every stored time uses).
    pub(crate) fn now_us(&self) -> i64 {
        self.clock.now().as_microsecond()
    }

    /// One coupon as stored, with its code: a coupon read from its issued group has none
    /// stored, and gets the one derived from (campaign ordinal, seq).
    pub(crate) fn coupon(
        &self,
        campaign_id: &str,
        ordinal: u64,
        seq: u64,
    ) -> Result<Option<CouponRecord>, StorageError> {
        Ok(self
            .store
            .coupon(campaign_id, seq)?
            .map(|c| self.with_code(c, ordinal)))
    }

    /// `c` with its code: a coupon read from its issued group has none stored (codes
    /// are derived from the key), one with a `k` record keeps its own.
    pub(crate) fn with_code(&self, mut c: CouponRecord, ordinal: u64) -> CouponRecord {
        if c.code.is_empty() {
            c.code = self.codes.code(ordinal, c.seq);
        }
        c
    }

    /// Submits `writes` and waits until they, and everything submitted before them, are
    /// durable.
    pub(crate) async fn commit(&self, writes: Writes) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.committer.submit(
            writes,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        // The committer dropped the completion without running it: it has stopped.
        rx.await.unwrap_or(Err(StorageError::CommitterStopped))
    }
}
