//! Admission control: how many requests may be on their way to actors at once.
//!
//! ractor mailboxes are unbounded (the maintainers' answer to backpressure is "put it in
//! front of the actor"), so without a cap an overload would grow them, and the commits
//! queued behind them, until memory ran out. Every request bound for an actor first takes
//! a [`Permit`]; none left means [`EngineError::Overloaded`] at once, before any work.
//!
//! The permit travels inside the actor message, in its [`Reply`], and is released just
//! before the reply is sent, which is after the commit that covers it. A client that goes away
//! does not release it early: its request still sits in a mailbox or in the committer,
//! and clients that time out and retry must not be able to grow those past the cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::RpcReplyPort;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::EngineError;

/// The engine-wide cap on requests in flight to actors.
pub(crate) struct Admission {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

/// One admitted request's place under the cap; released when dropped.
pub(crate) struct Permit {
    _held: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(max_in_flight: usize) -> Admission {
        Admission {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    /// A permit now, or `Overloaded`: never waits, so an overload is shed at the door.
    pub(crate) fn admit(&self) -> Result<Permit, EngineError> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map(|held| Permit { _held: held })
            .map_err(|_| EngineError::Overloaded)
    }

    /// As [`Admission::admit`], for a request that weighs as much as `n` (a bulk issue of
    /// `n` users: that many decisions, and a reply that size). At most the whole cap, so
    /// that a request heavier than the cap can still be admitted, alone.
    pub(crate) fn admit_weighing(&self, n: usize) -> Result<Permit, EngineError> {
        let n = u32::try_from(n.clamp(1, self.max_in_flight)).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .try_acquire_many_owned(n)
            .map(|held| Permit { _held: held })
            .map_err(|_| EngineError::Overloaded)
    }
}

/// Where an actor sends its answer, and the admitted request's permit, which goes when
/// the answer does.
pub(crate) struct Reply<T> {
    /// Before `port`, so that a reply dropped unsent (its actor failed) frees the place
    /// before its caller is woken, as [`Reply::send`] does.
    _permit: Permit,
    port: RpcReplyPort<Result<T, EngineError>>,
    /// When the request was admitted: how long it has waited is how an actor knows to
    /// shed it ([`Reply::waited`]).
    admitted: Instant,
}

impl<T> Reply<T> {
    pub(crate) fn new(port: RpcReplyPort<Result<T, EngineError>>, permit: Permit) -> Reply<T> {
        Reply {
            _permit: permit,
            port,
            admitted: Instant::now(),
        }
    }

    /// Time since the request was admitted.
    pub(crate) fn waited(&self) -> Duration {
        self.admitted.elapsed()
    }

    /// Frees the permit, then sends the answer. In that order because sending wakes the
    /// caller, which may answer its client at once, and the client's next request must
    /// find the place free: freed after the send, it raced the next request on another
    /// core and, under a small cap, was refused `Overloaded` with nothing in flight.
    /// The caller may have gone (its client disconnected): then there is nobody to tell,
    /// and nothing else to do.
    pub(crate) fn send(self, answer: Result<T, EngineError>) {
        let Reply { port, _permit, .. } = self;
        drop(_permit);
        let _ = port.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker that, when the answer wakes it, tries to take a place: what a caller's
    /// next request does as soon as it has its answer.
    struct AdmitOnWake {
        admission: Arc<Admission>,
        admitted: Mutex<Option<bool>>,
    }

    impl Wake for AdmitOnWake {
        fn wake(self: Arc<Self>) {
            let ok = self.admission.admit().is_ok();
            *self.admitted.lock().unwrap() = Some(ok);
        }
    }

    #[test]
    fn the_place_is_free_when_the_caller_is_woken_by_its_answer() {
        let admission = Arc::new(Admission::new(1));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<Result<(), EngineError>>();
        let reply = Reply::new(tx.into(), admission.admit().unwrap());
        let probe = Arc::new(AdmitOnWake {
            admission: admission.clone(),
            admitted: Mutex::new(None),
        });
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut rx).poll(&mut cx).is_pending());
        // The oneshot wakes the receiver inside `send`, on this thread: the probe runs
        // at the moment a caller on another core could first run.
        reply.send(Ok(()));
        assert_eq!(*probe.admitted.lock().unwrap(), Some(true));
        assert!(matches!(
            Pin::new(&mut rx).poll(&mut cx),
            Poll::Ready(Ok(Ok(())))
        ));
    }

    #[test]
    fn a_heavy_request_takes_as_many_places_as_it_weighs_and_at_most_the_cap() {
        let a = Admission::new(10);
        let batch = a.admit_weighing(6).unwrap();
        assert!(matches!(a.admit_weighing(6), Err(EngineError::Overloaded)));
        let singles: Vec<Permit> = (0..4).map(|_| a.admit().unwrap()).collect();
        assert!(matches!(a.admit(), Err(EngineError::Overloaded)));
        drop((batch, singles));
        // Heavier than the whole cap: admitted alone, holding all of it.
        let whole = a.admit_weighing(1000).unwrap();
        assert!(matches!(a.admit(), Err(EngineError::Overloaded)));
        drop(whole);
        assert!(a.admit().is_ok());
    }
}
