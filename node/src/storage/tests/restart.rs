//! Restart: whatever was acknowledged is there after dropping and reopening the storage,
//! and compaction really removes segment files.

use proptest::prelude::*;
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use raft::Storage;

use super::support::*;
use crate::storage::RaftLogStorage;

#[test]
fn restart_preserves_entries_hard_state_conf_state_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
        s.set_conf_state(&conf_state(&[1, 2, 3])).unwrap();
        for i in 1..=20u64 {
            let data = vec![i as u8; i as usize * 10];
            s.append(
                &[entry_with(i, 1 + i / 10, &data)],
                Some(&hard_state(1 + i / 10, 2, i - 1)),
            )
            .unwrap();
        }
        s.set_commit(18).unwrap();
        s.compact(&meta(10, 2, &[1, 2, 3])).unwrap();
        s.set_conf_state(&conf_state(&[1, 2, 3, 4])).unwrap();
        s.append(&[entry(21, 3)], None).unwrap();
        observe(&s)
    };
    assert_eq!(want.first, 11);
    assert_eq!(want.last, 21);
    assert_eq!(want.snapshot, meta(10, 2, &[1, 2, 3]));
    assert_eq!(want.conf_state, conf_state(&[1, 2, 3, 4]));
    assert_eq!(want.hard_state, hard_state(3, 2, 18));

    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(observe(&s), want);
    assert!(s.recovery_report().damage.is_none());
    assert_eq!(s.term(10), Ok(2));
    // And again, after more writes on the reopened log.
    s.append(&[entry(22, 3)], Some(&hard_state(3, 2, 21)))
        .unwrap();
    let want = observe(&s);
    drop(s);
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(observe(&s), want);
}

#[test]
fn restart_of_a_fresh_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let want = observe(&RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap());
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(observe(&s), want);
    assert_eq!((want.first, want.last), (1, 0));
    assert_eq!(s.segments(), vec![1]);
}

#[test]
fn restart_after_compact_deletes_segments_below() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(4096)).unwrap();
    s.set_conf_state(&conf_state(&[1])).unwrap();
    for i in 1..=200u64 {
        s.append(
            &[entry_with(i, 1, &[0xab; 300])],
            Some(&hard_state(1, 1, i)),
        )
        .unwrap();
    }
    let before = segment_files(dir.path());
    assert!(before.len() > 10, "expected many segments, got {before:?}");
    assert!(
        before.iter().all(|&(_, len)| len <= 4096),
        "segments stay within segment_bytes: {before:?}"
    );

    // Exactly the leading segments whose entries are all <= 150 must go.
    let maxes = max_index_per_segment(dir.path());
    let want_kept: Vec<u64> = maxes
        .iter()
        .skip_while(|&&(_, max)| max <= 150)
        .map(|&(seq, _)| seq)
        .collect();
    s.compact(&meta(150, 1, &[1])).unwrap();
    let after = segment_files(dir.path());
    let kept: Vec<u64> = after.iter().map(|&(seq, _)| seq).collect();
    assert_eq!(kept, want_kept);
    assert_eq!(kept, s.segments());
    assert!(
        kept.len() < before.len() / 2,
        "{} -> {}",
        before.len(),
        kept.len()
    );
    let want = observe(&s);
    assert_eq!((want.first, want.last), (151, 200));
    drop(s);

    let s = RaftLogStorage::open(dir.path(), opts(4096)).unwrap();
    assert_eq!(observe(&s), want);
    assert_eq!(segment_files(dir.path()), after);

    // Compacting to the last index frees every segment but the active one.
    s.compact(&meta(200, 1, &[1])).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    let want = observe(&s);
    assert_eq!((want.first, want.last), (201, 200));
    drop(s);
    let s = RaftLogStorage::open(dir.path(), opts(4096)).unwrap();
    assert_eq!(observe(&s), want);
    s.append(&[entry(201, 2)], None).unwrap();
    assert_eq!(s.last_index(), Ok(201));
}

#[test]
fn restart_after_install_snapshot_keeps_only_the_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(2048)).unwrap();
    for i in 1..=50u64 {
        s.append(&[entry_with(i, 1, &[1; 200])], None).unwrap();
    }
    assert!(segment_files(dir.path()).len() > 3);
    s.install_snapshot(&meta(1000, 7, &[4, 5, 6])).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    s.append(
        &[entry(1001, 7), entry(1002, 7)],
        Some(&hard_state(7, 4, 1001)),
    )
    .unwrap();
    let want = observe(&s);
    drop(s);
    let s = RaftLogStorage::open(dir.path(), opts(2048)).unwrap();
    assert_eq!(observe(&s), want);
    assert_eq!(want.first, 1001);
    assert_eq!(want.conf_state, conf_state(&[4, 5, 6]));
    assert_eq!(want.hard_state, hard_state(7, 4, 1001));
}

