//! The database: opening it, applying the committer's batches, and the metadata reads.
//! The rest of [`Store`] lives next to what it concerns: the typed reads of campaigns,
//! coupons and their indexes (`reads`), the mail reads (`mail`), and rebuilding a
//! campaign's holders at start-up (`recovery`). [`Writes`] (`writes`) is what a
//! decision hands the committer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StorageError;
use crate::journal::{self, Journal};
use crate::{keys, seal};

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
    /// Open a store found damaged anyway (logged), serving what is left of it: for an
    /// operator who has read why it was refused. Never set by default.
    pub accept_damage: bool,
}

impl StoreConfig {
    pub fn temporary() -> Self {
        StoreConfig {
            path: None,
            cache_capacity: 64 * 1024 * 1024,
            accept_damage: false,
        }
    }

    /// A store at `path`, refused if damaged.
    pub fn at(path: impl Into<PathBuf>, cache_capacity: u64) -> Self {
        StoreConfig {
            path: Some(path.into()),
            cache_capacity,
            accept_damage: false,
        }
    }
}

/// The layout this build writes; see the crate docs (Formats).
pub const STORE_FORMAT: u64 = 3;
const FORMAT_KEY: &str = "store_format";
/// The sequence number of the last group commit sled held at its last checkpoint: the
/// journal's records after it are what a start replays.
const JOURNAL_LSN_KEY: &str = "journal_lsn";
/// The journal's file, inside sled's directory: the store stays one directory.
const JOURNAL_FILE: &str = "firstcome-journal";
/// The store checkpoints (flushes sled, restarts the journal) once the journal holds
/// this much: it bounds the journal's file and what a start-up after a crash replays.
pub(crate) const CHECKPOINT_BYTES: u64 = 16 << 20;

/// The database. Cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// The format the store had when this process opened it.
    found_format: u64,
    // A std Mutex, not a Tokio one: only the committer thread (and start-up) takes it,
    // and no await happens while it is held.
    journal: Arc<Mutex<JournalState>>,
    /// Where a temporary store keeps its journal; removed with the last handle.
    _temporary: Option<Arc<tempfile::TempDir>>,
    /// The seal beside the store (`seal`); `None` for a temporary store.
    seal: Option<PathBuf>,
}

