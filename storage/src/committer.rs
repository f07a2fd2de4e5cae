//! The group-commit writer.
//!
//! Campaign actors hand the committer a [`Writes`] list and a [`Completion`], and go on
//! deciding. [`Committer::submit`] applies the writes to sled at once, on the caller's
//! thread, as one atomic batch: visible to that actor's next read, but not yet durable.
//! The committer thread (sled's flush is a blocking fsync; a tokio worker must not sit
//! in it) loops: take every completion queued, flush once if anything was applied since
//! the last flush, then run all those completions, which send the replies. So a reply
//! never leaves before its state is durable, and under load one fsync serves many
//! requests (about 20 per flush at 64 connections on a 2-core machine).
//!
//! Why this order is enough: a completion is queued after its writes were applied, and
//! the committer reads the count of applied batches after it took the completion, then
//! flushes. Every write a completion depends on is therefore in the flush that releases
//! it. This assumes a reply depends only on writes submitted before it by the same
//! thread of decisions; it does, because only a campaign's own actor reads and writes
//! that campaign's coupons. Two consequences the engine builds on:
//! - one actor applies its decisions in its own order, so a campaign's durable coupons
//!   are always a gap-free prefix of what it decided;
//! - a completion with no writes of its own (a refusal, a read) runs only after every
//!   write applied before it is durable, so no refusal contradicts what is durable.
//!   When nothing was applied since the last flush, no flush is needed at all.
//!
//! A failed apply or flush makes the committer fail-stop: that request and every later
//! one get the error, and nothing more is applied. Going on would let a campaign's later
//! coupons become durable after an earlier one was lost (a gap that recovery refuses),
//! and after a failed fsync the kernel may already have dropped the dirty pages, so a
//! retry proves nothing (PostgreSQL's "fsyncgate" reached the same conclusion). The
//! process reports itself unready and an operator restarts it; recovery then starts
//! from what is durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::{StorageError, Store, Writes};

/// Runs once the writes it came with are durable (or failed to become so).
pub type Completion = Box<dyn FnOnce(Result<(), StorageError>) + Send + 'static>;

#[derive(Debug, Clone)]
pub struct CommitterConfig {
    /// The most completions released by one flush. Bounds the latency a huge backlog
    /// adds to the first request in it.
    pub max_batch: usize,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig { max_batch: 8192 }
    }
}

enum Request {
    Commit(Completion),
    Shutdown,
}

struct Shared {
    store: Store,
    /// Batches applied so far; the committer flushes up to a value it read.
    applied: AtomicU64,
    applied_ops: AtomicU64,
    failed: AtomicBool,
    // A std Mutex: held only to read or set the error, never across an await.
    error: Mutex<Option<StorageError>>,
    /// Held shared by `submit` from its error check to its `applied` increment, and
    /// exclusively by `fail`: once `fail` returns, no apply is under way and none will
    /// start, so fail-stop really stops writing. Uncontended, a read lock costs one
    /// atomic operation on the issue path.
    gate: RwLock<()>,
}

impl Shared {
    fn fail(&self, e: &StorageError) {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            metrics::counter!("firstcome_commit_failures_total").increment(1);
            tracing::error!(error = %e, "storage write failed; refusing all further writes");
            *slot = Some(e.clone());
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn error(&self) -> Option<StorageError> {
        if !self.failed.load(Ordering::SeqCst) {
            return None;
        }
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Handle to the committer. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    // A std Mutex, not a Tokio one: it is only taken to join the thread at shutdown.
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Committer {
    pub fn start(store: Store, cfg: CommitterConfig) -> Committer {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            store,
            applied: AtomicU64::new(0),
            applied_ops: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            gate: RwLock::new(()),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("firstcome-committer".into())
            .spawn(move || run(&thread_shared, cfg, rx))
            .expect("spawning the committer thread");
        Committer {
            tx,
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        }
    }

    /// False once a write or flush has failed (see the module docs: fail-stop).
    pub fn is_healthy(&self) -> bool {
        !self.shared.failed.load(Ordering::SeqCst)
    }

    /// Applies `writes` now (atomically; readers see them at once) and queues `done`,
    /// which runs once they and everything applied before them are durable. Never
    /// waits for the disk. After a failure, or once the committer has stopped, `done`
    /// runs at once with the error.
    pub fn submit(&self, writes: Writes, done: Completion) {
        if !writes.is_empty() {
            let gate = self.shared.gate.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = self.shared.error() {
                return done(Err(e));
            }
            let ops = writes.len() as u64;
            if let Err(e) = self.shared.store.apply(writes) {
                drop(gate); // fail() takes the gate exclusively
                self.shared.fail(&e);
                return done(Err(e));
            }
            self.shared.applied_ops.fetch_add(ops, Ordering::SeqCst);
            self.shared.applied.fetch_add(1, Ordering::SeqCst);
        } else if let Some(e) = self.shared.error() {
            return done(Err(e));
        }
        if let Err(mpsc::SendError(Request::Commit(done))) = self.tx.send(Request::Commit(done)) {
            done(Err(StorageError::CommitterStopped));
        }
    }

    /// Flushes what is applied, runs what is queued, then stops the thread and waits for
    /// it. Blocking: call it from a blocking context.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown);
        let handle = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the committer thread panicked");
            }
        }
    }
}

