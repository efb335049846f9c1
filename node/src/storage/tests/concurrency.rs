//! Group commit across threads: concurrent appenders share fsyncs, every acknowledged
//! record is recovered, each call's records stay contiguous and in order, and each call
//! is told where its records are.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

use raft::{GetEntriesContext, Storage};

use super::support::*;
use crate::storage::wal::{FramePos, Record, Wal};
use crate::storage::RaftLogStorage;

const THREADS: u64 = 8;
const PER_THREAD: u64 = 200;

fn id(thread: u64, i: u64) -> u64 {
    thread * 1_000_000 + i
}

#[test]
fn concurrent_appends_are_group_committed_and_all_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(64 << 10), |_, _| Ok(())).unwrap();
    let wal = Arc::new(wal);
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut acked = Vec::new();
                for i in 0..PER_THREAD {
                    let n = id(t, i);
                    let data = vec![t as u8; 64 + (n % 7) as usize * 64];
                    // Two records per call: they must land next to each other.
                    let records = [
                        Record::Entries {
                            entries: vec![entry_with(n, t, &data)],
                            hard_state: None,
                        },
                        Record::HardState(hard_state(t, 0, n)),
                    ];
                    let at = wal.append_at(&records).unwrap();
                    acked.push((n, at));
                }
                acked
            })
        })
        .collect();
    let positions: Vec<(u64, FramePos)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // Each call learnt where its own first frame went, though another thread wrote it.
    for &(n, at) in &positions {
        match wal.read_frame(at).unwrap() {
            Record::Entries { entries, .. } => assert_eq!(entries[0].index, n, "at {at:?}"),
            other => panic!("record {n} at {at:?} reads back as {other:?}"),
        }
    }
    let acked: Vec<u64> = positions.iter().map(|&(n, _)| n).collect();
    let stats = wal.stats();
    let appends = THREADS * PER_THREAD;
    assert_eq!(acked.len() as u64, appends);
    assert_eq!(stats.appends, appends);
    assert_eq!(stats.records, 2 * appends);
    assert_eq!(stats.flushes, stats.fsyncs);
    assert!(
        stats.fsyncs < appends,
        "group commit should coalesce concurrent appends: {} fsyncs for {} appends",
        stats.fsyncs,
        appends
    );
    assert!(stats.segments_created >= 1, "segments rolled: {stats:?}");
    eprintln!(
        "group commit: {} appends, {} fsyncs ({:.1} appends per fsync), {} segments",
        appends,
        stats.fsyncs,
        appends as f64 / stats.fsyncs as f64,
        wal.segments().len()
    );
    drop(wal);

    // Reopen: every acknowledged record, each thread's in its order, pairs adjacent.
    let mut seen: Vec<Record> = Vec::new();
    let (wal, report) = Wal::open(dir.path(), opts(64 << 10), |_, r| {
        seen.push(r);
        Ok(())
    })
    .unwrap();
    assert!(report.damage.is_none());
    assert_eq!(seen.len() as u64, 2 * appends);
    let mut next: HashMap<u64, u64> = HashMap::new();
    for pair in seen.chunks(2) {
        let (Record::Entries { entries, .. }, Record::HardState(hs)) = (&pair[0], &pair[1]) else {
            panic!("records of one append were split: {pair:?}");
        };
        let n = entries[0].index;
        assert_eq!(hs.commit, n, "pair belongs together");
        let (t, i) = (n / 1_000_000, n % 1_000_000);
        let want = next.entry(t).or_insert(0);
        assert_eq!(i, *want, "thread {t}: records in order");
        *want += 1;
    }
    assert!(next.values().all(|&n| n == PER_THREAD));
    assert!(wal.segments().len() > 1);
}

#[test]
fn concurrent_reads_during_appends_see_consistent_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(16 << 10)).unwrap();
    let writer = {
        let s = s.clone();
        thread::spawn(move || {
            for i in 1..=400u64 {
                s.append(
                    &[entry_with(i, 1, &[i as u8; 100])],
                    Some(&hard_state(1, 1, i - 1)),
                )
                .unwrap();
                if i % 100 == 0 {
                    s.compact(&meta(i - 50, 1, &[1])).unwrap();
                }
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || {
                let mut reads = 0;
                while reads < 2000 {
                    let first = s.first_index().unwrap();
                    let last = s.last_index().unwrap();
                    match s.entries(first, last + 1, None, GetEntriesContext::empty(false)) {
                        Ok(ents) => {
                            for (k, e) in ents.iter().enumerate() {
                                assert_eq!(e.index, first + k as u64);
                                assert_eq!(e.data[0], e.index as u8);
                            }
                        }
                        // A compaction between the two calls is fine.
                        Err(raft::Error::Store(raft::StorageError::Compacted)) => {}
                        Err(e) => panic!("{e}"),
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(s.last_index(), Ok(400));
    assert_eq!(s.first_index(), Ok(351));
}
