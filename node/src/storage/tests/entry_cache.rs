//! Applied entries evicted from memory and read back from the WAL on real files: the
//! same entries as were appended, across frames and segments, after a restart, racing a
//! compaction, and from a damaged frame (a snapshot is asked for; nothing panics).

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use raft::{GetEntriesContext, Storage};

use super::support::*;
use crate::storage::wal::segment;
use crate::storage::RaftLogStorage;

/// 60 entries: 1..=50 one frame each, 51..=60 in one frame, 300-byte payloads.
fn filled(dir: &std::path::Path) -> (RaftLogStorage, Vec<raft::prelude::Entry>) {
    let s = RaftLogStorage::open(dir, opts(4096)).unwrap();
    let mut all = Vec::new();
    for i in 1..=50u64 {
        let e = entry_with(i, 1 + i / 20, &[i as u8; 300]);
        s.append(std::slice::from_ref(&e), None).unwrap();
        all.push(e);
    }
    let batch: Vec<_> = (51..=60u64)
        .map(|i| entry_with(i, 4, &[i as u8; 300]))
        .collect();
    s.append(&batch, Some(&hard_state(4, 1, 60))).unwrap();
    all.extend(batch);
    (s, all)
}

fn read(
    s: &RaftLogStorage,
    lo: u64,
    hi: u64,
    max: Option<u64>,
) -> raft::Result<Vec<raft::prelude::Entry>> {
    s.entries(lo, hi, max, GetEntriesContext::empty(false))
}

#[test]
fn evicted_entries_read_back_from_the_wal_as_they_were_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (s, all) = filled(dir.path());
    assert!(s.segments().len() > 3, "the entries span several segments");
    let before = s.cached_entry_bytes();
    s.set_entry_cache_bytes(0);
    // Applied through 55: entries 56..=60 must stay in memory whatever the budget.
    s.evict_applied(55);
    let kept = s.cached_entry_bytes();
    assert!(
        kept > 0 && kept * 10 < before,
        "{kept} of {before} bytes kept"
    );

    assert_eq!(read(&s, 1, 61, None).unwrap(), all);
    assert_eq!(read(&s, 17, 23, None).unwrap(), all[16..22]);
    assert_eq!(read(&s, 52, 58, None).unwrap(), all[51..57]);
    // A size limit stops at the first entry over it, keeping at least one.
    assert_eq!(read(&s, 10, 61, Some(1)).unwrap(), all[9..10]);
    assert_eq!(read(&s, 10, 61, Some(700)).unwrap(), all[9..11]);
    for e in &all {
        assert_eq!(s.term(e.index).unwrap(), e.term);
    }
    assert!(!s.take_snapshot_wanted());

    // A restart replays them all into memory: the same log.
    let seen = observe(&s);
    drop(s);
    let s = RaftLogStorage::open(dir.path(), opts(4096)).unwrap();
    assert_eq!(observe(&s), seen);
    // A conflicting append over unevicted entries still works after an eviction.
    s.set_entry_cache_bytes(0);
    s.evict_applied(50);
    s.append(&[entry_with(58, 5, b"new")], None).unwrap();
    let got = read(&s, 45, 59, None).unwrap();
    assert_eq!(got[..12], all[44..56]);
    assert_eq!((got[13].index, got[13].term), (58, 5));
}

#[test]
fn a_read_back_below_a_compaction_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let (s, all) = filled(dir.path());
    s.set_entry_cache_bytes(0);
    s.evict_applied(60);
    assert_eq!(s.cached_entry_bytes(), 0);
    s.compact(&meta(40, all[39].term, &[1])).unwrap();
    assert!(matches!(
        read(&s, 30, 45, None),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    // What is left is still read back, from the segments the compaction kept.
    assert_eq!(read(&s, 41, 61, None).unwrap(), all[40..]);
    assert!(!s.take_snapshot_wanted());
}

#[test]
fn a_damaged_frame_asks_for_a_snapshot_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let (s, all) = filled(dir.path());
    s.set_entry_cache_bytes(0);
    s.evict_applied(60);
    // Flip a payload byte of entry 1's frame (the first frame of segment 1).
    let path = segment::path(dir.path(), 1);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.seek(SeekFrom::Start(segment::HEADER_LEN + 8 + 40))
        .unwrap();
    f.write_all(&[0xA5]).unwrap();
    drop(f);
    assert!(matches!(
        read(&s, 1, 5, None),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    ));
    assert!(
        s.take_snapshot_wanted(),
        "the replica is asked for a newer snapshot"
    );
    // Entries in intact frames are unaffected.
    assert_eq!(read(&s, 30, 61, None).unwrap(), all[29..]);
}
