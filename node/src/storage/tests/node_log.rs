//! The node's shared log: several groups in one WAL, each recovered as it was written,
//! discarded groups gone, and old segments freed by rewriting the groups that pin them.

use std::sync::Arc;
use std::thread;

use raft::Storage;

use super::support::*;
use crate::storage::{NodeLog, NodeLogOptions, RaftLogStorage, StorageError};

/// One lane: these tests are about groups sharing a WAL.
fn log_opts(segment_bytes: u64, max_segments: usize) -> NodeLogOptions {
    NodeLogOptions {
        wal: opts(segment_bytes),
        lanes: 1,
        max_segments,
    }
}

fn open(dir: &std::path::Path, o: NodeLogOptions) -> Arc<NodeLog> {
    NodeLog::open(dir, o).unwrap()
}

/// Writes `n` entries of `size` bytes to `s` from `first`, each with a hard state.
fn write(s: &RaftLogStorage, first: u64, n: u64, size: usize, term: u64) {
    for i in first..first + n {
        let e = entry_with(i, term, &vec![i as u8; size]);
        s.append(&[e], Some(&hard_state(term, 1, i - 1))).unwrap();
    }
}

#[test]
fn groups_share_one_log_and_each_recovers_its_own_state() {
    let dir = tempfile::tempdir().unwrap();
    let observed = {
        let log = open(dir.path(), log_opts(1 << 20, 8));
        let a = RaftLogStorage::open_in(&log, 1).unwrap();
        let b = RaftLogStorage::open_in(&log, 2).unwrap();
        a.set_conf_state(&conf_state(&[1, 2, 3])).unwrap();
        b.set_conf_state(&conf_state(&[4, 5, 6])).unwrap();
        write(&a, 1, 20, 100, 1);
        write(&b, 1, 5, 300, 2);
        // A conflicting suffix in one group leaves the other alone.
        a.append(&[entry_with(15, 3, b"new")], Some(&hard_state(3, 2, 14)))
            .unwrap();
        assert!(
            RaftLogStorage::open_in(&log, 1).is_err(),
            "a group opens once"
        );
        (observe(&a), observe(&b))
    };
    assert_eq!(observed.0.last, 15);
    assert_eq!(observed.1.last, 5);
    let log = open(dir.path(), log_opts(1 << 20, 8));
    assert_eq!(log.unopened_groups(), vec![1, 2]);
    let a = RaftLogStorage::open_in(&log, 1).unwrap();
    let b = RaftLogStorage::open_in(&log, 2).unwrap();
    assert_eq!((observe(&a), observe(&b)), observed);
    assert!(log.unopened_groups().is_empty());
    assert_eq!(log.segments().len(), 1, "one log for both groups");
}

#[test]
fn a_discarded_group_stays_gone_and_cannot_append() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), log_opts(1 << 20, 8));
        let a = RaftLogStorage::open_in(&log, 1).unwrap();
        let b = RaftLogStorage::open_in(&log, 2).unwrap();
        write(&a, 1, 3, 10, 1);
        write(&b, 1, 3, 10, 1);
        a.discard().unwrap();
        assert!(!log.has_records(1));
        assert!(matches!(
            a.append(&[entry(4, 1)], None),
            Err(StorageError::GroupNotOpen(1))
        ));
    }
    let log = open(dir.path(), log_opts(1 << 20, 8));
    assert!(!log.has_records(1));
    assert!(log.has_records(2));
    let a = RaftLogStorage::open_in(&log, 1).unwrap();
    assert_eq!(
        a.last_index().unwrap(),
        0,
        "a discarded group reopens empty"
    );
    let b = RaftLogStorage::open_in(&log, 2).unwrap();
    assert_eq!(b.last_index().unwrap(), 3);
}

#[test]
fn a_group_that_never_compacts_is_rewritten_so_old_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let (cold_before, hot_before) = {
        let log = open(dir.path(), log_opts(16 << 10, 4));
        let cold = RaftLogStorage::open_in(&log, 1).unwrap();
        let hot = RaftLogStorage::open_in(&log, 2).unwrap();
        cold.set_conf_state(&conf_state(&[1])).unwrap();
        hot.set_conf_state(&conf_state(&[2])).unwrap();
        write(&cold, 1, 3, 100, 1);
        // Cold entries must survive the rewrite even when only on disk.
        cold.set_entry_cache_bytes(0);
        cold.evict_applied(3);
        cold.set_conf_state_at(3, &conf_state(&[1, 7])).unwrap();
        // The hot group writes ~30 segments and compacts as it goes.
        for round in 0..30u64 {
            let first = round * 10 + 1;
            write(&hot, first, 10, 1500, 1);
            hot.compact(&meta(first + 5, 1, &[2])).unwrap();
        }
        // (The collector thread may have run already: it wakes on every compaction.)
        assert!(log.stats().segments_created > 8);
        log.collect().unwrap();
        let segs = log.segments();
        // Segment 1 holds the cold group's first records: only a rewrite frees it.
        assert!(segs[0] > 1, "the cold group was rewritten: {segs:?}");
        assert!(segs.len() <= 4, "{segs:?}");
        (observe(&cold), observe(&hot))
    };
    let log = open(dir.path(), log_opts(16 << 10, 4));
    let cold = RaftLogStorage::open_in(&log, 1).unwrap();
    let hot = RaftLogStorage::open_in(&log, 2).unwrap();
    assert_eq!(observe(&cold), cold_before);
    assert_eq!(observe(&hot), hot_before);
    assert_eq!(cold.conf_state_at(2), conf_state(&[1]));
    assert_eq!(cold.conf_state_at(3), conf_state(&[1, 7]));
}

