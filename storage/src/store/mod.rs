//! The database: opening it, applying the committer's batches, and the metadata reads.
//! The rest of [`Store`] lives next to what it concerns: the typed reads of campaigns,
//! coupons and their indexes (`reads`), the mail reads (`mail`), and rebuilding a
//! campaign's holders at start-up (`recovery`). [`Writes`] (`writes`) is what a
//! decision hands the committer.

use std::path::PathBuf;

use crate::error::StorageError;
use crate::keys;

mod mail;
mod reads;
mod recovery;
mod writes;

pub use recovery::{HOLDER_CHUNK, Recovered};

pub use writes::Writes;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `None` opens a temporary database that disappears when dropped (tests, benches).
    pub path: Option<PathBuf>,
    /// sled's page cache in bytes. sled's own default is 1 GiB, too much for a
    /// service that shares its machine.
    pub cache_capacity: u64,
}

impl StoreConfig {
    pub fn temporary() -> Self {
        StoreConfig {
            path: None,
            cache_capacity: 64 * 1024 * 1024,
        }
    }
}

/// The layout this build writes; see the crate docs (Formats).
pub const STORE_FORMAT: u64 = 2;
const FORMAT_KEY: &str = "store_format";

/// The database. Cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// The format the store had when this process opened it.
    found_format: u64,
}

impl Store {
    pub fn open(cfg: &StoreConfig) -> Result<Store, StorageError> {
        let mut sled_cfg = sled::Config::new()
            .cache_capacity(cfg.cache_capacity)
            // The committer flushes whenever a reply waits on a write; a timer flush on
            // top would only compete with it for the disk.
            .flush_every_ms(None);
        sled_cfg = match &cfg.path {
            Some(p) => sled_cfg.path(p),
            None => sled_cfg.temporary(true),
        };
        // sled releases its file lock a moment after the last handle of a closed
        // database is dropped (its background threads finish first), so an open right
        // after a close in the same process can find it still held. Retry briefly; a
        // lock held by another process stays an error.
        let mut waited = std::time::Duration::ZERO;
        loop {
            match sled_cfg.open() {
                Ok(db) => return Store::upgrade(db),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && waited < std::time::Duration::from_secs(3) =>
                {
                    let pause = std::time::Duration::from_millis(20);
                    std::thread::sleep(pause);
                    waited += pause;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads the store's format and records this build's: a new store and a format-1
    /// store (which has no format key) become format 2, which reads format 1 in place;
    /// a newer format is refused rather than reinterpreted.
    fn upgrade(db: sled::Db) -> Result<Store, StorageError> {
        let key = keys::meta(FORMAT_KEY);
        let found = match db.get(&key)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| corrupt("store format", "not 8 bytes"))?,
            ),
            None if db.first()?.is_none() => STORE_FORMAT,
            None => 1,
        };
        if found > STORE_FORMAT {
            return Err(StorageError::Format {
                found,
                supported: STORE_FORMAT,
            });
        }
        if found != STORE_FORMAT || db.get(&key)?.is_none() {
            db.insert(key, &STORE_FORMAT.to_be_bytes())?;
            db.flush()?;
        }
        Ok(Store {
            db,
            found_format: found,
        })
    }

    /// The format the store had when it was opened (1: it was upgraded to 2 now).
    pub fn found_format(&self) -> u64 {
        self.found_format
    }

    /// Applies the writes of many decisions as one atomic sled batch. Visible to
    /// readers at once; durable only after the next [`Store::flush`].
    pub(crate) fn apply_all(
        &self,
        groups: impl Iterator<Item = Writes>,
    ) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for writes in groups {
            for (k, v) in writes.ops {
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn apply(&self, writes: Writes) -> Result<(), StorageError> {
        self.apply_all(std::iter::once(writes))
    }

    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }

    /// A metadata value, created (and flushed) by `init` the first time it is asked for.
    /// Used at start-up, before the committer runs.
    pub fn meta_or_init(
        &self,
        name: &str,
        init: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StorageError> {
        let key = keys::meta(name);
        if let Some(v) = self.db.get(&key)? {
            return Ok(v.to_vec());
        }
        let value = init();
        // compare_and_swap so that a concurrent initialiser cannot overwrite ours.
        match self
            .db
            .compare_and_swap(&key, None as Option<&[u8]>, Some(value.clone()))?
        {
            Ok(()) => {
                self.db.flush()?;
                Ok(value)
            }
            Err(cas) => Ok(cas.current.map(|v| v.to_vec()).unwrap_or(value)),
        }
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.db.get(keys::meta(name))?.map(|v| v.to_vec()))
    }

    /// The entries whose keys start with `prefix`, in key order, from `from` (the start
    /// of the prefix without it) and below `before` if given: a half-open range like
    /// `from..before`, clipped to the prefix. A read that resumes after a cursor passes
    /// `keys::after(cursor)`. Every ranged read goes through here, so each states only
    /// its prefix, cursor and decoding; limits stay with the reads, because some count
    /// only the entries they keep.
    ///
    /// A `from` that sorts before the prefix starts at the prefix (a user-coupon cursor
    /// of another campaign than the one asked for); one past it, or a `before` at or
    /// before the start, gives nothing.
    fn scan(
        &self,
        prefix: &[u8],
        from: Option<Vec<u8>>,
        before: Option<Vec<u8>>,
    ) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), StorageError>> + use<> {
        let start = match from {
            Some(from) => from.max(prefix.to_vec()),
            None => prefix.to_vec(),
        };
        let end = match (keys::prefix_end(prefix), before) {
            (Some(p), Some(b)) => Some(p.min(b)),
            (p, b) => p.or(b),
        };
        // An inverted or empty range is answered here rather than handed to sled.
        let range = match end {
            Some(end) if start >= end => None,
            Some(end) => Some(self.db.range(start..end)),
            None => Some(self.db.range(start..)),
        };
        range
            .into_iter()
            .flatten()
            .map(|item| item.map_err(StorageError::from))
    }
}

impl Store {
    /// The last entry with `prefix` before the key `before` (sled ranges run backwards
    /// too): how a seq finds the group that holds it.
    fn last_before(
        &self,
        prefix: &[u8],
        before: Vec<u8>,
    ) -> Option<Result<(sled::IVec, sled::IVec), StorageError>> {
        let start = prefix.to_vec();
        let end = match keys::prefix_end(prefix) {
            Some(p) => p.min(before),
            None => before,
        };
        if start >= end {
            return None;
        }
        self.db
            .range(start..end)
            .next_back()
            .map(|item| item.map_err(StorageError::from))
    }
}

fn corrupt(what: &'static str, detail: &str) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}
