//! Admission control: how many requests may be on their way to actors at once.
//!
//! ractor mailboxes are unbounded (the maintainers' answer to backpressure is "put it in
//! front of the actor"), so without a cap an overload would grow them, and the commits
//! queued behind them, until memory ran out. Every request bound for an actor first takes
//! a [`Permit`]; none left means [`EngineError::Overloaded`] at once, before any work.
//!
//! The permit travels inside the actor message, in its [`Reply`], and is released when
//! the reply is sent, which is after the commit that covers it. A client that goes away
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
    port: RpcReplyPort<Result<T, EngineError>>,
    _permit: Permit,
    /// When the request was admitted: how long it has waited is how an actor knows to
    /// shed it ([`Reply::waited`]).
    admitted: Instant,
}

impl<T> Reply<T> {
    pub(crate) fn new(port: RpcReplyPort<Result<T, EngineError>>, permit: Permit) -> Reply<T> {
        Reply {
            port,
            _permit: permit,
            admitted: Instant::now(),
        }
    }

    /// Time since the request was admitted.
    pub(crate) fn waited(&self) -> Duration {
        self.admitted.elapsed()
    }

    /// Sends the answer and frees the permit. The caller may have gone (its client
    /// disconnected): then there is nobody to tell, and nothing else to do.
    pub(crate) fn send(self, answer: Result<T, EngineError>) {
        let _ = self.port.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
