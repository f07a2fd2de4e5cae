//! [`UserLocks`]: the per-user serialisation of read-then-write requests.

/// Serialises the read-then-write requests of one user (delete a contact, subscribe,
/// unsubscribe), so that of two identical requests at once exactly one is told it made
/// the change. Striped by user: different users never wait for each other's commits
/// (except on a shared stripe). Tokio mutexes: held across the commit's await.
/// Enough stripes that unrelated users rarely share one; few enough to allocate once.
const STRIPES: usize = 64;

pub(crate) struct UserLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl UserLocks {
    pub(crate) fn new() -> UserLocks {
        UserLocks {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    pub(crate) async fn lock(&self, user_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<siphasher::sip::SipHasher13>::default().hash_one(user_id);
        self.stripes[(h % self.stripes.len() as u64) as usize]
            .lock()
            .await
    }
}
