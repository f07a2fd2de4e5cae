//! The group-commit writer.
//!
//! Campaign actors never write to sled themselves. They hand the committer a [`Writes`]
//! list (one decision, made atomic) and a [`Completion`], and go on deciding. The
//! committer runs on its own OS thread (the journal's synced write blocks; a tokio worker
//! must not sit in it) and loops: take everything queued, apply it as one sled batch and
//! append it to the journal as one synced record ([`Store::commit`]), then run all the
//! completions, which send the replies. So a reply never leaves before its state is
//! durable, and under load one fsync serves many requests (about 30 per group at 64
//! tasks on a 2-core machine). After the replies it checkpoints when the journal is
//! long enough (sled's flush, the slow part, off the reply path).
//!
//! Applying here and not on the actors' threads is deliberate: sled's flush holds up
//! concurrent `apply_batch` calls, and when actors applied their own writes they (and
//! the tokio workers under them) stalled for every fsync; issue throughput fell to a
//! quarter (docs/performance.md). An actor that must read its own not yet applied
//! changes keeps them in memory until their completion reports them settled.
//!
//! Requests are handled strictly in submission order. That gives two guarantees the
//! engine builds on:
//! - a campaign's durable coupons are always a gap-free prefix of what it decided;
//! - a completion with no writes of its own (a refusal, a read) runs only after every
//!   write submitted before it is durable, so no refusal contradicts what is durable.
//!   A group made only of such completions needs no flush at all: everything before it
//!   was flushed by an earlier group.
//!
//! A failed apply or flush makes the committer fail-stop: that group and every later
//! request get the error, and nothing more is written. Going on would let a campaign's
//! later coupons become durable after an earlier one was lost (a gap that recovery
//! refuses), and after a failed fsync the kernel may already have dropped the dirty
//! pages, so a retry proves nothing (PostgreSQL's "fsyncgate" reached the same
//! conclusion). The process reports itself unready and an operator restarts it;
//! recovery then starts from what is durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::StorageError;
use crate::store::{Store, Writes};

/// Runs once the writes it came with are durable (or failed to become so).
pub type Completion = Box<dyn FnOnce(Result<(), StorageError>) + Send + 'static>;

#[derive(Debug, Clone)]
pub struct CommitterConfig {
    /// The most requests gathered into one group. Bounds the latency a huge backlog
    /// adds to the first request in it.
    pub max_batch: usize,
    /// `false` applies groups without the fsync: replies no longer wait for the disk,
    /// and a crash loses them. Only for measuring what durability costs (the
    /// `contention` bench); the server always runs durable.
    pub durable: bool,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig {
            max_batch: 8192,
            durable: true,
        }
    }
}

/// Counts since the committer started, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Groups that wrote (and flushed, when durable).
    pub groups: u64,
    /// Requests released by those groups.
    pub requests: u64,
}

enum Request {
    Commit(Writes, Completion),
    Shutdown,
}

/// Handle to the committer thread. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
    groups: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    // A std Mutex, not a Tokio one: it is only taken to join the thread at shutdown.
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    failed: Arc<AtomicBool>,
}