#[test]
fn restart_after_conflicting_append_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftLogStorage::open(dir.path(), opts(1024)).unwrap();
    for i in 1..=40u64 {
        s.append(&[entry_with(i, 1, &[1; 100])], None).unwrap();
    }
    // A new leader overwrites from 15 on: the old 15..=40 live in earlier segments.
    let new: Vec<_> = (15..=20).map(|i| entry_with(i, 2, &[2; 100])).collect();
    s.append(&new, Some(&hard_state(2, 2, 14))).unwrap();
    let want = observe(&s);
    assert_eq!(want.last, 20);
    drop(s);
    let s = RaftLogStorage::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(observe(&s), want);
    // Compaction below the overwrite point keeps the segments still holding live entries.
    s.compact(&meta(16, 2, &[])).unwrap();
    let want = observe(&s);
    drop(s);
    let s = RaftLogStorage::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(observe(&s), want);
    assert_eq!(
        want.entries.first().map(|e| (e.index, e.term)),
        Some((17, 2))
    );
}

/// A plain in-memory model of what the storage must serve.
#[derive(Default, Clone)]
struct Model {
    snapshot: SnapshotMetadata,
    entries: Vec<Entry>,
    hard_state: HardState,
    conf_state: ConfState,
}

impl Model {
    fn first(&self) -> u64 {
        self.snapshot.index + 1
    }
    fn last(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }
    fn term(&self, idx: u64) -> u64 {
        if idx == self.snapshot.index {
            self.snapshot.term
        } else {
            self.entries[(idx - self.first()) as usize].term
        }
    }
    fn observed(&self) -> Observed {
        Observed {
            first: self.first(),
            last: self.last(),
            entries: self.entries.clone(),
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state.clone(),
            snapshot: self.snapshot.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Append `count` entries starting `back` entries before the end (a conflict when > 0).
    Append {
        back: u64,
        count: u64,
        size: usize,
        with_hs: bool,
    },
    /// Commit a fraction of the way from the current commit to the last index.
    Commit(u8),
    /// Compact a fraction of the way from the snapshot to the commit index.
    Compact(u8),
    /// Install a snapshot `ahead` entries after the last index.
    Install(u64),
    ConfState(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..4, 1u64..6, 0usize..300, any::<bool>()).prop_map(|(back, count, size, with_hs)| Op::Append { back, count, size, with_hs }),
        3 => any::<u8>().prop_map(Op::Commit),
        3 => any::<u8>().prop_map(Op::Compact),
        1 => (0u64..4).prop_map(Op::Install),
        1 => (1u64..6).prop_map(Op::ConfState),
        2 => Just(Op::Reopen),
    ]
}

fn frac(from: u64, to: u64, f: u8) -> u64 {
    from + (to.saturating_sub(from)) * u64::from(f) / 255
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    #[test]
    fn restart_random_operations_match_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let o = nosync(1500);
        let mut s = RaftLogStorage::open(dir.path(), o).unwrap();
        let mut m = Model::default();
        let mut term = 1;
        for op in ops {
            match op {
                Op::Append { back, count, size, with_hs } => {
                    let start = (m.last() + 1).saturating_sub(back).max(m.hard_state.commit + 1).max(m.first());
                    if back > 0 { term += 1; }
                    let ents: Vec<Entry> = (start..start + count).map(|i| entry_with(i, term, &vec![i as u8; size])).collect();
                    let hs = with_hs.then(|| hard_state(term, 1, m.hard_state.commit));
                    s.append(&ents, hs.as_ref()).unwrap();
                    m.entries.truncate((start - m.first()) as usize);
                    m.entries.extend(ents);
                    if let Some(hs) = hs { m.hard_state = hs; }
                }
                Op::Commit(f) => {
                    let c = frac(m.hard_state.commit, m.last(), f);
                    s.set_commit(c).unwrap();
                    m.hard_state.commit = c;
                }
                Op::Compact(f) => {
                    let idx = frac(m.snapshot.index, m.hard_state.commit.min(m.last()), f);
                    let md = meta(idx, m.term(idx), &[1]);
                    s.compact(&md).unwrap();
                    if idx > m.snapshot.index {
                        m.entries.drain(..(idx - m.snapshot.index) as usize);
                        m.snapshot = md;
                    }
                }
                Op::Install(ahead) => {
                    let idx = m.last().max(m.snapshot.index + 1) + ahead;
                    term += 1;
                    let md = meta(idx, term, &[1, 2]);
                    s.install_snapshot(&md).unwrap();
                    m.entries.clear();
                    m.hard_state.term = m.hard_state.term.max(term);
                    m.hard_state.commit = m.hard_state.commit.max(idx);
                    m.conf_state = md.get_conf_state().clone();
                    m.snapshot = md;
                }
                Op::ConfState(n) => {
                    let cs = conf_state(&(1..=n).collect::<Vec<_>>());
                    s.set_conf_state(&cs).unwrap();
                    m.conf_state = cs;
                }
                Op::Reopen => {
                    drop(s);
                    s = RaftLogStorage::open(dir.path(), o).unwrap();
                    prop_assert!(s.recovery_report().damage.is_none());
                }
            }
            prop_assert_eq!(observe(&s), m.observed());
            let on_disk: Vec<u64> = segment_files(dir.path()).iter().map(|f| f.0).collect();
            prop_assert_eq!(on_disk, s.segments());
        }
        drop(s);
        let s = RaftLogStorage::open(dir.path(), o).unwrap();
        prop_assert_eq!(observe(&s), m.observed());
    }
}
