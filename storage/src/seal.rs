//! The seal: a small file beside the store that says how much the store held at its last
//! checkpoint, kept apart from sled and the journal so that it survives their damage.
//!
//! sled recovers from a cut or damaged file the way it recovers from a crash: it keeps
//! its log up to the first segment it cannot read, and opens. A store that lost data that
//! way looks healthy; the next issue would then hand out a seq (and a code) already
//! acknowledged to someone else. The seal catches it: every checkpoint writes the
//! sequence number of the last group sled holds (after sled's flush), and at open sled's
//! own `journal_lsn` must be at least that. The checkpoint's `journal_lsn` is the last
//! write before sled's flush, so a sled that lost any part of its log lost it too.
//!
//! The seal also says the data dir has held a store: a deleted or emptied store is
//! refused rather than started empty.
//!
//! The file is `magic(4) lsn(u64 LE) crc32(u32 LE)`, 16 bytes, replaced atomically
//! (written beside, synced, renamed over, directory synced).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::journal::io;

const MAGIC: &[u8; 4] = b"FCS1";
const BYTES: usize = 16;

/// Where the seal of the store at `store_dir` lives: beside it, not inside it, so that a
/// deleted store directory leaves the seal behind.
pub(crate) fn path_for(store_dir: &Path) -> PathBuf {
    let mut name = store_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".seal");
    store_dir.with_file_name(name)
}

/// The last group the store held at its last checkpoint, if the data dir has a seal.
pub(crate) fn read(path: &Path) -> Result<Option<u64>, StorageError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading the store's seal", &e)),
    };
    let damaged =
        |detail: &str| StorageError::Damaged(format!("its seal ({}) {detail}", path.display()));
    if bytes.len() != BYTES || &bytes[..4] != MAGIC {
        return Err(damaged("is not a seal"));
    }
    let lsn = u64::from_le_bytes(bytes[4..12].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[12..16].try_into().unwrap_or_default());
    if crc32fast::hash(&bytes[..12]) != crc {
        return Err(damaged("fails its checksum"));
    }
    Ok(Some(lsn))
}

/// Replaces the seal with one for `lsn`, durably.
pub(crate) fn write(path: &Path, lsn: u64) -> Result<(), StorageError> {
    let mut bytes = Vec::with_capacity(BYTES);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&lsn.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    let fresh = path.with_extension("seal.new");
    let written = File::create(&fresh)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&fresh, path));
    written.map_err(|e| io("writing the store's seal", &e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the seal's directory", &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_reads_back_what_was_written_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("store"));
        assert_eq!(path, dir.path().join("store.seal"));
        assert_eq!(read(&path).unwrap(), None);
        write(&path, 41).unwrap();
        write(&path, 42).unwrap();
        assert_eq!(read(&path).unwrap(), Some(42));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(&path), Err(StorageError::Damaged(_))));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(read(&path), Err(StorageError::Damaged(_))));
    }
}
