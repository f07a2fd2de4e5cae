//! The commit journal: the file whose fdatasync makes a group commit durable.
//!
//! sled's `flush` costs about twice a plain fdatasync (docs/performance.md, Journal): it
//! appends to its own log, which grows the file, so every flush also commits file
//! metadata. The journal is one file that is only ever overwritten inside space that was
//! already written (zeros, ahead of use), so its fdatasync writes the data and no
//! metadata. Each group commit is appended here as one record and, once the record's
//! fdatasync returns, applied to sled (visible, not flushed); then the replies go. Every
//! so often the store checkpoints: it records the last group's sequence number in sled
//! (`m journal_lsn`), flushes sled, and starts the journal again from its beginning.
//!
//! At start-up the store replays the records after sled's `journal_lsn`, in order, then
//! checkpoints. Journal first means sled never holds a write the journal lacks, so
//! whatever sled kept of those groups, replaying them leaves every key at its last
//! write: sled plus the journal is always every acknowledged group.
//!
//! A record is `magic(u32) len(u32) lsn(u64) crc32(u32)` (little-endian) and `len` bytes
//! of payload; the checksum covers the sequence number and the payload. Reading stops at
//! the first record that is incomplete, fails its checksum or does not follow its
//! predecessor's sequence number: a torn tail (the write a crash interrupted, never
//! acknowledged) or what is left of the journal before its last restart, whose sequence
//! numbers are all older and already in sled.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::StorageError;

const MAGIC: u32 = u32::from_le_bytes(*b"FCJ1");
const HEADER_BYTES: usize = 20;
/// Zeros are written this far ahead of the next record: growing the file commits
/// metadata, so it happens once per this many bytes, not once per record.
const GROW_BYTES: u64 = 1 << 20;

/// One record read back at start-up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) lsn: u64,
    pub(crate) payload: Vec<u8>,
}

pub(crate) struct Journal {
    file: File,
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
        let journal = Journal {
            file,
            end: 0,
            prepared: bytes.len() as u64,
        };
        Ok((journal, entries, highest))
    }

    /// Bytes written since the journal last started from its beginning.
    pub(crate) fn len(&self) -> u64 {
        self.end
    }

    /// Appends one record and waits until it is on disk (fdatasync).
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
        if needed > self.prepared {
            self.grow(needed)?;
        }
        self.write_synced(&record, self.end, false)?;
        self.end = needed;
        Ok(())
    }

    /// Overwrites the whole file with zeros, durably: after a damaged journal was
    /// accepted, no record behind the damage may be read as a later group's.
    pub(crate) fn wipe(&mut self) -> Result<(), StorageError> {
        let zeros = vec![0u8; self.prepared as usize];
        self.write_synced(&zeros, 0, false)?;
        self.end = 0;
        Ok(())
    }

    /// Starts again from the beginning: called once sled holds everything appended.
    /// What stays behind in the file has older sequence numbers, which reading skips.
    pub(crate) fn restart(&mut self) {
        self.end = 0;
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
        for lsn in 1..=10 {
            j.append(lsn, b"an older group, long").unwrap();
        }
        j.restart();
        assert_eq!(j.len(), 0);
        j.append(11, b"new").unwrap();
        j.append(12, b"new").unwrap();
        drop(j);
        let (_, found) = journal_at(dir.path());
        assert_eq!(lsns(&found), [11, 12]);
        // The older records behind are whole, and all below the last one read.
        assert_eq!(highest(dir.path()), Some(12));
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
