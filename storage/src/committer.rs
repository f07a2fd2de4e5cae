//! The group-commit writer.
//!
//! Campaign actors never write to sled themselves. They hand the committer a [`Writes`]
//! list and a [`Completion`], and go on deciding. The committer runs on its own OS
//! thread (sled's flush is a blocking fsync; a tokio worker must not sit in it) and
//! loops: take everything queued, apply it as one sled batch, flush once, then run all
//! the completions, which send the replies. So a reply never leaves before its state is
//! durable, and under load one fsync serves hundreds of requests.
//!
//! Requests are handled strictly in submission order. That gives two guarantees the
//! engine builds on:
//! - a campaign's durable coupons are always a gap-free prefix of what it decided;
//! - a completion with no writes of its own (a refusal, a read) runs only after every
//!   write submitted before it is durable, so no refusal contradicts what is durable.
//!   A batch made only of such completions needs no flush at all: everything before it
//!   was flushed by an earlier batch.
//!
//! A failed batch makes the committer fail-stop: it and every later request get the
//! error, and nothing more is written. Going on would let a campaign's later coupons
//! become durable after an earlier one was lost (a gap that recovery refuses), and after
//! a failed fsync the kernel may already have dropped the dirty pages, so a retry proves
//! nothing (PostgreSQL's "fsyncgate" reached the same conclusion). The process reports
//! itself unready and an operator restarts it; recovery then starts from what is durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::{StorageError, Store, Writes};

/// Runs once the writes it came with are durable (or failed to become so).
pub type Completion = Box<dyn FnOnce(Result<(), StorageError>) + Send + 'static>;

#[derive(Debug, Clone)]
pub struct CommitterConfig {
    /// The most requests gathered into one batch. Bounds the latency a huge backlog
    /// adds to the first request in it.
    pub max_batch: usize,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig { max_batch: 8192 }
    }
}

enum Request {
    Commit(Writes, Completion),
    Shutdown,
}

/// Handle to the committer thread. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
    // A std Mutex, not a Tokio one: it is only taken to join the thread at shutdown.
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    failed: Arc<AtomicBool>,
}

impl Committer {
    pub fn start(store: Store, cfg: CommitterConfig) -> Committer {
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let thread_failed = failed.clone();
        let thread = std::thread::Builder::new()
            .name("firstcome-committer".into())
            .spawn(move || run(store, cfg, rx, &thread_failed))
            .expect("spawning the committer thread");
        Committer {
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
            failed,
        }
    }

    /// False once a group commit has failed (see the module docs: fail-stop).
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::Relaxed)
    }

    /// Queues `writes`; `done` runs after they (and everything queued before them) are
    /// durable. Never blocks. If the committer has stopped, `done` runs at once with
    /// [`StorageError::CommitterStopped`].
    pub fn submit(&self, writes: Writes, done: Completion) {
        if let Err(mpsc::SendError(Request::Commit(_, done))) =
            self.tx.send(Request::Commit(writes, done))
        {
            done(Err(StorageError::CommitterStopped));
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

fn run(store: Store, cfg: CommitterConfig, rx: mpsc::Receiver<Request>, failed: &AtomicBool) {
    let mut done: Vec<Completion> = Vec::with_capacity(cfg.max_batch);
    let mut poisoned: Option<StorageError> = None;
    let mut stopping = false;
    while !stopping {
        let first = match rx.recv() {
            Ok(r) => r,
            Err(_) => break, // every handle dropped
        };
        let mut batch = sled::Batch::default();
        let mut writes = 0usize;
        let mut add = |req: Request, done: &mut Vec<Completion>, stopping: &mut bool| match req {
            Request::Commit(w, d) => {
                writes += w.ops.len();
                for (k, v) in w.ops {
                    batch.insert(k, v);
                }
                done.push(d);
            }
            Request::Shutdown => *stopping = true,
        };
        add(first, &mut done, &mut stopping);
        // Gather whatever else is already queued: this is the group in group commit.
        // On shutdown, keep draining so nothing queued before the shutdown is dropped.
        while done.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(r) => add(r, &mut done, &mut stopping),
                Err(_) => break,
            }
        }
        let result = if let Some(e) = &poisoned {
            Err(e.clone())
        } else if writes == 0 {
            Ok(())
        } else {
            let started = Instant::now();
            let r = store.apply_and_flush(batch);
            metrics::histogram!("firstcome_commit_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!("firstcome_commit_batch_writes").record(writes as f64);
            r
        };
        metrics::histogram!("firstcome_commit_batch_requests").record(done.len() as f64);
        if let (Err(e), None) = (&result, &poisoned) {
            metrics::counter!("firstcome_commit_failures_total").increment(1);
            tracing::error!(error = %e, requests = done.len(), "group commit failed; refusing all further writes");
            failed.store(true, Ordering::Relaxed);
            poisoned = Some(e.clone());
        }
        for d in done.drain(..) {
            d(result.clone());
        }
        if stopping {
            // Requests that raced with the shutdown still get an answer.
            while let Ok(r) = rx.try_recv() {
                if let Request::Commit(w, d) = r {
                    if let Some(e) = &poisoned {
                        d(Err(e.clone()));
                        continue;
                    }
                    let mut b = sled::Batch::default();
                    for (k, v) in w.ops {
                        b.insert(k, v);
                    }
                    let r = store.apply_and_flush(b);
                    if let Err(e) = &r {
                        failed.store(true, Ordering::Relaxed);
                        poisoned = Some(e.clone());
                    }
                    d(r);
                }
            }
        }
    }
    if poisoned.is_none() {
        if let Err(e) = store.apply_and_flush(sled::Batch::default()) {
            tracing::error!(error = %e, "final flush failed");
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
        drop(store);

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
