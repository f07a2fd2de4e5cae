//! The commit journal: the file whose synced write makes a group commit durable.
//!
//! sled's `flush` costs about twice a plain fdatasync (docs/performance.md, Journal): it
//! appends to its own log, which grows the file, so every flush also commits file
//! metadata. The journal is one file that is only ever overwritten inside space that was
//! already written (zeros, ahead of use), so its sync writes the data and no
//! metadata. Each group commit is appended here as one record and, once the record is
//! durable, applied to sled (visible, not flushed); then the replies go. Every
//! so often the store checkpoints: it records the last group's sequence number in sled
//! (`m journal_lsn`), flushes sled, and starts the journal again from its beginning.
//!
//! At start-up the store replays the records after sled's `journal_lsn`, in order, then
//! checkpoints. Journal first means sled never holds a write the journal lacks, so
//! whatever sled kept of those groups, replaying them leaves every key at its last
//! write: sled plus the journal is always every acknowledged group.
//!
//! Appends are written with `O_DIRECT | O_DSYNC`: the write returns once its data is on
//! stable storage, as a write and an fdatasync would, but with no page cache between. The
//! page cache's part of an fdatasync (dirtying the page, then finding it, writing it back
//! and waiting on it) cost about a fifth of a durable append's time and a quarter of its
//! CPU on the development machine (docs/performance.md, Direct appends). Direct I/O moves
//! whole aligned blocks, so the journal keeps the bytes of the block its end lies in
//! (`Journal::tail`) and rewrites that block with each record, zeros after the record
//! (past the end nothing is read: see below). Records lie on disk as buffered writes
//! left them, so the format does not change; only the zeros may erase, in that last
//! block, older records a restart left behind, which reading skips anyway. A filesystem that refuses direct I/O
//! (tmpfs before Linux 6.6, some network filesystems) gets buffered writes and fdatasync,
//! as before.
//!
//! A record is `magic(u32) len(u32) lsn(u64) crc32(u32)` (little-endian) and `len` bytes
//! of payload; the checksum covers the sequence number and the payload. Reading stops at
//! the first record that is incomplete, fails its checksum or does not follow its
//! predecessor's sequence number: a torn tail (the write a crash interrupted, never
//! acknowledged) or what is left of the journal before its last restart, whose sequence
//! numbers are all older and already in sled.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::StorageError;

const MAGIC: u32 = u32::from_le_bytes(*b"FCJ1");
const HEADER_BYTES: usize = 20;
/// Zeros are written this far ahead of the next record: growing the file commits
/// metadata, so it happens once per this many bytes, not once per record.
const GROW_BYTES: u64 = 1 << 20;
/// Direct writes move whole blocks of this size, at offsets that are multiples of it, from
/// memory aligned to it: what `O_DIRECT` asks of 512-byte and 4 KiB devices alike.
const BLOCK_BYTES: usize = 4096;

/// One record read back at start-up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) lsn: u64,
    pub(crate) payload: Vec<u8>,
}

