//! Segment files: naming, header, creation, listing and directory fsync.
//!
//! A segment is `{dir}/{seq:016}.wal`: a 16-byte header (`b"VWAL"`, format version
//! u32 LE, `seq` u64 LE) followed by frames (see [`super::codec`]). Segments are numbered
//! consecutively; only the last one (the active segment) is ever appended to.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use common::synced_file::SyncedFile;

use crate::storage::StorageError;

/// Bytes of the segment header.
pub const HEADER_LEN: u64 = 16;
const MAGIC: [u8; 4] = *b"VWAL";
const FORMAT_VERSION: u32 = 1;
const EXTENSION: &str = ".wal";

/// File name of segment `seq`.
pub fn file_name(seq: u64) -> String {
    format!("{seq:016}{EXTENSION}")
}

/// Path of segment `seq` in `dir`.
pub fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(file_name(seq))
}

/// The sequence number of a segment file name, or `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the WAL in `dir` holds any record: a segment longer than its header (none:
/// no directory, no segment, or headers only).
pub fn any_records(dir: &Path) -> bool {
    let Ok(seqs) = list(dir) else {
        return false;
    };
    seqs.iter()
        .any(|&seq| fs::metadata(path(dir, seq)).is_ok_and(|m| m.len() > HEADER_LEN))
}

/// Sequence numbers of the segment files in `dir`, ascending.
pub fn list(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut seqs = Vec::new();
    for item in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let item = item.map_err(StorageError::io(dir))?;
        if let Some(seq) = item.file_name().to_str().and_then(parse_file_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

pub fn encode_header(seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// Checks the header at the start of `bytes` for segment `seq`.
pub fn check_header(bytes: &[u8], seq: u64) -> Result<(), String> {
    let Some(h) = bytes.get(..HEADER_LEN as usize) else {
        return Err(format!("short header: {} bytes", bytes.len()));
    };
    if h != encode_header(seq) {
        return Err(format!("bad header {h:02x?}"));
    }
    Ok(())
}

/// fsyncs a directory, so that file creations and removals in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    common::fs::sync_dir(dir).map_err(StorageError::io(dir))
}

/// Creates segment `seq` with its header. With `sync`, the file and then the directory
/// are fsynced before returning. Returns the file, positioned after the header (a
/// [`SyncedFile`]: under `NODE_FAULT_STORAGE=lose-unsynced` its unsynced bytes die with
/// the process, as in a power cut).
pub fn create(dir: &Path, seq: u64, sync: bool) -> Result<SyncedFile, StorageError> {
    let p = path(dir, seq);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .map(SyncedFile::new)
        .map_err(StorageError::io(&p))?;
    file.write_all(&encode_header(seq))
        .map_err(StorageError::io(&p))?;
    if sync {
        file.sync_data().map_err(StorageError::io(&p))?;
        sync_dir(dir)?;
    }
    Ok(file)
}

/// Opens an existing segment for appending at `len`.
pub fn open_for_append(dir: &Path, seq: u64, len: u64) -> Result<SyncedFile, StorageError> {
    use std::io::{Seek, SeekFrom};
    let p = path(dir, seq);
    let mut file = OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(StorageError::io(&p))?;
    file.seek(SeekFrom::Start(len))
        .map_err(StorageError::io(&p))?;
    Ok(SyncedFile::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_reject_strangers() {
        assert_eq!(file_name(42), "0000000000000042.wal");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(
            parse_file_name(&file_name(9_999_999_999_999_999)),
            Some(9_999_999_999_999_999)
        );
        for bad in [
            "42.wal",
            "000000000000004x.wal",
            "0000000000000042.wal.tmp",
            "x",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_checks_magic_version_and_seq() {
        let h = encode_header(7);
        assert!(check_header(&h, 7).is_ok());
        assert!(check_header(&h, 8).is_err());
        assert!(check_header(&h[..10], 7).is_err());
        let mut bad = h;
        bad[0] ^= 1;
        assert!(check_header(&bad, 7).is_err());
    }
}
