//! raft-rs's `RawNode` driven on `RaftLogStorage`: election, replication, compaction, a
//! lagging follower caught up by snapshot, and restarts from disk. The ready loop follows
//! raft-rs's `five_mem_node` example.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use raft::prelude::{Entry, EntryType, Message, SnapshotMetadata};
use raft::{Config, RawNode, StateRole, Storage};

use super::support::*;
use crate::storage::RaftLogStorage;

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Latest packed state-machine snapshot of a peer: (metadata, bytes).
type SnapshotBlob = Arc<Mutex<Option<(SnapshotMetadata, Vec<u8>)>>>;

struct Peer {
    id: u64,
    store: RaftLogStorage,
    node: RawNode<RaftLogStorage>,
    /// The state machine: the values of the applied normal entries, in order.
    applied: Vec<u64>,
    applied_index: u64,
    blob: SnapshotBlob,
}

fn encode(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

impl Peer {
    fn open(id: u64, dir: &Path, bootstrap: bool) -> Peer {
        let store = RaftLogStorage::open(dir, opts(2048)).unwrap();
        if bootstrap {
            store.set_conf_state(&conf_state(&[1, 2, 3])).unwrap();
        }
        // The state machine restarts from the latest snapshot (it is not persisted
        // separately in this test, so the applied index restarts there too).
        let snap = store.latest_snapshot_metadata();
        let blob: SnapshotBlob = Arc::new(Mutex::new(None));
        let source = blob.clone();
        store.set_snapshot_source(Arc::new(move |m| {
            source
                .lock()
                .as_ref()
                .filter(|(have, _)| have.index == m.index)
                .map(|(_, bytes)| bytes.clone())
        }));
        let cfg = Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: snap.index,
            ..Default::default()
        };
        let node = RawNode::new(&cfg, store.clone(), &logger()).unwrap();
        Peer {
            id,
            store,
            node,
            applied: Vec::new(),
            applied_index: snap.index,
            blob,
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                self.applied.push(decode(&e.data)[0]);
            }
            self.applied_index = e.index;
        }
    }

    /// One pass of the ready loop; returns the messages to send.
    fn on_ready(&mut self) -> Vec<Message> {
        if !self.node.has_ready() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut rd = self.node.ready();
        out.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.applied = decode(&snap.data);
            self.applied_index = snap.get_metadata().index;
            self.store.install_snapshot(snap.get_metadata()).unwrap();
        }
        self.apply(rd.take_committed_entries());
        self.store.append(rd.entries(), rd.hs()).unwrap();
        out.extend(rd.take_persisted_messages());
        let mut light = self.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit).unwrap();
        }
        out.extend(light.take_messages());
        self.apply(light.take_committed_entries());
        self.node.advance_apply();
        self.store.evict_applied(self.node.raft.raft_log.applied);
        out
    }

    /// Packs the state machine as a snapshot at the applied index and compacts the log.
    fn snapshot_and_compact(&mut self) {
        let mut meta = SnapshotMetadata {
            index: self.applied_index,
            term: self.store.term(self.applied_index).unwrap(),
            ..Default::default()
        };
        meta.set_conf_state(self.store.conf_state());
        *self.blob.lock() = Some((meta.clone(), encode(&self.applied)));
        self.store.compact(&meta).unwrap();
    }
}

/// Runs ready loops and delivers messages until quiet. `down` peers neither send nor
/// receive. With `tick`, every peer ticks each round (heartbeats, probes).
fn pump(peers: &mut [Peer], down: &[u64], tick: bool, rounds: usize) {
    for _ in 0..rounds {
        let mut msgs = Vec::new();
        for p in peers.iter_mut() {
            if down.contains(&p.id) {
                continue;
            }
            if tick {
                p.node.tick();
            }
            msgs.extend(p.on_ready());
        }
        if msgs.is_empty() && !tick {
            return;
        }
        for m in msgs {
            if down.contains(&m.to) {
                continue;
            }
            if let Some(p) = peers.iter_mut().find(|p| p.id == m.to) {
                p.node.step(m).unwrap();
            }
        }
    }
}

