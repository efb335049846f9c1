//! Checks a peer's Raft message against the replica's state before it is stepped.
//!
//! raft-rs trusts its peers: a message no correct peer sends can make it panic (`fatal!`)
//! or corrupt its state. Read from raft-rs 0.7's `step` paths, for example:
//! - a heartbeat whose `commit` is past the last index: `RaftLog::commit_to` panics;
//! - an append whose entries are not contiguous after `index`, so one lands at or below
//!   the commit index with another term: "conflict with committed entry" panics (and a
//!   slice index underflows);
//! - an append probing at or above the commit index with a `log_term` below the term of
//!   the committed entry: the rejection's conflict search walks into the compacted log and
//!   panics ("term must be valid");
//! - a message with term 0 is taken as a local one and skips every term check;
//! - `MsgPropose` from a peer appends its entries to the leader's log (a command no
//!   router sent); a huge term overflows `term + 1` at the next election.
//!
//! So only the message types replicas of this cluster send each other pass, from a member
//! of the group other than this node (what a leader sends: from a voter; votes: asked by
//! a voter; answers: from any member, learners included), with fields a correct peer could
//! have set. A replica that is not settled in its group yet takes what a leader sends from
//! any peer, and never votes: it may have lost a log it voted with. Not settled means
//! without a configuration (created empty, waiting for the leader's log or snapshot), or
//! with only one from before its addition: on its way to the entry that added it, it
//! replays the group's history, whose configurations may not hold the current leader and
//! may even hold this node as a voter from an earlier membership (removed, then added
//! again). What a correct peer never sends here is refused even
//! when harmless (a dropped message is retransmitted by Raft if it was real): snapshot
//! requests, forwarded proposals, reads and leadership transfers (this cluster only starts
//! those on the leader), legacy (v1) or undecodable configuration-change entries, and
//! snapshots whose configuration does not hold this node.

use raft::prelude::{ConfChangeV2, ConfState, EntryType, Message, MessageType};
use raft::{Raft, Storage};

/// How far a message's term may be ahead of the replica's. A term grows by one per
/// election, so no real peer is this far ahead; the bound keeps `term + 1` from ever
/// overflowing.
pub const MAX_TERM_JUMP: u64 = 1 << 32;

/// Indexes are bounded well below `u64::MAX` so index arithmetic cannot overflow.
const MAX_INDEX: u64 = u64::MAX / 4;

/// Why a message is refused (logged with the sender).
pub type Refusal = String;

/// Most members a configuration (a snapshot's, or a conf change's changes) may name.
const MAX_MEMBERS: usize = 256;

fn is_voter(conf: &ConfState, id: u64) -> bool {
    conf.voters.contains(&id) || conf.voters_outgoing.contains(&id)
}

/// Whether `id` is in `conf` at all (voter or learner, incoming or outgoing).
pub fn is_member(conf: &ConfState, id: u64) -> bool {
    is_voter(conf, id) || conf.learners.contains(&id) || conf.learners_next.contains(&id)
}

/// A replica with no configuration: created empty, it has not received the group's log.
pub fn is_uninitialized(conf: &ConfState) -> bool {
    conf.voters.is_empty() && conf.learners.is_empty() && conf.voters_outgoing.is_empty()
}

/// What a replica knows of its own place in the group, for [`check`].
#[derive(Debug, Clone, Copy)]
pub struct Standing<'a> {
    /// The replica's configuration.
    pub conf: &'a ConfState,
    /// Whether `conf` is one this replica is a settled member under: false while it has
    /// none, or only one from before the entry that added it (see the module's doc).
    pub settled: bool,
}

impl<'a> Standing<'a> {
    /// `conf` took effect at `conf_index`; the replica was added to the group at
    /// `joined_at` (0 for a founding member).
    pub fn new(conf: &'a ConfState, conf_index: u64, joined_at: u64) -> Self {
        Standing {
            conf,
            settled: !is_uninitialized(conf) && conf_index >= joined_at,
        }
    }
}