fn run(shared: &Shared, cfg: CommitterConfig, rx: mpsc::Receiver<Request>) {
    let mut done: Vec<Completion> = Vec::with_capacity(cfg.max_batch);
    let mut flushed = 0u64;
    let mut flushed_ops = 0u64;
    let mut stopping = false;
    loop {
        if done.is_empty() {
            // Blocks until there is work; after a shutdown request, only what is left.
            let next = if stopping {
                rx.try_recv().ok()
            } else {
                rx.recv().ok()
            };
            match next {
                Some(Request::Commit(d)) => done.push(d),
                Some(Request::Shutdown) => {
                    stopping = true;
                    continue;
                }
                None => break,
            }
        }
        // Gather whatever else is already queued: this is the group in group commit.
        while done.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(Request::Commit(d)) => done.push(d),
                Ok(Request::Shutdown) => stopping = true,
                Err(_) => break,
            }
        }
        // Read after taking the completions: it covers every write they depend on.
        let target = shared.applied.load(Ordering::SeqCst);
        let target_ops = shared.applied_ops.load(Ordering::SeqCst);
        let result = match shared.error() {
            Some(e) => Err(e),
            None if target == flushed => Ok(()),
            None => {
                let started = Instant::now();
                let r = shared.store.flush();
                metrics::histogram!("firstcome_commit_flush_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("firstcome_commit_batch_writes")
                    .record((target_ops - flushed_ops) as f64);
                metrics::histogram!("firstcome_commit_batch_requests").record(done.len() as f64);
                match &r {
                    Ok(()) => (flushed, flushed_ops) = (target, target_ops),
                    Err(e) => shared.fail(e),
                }
                r
            }
        };
        for d in done.drain(..) {
            d(result.clone());
        }
    }
    if shared.error().is_none() {
        if let Err(e) = shared.store.flush() {
            shared.fail(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::{CouponRecord, CouponStatus, StoreConfig};

    fn coupon(seq: u64) -> CouponRecord {
        CouponRecord {
            campaign_id: "aaaaaaaaaaaaaaaa".into(),
            seq,
            user_id: format!("user-{seq}"),
            code: format!("CODE{seq}"),
            issued_at: 0,
            expires_at: None,
            status: CouponStatus::Issued,
            redeemed_at: None,
            order_id: None,
        }
    }

    #[test]
    fn completions_run_in_order_after_their_writes_are_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig {
            path: Some(dir.path().to_path_buf()),
            cache_capacity: 8 << 20,
        })
        .unwrap();
        let committer = Committer::start(store.clone(), CommitterConfig::default());
        let (tx, rx) = mpsc::channel();
        for seq in 0..100 {
            let mut w = Writes::new();
            w.put_coupon(&coupon(seq)).unwrap();
            let tx1 = tx.clone();
            let store = store.clone();
            committer.submit(
                w,
                Box::new(move |r| {
                    r.unwrap();
                    let stored = store.coupon("aaaaaaaaaaaaaaaa", seq).unwrap();
                    tx1.send((seq, stored.is_some())).unwrap();
                }),
            );
            // An empty request (a refusal) in between must still come back in order.
            let tx2 = tx.clone();
            committer.submit(
                Writes::new(),
                Box::new(move |r| {
                    r.unwrap();
                    tx2.send((u64::MAX, true)).unwrap();
                }),
            );
        }
        drop(tx);
        let seen: Vec<(u64, bool)> = rx.iter().collect();
        assert_eq!(seen.len(), 200);
        let seqs: Vec<u64> = seen
            .iter()
            .map(|s| s.0)
            .filter(|s| *s != u64::MAX)
            .collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
        assert!(seen.iter().all(|s| s.1));
        committer.shutdown();
        drop((committer, store));

        // Everything acknowledged is there after reopening.
        let store = Store::open(&StoreConfig {
            path: Some(dir.path().to_path_buf()),
            cache_capacity: 8 << 20,
        })
        .unwrap();
        let rec = store.recover_holders("aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(rec.holders.len(), 100);
        assert_eq!(rec.holders[7], "user-7");
        assert_eq!(
            store.user_coupons("user-7", None, 10).unwrap(),
            vec![coupon(7)]
        );
    }

    #[test]
    fn submit_after_shutdown_reports_stopped() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let committer = Committer::start(store, CommitterConfig::default());
        committer.shutdown();
        let (tx, rx) = mpsc::channel();
        committer.submit(Writes::new(), Box::new(move |r| tx.send(r).unwrap()));
        assert!(matches!(
            rx.recv().unwrap(),
            Err(StorageError::CommitterStopped)
        ));
    }
}