#[test]
fn groups_whose_logs_fill_the_log_are_not_copied_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), log_opts(16 << 10, 4));
    let busy = RaftLogStorage::open_in(&log, 1).unwrap();
    busy.set_conf_state(&conf_state(&[1])).unwrap();
    // ~12 segments of entries the group still holds (no compaction yet, as between
    // two snapshots of a busy replica): rewriting it would copy all and free nothing.
    write(&busy, 1, 120, 1500, 1);
    let before = log.stats();
    assert!(log.segments().len() > 8, "{:?}", log.segments());
    assert_eq!(log.collect().unwrap(), 0);
    assert_eq!(log.stats().bytes, before.bytes, "nothing rewritten");
    // Once it compacts, the log holds more than twice what it needs: segments go.
    busy.compact(&meta(110, 1, &[1])).unwrap();
    log.collect().unwrap();
    assert!(log.segments().len() <= 4, "{:?}", log.segments());
}

#[test]
fn lanes_hold_their_groups_and_a_log_opens_only_with_its_lane_count() {
    let dir = tempfile::tempdir().unwrap();
    let lanes = |n| NodeLogOptions {
        lanes: n,
        ..log_opts(1 << 20, 8)
    };
    let observed: Vec<_> = {
        let log = open(dir.path(), lanes(3));
        (1..=6u64)
            .map(|g| {
                let s = RaftLogStorage::open_in(&log, g).unwrap();
                s.set_conf_state(&conf_state(&[g])).unwrap();
                write(&s, 1, g, 50, 1);
                observe(&s)
            })
            .collect()
    };
    for lane in 0..3 {
        assert!(
            crate::storage::wal::segment::any_records(&dir.path().join(format!("lane-{lane}"))),
            "lane {lane} holds groups {} and {}",
            lane,
            lane + 3
        );
    }
    let Err(fewer) = NodeLog::open(dir.path(), lanes(2)) else {
        panic!("a 3-lane log opened with 2 lanes");
    };
    assert!(fewer.to_string().contains("lane-2"), "{fewer}");
    let Err(more) = NodeLog::open(dir.path(), lanes(4)) else {
        panic!("a 3-lane log opened with 4 lanes");
    };
    assert!(more.to_string().contains("lane 0 of 4"), "{more}");
    let log = open(dir.path(), lanes(3));
    assert_eq!(log.unopened_groups(), (1..=6).collect::<Vec<_>>());
    for (g, want) in (1..=6u64).zip(observed) {
        let s = RaftLogStorage::open_in(&log, g).unwrap();
        assert_eq!(observe(&s), want, "group {g}");
        assert_eq!(s.conf_state().voters, vec![g]);
    }
}

#[test]
fn concurrent_groups_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), log_opts(64 << 20, 8));
    let groups: Vec<RaftLogStorage> = (1..=8)
        .map(|g| RaftLogStorage::open_in(&log, g).unwrap())
        .collect();
    let before = log.stats();
    thread::scope(|s| {
        for g in &groups {
            s.spawn(move || write(g, 1, 50, 64, 1));
        }
    });
    let after = log.stats();
    assert_eq!(after.records - before.records, 8 * 50);
    // Each append fsyncs once on its own; coalesced, fewer fsyncs than appends.
    assert!(
        after.fsyncs - before.fsyncs < 8 * 50,
        "{} fsyncs for 400 appends",
        after.fsyncs - before.fsyncs
    );
    for g in &groups {
        assert_eq!(g.last_index().unwrap(), 50);
    }
}

#[test]
fn a_replica_wal_refuses_node_log_records_and_the_other_way_round() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(&dir.path().join("node"), log_opts(1 << 20, 8));
        let a = RaftLogStorage::open_in(&log, 1).unwrap();
        write(&a, 1, 2, 10, 1);
        let own = RaftLogStorage::open(&dir.path().join("own"), opts(1 << 20)).unwrap();
        write(&own, 1, 2, 10, 1);
    }
    let lane = dir.path().join("node").join("lane-0");
    assert!(RaftLogStorage::open(&lane, opts(1 << 20)).is_err());
    assert!(NodeLog::open(&dir.path().join("own"), log_opts(1 << 20, 8)).is_err());
}
