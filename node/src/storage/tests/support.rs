//! Helpers shared by the storage tests.

use std::fs;
use std::path::Path;

use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use raft::{GetEntriesContext, Storage};

use crate::storage::{RaftLogStorage, SyncMode, WalOptions};

pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        ..Default::default()
    }
}

pub fn entry_with(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        data: data.to_vec().into(),
        ..entry(index, term)
    }
}

pub fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

pub fn conf_state(voters: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        ..Default::default()
    }
}

pub fn meta(index: u64, term: u64, voters: &[u64]) -> SnapshotMetadata {
    let mut m = SnapshotMetadata {
        index,
        term,
        ..Default::default()
    };
    m.set_conf_state(conf_state(voters));
    m
}

pub fn opts(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        sync: SyncMode::Fsync,
    }
}

pub fn nosync(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        sync: SyncMode::NoSync,
    }
}

/// Every entry the storage serves, first to last.
pub fn all_entries(s: &RaftLogStorage) -> Vec<Entry> {
    let first = s.first_index().unwrap();
    let last = s.last_index().unwrap();
    s.entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
}

/// Everything observable about a storage, for comparing before and after a reopen.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub first: u64,
    pub last: u64,
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
    pub conf_state: ConfState,
    pub snapshot: SnapshotMetadata,
}

pub fn observe(s: &RaftLogStorage) -> Observed {
    let state = s.initial_state().unwrap();
    Observed {
        first: s.first_index().unwrap(),
        last: s.last_index().unwrap(),
        entries: all_entries(s),
        hard_state: state.hard_state,
        conf_state: state.conf_state,
        snapshot: s.latest_snapshot_metadata(),
    }
}

/// Segment files in `dir`, ascending, with their lengths.
pub fn segment_files(dir: &Path) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let seq = crate::storage::wal::segment::parse_file_name(e.file_name().to_str()?)?;
            Some((seq, e.metadata().unwrap().len()))
        })
        .collect();
    out.sort_unstable();
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// For each segment file in `dir`: its sequence number and the highest Raft entry index
/// it holds (0 if none), read straight from the frames.
pub fn max_index_per_segment(dir: &Path) -> Vec<(u64, u64)> {
    use crate::storage::wal::codec::{decode_frame, Record};
    use crate::storage::wal::segment::{self, HEADER_LEN};
    segment_files(dir)
        .into_iter()
        .map(|(seq, _)| {
            let bytes = fs::read(segment::path(dir, seq)).unwrap();
            let mut pos = HEADER_LEN as usize;
            let mut max = 0;
            while let Ok(Some((record, used))) = decode_frame(&bytes[pos..]) {
                if let Record::Entries { entries, .. } = record {
                    max = entries.iter().map(|e| e.index).fold(max, u64::max);
                }
                pos += used;
            }
            (seq, max)
        })
        .collect()
}

/// Proptest case count: `PROPTEST_CASES` when set (for soak runs), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