/// Three bootstrapped peers on `dirs`, node 1 elected; `entry_cache_bytes` for each
/// log's budget of applied entries in memory (default if `None`).
fn three_peers(dirs: &[tempfile::TempDir], entry_cache_bytes: Option<u64>) -> Vec<Peer> {
    let mut peers: Vec<Peer> = (1..=3)
        .map(|id| Peer::open(id, dirs[id as usize - 1].path(), true))
        .collect();
    if let Some(bytes) = entry_cache_bytes {
        for p in &peers {
            p.store.set_entry_cache_bytes(bytes);
        }
    }
    peers[0].node.campaign().unwrap();
    pump(&mut peers, &[], false, 50);
    assert_eq!(peers[0].node.raft.state, StateRole::Leader);
    peers
}

/// Nodes 1 and 2 commit and apply the values 0..100 while node 3 is cut off.
fn commit_100_without_node_3(peers: &mut [Peer]) {
    for v in 0..100u64 {
        peers[0]
            .node
            .propose(vec![], v.to_le_bytes().to_vec())
            .unwrap();
        pump(peers, &[3], false, 50);
    }
    assert_eq!(peers[0].applied, (0..100).collect::<Vec<_>>());
    assert_eq!(peers[1].applied, peers[0].applied);
    assert!(peers[2].applied.is_empty());
}

#[test]
fn raw_node_replicates_compacts_and_catches_up_a_follower_by_snapshot() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut peers = three_peers(&dirs, None);
    // Node 3 is cut off while 1 and 2 commit 100 values.
    commit_100_without_node_3(&mut peers);

    // The leader snapshots and compacts: node 3's missing entries are gone from its log.
    let segments_before = peers[0].store.segments().len();
    peers[0].snapshot_and_compact();
    let snap_index = peers[0].store.latest_snapshot_metadata().index;
    assert!(snap_index >= 100);
    assert!(peers[0].store.segments().len() < segments_before);
    assert!(peers[0].store.first_index().unwrap() > 1);

    // Heal: the leader must send a snapshot, then the entries after it.
    peers[0]
        .node
        .propose(vec![], 100u64.to_le_bytes().to_vec())
        .unwrap();
    pump(&mut peers, &[], true, 30);
    pump(&mut peers, &[], false, 50);
    assert_eq!(peers[2].applied, (0..=100).collect::<Vec<_>>());
    assert_eq!(peers[2].store.latest_snapshot_metadata().index, snap_index);
    assert_eq!(
        peers[2].store.last_index().unwrap(),
        peers[0].store.last_index().unwrap()
    );

    // Restart every node from disk: same logs, and replication goes on.
    let before: Vec<Observed> = peers.iter().map(|p| observe(&p.store)).collect();
    drop(peers);
    let mut peers: Vec<Peer> = (1..=3)
        .map(|id| Peer::open(id, dirs[id as usize - 1].path(), false))
        .collect();
    for (p, want) in peers.iter().zip(&before) {
        assert_eq!(&observe(&p.store), want, "node {}", p.id);
    }
    peers[0].node.campaign().unwrap();
    pump(&mut peers, &[], false, 50);
    assert_eq!(peers[0].node.raft.state, StateRole::Leader);
    peers[0]
        .node
        .propose(vec![], 101u64.to_le_bytes().to_vec())
        .unwrap();
    pump(&mut peers, &[], false, 50);
    let last = peers[0].store.last_index().unwrap();
    for p in &peers {
        assert_eq!(p.store.last_index().unwrap(), last, "node {}", p.id);
        assert_eq!(p.applied.last(), Some(&101), "node {}", p.id);
        assert_eq!(p.store.hard_state().commit, last, "node {}", p.id);
    }
}

#[test]
fn raw_node_catches_up_a_follower_from_entries_read_back_from_the_wal() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Nothing applied stays in memory.
    let mut peers = three_peers(&dirs, Some(0));
    // Node 3 is cut off while 1 and 2 commit 100 values; no snapshot is taken.
    commit_100_without_node_3(&mut peers);
    assert_eq!(
        peers[0].store.cached_entry_bytes(),
        0,
        "every applied entry evicted"
    );
    assert!(peers[0].store.segments().len() > 2);

    // Heal: the leader reads node 3's missing entries back from its WAL.
    pump(&mut peers, &[], true, 30);
    pump(&mut peers, &[], false, 50);
    assert_eq!(peers[2].applied, (0..100).collect::<Vec<_>>());
    assert_eq!(
        peers[2].store.latest_snapshot_metadata().index,
        0,
        "caught up from entries, not a snapshot"
    );
    assert!(!peers[0].store.take_snapshot_wanted());
    assert_eq!(
        all_entries(&peers[2].store),
        all_entries(&peers[0].store),
        "the follower's log is the leader's"
    );
}
