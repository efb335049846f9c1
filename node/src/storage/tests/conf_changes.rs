//! Configurations by index: a snapshot carries the configuration at its own index (not a
//! newer one a later conf change made), and a restart rewinds to the configuration at the
//! applied index so raft-rs applies the later conf changes exactly once.

use raft::prelude::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
    EntryType, SnapshotMetadata,
};
use raft::{Config, RawNode, Storage};

use super::support::*;
use crate::storage::RaftLogStorage;

fn with_learner(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState {
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        ..Default::default()
    }
}

#[test]
fn a_compaction_keeps_the_configuration_at_its_index_and_restart_rewinds_to_the_applied_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
        s.set_conf_state_at(0, &conf_state(&[1, 2, 3])).unwrap();
        s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>(), None)
            .unwrap();
        s.set_commit(10).unwrap();
        s.set_conf_state_at(5, &with_learner(&[1, 2, 3], &[4]))
            .unwrap();
        s.set_conf_state_at(8, &conf_state(&[1, 2, 3, 4])).unwrap();
        assert_eq!(s.conf_state_at(4), conf_state(&[1, 2, 3]));
        assert_eq!(s.conf_state_at(5), with_learner(&[1, 2, 3], &[4]));
        assert_eq!(s.conf_state_at(7), with_learner(&[1, 2, 3], &[4]));
        assert_eq!(s.conf_state(), conf_state(&[1, 2, 3, 4]));

        // A snapshot at 6 made after the change at 8: it must carry the learner config.
        let mut m = SnapshotMetadata {
            index: 6,
            term: 1,
            ..Default::default()
        };
        m.set_conf_state(s.conf_state_at(6));
        s.compact(&m).unwrap();
        s.set_snapshot_source(std::sync::Arc::new(|_| Some(b"state".to_vec())));
        let sent = s.snapshot(6, 4).unwrap();
        assert_eq!(
            sent.get_metadata().get_conf_state(),
            &with_learner(&[1, 2, 3], &[4])
        );
        assert_eq!(s.conf_state(), conf_state(&[1, 2, 3, 4]));
        // Node 5 is not in the snapshot's configuration: a newer snapshot is asked for.
        assert!(!s.take_snapshot_wanted());
        assert!(s.snapshot(6, 5).is_err());
        assert!(s.take_snapshot_wanted());
        assert!(!s.take_snapshot_wanted(), "the request is taken once");
    }
    let s = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(
        s.latest_snapshot_metadata().get_conf_state(),
        &with_learner(&[1, 2, 3], &[4])
    );
    assert_eq!(s.conf_state(), conf_state(&[1, 2, 3, 4]));
    assert_eq!(
        s.initial_state().unwrap().conf_state,
        conf_state(&[1, 2, 3, 4])
    );
    // A state machine applied to 7: the change at 8 is handed over again, so it goes.
    s.rewind_conf_state(7);
    assert_eq!(s.conf_state(), with_learner(&[1, 2, 3], &[4]));
    assert_eq!(
        s.initial_state().unwrap().conf_state,
        with_learner(&[1, 2, 3], &[4])
    );
    // Applied again: recorded once, the newest again.
    s.set_conf_state_at(8, &conf_state(&[1, 2, 3, 4])).unwrap();
    let again = RaftLogStorage::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(again.conf_state(), conf_state(&[1, 2, 3, 4]));
    assert_eq!(again.conf_state_at(7), with_learner(&[1, 2, 3], &[4]));
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Opens node 1 alone (bootstrapped as the single voter), applied to `applied`.
fn single(dir: &std::path::Path, applied: u64) -> (RaftLogStorage, RawNode<RaftLogStorage>) {
    let s = RaftLogStorage::open(dir, opts(1 << 20)).unwrap();
    if s.conf_state().voters.is_empty() {
        s.set_conf_state_at(0, &conf_state(&[1])).unwrap();
    }
    s.rewind_conf_state(applied);
    let cfg = Config {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 1,
        applied,
        ..Default::default()
    };
    let node = RawNode::new(&cfg, s.clone(), &logger()).unwrap();
    (s, node)
}

/// One ready round that applies conf changes (as the replica does when entries commit),
/// without reporting them applied to raft-rs (as after a crash before the apply thread
/// caught up). Returns the indexes of the conf changes applied.
fn ready_applying_conf_changes(s: &RaftLogStorage, node: &mut RawNode<RaftLogStorage>) -> Vec<u64> {
    let mut applied = Vec::new();
    let mut apply = |node: &mut RawNode<RaftLogStorage>, ents: Vec<Entry>| {
        for e in ents {
            if e.get_entry_type() == EntryType::EntryConfChangeV2 {
                let cc: ConfChangeV2 = protobuf::Message::parse_from_bytes(&e.data).unwrap();
                let cs = node
                    .apply_conf_change(&cc)
                    .expect("conf change applies once");
                s.set_conf_state_at(e.index, &cs).unwrap();
                applied.push(e.index);
            }
        }
    };
    while node.has_ready() {
        let mut rd = node.ready();
        apply(node, rd.take_committed_entries());
        s.append(rd.entries(), rd.hs()).unwrap();
        let mut light = node.advance_append(rd);
        if let Some(c) = light.commit_index() {
            s.set_commit(c).unwrap();
        }
        apply(node, light.take_committed_entries());
    }
    applied
}

#[test]
fn a_restart_between_entering_and_leaving_a_joint_configuration_applies_the_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let joint_at = {
        let (s, mut node) = single(dir.path(), 0);
        node.campaign().unwrap();
        ready_applying_conf_changes(&s, &mut node);
        let mut cc = ConfChangeV2::default();
        cc.set_transition(ConfChangeTransition::Explicit);
        cc.set_changes(
            vec![ConfChangeSingle {
                change_type: ConfChangeType::AddLearnerNode,
                node_id: 2,
                ..Default::default()
            }]
            .into(),
        );
        node.propose_conf_change(vec![], cc).unwrap();
        let applied = ready_applying_conf_changes(&s, &mut node);
        assert_eq!(applied.len(), 1);
        let cs = s.conf_state();
        assert_eq!(
            cs.voters_outgoing,
            vec![1],
            "in the joint configuration: {cs:?}"
        );
        applied[0]
    };
    // The state machine had applied up to just before the change when the node stopped.
    let (s, mut node) = single(dir.path(), joint_at - 1);
    assert!(
        s.conf_state().voters_outgoing.is_empty(),
        "raft-rs restarts with the configuration before the change"
    );
    let applied = ready_applying_conf_changes(&s, &mut node);
    assert_eq!(applied, vec![joint_at]);
    assert_eq!(s.conf_state().learners, vec![2]);
    assert_eq!(s.conf_state().voters_outgoing, vec![1]);
}