struct JournalState {
    journal: Journal,
    /// The sequence number the next group commit gets.
    next_lsn: u64,
    /// Reused for every group's record.
    payload: Vec<u8>,
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
        let seal = cfg.path.as_deref().map(seal::path_for);
        let sealed = match seal.as_deref().map(seal::read).transpose() {
            Ok(s) => s.flatten(),
            Err(e) => {
                // Accepted: the data dir is taken as it is, and sealed again below.
                refuse_or_accept(cfg, e)?;
                None
            }
        };
        if let (Some(lsn), Some(path)) = (sealed, &cfg.path) {
            // Before sled opens it: sled would create an empty store in its place (and
            // write its header into an empty file).
            let size = std::fs::metadata(path.join("db")).map_or(0, |m| m.len());
            if size == 0 {
                refuse_or_accept(
                    cfg,
                    StorageError::Damaged(format!(
                        "{} has no store, or an empty one, and its seal says it held group \
                         commits up to {lsn}",
                        path.display()
                    )),
                )?;
            }
        }
        // sled releases its file lock a moment after the last handle of a closed
        // database is dropped (its background threads finish first), so an open right
        // after a close in the same process can find it still held. Retry briefly; a
        // lock held by another process stays an error.
        let mut waited = std::time::Duration::ZERO;
        let mut snapshots_cleared = false;
        loop {
            // sled panics on some damage in the middle of its file: that is a damaged
            // store to refuse, not a crash of the server.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sled_cfg.open()))
                .map_err(|panic| {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    StorageError::Damaged(format!("sled cannot read it ({why})"))
                })?;
            match opened {
                Ok(db) => return Store::upgrade(db, cfg, sealed, seal),
                Err(sled::Error::Corruption { at, .. }) => {
                    if let Some(path) = cfg.path.as_deref().filter(|_| !snapshots_cleared) {
                        snapshots_cleared = true;
                        if remove_unfinished_snapshots(path)? > 0 {
                            continue;
                        }
                    }
                    return Err(StorageError::Damaged(format!(
                        "sled found a corrupt record at {at:?}"
                    )));
                }
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

    /// Reads the store's format and records this build's: a new store, a format-1 store
    /// (which has no format key) and a format-2 store become format 3, which reads both
    /// in place; a newer format is refused rather than reinterpreted. Then replays the
    /// journal.
    fn upgrade(
        db: sled::Db,
        cfg: &StoreConfig,
        sealed: Option<u64>,
        seal: Option<PathBuf>,
    ) -> Result<Store, StorageError> {
        let key = keys::meta(FORMAT_KEY);
        let empty = db.first()?.is_none();
        let found = match meta_u64(&db, &key, "store format")? {
            Some(v) => v,
            None if empty => STORE_FORMAT,
            None => 1,
        };
        // Paired with the seal written at every checkpoint: sled holds at least what it
        // held then. Checked before anything is written.
        // The last group sled held at its last checkpoint.
        let held = meta_u64(&db, &keys::meta(JOURNAL_LSN_KEY), "journal position")?.unwrap_or(0);
        if let Some(lsn) = sealed {
            if empty {
                refuse_or_accept(
                    cfg,
                    StorageError::Damaged(format!(
                        "it is empty, and its seal says it held group commits up to {lsn}"
                    )),
                )?;
            } else if held < lsn {
                refuse_or_accept(
                    cfg,
                    StorageError::Damaged(format!(
                        "it holds group commits up to {held}, and its seal says it held them up \
                         to {lsn}: sled lost the end of its log"
                    )),
                )?;
            }
        }
        if found > STORE_FORMAT {
            return Err(StorageError::Format {
                found,
                supported: STORE_FORMAT,
            });
        }
        // Before the format is raised: a store still marked older is one no journal has
        // written to, so an older build may still open it.
        let (temporary, path) = match &cfg.path {
            Some(p) => (None, p.join(JOURNAL_FILE)),
            None => {
                let dir = tempfile::tempdir()
                    .map_err(|e| journal::io("creating a temporary journal", &e))?;
                let path = dir.path().join(JOURNAL_FILE);
                (Some(Arc::new(dir)), path)
            }
        };
        let (mut journal, entries, highest) = Journal::open(&path)?;
        let reachable = entries.last().map_or(held, |e| e.lsn.max(held));
        let damaged_journal = highest.is_some_and(|h| h > reachable);
        if let Some(highest) = highest.filter(|_| damaged_journal) {
            refuse_or_accept(
                cfg,
                StorageError::Damaged(format!(
                    "the journal's record of group {} is damaged, and whole records up to group \
                     {highest} follow it",
                    reachable + 1
                )),
            )?;
        }
        let next_lsn = replay(&db, &mut journal, entries, held)?;
        if damaged_journal {
            // Accepted: the records behind the damage must never be read again, as the
            // groups numbered after `next_lsn` will be other ones.
            journal.wipe()?;
        }
        if found != STORE_FORMAT || db.get(&key)?.is_none() {
            db.insert(key, &STORE_FORMAT.to_be_bytes())?;
            db.flush()?;
        }
        // sled holds everything up to `next_lsn - 1` now (replay flushed it).
        if let Some(path) = &seal {
            seal::write(path, next_lsn - 1)?;
        }
        Ok(Store {
            db,
            found_format: found,
            journal: Arc::new(Mutex::new(JournalState {
                journal,
                next_lsn,
                payload: Vec::new(),
            })),
            _temporary: temporary,
            seal,
        })
    }

    /// The format the store had when it was opened (below [`STORE_FORMAT`]: it was
    /// upgraded now).
    pub fn found_format(&self) -> u64 {
        self.found_format
    }

    fn journal(&self) -> MutexGuard<'_, JournalState> {
        // Consistent even if poisoned: a panic mid-append leaves at worst a torn record
        // past `end`, which the next append overwrites and reading never trusts.
        self.journal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the writes of many decisions durable as one group: appends them to the
    /// journal as one record and waits until it is on disk (when `durable`:
    /// `Journal::append`), then applies them to sled, where readers see them. Empties
    /// `groups`. The committer is the only caller.
    ///
    /// Journal first, so that sled never holds a write the journal lacks: whatever sled
    /// kept of a group at a crash, replaying the group from the journal completes it.
    /// That is also why sled gets plain inserts and not `apply_batch`, whose atomicity
    /// is not needed then: every `apply_batch` writes sled's log buffer out (twice, from
    /// its thread pool), which cost about a third of the CPU under load
    /// (docs/performance.md, Journal).
    pub(crate) fn commit(
        &self,
        groups: &mut Vec<Writes>,
        durable: bool,
    ) -> Result<(), StorageError> {
        let mut j = self.journal();
        let j = &mut *j;
        if durable {
            // A group gets a number only with its record: a gap in the numbers is damage.
            let lsn = j.next_lsn;
            j.payload.clear();
            for (k, v) in groups.iter().flat_map(|w| &w.ops) {
                journal::encode_op(&mut j.payload, k, v.as_deref());
            }
            j.journal.append(lsn, &j.payload)?;
            j.next_lsn += 1;
        }
        apply(&self.db, groups.drain(..).flat_map(|w| w.ops))
    }

    /// Flushes sled and restarts the journal, if the journal holds at least
    /// [`CHECKPOINT_BYTES`] (or anything at all, when `always`).
    pub(crate) fn checkpoint(&self, always: bool) -> Result<(), StorageError> {
        let mut j = self.journal();
        let len = j.journal.len();
        if len == 0 || (!always && len < CHECKPOINT_BYTES) {
            return Ok(());
        }
        // Paired with `replay`, which skips the records up to this number.
        let applied = j.next_lsn - 1;
        self.db
            .insert(keys::meta(JOURNAL_LSN_KEY), &applied.to_be_bytes())?;
        self.db.flush()?;
        // After the flush: the seal never claims more than sled holds.
        if let Some(path) = &self.seal {
            seal::write(path, applied)?;
        }
        j.journal.restart();
        Ok(())
    }

    /// Tests' writes: applied to sled, not journaled.
    #[cfg(test)]
    pub(crate) fn apply(&self, writes: Writes) -> Result<(), StorageError> {
        self.commit(&mut vec![writes], false)
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

/// Applies one group's writes to sled, in order. No per-group marker (a key costs as
/// much as a group's record): the checkpoint writes one. Whatever sled kept of the
/// groups after its last checkpoint at a crash (all, part, none), replaying every one of
/// them in order leaves each key as its last write: the same state.
fn apply(
    db: &sled::Db,
    ops: impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
) -> Result<(), StorageError> {
    for (k, v) in ops {
        match v {
            Some(v) => db.insert(k, v)?,
            None => db.remove(k)?,
        };
    }
    Ok(())
}

/// Removes the snapshots sled began and did not finish in `dir`, and says how many.
///
/// sled writes a snapshot to `snap.<lsn>.generating`, syncs it, and only then renames it
/// to `snap.<lsn>` and removes the older ones; but sled 0.34.7 also reads the
/// `.generating` files when it looks for the newest snapshot (`get_snapshot_files`
/// filters out only `.in___motion`; spacejam/sled#1527). A kill during a snapshot's
/// write left one half written, and the next start was refused as a corrupt store
/// (found by the kill -9 soak, about once in 300 kills). Such a file is never the
/// snapshot of record: the one before it is still there, with the log after it.
///
/// Under sled's own lock on its `db` file (the lock sled takes, `fs2`'s), which its failed
/// open has let go: another process opening the same store meanwhile writes snapshots
/// during its open, and the one holding the lock is the only one that may touch them.
/// Held by another process: nothing is removed (its open decides).
fn remove_unfinished_snapshots(dir: &Path) -> Result<usize, StorageError> {
    use fs2::FileExt;
    let Ok(db) = std::fs::File::open(dir.join("db")) else {
        return Ok(0);
    };
    if db.try_lock_exclusive().is_err() {
        return Ok(0);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => return Ok(0),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                // Gone already: what was wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(journal::io("removing an unfinished sled snapshot", &e)),
            }
            tracing::warn!(file = %name, "removed a sled snapshot left unfinished by a crash");
            removed += 1;
        }
    }
    // The lock goes with `db`, before sled opens again.
    Ok(removed)
}

/// Applies the journal's records after `held` (the last group sled held at its last
/// checkpoint), in order, flushes sled with their number and restarts the journal;
/// returns the next group's sequence number. A journal that skips past what sled holds is damage, refused: serving it
/// would lose the groups between.
fn replay(
    db: &sled::Db,
    journal: &mut Journal,
    entries: Vec<journal::Entry>,
    held: u64,
) -> Result<u64, StorageError> {
    let marker = keys::meta(JOURNAL_LSN_KEY);
    let mut last = held;
    let mut replayed = 0u64;
    for entry in entries {
        if entry.lsn <= last {
            continue;
        }
        if entry.lsn != last + 1 {
            return Err(corrupt(
                "journal",
                &format!(
                    "it continues at group {}, the store ends at group {last}",
                    entry.lsn
                ),
            ));
        }
        let ops = journal::decode_ops(&entry.payload)?;
        let ops = ops
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)));
        apply(db, ops)?;
        last = entry.lsn;
        replayed += 1;
    }
    if replayed > 0 {
        db.insert(&marker, &last.to_be_bytes())?;
        db.flush()?;
        tracing::info!(
            groups = replayed,
            "replayed group commits from the journal that the store had not flushed"
        );
    }
    journal.restart();
    Ok(last + 1)
}