/// Whether `m` may be stepped on `raft`, whose place in its group is `standing`.
pub fn check<S: Storage>(raft: &Raft<S>, standing: Standing, m: &Message) -> Result<(), Refusal> {
    use MessageType::*;
    if m.to != raft.id {
        return Err(format!("addressed to node {}", m.to));
    }
    if m.from == raft.id {
        return Err("from this node itself".into());
    }
    let t = m.get_msg_type();
    let conf = standing.conf;
    let settled = standing.settled;
    match t {
        MsgRequestVote | MsgRequestPreVote if !settled => {
            return Err("this replica is not settled in the group yet and never votes".into())
        }
        MsgRequestVote | MsgRequestPreVote | MsgTimeoutNow if !is_voter(conf, m.from) => {
            return Err(format!("node {} is not another voter of the group", m.from))
        }
        MsgAppend | MsgHeartbeat | MsgSnapshot if settled && !is_voter(conf, m.from) => {
            return Err(format!("node {} is not another voter of the group", m.from))
        }
        _ if settled && !is_member(conf, m.from) => {
            return Err(format!("node {} is not a member of the group", m.from))
        }
        _ => {}
    }
    match t {
        MsgAppend
        | MsgAppendResponse
        | MsgRequestVote
        | MsgRequestVoteResponse
        | MsgRequestPreVote
        | MsgRequestPreVoteResponse
        | MsgSnapshot
        | MsgHeartbeat
        | MsgHeartbeatResponse
        | MsgTimeoutNow => {}
        other => return Err(format!("{other:?} is not sent between replicas here")),
    }
    if m.term == 0 {
        return Err("term 0 (only local messages have it)".into());
    }
    if m.term > raft.term.saturating_add(MAX_TERM_JUMP) {
        return Err(format!(
            "term {} is implausibly far ahead of {}",
            m.term, raft.term
        ));
    }
    if m.log_term > m.term {
        return Err(format!("log term {} above term {}", m.log_term, m.term));
    }
    if [m.index, m.commit, m.reject_hint]
        .iter()
        .any(|&i| i > MAX_INDEX)
    {
        return Err("index out of range".into());
    }
    if t != MsgAppend && !m.entries.is_empty() {
        return Err(format!("{t:?} carrying entries"));
    }
    if t != MsgSnapshot && m.has_snapshot() {
        return Err(format!("{t:?} carrying a snapshot"));
    }
    let log = &raft.raft_log;
    match t {
        MsgHeartbeat if m.commit > log.last_index() => Err(format!(
            "heartbeat commit {} past the last index {}",
            m.commit,
            log.last_index()
        )),
        MsgAppend => check_append(raft, m),
        MsgSnapshot => check_snapshot(raft.id, m),
        MsgAppendResponse => {
            if m.request_snapshot != 0 {
                Err("snapshot request".into())
            } else if m.index > log.last_index() || m.reject_hint > log.last_index() {
                Err(format!(
                    "response for index {} (hint {}) past the last index {}",
                    m.index,
                    m.reject_hint,
                    log.last_index()
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn check_append<S: Storage>(raft: &Raft<S>, m: &Message) -> Result<(), Refusal> {
    let log = &raft.raft_log;
    let mut prev_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        let want = m.index + 1 + i as u64;
        if e.index != want {
            return Err(format!(
                "entries not contiguous: index {} where {want} belongs",
                e.index
            ));
        }
        if e.term < prev_term || e.term > m.term {
            return Err(format!(
                "entry {} has term {} outside [{prev_term}, {}]",
                e.index, e.term, m.term
            ));
        }
        match e.get_entry_type() {
            EntryType::EntryNormal => {}
            EntryType::EntryConfChangeV2 => check_conf_change(&e.data)
                .map_err(|why| format!("conf change entry {}: {why}", e.index))?,
            EntryType::EntryConfChange => {
                return Err(format!("entry {} is a legacy (v1) conf change", e.index))
            }
        }
        prev_term = e.term;
    }
    // raft-rs answers an append below the commit index without looking at it. Above it,
    // the leader's entry at `index` is at least as new as our committed one (it holds
    // every committed entry).
    if m.index >= log.committed {
        let committed_term = log
            .term(log.committed)
            .map_err(|e| format!("no term for the commit index: {e}"))?;
        if m.log_term < committed_term {
            return Err(format!(
                "append at {} with log term {} older than the committed term {committed_term}",
                m.index, m.log_term
            ));
        }
    }
    Ok(())
}

/// A conf change entry's body: a decodable `ConfChangeV2` naming few, real nodes. (raft-rs
/// checks the change itself when it is applied; one it refuses fails this replica only.)
fn check_conf_change(data: &[u8]) -> Result<(), Refusal> {
    let cc: ConfChangeV2 =
        protobuf::Message::parse_from_bytes(data).map_err(|e| format!("undecodable: {e}"))?;
    if cc.changes.len() > MAX_MEMBERS {
        return Err(format!("{} changes", cc.changes.len()));
    }
    if cc.changes.iter().any(|c| c.node_id == 0) {
        return Err("node id 0".into());
    }
    Ok(())
}

fn check_snapshot(me: u64, m: &Message) -> Result<(), Refusal> {
    if !m.has_snapshot() || !m.get_snapshot().has_metadata() {
        return Err("snapshot message without snapshot metadata".into());
    }
    let meta = m.get_snapshot().get_metadata();
    if meta.index == 0 || meta.index > MAX_INDEX || meta.term == 0 || meta.term > m.term {
        return Err(format!(
            "snapshot at index {} term {} (message term {})",
            meta.index, meta.term, m.term
        ));
    }
    let cs = meta.get_conf_state();
    let named =
        cs.voters.len() + cs.learners.len() + cs.voters_outgoing.len() + cs.learners_next.len();
    let ids = || {
        cs.voters
            .iter()
            .chain(&cs.learners)
            .chain(&cs.voters_outgoing)
            .chain(&cs.learners_next)
    };
    if cs.voters.is_empty() || named > MAX_MEMBERS || ids().any(|&id| id == 0) {
        return Err(format!("snapshot configuration {cs:?} is not a usable one"));
    }
    if !is_member(cs, me) {
        return Err(format!(
            "snapshot configuration {:?} (learners {:?}) does not hold this node",
            cs.voters, cs.learners
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use raft::prelude::{Config, Entry, HardState, Snapshot, SnapshotMetadata};
    use raft::storage::MemStorage;
    use raft::RawNode;

    use super::*;

    /// A follower (node 1 of {1, 2, 3}) with entries 1..=5 of term 2, 3 of them committed.
    fn follower() -> (RawNode<MemStorage>, ConfState) {
        let conf = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let storage = MemStorage::new_with_conf_state(conf.clone());
        let entries: Vec<Entry> = (1..=5)
            .map(|i| Entry {
                index: i,
                term: 2,
                ..Default::default()
            })
            .collect();
        storage.wl().append(&entries).unwrap();
        storage.wl().set_hardstate(HardState {
            term: 2,
            vote: 2,
            commit: 3,
            ..Default::default()
        });
        let cfg = Config {
            id: 1,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        (RawNode::new(&cfg, storage, &logger).unwrap(), conf)
    }

    fn message(t: MessageType, from: u64, term: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.from = from;
        m.to = 1;
        m.term = term;
        m
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    /// A snapshot at index 10, term 3, from node 2, whose configuration has `voters`.
    fn snapshot_message(voters: Vec<u64>) -> Message {
        let mut meta = SnapshotMetadata {
            index: 10,
            term: 3,
            ..Default::default()
        };
        meta.set_conf_state(ConfState {
            voters,
            ..Default::default()
        });
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        let mut m = message(MessageType::MsgSnapshot, 2, 3);
        m.set_snapshot(snap);
        m
    }

    /// The hostile messages the module docs name. Each is refused, and (proving the check
    /// is needed) stepping it unchecked panics raft-rs or would be accepted.
    fn hostile() -> Vec<(&'static str, Message, bool)> {
        use MessageType::*;
        let mut heartbeat = message(MsgHeartbeat, 2, 3);
        heartbeat.commit = 1_000;
        let mut gap = message(MsgAppend, 2, 3);
        gap.index = 3;
        gap.log_term = 2;
        gap.entries = vec![entry(2, 3)].into();
        let mut stale_probe = message(MsgAppend, 2, 3);
        stale_probe.index = 4;
        stale_probe.log_term = 1;
        let mut read_resp = message(MsgReadIndexResp, 2, 2);
        read_resp.index = 1;
        let mut propose = message(MsgPropose, 2, 0);
        propose.entries = vec![entry(0, 0)].into();
        let mut huge = message(MsgHeartbeat, 2, u64::MAX);
        huge.commit = 1;
        let snapshot = snapshot_message(vec![2, 9]);
        let no_voters = snapshot_message(vec![]);
        let mut undecodable = message(MsgAppend, 2, 3);
        undecodable.index = 5;
        undecodable.log_term = 2;
        let mut bad = entry(6, 3);
        bad.set_entry_type(EntryType::EntryConfChangeV2);
        bad.data = vec![0xff; 7].into();
        undecodable.entries = vec![bad].into();
        let mut conf_change = message(MsgAppend, 2, 3);
        conf_change.index = 5;
        conf_change.log_term = 2;
        let mut cc = entry(6, 3);
        cc.set_entry_type(EntryType::EntryConfChange);
        conf_change.entries = vec![cc].into();
        vec![
            ("heartbeat commit past the log", heartbeat, true),
            ("append conflicting with committed entries", gap, true),
            ("probe older than the committed term", stale_probe, false),
            ("read index response", read_resp, false),
            ("forwarded proposal", propose, false),
            ("huge term", huge, false),
            (
                "snapshot of a configuration without this node",
                snapshot,
                false,
            ),
            (
                "snapshot of a configuration without voters",
                no_voters,
                false,
            ),
            ("legacy configuration change entry", conf_change, false),
            ("undecodable configuration change entry", undecodable, false),
            (
                "vote asked by a learner",
                message(MsgRequestVote, 4, 3),
                false,
            ),
            ("spoofed sender", message(MsgHeartbeat, 7, 3), false),
            ("from itself", message(MsgHeartbeat, 1, 3), false),
            ("term 0 append", message(MsgAppend, 2, 0), false),
        ]
    }

    #[test]
    fn hostile_messages_are_refused() {
        for (name, m, panics_unchecked) in hostile() {
            let (node, conf) = follower();
            assert!(
                check(&node.raft, Standing::new(&conf, 0, 0), &m).is_err(),
                "{name} passed"
            );
            if panics_unchecked {
                let (mut node, _) = follower();
                let stepped = catch_unwind(AssertUnwindSafe(|| node.step(m.clone())));
                assert!(stepped.is_err(), "{name}: raft-rs did not panic unchecked");
            }
        }
    }

    #[test]
    fn a_replica_without_configuration_takes_a_leader_s_messages_and_never_votes() {
        use MessageType::*;
        let storage = MemStorage::new();
        let cfg = Config {
            id: 1,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&cfg, storage, &logger).unwrap();
        let empty = ConfState::default();
        // Node 7 is in no configuration this replica knows: it may be the leader.
        let mut append = message(MsgAppend, 7, 3);
        append.entries = vec![entry(1, 1)].into();
        let mut cc = entry(2, 1);
        cc.set_entry_type(EntryType::EntryConfChangeV2);
        cc.data = protobuf::Message::write_to_bytes(&ConfChangeV2::default())
            .unwrap()
            .into();
        append.entries.push(cc);
        assert_eq!(
            check(&node.raft, Standing::new(&empty, 0, 0), &append),
            Ok(())
        );
        assert_eq!(
            check(
                &node.raft,
                Standing::new(&empty, 0, 0),
                &message(MsgHeartbeat, 7, 3)
            ),
            Ok(())
        );
        for t in [MsgRequestVote, MsgRequestPreVote] {
            assert!(
                check(&node.raft, Standing::new(&empty, 0, 0), &message(t, 7, 3)).is_err(),
                "{t:?}"
            );
        }
        // A snapshot that makes it a member passes; one that does not, not.
        let mut joins = snapshot_message(vec![7]);
        let mut cs = joins.get_snapshot().get_metadata().get_conf_state().clone();
        cs.learners = vec![1];
        joins.mut_snapshot().mut_metadata().set_conf_state(cs);
        assert_eq!(
            check(&node.raft, Standing::new(&empty, 0, 0), &joins),
            Ok(())
        );
        assert!(check(
            &node.raft,
            Standing::new(&empty, 0, 0),
            &snapshot_message(vec![7])
        )
        .is_err());
    }

    #[test]
    fn a_replica_replaying_history_from_before_its_addition_takes_the_leader_and_never_votes() {
        use MessageType::*;
        // Long-tier seed 1033: the replica of node 1, added again at index 40 after an
        // earlier membership, took a snapshot at index 12 whose configuration holds it as
        // a voter and not node 7, the group's leader now.
        let (node, conf) = follower();
        let replaying = Standing::new(&conf, 12, 40);
        assert!(!replaying.settled);
        let mut heartbeat = message(MsgHeartbeat, 7, 3);
        heartbeat.commit = 5;
        assert_eq!(check(&node.raft, replaying, &heartbeat), Ok(()));
        for t in [MsgRequestVote, MsgRequestPreVote] {
            let mut vote = message(t, 2, 3);
            vote.index = 9;
            vote.log_term = 3;
            assert!(check(&node.raft, replaying, &vote).is_err(), "{t:?}");
        }
        // Once the entry that added it is applied, it is settled: the usual rules.
        let settled = Standing::new(&conf, 40, 40);
        assert!(check(&node.raft, settled, &heartbeat).is_err());
    }

    #[test]
    fn learners_answer_the_leader_but_neither_lead_nor_ask_for_votes() {
        use MessageType::*;
        let (node, mut conf) = follower();
        conf.learners = vec![4];
        let mut response = message(MsgAppendResponse, 4, 2);
        response.index = 3;
        assert_eq!(
            check(&node.raft, Standing::new(&conf, 0, 0), &response),
            Ok(())
        );
        for t in [MsgHeartbeat, MsgAppend, MsgRequestVote, MsgTimeoutNow] {
            assert!(
                check(&node.raft, Standing::new(&conf, 0, 0), &message(t, 4, 3)).is_err(),
                "{t:?}"
            );
        }
        // A voter of the outgoing half of a joint configuration still leads.
        conf.voters_outgoing = vec![1, 2, 5];
        assert_eq!(
            check(
                &node.raft,
                Standing::new(&conf, 0, 0),
                &message(MsgHeartbeat, 5, 3)
            ),
            Ok(())
        );
    }

    #[test]
    fn what_a_leader_sends_passes() {
        use MessageType::*;
        let (node, conf) = follower();
        let mut heartbeat = message(MsgHeartbeat, 2, 3);
        heartbeat.commit = 5;
        let mut append = message(MsgAppend, 2, 3);
        append.index = 5;
        append.log_term = 2;
        append.commit = 6;
        append.entries = vec![entry(6, 3), entry(7, 3)].into();
        let mut below_commit = message(MsgAppend, 2, 3);
        below_commit.index = 1;
        below_commit.log_term = 1;
        let mut vote = message(MsgRequestPreVote, 3, 3);
        vote.index = 9;
        vote.log_term = 3;
        let snapshot = snapshot_message(vec![3, 2, 1]);
        for m in [heartbeat, append, below_commit, vote, snapshot] {
            let t = m.get_msg_type();
            assert_eq!(
                check(&node.raft, Standing::new(&conf, 0, 0), &m),
                Ok(()),
                "{t:?}"
            );
            let (mut node, _) = follower();
            node.step(m).unwrap();
        }
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        const TYPES: [MessageType; 14] = [
            MessageType::MsgAppend,
            MessageType::MsgAppendResponse,
            MessageType::MsgRequestVote,
            MessageType::MsgRequestVoteResponse,
            MessageType::MsgRequestPreVote,
            MessageType::MsgRequestPreVoteResponse,
            MessageType::MsgSnapshot,
            MessageType::MsgHeartbeat,
            MessageType::MsgHeartbeatResponse,
            MessageType::MsgTimeoutNow,
            MessageType::MsgPropose,
            MessageType::MsgReadIndex,
            MessageType::MsgReadIndexResp,
            MessageType::MsgTransferLeader,
        ];

        /// Small numbers around the fixture's log (1..=5, commit 3) and a few extremes.
        fn number() -> impl Strategy<Value = u64> {
            prop_oneof![
                8 => 0u64..9,
                1 => Just(u64::MAX),
                1 => Just(u64::MAX / 2),
                1 => Just(1u64 << 33),
            ]
        }

        fn entry_strategy() -> impl Strategy<Value = Entry> {
            (number(), 0u64..6, any::<bool>()).prop_map(|(index, term, conf)| {
                let mut e = Entry {
                    index,
                    term,
                    ..Default::default()
                };
                if conf {
                    e.set_entry_type(EntryType::EntryConfChange);
                }
                e
            })
        }

        fn message_strategy() -> impl Strategy<Value = Message> {
            (
                (0..TYPES.len(), 0u64..5, 1u64..3, number()),
                (
                    number(),
                    number(),
                    number(),
                    number(),
                    any::<bool>(),
                    0u64..2,
                ),
                prop::collection::vec(entry_strategy(), 0..4),
                prop::option::of((number(), 0u64..6, prop::collection::vec(0u64..5, 0..4))),
                any::<bool>(),
            )
                .prop_map(
                    |(
                        (t, from, to, term),
                        (index, log_term, commit, hint, reject, request),
                        entries,
                        snap,
                        contiguous,
                    )| {
                        let mut m = Message::default();
                        m.set_msg_type(TYPES[t]);
                        m.from = from;
                        m.to = to;
                        m.term = term;
                        m.index = index;
                        m.log_term = log_term;
                        m.commit = commit;
                        m.reject_hint = hint;
                        m.reject = reject;
                        m.request_snapshot = request;
                        let mut entries = entries;
                        if contiguous {
                            // Often well-formed, so the deeper paths are reached too.
                            for (i, e) in entries.iter_mut().enumerate() {
                                e.index = index.wrapping_add(1 + i as u64);
                                e.term = term.min(e.term.max(log_term));
                            }
                        }
                        m.entries = entries.into();
                        if let Some((sindex, sterm, voters)) = snap {
                            let mut meta = SnapshotMetadata {
                                index: sindex,
                                term: sterm,
                                ..Default::default()
                            };
                            meta.set_conf_state(ConfState {
                                voters,
                                ..Default::default()
                            });
                            let mut s = Snapshot::default();
                            s.set_metadata(meta);
                            m.set_snapshot(s);
                        }
                        m
                    },
                )
        }

        /// One ready round as a replica runs it (persist, apply the snapshot, advance).
        fn ready_round(node: &mut RawNode<MemStorage>) {
            if !node.has_ready() {
                return;
            }
            let mut rd = node.ready();
            let store = node.store().clone();
            if !rd.snapshot().is_empty() {
                let _ = store.wl().apply_snapshot(rd.snapshot().clone());
            }
            let _ = store.wl().append(rd.entries());
            if let Some(hs) = rd.hs() {
                store.wl().set_hardstate(hs.clone());
            }
            let _ = rd.take_messages();
            let mut light = node.advance(rd);
            let _ = light.take_messages();
            if let Some(commit) = light.commit_index() {
                store.wl().mut_hard_state().set_commit(commit);
            }
            node.advance_apply();
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Whatever a peer sends, what passes the check steps without a panic, on a
            /// follower and on a leader, ready rounds included.
            #[test]
            fn checked_messages_never_panic_raft(
                leader in any::<bool>(),
                messages in prop::collection::vec(message_strategy(), 1..6),
            ) {
                let (mut node, conf) = follower();
                if leader {
                    node.raft.become_candidate();
                    node.raft.become_leader();
                    ready_round(&mut node);
                }
                for m in messages {
                    if check(&node.raft, Standing::new(&conf, 0, 0), &m).is_err() {
                        continue;
                    }
                    let described = format!("{m:?}");
                    let stepped = catch_unwind(AssertUnwindSafe(|| {
                        let _ = node.step(m);
                        ready_round(&mut node);
                    }));
                    prop_assert!(stepped.is_ok(), "raft-rs panicked on {}", described);
                }
            }
        }
    }
}