pub(crate) struct Journal {
    /// Buffered: reading at start-up, growing and wiping (rare, and not block-sized).
    file: File,
    /// The same file opened `O_DIRECT | O_DSYNC`, for appends (module docs). `None` where
    /// the filesystem refuses direct I/O: then appends go through `file` and fdatasync.
    direct: Option<File>,
    /// The bytes from the start of the block `end` lies in up to `end` (fewer than a
    /// block): a direct append rewrites that block, and must not change them.
    tail: Vec<u8>,
    /// Reused for direct writes: big enough for an aligned run of blocks inside it.
    scratch: Vec<u8>,
    /// Appends written direct, for the tests: a direct path that fell back unseen would
    /// still read back whole.
    #[cfg(test)]
    direct_appends: usize,
    /// Tests: shift the direct write's buffer off its alignment, so that the kernel
    /// refuses it (EINVAL) and the fall-back runs for real.
    #[cfg(test)]
    misalign: bool,
    /// Where the next record goes.
    end: u64,
    /// The file's bytes `0..prepared` are written (records or zeros): a record that fits
    /// inside them changes no metadata.
    prepared: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads back its records, and the
    /// highest sequence number of any whole record in it (`read_records`).
    pub(crate) fn open(path: &Path) -> Result<(Journal, Vec<Entry>, Option<u64>), StorageError> {
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("opening the journal", &e))?;
        if created {
            // The new file's directory entry, so that a power loss keeps the file.
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io("syncing the journal's directory", &e))?;
            }
        }
        let bytes = std::fs::read(path).map_err(|e| io("reading the journal", &e))?;
        let (entries, highest) = read_records(&bytes);
        let direct = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)
        {
            Ok(f) => Some(f),
            // tmpfs and some others: no direct I/O, and nothing wrong with the file.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
            Err(e) => return Err(io("opening the journal for direct writes", &e)),
        };
        let journal = Journal {
            file,
            direct,
            tail: Vec::with_capacity(BLOCK_BYTES),
            scratch: Vec::new(),
            #[cfg(test)]
            direct_appends: 0,
            #[cfg(test)]
            misalign: false,
            end: 0,
            prepared: bytes.len() as u64,
        };
        Ok((journal, entries, highest))
    }

    /// Bytes written since the journal last started from its beginning.
    pub(crate) fn len(&self) -> u64 {
        self.end
    }

    /// Appends one record and waits until it is on disk (module docs: one direct synced
    /// write, or a write and an fdatasync).
    pub(crate) fn append(&mut self, lsn: u64, payload: &[u8]) -> Result<(), StorageError> {
        let len = u32::try_from(payload.len())
            .map_err(|_| StorageError::Encode("a group commit over 4 GiB".into()))?;
        let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
        record.extend_from_slice(&MAGIC.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&lsn.to_le_bytes());
        record.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        record.extend_from_slice(payload);
        let needed = self.end + record.len() as u64;
        // Whole blocks: a direct write covers the last one to its end.
        let covered = needed.div_ceil(BLOCK_BYTES as u64) * BLOCK_BYTES as u64;
        if covered > self.prepared {
            self.grow(covered)?;
        }
        if !self.write_direct(&record)? {
            self.write_synced(&record, self.end, false)?;
        }
        self.end = needed;
        self.keep_tail(&record);
        Ok(())
    }

    /// Whether appends are written direct (module docs), for the tests.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes `record` at `end` with one `O_DIRECT | O_DSYNC` write of the blocks it
    /// touches: the tail kept before it, the record, zeros to the end of its last block.
    /// Returns once it is durable, or `false` if it was not written direct (then the
    /// caller writes it buffered).
    fn write_direct(&mut self, record: &[u8]) -> Result<bool, StorageError> {
        let Some(direct) = &self.direct else {
            return Ok(false);
        };
        let start = self.end - self.tail.len() as u64;
        // Paired with `keep_tail`: the tail is what lies between a block's start and `end`.
        assert_eq!(
            start % BLOCK_BYTES as u64,
            0,
            "the journal's tail is not a block's"
        );
        let used = self.tail.len() + record.len();
        let len = used.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        if self.scratch.len() < len + BLOCK_BYTES {
            self.scratch = vec![0; len + BLOCK_BYTES];
        }
        // `align_offset` may decline (usize::MAX); then the write is buffered, as it is
        // where the kernel refuses the alignment (EINVAL, below).
        let at = self.scratch.as_ptr().align_offset(BLOCK_BYTES);
        #[cfg(test)]
        let at = at.saturating_add(usize::from(self.misalign));
        let Some(buf) = at
            .checked_add(len)
            .and_then(|to| self.scratch.get_mut(at..to))
        else {
            return Ok(false);
        };
        buf[..self.tail.len()].copy_from_slice(&self.tail);
        buf[self.tail.len()..used].copy_from_slice(record);
        // Past `end`: reading stops at the last record, so what was there (zeros, or the
        // older records a restart left behind) needs no keeping.
        buf[used..].fill(0);
        match direct.write_all_at(buf, start) {
            Ok(()) => {
                #[cfg(test)]
                {
                    self.direct_appends += 1;
                }
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // The filesystem took the flag but not the write. What went out before
                // (`write_all_at` goes on after a short write) is the same bytes the
                // buffered write puts there.
                tracing::warn!(error = %e, "the journal cannot be written direct; appends are buffered and fdatasync'd from now on");
                self.direct = None;
                Ok(false)
            }
            Err(e) => Err(io("writing the journal", &e)),
        }
    }

    /// After an append of `record`, which ends at `end`: keeps the bytes of `end`'s
    /// block before it (paired with the assertion in `write_direct`).
    fn keep_tail(&mut self, record: &[u8]) {
        let in_block = (self.end % BLOCK_BYTES as u64) as usize;
        if in_block <= record.len() {
            self.tail.clear();
            self.tail
                .extend_from_slice(&record[record.len() - in_block..]);
        } else {
            self.tail.extend_from_slice(record);
        }
        debug_assert_eq!(self.tail.len(), in_block);
    }

    /// Overwrites the whole file with zeros, durably: after a damaged journal was
    /// accepted, no record behind the damage may be read as a later group's.
    pub(crate) fn wipe(&mut self) -> Result<(), StorageError> {
        let zeros = vec![0u8; self.prepared as usize];
        self.write_synced(&zeros, 0, false)?;
        self.end = 0;
        self.tail.clear();
        Ok(())
    }

    /// Starts again from the beginning: called once sled holds everything appended.
    /// What stays behind in the file has older sequence numbers, which reading skips.
    pub(crate) fn restart(&mut self) {
        self.end = 0;
        self.tail.clear();
    }

    /// Writes zeros from `prepared` to past `needed`, and syncs them with the file's new
    /// size, so that the appends that follow commit data only.
    fn grow(&mut self, needed: u64) -> Result<(), StorageError> {
        let target = needed.div_ceil(GROW_BYTES) * GROW_BYTES;
        let zeros = vec![0u8; (target - self.prepared) as usize];
        self.write_synced(&zeros, self.prepared, true)?;
        self.prepared = target;
        Ok(())
    }

    /// Writes `bytes` at `at` and waits for them: data only (fdatasync), or with the
    /// file's metadata (fsync) when the write grew the file.
    fn write_synced(&self, bytes: &[u8], at: u64, metadata: bool) -> Result<(), StorageError> {
        self.file
            .write_all_at(bytes, at)
            .map_err(|e| io("writing the journal", &e))?;
        let synced = if metadata {
            self.file.sync_all()
        } else {
            self.file.sync_data()
        };
        synced.map_err(|e| io("syncing the journal", &e))
    }
}