impl Committer {
    /// Starts the committer thread; fails only if the OS refuses a thread.
    pub fn start(store: Store, cfg: CommitterConfig) -> Result<Committer, StorageError> {
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let counts = Counts {
            failed: failed.clone(),
            groups: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let (groups, requests) = (counts.groups.clone(), counts.requests.clone());
        let thread = std::thread::Builder::new()
            .name("firstcome-committer".into())
            .spawn(move || run(store, cfg, rx, &counts))
            .map_err(|e| StorageError::Spawn(e.to_string()))?;
        Ok(Committer {
            tx,
            groups,
            requests,
            thread: Arc::new(Mutex::new(Some(thread))),
            failed,
        })
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            groups: self.groups.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    /// False once a group commit has failed (see the module docs: fail-stop).
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    /// Queues `writes`; `done` runs after they (and everything queued before them) are
    /// durable. Never blocks. If the committer has stopped, `done` runs at once with
    /// [`StorageError::CommitterStopped`].
    pub fn submit(&self, writes: Writes, done: Completion) {
        if let Err(done) = self.try_submit(writes, done) {
            done(Err(StorageError::CommitterStopped));
        }
    }

    /// Like [`Committer::submit`], but a committer that has stopped hands `done` back
    /// instead of running it: for a caller holding a lock that `done` takes.
    pub fn try_submit(&self, writes: Writes, done: Completion) -> Result<(), Completion> {
        match self.tx.send(Request::Commit(writes, done)) {
            Ok(()) => Ok(()),
            Err(mpsc::SendError(Request::Commit(_, done))) => Err(done),
            // Only `Commit` is sent here.
            Err(mpsc::SendError(Request::Shutdown)) => Ok(()),
        }
    }

    /// Commits what is queued, then stops the thread and waits for it. Blocking: call
    /// it from a blocking context.
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

/// What the committer thread reports back.
struct Counts {
    failed: Arc<AtomicBool>,
    groups: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

fn run(store: Store, cfg: CommitterConfig, rx: mpsc::Receiver<Request>, counts: &Counts) {
    let mut group: Vec<Writes> = Vec::with_capacity(cfg.max_batch);
    let mut done: Vec<Completion> = Vec::with_capacity(cfg.max_batch);
    let mut poisoned: Option<StorageError> = None;
    let mut stopping = false;
    loop {
        // Block for the first request; after a shutdown request, take only what is left.
        let first = if stopping {
            rx.try_recv().ok()
        } else {
            rx.recv().ok()
        };
        match first {
            Some(Request::Commit(w, d)) => {
                group.push(w);
                done.push(d);
            }
            Some(Request::Shutdown) => {
                stopping = true;
                continue;
            }
            None => break,
        }
        // Gather whatever else is already queued: this is the group in group commit.
        while done.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(Request::Commit(w, d)) => {
                    group.push(w);
                    done.push(d);
                }
                Ok(Request::Shutdown) => stopping = true,
                Err(_) => break,
            }
        }
        let writes: usize = group.iter().map(Writes::len).sum();
        let result = if let Some(e) = &poisoned {
            group.clear();
            Err(e.clone())
        } else if writes == 0 {
            group.clear();
            Ok(())
        } else {
            let started = Instant::now();
            let r = store.commit(&mut group, cfg.durable);
            counts.groups.fetch_add(1, Ordering::Relaxed);
            counts
                .requests
                .fetch_add(done.len() as u64, Ordering::Relaxed);
            metrics::histogram!("firstcome_commit_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("firstcome_commit_batch_writes").record(writes as f64);
            metrics::histogram!("firstcome_commit_batch_requests").record(done.len() as f64);
            r
        };
        let result = match (result, &poisoned) {
            (Err(e), None) => Err(fail(counts, &mut poisoned, e, "commit")),
            (r, _) => r,
        };
        for d in done.drain(..) {
            // A completion runs its caller's code here (a campaign's replies, and the
            // submission of its next batch). One that panics must not take the thread
            // down silently: the store would still look healthy while every later request
            // found the committer gone. Fail-stop instead, like a failed write.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d(result.clone())));
            if ran.is_err() && poisoned.is_none() {
                fail(
                    counts,
                    &mut poisoned,
                    StorageError::CompletionPanicked,
                    "completion",
                );
            }
        }
        // After the replies, which do not wait for it: sled's flush is what lets the
        // journal start again (crate docs, Journal).
        if poisoned.is_none() {
            if let Err(e) = store.checkpoint(false) {
                fail(counts, &mut poisoned, e, "checkpoint");
            }
        }
    }
    // A clean stop leaves nothing to replay, so the next start is quick.
    if poisoned.is_none() {
        if let Err(e) = store.checkpoint(true) {
            fail(counts, &mut poisoned, e, "final checkpoint");
        }
    }
}

/// Fail-stop (module docs): counted, logged once, and every later request (and those
/// of the group that failed) gets [`StorageError::FailStop`] with `e`, which it returns.
fn fail(
    counts: &Counts,
    poisoned: &mut Option<StorageError>,
    e: StorageError,
    what: &str,
) -> StorageError {
    metrics::counter!("firstcome_commit_failures_total").increment(1);
    // The alert (ops/prometheus/rules.yml) tells operators to look for this line. The
    // one line: the requests refused from now on are not logged one by one.
    tracing::error!(error = %e, what, "group commit failed; refusing all further writes");
    counts.failed.store(true, Ordering::SeqCst);
    let stopped = StorageError::FailStop { cause: Arc::new(e) };
    *poisoned = Some(stopped.clone());
    stopped
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::{CouponRecord, StoreConfig};

    fn coupon(seq: u64) -> CouponRecord {
        crate::records::test_coupon("aaaaaaaaaaaaaaaa", seq)
    }

    #[test]
    fn completions_run_in_order_after_their_writes_are_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::at(dir.path().join("store"), 8 << 20)).unwrap();
        let committer = Committer::start(store.clone(), CommitterConfig::default()).unwrap();
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
        let store = Store::open(&StoreConfig::at(dir.path().join("store"), 8 << 20)).unwrap();
        let rec = store.recover_holders("aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(rec.holders.len(), 100);
        assert_eq!(rec.holders[7], "user-7");
        assert_eq!(
            store.coupon("aaaaaaaaaaaaaaaa", 7).unwrap(),
            Some(coupon(7))
        );
    }

    #[test]
    fn a_completion_that_panics_stops_the_committer_visibly() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let committer = Committer::start(store, CommitterConfig::default()).unwrap();
        let (ran_tx, ran) = mpsc::channel();
        let mut w = Writes::new();
        w.put_coupon(&coupon(0)).unwrap();
        committer.submit(
            w,
            Box::new(move |_| {
                ran_tx.send(()).unwrap();
                panic!("a bug in a completion");
            }),
        );
        ran.recv().unwrap();
        // The thread lives on, fail-stop: the next request hears why, not silence.
        let (tx, rx) = mpsc::channel();
        committer.submit(Writes::new(), Box::new(move |r| tx.send(r).unwrap()));
        match rx.recv().unwrap() {
            Err(StorageError::FailStop { cause }) => {
                assert!(matches!(*cause, StorageError::CompletionPanicked))
            }
            other => panic!("{other:?}"),
        }
        assert!(!committer.is_healthy());
    }

    #[test]
    fn submit_after_shutdown_reports_stopped() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let committer = Committer::start(store, CommitterConfig::default()).unwrap();
        committer.shutdown();
        let (tx, rx) = mpsc::channel();
        committer.submit(Writes::new(), Box::new(move |r| tx.send(r).unwrap()));
        assert!(matches!(
            rx.recv().unwrap(),
            Err(StorageError::CommitterStopped)
        ));
    }
}
