//! `raft::Storage` semantics, mirroring raft-rs's own `MemStorage` tests
//! (raft-0.7.0/src/storage.rs). MemStorage keeps a dummy entry at `first_index`; here that
//! role is played by the snapshot metadata, so "entries 3, 4, 5" of MemStorage become
//! "snapshot at 3 (term 3), entries 4 and 5".

use std::sync::Arc;

use protobuf::Message;
use raft::{Error as RaftError, GetEntriesContext, Storage, StorageError as RaftStorageError};

use super::support::*;
use crate::storage::{RaftLogStorage, StorageError};

/// Snapshot at `first - 1` (term `first - 1`), then entries `first..=last` with term = index.
fn storage_with(dir: &std::path::Path, first: u64, last: u64) -> RaftLogStorage {
    let s = RaftLogStorage::open(dir, opts(1 << 20)).unwrap();
    s.install_snapshot(&meta(first - 1, first - 1, &[1, 2, 3]))
        .unwrap();
    let ents: Vec<_> = (first..=last).map(|i| entry(i, i)).collect();
    s.append(&ents, None).unwrap();
    s
}

fn compacted() -> RaftError {
    RaftError::Store(RaftStorageError::Compacted)
}

fn unavailable() -> RaftError {
    RaftError::Store(RaftStorageError::Unavailable)
}

fn snap_unavailable() -> RaftError {
    RaftError::Store(RaftStorageError::SnapshotTemporarilyUnavailable)
}

#[test]
fn storage_term() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_with(dir.path(), 4, 5);
    let cases = [
        (2, Err(compacted())),
        (3, Ok(3)),
        (4, Ok(4)),
        (5, Ok(5)),
        (6, Err(unavailable())),
    ];
    for (idx, want) in cases {
        assert_eq!(s.term(idx), want, "term({idx})");
    }
}

#[test]
fn storage_term_of_empty_log_is_zero_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(s.term(0), Ok(0));
    assert_eq!(s.term(1), Err(unavailable()));
    assert_eq!(s.first_index(), Ok(1));
    assert_eq!(s.last_index(), Ok(0));
    assert_eq!(
        s.entries(1, 1, None, GetEntriesContext::empty(false)),
        Ok(vec![])
    );
}

#[test]
fn storage_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_with(dir.path(), 4, 6);
    let ents = [entry(3, 3), entry(4, 4), entry(5, 5), entry(6, 6)];
    let size = |i: usize| u64::from(ents[i].compute_size());
    let max = u64::MAX;
    let cases: Vec<(u64, u64, u64, Result<Vec<_>, RaftError>)> = vec![
        (2, 6, max, Err(compacted())),
        (3, 4, max, Err(compacted())),
        (4, 5, max, Ok(vec![entry(4, 4)])),
        (4, 6, max, Ok(vec![entry(4, 4), entry(5, 5)])),
        (4, 7, max, Ok(vec![entry(4, 4), entry(5, 5), entry(6, 6)])),
        // even if max size is zero, the first entry is returned
        (4, 7, 0, Ok(vec![entry(4, 4)])),
        // limit to 2
        (4, 7, size(1) + size(2), Ok(vec![entry(4, 4), entry(5, 5)])),
        (
            4,
            7,
            size(1) + size(2) + size(3) / 2,
            Ok(vec![entry(4, 4), entry(5, 5)]),
        ),
        (
            4,
            7,
            size(1) + size(2) + size(3) - 1,
            Ok(vec![entry(4, 4), entry(5, 5)]),
        ),
        // all
        (
            4,
            7,
            size(1) + size(2) + size(3),
            Ok(vec![entry(4, 4), entry(5, 5), entry(6, 6)]),
        ),
        // beyond the last index: an error, never a panic
        (4, 8, max, Err(unavailable())),
    ];
    for (i, (lo, hi, max_size, want)) in cases.into_iter().enumerate() {
        let got = s.entries(lo, hi, max_size, GetEntriesContext::empty(false));
        assert_eq!(got, want, "case #{i}: entries({lo}, {hi}, {max_size})");
    }
    // `None` means no limit.
    assert_eq!(
        s.entries(4, 7, None, GetEntriesContext::empty(false))
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn storage_last_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_with(dir.path(), 4, 5);
    assert_eq!(s.last_index(), Ok(5));
    s.append(&[entry(6, 5)], None).unwrap();
    assert_eq!(s.last_index(), Ok(6));
}