/// Appends one write to a group's payload: `key_len(u32) key value_len(u32) value`, with
/// `u32::MAX` as the length of a removal.
pub(crate) fn encode_op(payload: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    // Keys and values are records of this crate, far below 4 GiB (a group is bounded).
    payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
    payload.extend_from_slice(key);
    match value {
        Some(v) => {
            payload.extend_from_slice(&(v.len() as u32).to_le_bytes());
            payload.extend_from_slice(v);
        }
        None => payload.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
}

/// A write decoded from a payload: the key and its new value, or `None` for a removal.
pub(crate) type Op<'a> = (&'a [u8], Option<&'a [u8]>);

/// The writes of one record, in order; a record that passed its checksum but does not
/// decode is damage, refused.
pub(crate) fn decode_ops(mut payload: &[u8]) -> Result<Vec<Op<'_>>, StorageError> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Result<&'a [u8], StorageError> {
        if p.len() < n {
            return Err(StorageError::Corrupt {
                what: "journal record",
                detail: "a write runs past the end of its record".into(),
            });
        }
        let (head, rest) = p.split_at(n);
        *p = rest;
        Ok(head)
    }
    fn len(p: &mut &[u8]) -> Result<u32, StorageError> {
        let b = take(p, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    let mut ops = Vec::new();
    while !payload.is_empty() {
        let key_len = len(&mut payload)? as usize;
        let key = take(&mut payload, key_len)?;
        let value = match len(&mut payload)? {
            u32::MAX => None,
            n => Some(take(&mut payload, n as usize)?),
        };
        ops.push((key, value));
    }
    Ok(ops)
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// The record at `at`, if one starts there and is whole: its sequence number, its
/// payload, and where the next record would start.
fn record_at(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER_BYTES)?)?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != MAGIC {
        return None;
    }
    let len = word(4) as usize;
    let lsn = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let start = at + HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (checksum(lsn, payload) == word(16)).then_some((lsn, payload, start + len))
}

/// The records from the start of `bytes`, up to the first that is torn, damaged or out
/// of sequence (module docs), and the highest sequence number of any whole record in the
/// file, wherever it is: one above the last record read means a damaged record with
/// groups after it, which no crash leaves (a torn write is the last one).
fn read_records(bytes: &[u8]) -> (Vec<Entry>, Option<u64>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = 0usize;
    while let Some((lsn, payload, next)) = record_at(bytes, at) {
        if entries.last().is_some_and(|prev| prev.lsn + 1 != lsn) {
            break;
        }
        entries.push(Entry {
            lsn,
            payload: payload.to_vec(),
        });
        at = next;
    }
    let mut highest = entries.last().map(|e| e.lsn);
    // Every offset after the stop: a record after a damaged one starts anywhere.
    let magic = MAGIC.to_le_bytes();
    let mut from = at;
    while let Some(i) = bytes.get(from..).and_then(|rest| find(rest, &magic)) {
        let here = from + i;
        if let Some((lsn, _, _)) = record_at(bytes, here) {
            highest = highest.max(Some(lsn));
        }
        from = here + 1;
    }
    (entries, highest)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn io(what: &'static str, e: &std::io::Error) -> StorageError {
    StorageError::Io {
        what,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_at(dir: &Path) -> (Journal, Vec<Entry>) {
        let (j, entries, _) = Journal::open(&dir.join("journal")).unwrap();
        (j, entries)
    }

    fn highest(dir: &Path) -> Option<u64> {
        Journal::open(&dir.join("journal")).unwrap().2
    }

    /// The payloads a new open of the journal in `dir` reads back, in order.
    fn payloads_at(dir: &Path) -> Vec<Vec<u8>> {
        journal_at(dir).1.into_iter().map(|e| e.payload).collect()
    }

    fn lsns(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.lsn).collect()
    }

    #[test]
    fn appended_records_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, found) = journal_at(dir.path());
        assert!(found.is_empty());
        for lsn in 1..=3 {
            j.append(lsn, format!("group {lsn}").as_bytes()).unwrap();
        }
        drop(j);
        let (_, found) = journal_at(dir.path());
        assert_eq!(lsns(&found), [1, 2, 3]);
        assert_eq!(found[1].payload, b"group 2");
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = journal_at(dir.path());
        j.append(1, b"first").unwrap();
        j.append(2, b"second").unwrap();
        j.append(3, b"third").unwrap();
        drop(j);
        let path = dir.path().join("journal");
        let mut bytes = std::fs::read(&path).unwrap();
        // Flip a payload byte of the second record: the third is not trusted either.
        let second = HEADER_BYTES + 5 + HEADER_BYTES;
        bytes[second] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, found) = journal_at(dir.path());
        assert_eq!(lsns(&found), [1]);
        // But the third is whole: the journal says so, and the store refuses it (a
        // damaged record with groups after it is no crash's work).
        assert_eq!(highest(dir.path()), Some(3));
        // A record cut short (the write a crash interrupted): the last one.
        bytes[second] ^= 0xff;
        let third = second + 6;
        bytes.truncate(third + HEADER_BYTES + 2);
        std::fs::write(&path, &bytes).unwrap();
        let (_, found) = journal_at(dir.path());
        assert_eq!(lsns(&found), [1, 2]);
        assert_eq!(highest(dir.path()), Some(2));
    }

    #[test]
    fn after_a_restart_the_older_records_left_behind_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = journal_at(dir.path());
        // Over several blocks: the new records' last block is zeroed after them, the
        // older records in the blocks beyond stay whole.
        for lsn in 1..=10 {
            j.append(lsn, &[b'o'; 1000]).unwrap();
        }
        j.restart();
        assert_eq!(j.len(), 0);
        j.append(11, b"new").unwrap();
        j.append(12, b"new").unwrap();
        drop(j);
        let (_, found) = journal_at(dir.path());
        assert_eq!(lsns(&found), [11, 12]);
        let bytes = std::fs::read(dir.path().join("journal")).unwrap();
        let older_whole = (HEADER_BYTES..bytes.len())
            .filter_map(|at| record_at(&bytes, at))
            .filter(|(lsn, _, _)| *lsn <= 10)
            .count();
        assert!(
            older_whole >= 5,
            "only {older_whole} older records left to skip"
        );
        // The older records behind are whole, and all below the last one read.
        assert_eq!(highest(dir.path()), Some(12));
    }

    /// The type of the filesystem `dir` is on, from the longest mount point above it in
    /// /proc/self/mountinfo (empty if it cannot tell).
    fn filesystem_of(dir: &Path) -> String {
        let dir = dir.canonicalize().unwrap();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut best: Option<(usize, String)> = None;
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (Some(point), Some(dash)) = (fields.get(4), fields.iter().position(|f| *f == "-"))
            else {
                continue;
            };
            let Some(fs) = fields.get(dash + 1) else {
                continue;
            };
            // mountinfo writes these as octal escapes.
            let point = point
                .replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\");
            if dir.starts_with(&point) && best.as_ref().is_none_or(|(len, _)| point.len() >= *len) {
                best = Some((point.len(), (*fs).to_string()));
            }
        }
        best.map(|(_, fs)| fs).unwrap_or_default()
    }

    /// Records that end inside a block, exactly at its end, across one boundary and
    /// across several: each append rewrites the block it starts in.
    /// `buffered_from`: the record from which appends no longer go direct.
    fn append_awkward_sizes(j: &mut Journal, buffered_from: Option<usize>) -> Vec<Vec<u8>> {
        let header = HEADER_BYTES;
        let sizes = [
            1,
            BLOCK_BYTES - 2 * header - 1, // the block's end
            1,                            // a block's start, nothing kept before it
            3 * BLOCK_BYTES + 17,         // across several, after a kept tail
            0,
            BLOCK_BYTES - header, // across one, after a kept tail
            5,
        ];
        let mut written = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            if buffered_from == Some(i) {
                j.direct = None;
            }
            let payload: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            j.append(i as u64 + 1, &payload).unwrap();
            written.push(payload);
        }
        written
    }

    #[test]
    fn records_of_any_size_are_read_back_whole_from_direct_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = journal_at(dir.path());
        let fs = filesystem_of(dir.path());
        let disk = ["ext4", "xfs", "btrfs"].contains(&fs.as_str());
        let written = append_awkward_sizes(&mut j, None);
        if disk {
            assert!(
                j.is_direct(),
                "the journal fell back to buffered writes on {fs}"
            );
            assert_eq!(
                j.direct_appends,
                written.len(),
                "appends not written direct"
            );
        }
        drop(j);
        let payloads = payloads_at(dir.path());
        assert_eq!(payloads, written);
    }

    #[test]
    fn a_journal_that_falls_back_to_buffered_writes_goes_on_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = journal_at(dir.path());
        // From the fourth record on, as after a filesystem refused a direct write:
        // records written buffered after direct ones make one journal.
        let written = append_awkward_sizes(&mut j, Some(3));
        assert!(!j.is_direct());
        drop(j);
        let payloads = payloads_at(dir.path());
        assert_eq!(payloads, written);
    }

    #[test]
    fn a_direct_write_the_kernel_refuses_is_written_buffered_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = journal_at(dir.path());
        if !j.is_direct() {
            // No direct I/O here at all: the fall-back at open is all there is.
            return;
        }
        j.append(1, b"direct").unwrap();
        assert_eq!(j.direct_appends, 1);
        // A misaligned buffer: the kernel answers EINVAL, as a filesystem that takes
        // O_DIRECT at open but not the write would.
        j.misalign = true;
        j.append(2, &[b'b'; 5000]).unwrap();
        assert!(!j.is_direct(), "EINVAL did not switch to buffered writes");
        assert_eq!(j.direct_appends, 1);
        j.append(3, b"buffered").unwrap();
        drop(j);
        let payloads = payloads_at(dir.path());
        assert_eq!(
            payloads,
            [b"direct".to_vec(), vec![b'b'; 5000], b"buffered".to_vec()]
        );
    }

    #[test]
    fn writes_survive_encoding() {
        let mut payload = Vec::new();
        encode_op(&mut payload, b"k1", Some(b"value"));
        encode_op(&mut payload, b"k2", None);
        encode_op(&mut payload, b"", Some(b""));
        let ops = decode_ops(&payload).unwrap();
        let want: Vec<Op<'_>> = vec![(b"k1", Some(b"value")), (b"k2", None), (b"", Some(b""))];
        assert_eq!(ops, want);
        assert!(decode_ops(&payload[..payload.len() - 1]).is_err());
    }

    #[test]
    fn growing_keeps_the_file_ahead_of_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = journal_at(dir.path());
        let big = vec![7u8; (GROW_BYTES as usize) + 10];
        j.append(1, &big).unwrap();
        j.append(2, b"small").unwrap();
        let size = std::fs::metadata(dir.path().join("journal")).unwrap().len();
        assert_eq!(size % GROW_BYTES, 0);
        assert!(size >= j.len());
        drop(j);
        let (_, found) = journal_at(dir.path());
        assert_eq!(lsns(&found), [1, 2]);
        assert_eq!(found[0].payload, big);
    }
}
