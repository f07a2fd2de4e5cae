//! [`OncePerSecond`]: a log line that every request (or every accept) could write is
//! written at most once a second, with the count of those left out: a failure that
//! everything meets must not flood a disk that may be the very thing that failed.

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct OncePerSecond {
    last_sec: AtomicU64,
    skipped: AtomicU64,
}

impl OncePerSecond {
    pub(crate) const fn new() -> OncePerSecond {
        OncePerSecond {
            last_sec: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` if a line may be written now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_sec.load(Ordering::Relaxed);
        let mine = now > last
            && self
                .last_sec
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if mine {
            Some(self.skipped.swap(0, Ordering::Relaxed))
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_and_the_rest_counted() {
        let limit = OncePerSecond::new();
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        // The next second's line counts the two left out (forced: no sleeping).
        limit.last_sec.fetch_sub(1, Ordering::Relaxed);
        assert_eq!(limit.allow(), Some(2));
    }
}