#[test]
fn storage_first_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_with(dir.path(), 4, 5);
    assert_eq!(s.first_index(), Ok(4));
    s.compact(&meta(4, 4, &[1, 2, 3])).unwrap();
    assert_eq!(s.first_index(), Ok(5));
}

#[test]
fn storage_compact() {
    // (compact to, want first index, want term at compact index, want entries left)
    let cases = [
        (2, 4, 3, 3),
        (3, 4, 3, 3),
        (4, 5, 4, 2),
        (5, 6, 5, 1),
        (6, 7, 6, 0),
    ];
    for (i, (idx, want_first, want_term, want_len)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage_with(dir.path(), 4, 6);
        s.compact(&meta(idx, idx, &[1, 2, 3])).unwrap();
        assert_eq!(s.first_index(), Ok(want_first), "case #{i}");
        assert_eq!(s.term(want_first - 1), Ok(want_term), "case #{i}");
        assert_eq!(all_entries(&s).len(), want_len, "case #{i}");
        assert_eq!(s.last_index(), Ok(6), "case #{i}");
        if idx >= 3 {
            assert_eq!(s.latest_snapshot_metadata().index, idx.max(3), "case #{i}");
        }
        // Compaction implies the snapshot's entries are committed.
        assert!(s.hard_state().commit >= idx.max(3), "case #{i}");
    }
}

#[test]
fn storage_compact_rejects_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = storage_with(dir.path(), 4, 6);
    assert!(matches!(
        s.compact(&meta(7, 7, &[1])),
        Err(StorageError::CompactBeyondLast { index: 7, last: 6 })
    ));
    assert!(matches!(
        s.compact(&meta(5, 4, &[1])),
        Err(StorageError::SnapshotTermMismatch {
            index: 5,
            meta_term: 4,
            log_term: 5
        })
    ));
    // Nothing changed.
    assert_eq!(s.first_index(), Ok(4));
    assert_eq!(s.last_index(), Ok(6));
}

#[test]
fn storage_create_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    // No snapshot yet.
    assert_eq!(s.snapshot(0, 2), Err(snap_unavailable()));

    s.append(&[entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)], None)
        .unwrap();
    s.set_commit(4).unwrap();
    s.compact(&meta(3, 2, &[1, 2, 3])).unwrap();
    // A snapshot exists but there is no source of bytes yet.
    assert_eq!(s.snapshot(0, 2), Err(snap_unavailable()));

    let available = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = available.clone();
    s.set_snapshot_source(Arc::new(move |m| {
        flag.load(std::sync::atomic::Ordering::SeqCst)
            .then(|| format!("state@{}", m.index).into_bytes())
    }));
    let snap = s.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata(), &meta(3, 2, &[1, 2, 3]));
    assert_eq!(&snap.data[..], b"state@3");
    assert_eq!(s.snapshot(3, 2).unwrap().get_metadata().index, 3);
    // A snapshot older than the requested index is not good enough.
    assert_eq!(s.snapshot(4, 2), Err(snap_unavailable()));
    // The source may be temporarily unable to produce the bytes.
    available.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(s.snapshot(0, 2), Err(snap_unavailable()));
}

#[test]
fn storage_append() {
    let cases: Vec<(Vec<_>, Result<Vec<_>, ()>)> = vec![
        (
            vec![entry(3, 3), entry(4, 4), entry(5, 5)],
            Ok(vec![entry(3, 3), entry(4, 4), entry(5, 5)]),
        ),
        (
            vec![entry(3, 3), entry(4, 6), entry(5, 6)],
            Ok(vec![entry(3, 3), entry(4, 6), entry(5, 6)]),
        ),
        (
            vec![entry(3, 3), entry(4, 4), entry(5, 5), entry(6, 5)],
            Ok(vec![entry(3, 3), entry(4, 4), entry(5, 5), entry(6, 5)]),
        ),
        // Entries at or below the snapshot (here 2) are skipped, as etcd's MemoryStorage
        // does (MemStorage panics); the rest truncates the conflicting suffix.
        (
            vec![entry(2, 3), entry(3, 3), entry(4, 5)],
            Ok(vec![entry(3, 3), entry(4, 5)]),
        ),
        // truncate the existing entries and append
        (vec![entry(4, 5)], Ok(vec![entry(3, 3), entry(4, 5)])),
        // direct append
        (
            vec![entry(6, 6)],
            Ok(vec![entry(3, 3), entry(4, 4), entry(5, 5), entry(6, 6)]),
        ),
        // a gap is refused (MemStorage panics)
        (vec![entry(7, 6)], Err(())),
        // so are non-consecutive entries
        (vec![entry(5, 5), entry(7, 6)], Err(())),
    ];
    for (i, (ents, want)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage_with(dir.path(), 3, 5);
        let before = all_entries(&s);
        let res = s.append(&ents, None);
        match want {
            Ok(want) => {
                res.unwrap();
                assert_eq!(all_entries(&s), want, "case #{i}");
            }
            Err(()) => {
                assert!(res.is_err(), "case #{i}");
                assert_eq!(all_entries(&s), before, "case #{i}: unchanged");
            }
        }
        // Whatever happened survives a reopen.
        let want = observe(&s);
        drop(s);
        let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(observe(&s), want, "case #{i} after reopen");
    }
}