/// A metadata number (big-endian u64), if present; any other length is damage.
fn meta_u64(db: &sled::Db, key: &[u8], what: &'static str) -> Result<Option<u64>, StorageError> {
    db.get(key)?
        .map(|v| {
            <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt(what, "not 8 bytes"))
        })
        .transpose()
}

/// `Err(e)`, unless the operator accepts damage: then it is logged and the open goes on.
fn refuse_or_accept(cfg: &StoreConfig, e: StorageError) -> Result<(), StorageError> {
    if !cfg.accept_damage {
        return Err(e);
    }
    tracing::error!(error = %e, "starting anyway, as the operator asked (--accept-damaged-store): serving what is left");
    Ok(())
}

fn corrupt(what: &'static str, detail: &str) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CouponRecord, CouponStatus};

    const CAMPAIGN: &str = "aaaaaaaaaaaaaaaa";

    /// The store in `dir` (at `dir/store`, its seal beside it).
    fn open(dir: &std::path::Path) -> Result<Store, StorageError> {
        Store::open(&StoreConfig::at(dir.join("store"), 8 << 20))
    }

    fn journal_file(dir: &std::path::Path) -> PathBuf {
        dir.join("store").join(JOURNAL_FILE)
    }

    fn coupon(seq: u64) -> CouponRecord {
        crate::records::test_coupon(CAMPAIGN, seq)
    }

    /// Commits coupons `seqs` durably, one group each, and returns the journal's bytes
    /// as they are before any checkpoint.
    fn journal_of(dir: &std::path::Path, seqs: std::ops::Range<u64>) -> Vec<u8> {
        let store = open(dir).unwrap();
        for seq in seqs {
            let mut w = Writes::new();
            w.put_coupon(&coupon(seq)).unwrap();
            store.commit(&mut vec![w], true).unwrap();
        }
        std::fs::read(journal_file(dir)).unwrap()
    }

    #[test]
    fn groups_only_in_the_journal_are_replayed_at_open() {
        let written = tempfile::tempdir().unwrap();
        let journal = journal_of(written.path(), 0..3);
        // A store whose sled never saw those groups, as after a crash before any
        // checkpoint: only the journal has them.
        let crashed = tempfile::tempdir().unwrap();
        drop(open(crashed.path()).unwrap());
        std::fs::write(journal_file(crashed.path()), &journal).unwrap();
        let store = open(crashed.path()).unwrap();
        for seq in 0..3 {
            assert_eq!(store.coupon(CAMPAIGN, seq).unwrap(), Some(coupon(seq)));
        }
        // The replay was flushed and the journal restarted: the next group follows on.
        let mut w = Writes::new();
        w.put_coupon(&coupon(3)).unwrap();
        store.commit(&mut vec![w], true).unwrap();
        let journal = std::fs::read(journal_file(crashed.path())).unwrap();
        drop(store);
        let again = tempfile::tempdir().unwrap();
        drop(open(again.path()).unwrap());
        std::fs::write(journal_file(again.path()), &journal).unwrap();
        // Only group 4 is in this journal; a store that ends at group 0 cannot take it.
        assert!(matches!(
            open(again.path()),
            Err(StorageError::Corrupt {
                what: "journal",
                ..
            })
        ));
    }

    #[test]
    fn groups_the_store_already_holds_are_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal_of(dir.path(), 0..2);
        // Redeem coupon 0 later (group 3), then put the old journal back: replaying its
        // group 1 again would undo the redemption.
        let store = open(dir.path()).unwrap();
        let mut redeemed = coupon(0);
        redeemed.status = CouponStatus::Redeemed;
        let mut w = Writes::new();
        w.put_coupon(&redeemed).unwrap();
        store.commit(&mut vec![w], true).unwrap();
        store.checkpoint(true).unwrap();
        drop(store);
        std::fs::write(journal_file(dir.path()), &journal).unwrap();
        let store = open(dir.path()).unwrap();
        assert_eq!(store.coupon(CAMPAIGN, 0).unwrap(), Some(redeemed));
        assert_eq!(store.coupon(CAMPAIGN, 1).unwrap(), Some(coupon(1)));
    }

    #[test]
    fn a_snapshot_a_kill_left_half_written_is_removed_and_the_store_opens_whole() {
        let dir = tempfile::tempdir().unwrap();
        journal_of(dir.path(), 0..3);
        // What a kill during sled's snapshot write leaves: a newer snapshot, half of it.
        let unfinished = dir
            .path()
            .join("store")
            .join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&unfinished, [0x5a; 100]).unwrap();
        let store = open(dir.path()).unwrap();
        assert!(!unfinished.exists());
        for seq in 0..3 {
            assert_eq!(store.coupon(CAMPAIGN, seq).unwrap(), Some(coupon(seq)));
        }
        drop(store);
        // A finished snapshot that is damaged is still refused.
        let finished = dir.path().join("store").join("snap.7FFFFFFFFFFFFFFF");
        std::fs::write(&finished, [0x5a; 100]).unwrap();
        assert!(matches!(open(dir.path()), Err(StorageError::Damaged(_))));
    }

    #[test]
    fn a_damaged_journal_record_with_groups_after_it_is_refused_not_taken_for_a_torn_tail() {
        let written = tempfile::tempdir().unwrap();
        let mut journal = journal_of(written.path(), 0..3);
        // Damage the payload of the second of three records: a crash tears the last
        // write only, so this is damage, and groups 2 and 3 would be lost.
        let first_len = u32::from_le_bytes(journal[4..8].try_into().unwrap()) as usize;
        journal[20 + first_len + 20] ^= 0x40;
        let crashed = tempfile::tempdir().unwrap();
        drop(open(crashed.path()).unwrap());
        std::fs::write(journal_file(crashed.path()), &journal).unwrap();
        match open(crashed.path()) {
            Err(StorageError::Damaged(why)) => assert!(why.contains("group 2"), "{why}"),
            other => panic!("opened: {:?}", other.map(|_| ())),
        }
        // Nothing was replayed, so nothing changed: the same refusal again.
        assert!(matches!(
            open(crashed.path()),
            Err(StorageError::Damaged(_))
        ));
        // The operator may start on what is left: group 1.
        let store = Store::open(&StoreConfig {
            accept_damage: true,
            ..StoreConfig::at(crashed.path().join("store"), 8 << 20)
        })
        .unwrap();
        assert_eq!(store.coupon(CAMPAIGN, 0).unwrap(), Some(coupon(0)));
        assert_eq!(store.coupon(CAMPAIGN, 1).unwrap(), None);
        drop(store);
        // And that start sealed what it kept: the store opens as it is from now on.
        assert!(open(crashed.path()).is_ok());
    }

    #[test]
    fn a_store_that_lost_what_its_seal_says_it_held_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        journal_of(dir.path(), 0..3);
        let store = open(dir.path()).unwrap();
        store.checkpoint(true).unwrap();
        drop(store);
        // The seal is kept; the store is replaced by an older copy of itself.
        let older = tempfile::tempdir().unwrap();
        drop(open(older.path()).unwrap());
        let seal = seal::path_for(&dir.path().join("store"));
        std::fs::copy(&seal, seal::path_for(&older.path().join("store"))).unwrap();
        match open(older.path()) {
            Err(StorageError::Damaged(why)) => assert!(why.contains("seal"), "{why}"),
            other => panic!("opened: {:?}", other.map(|_| ())),
        }
        assert!(open(dir.path()).is_ok());
    }
}