#[test]
fn storage_apply_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    s.append(
        &[entry(1, 1), entry(2, 1), entry(3, 2)],
        Some(&hard_state(2, 1, 1)),
    )
    .unwrap();

    // Apply snapshot successfully.
    s.install_snapshot(&meta(4, 4, &[1, 2, 3])).unwrap();
    assert_eq!(s.first_index(), Ok(5));
    assert_eq!(s.last_index(), Ok(4));
    assert_eq!(s.term(4), Ok(4));
    assert_eq!(s.term(3), Err(compacted()));
    let state = s.initial_state().unwrap();
    assert_eq!(state.hard_state, hard_state(4, 1, 4));
    assert_eq!(state.conf_state, conf_state(&[1, 2, 3]));
    assert_eq!(s.latest_snapshot_metadata(), meta(4, 4, &[1, 2, 3]));

    // Applying an older snapshot fails with SnapshotOutOfDate.
    let err = s.install_snapshot(&meta(3, 3, &[1, 2, 3])).unwrap_err();
    assert!(matches!(err, StorageError::SnapshotOutOfDate { .. }));
    assert_eq!(
        RaftError::from(err),
        RaftError::Store(RaftStorageError::SnapshotOutOfDate)
    );

    // A snapshot behind the log drops the entries after it too.
    s.append(&[entry(5, 4), entry(6, 4)], None).unwrap();
    s.install_snapshot(&meta(5, 4, &[1, 2])).unwrap();
    assert_eq!(s.first_index(), Ok(6));
    assert_eq!(s.last_index(), Ok(5));
    assert_eq!(s.conf_state(), conf_state(&[1, 2]));
}

#[test]
fn storage_hard_state_conf_state_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert!(!s.initial_state().unwrap().initialized());
    s.set_conf_state(&conf_state(&[1, 2, 3])).unwrap();
    assert!(s.initial_state().unwrap().initialized());
    s.append(&[entry(1, 1), entry(2, 1)], Some(&hard_state(1, 1, 0)))
        .unwrap();
    s.set_commit(2).unwrap();
    assert_eq!(s.hard_state(), hard_state(1, 1, 2));
    s.set_hard_state(&hard_state(2, 3, 2)).unwrap();
    assert_eq!(s.initial_state().unwrap().hard_state, hard_state(2, 3, 2));
    // Only a hard state: one record, one fsync.
    let before = s.wal_stats();
    s.append(&[], Some(&hard_state(2, 3, 2))).unwrap();
    assert_eq!(s.wal_stats().fsyncs, before.fsyncs + 1);
    // Nothing at all: no write.
    s.append(&[], None).unwrap();
    assert_eq!(s.wal_stats().fsyncs, before.fsyncs + 1);
}

#[test]
fn storage_append_batch_is_one_write_and_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    let before = s.wal_stats();
    let ents: Vec<_> = (1..=256).map(|i| entry_with(i, 1, &[7u8; 100])).collect();
    s.append(&ents, Some(&hard_state(1, 1, 0))).unwrap();
    let after = s.wal_stats();
    assert_eq!(after.flushes - before.flushes, 1);
    assert_eq!(after.fsyncs - before.fsyncs, 1);
    assert_eq!(after.records - before.records, 1);
    assert_eq!(s.last_index(), Ok(256));
}

#[test]
fn storage_handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RaftLogStorage>();
    assert_send_sync::<crate::storage::Wal>();
    assert_send_sync::<StorageError>();
}
