//! A replica that fails stops alone, on real node processes (KV state machine):
//! - a damaged middle WAL segment of one group on one node: the node runs, that group is
//!   failed in `/admin/status` with the file and offset, its other groups serve, the
//!   cluster still takes writes;
//! - a committed entry that panics when applied: every replica of that group stops, no
//!   node exits, and a restart fails the group again at the same entry instead of
//!   crash-looping;
//! - a wiped data directory: the node does not vote or serve for its old groups (failed,
//!   "lost its data"), the rest of the cluster works and no acknowledged write is lost.

mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::wire::{InternalError, ReplicaState, ReplicaStatus};
use harness::{election_timeout, Cluster, Options, SERIAL};
use node::kv::{KvCommand, KvRead};
use node::storage::wal::codec::decode_frame;
use node::storage::wal::segment::{self, HEADER_LEN};

const LONG: Duration = Duration::from_secs(30);

fn wal_dir(cluster: &Cluster, node: u64, group: u64) -> PathBuf {
    cluster
        .config
        .node_data_dir(node)
        .join(format!("group-{group}"))
        .join("wal")
}

/// Start offsets of every frame in a segment file.
fn frame_starts(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).expect("segment");
    let mut pos = HEADER_LEN as usize;
    let mut starts = Vec::new();
    while let Ok(Some((_, used))) = decode_frame(&bytes[pos..]) {
        starts.push(pos as u64);
        pos += used;
    }
    starts
}

/// Waits until node `id` reports `group` in `state`; returns that status.
async fn wait_state(cluster: &Cluster, id: u64, group: u64, state: ReplicaState) -> ReplicaStatus {
    let deadline = Instant::now() + LONG;
    loop {
        let r = cluster.replica(id, group).await;
        if let Some(r) = &r {
            if r.state == state {
                return r.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {id} group {group}: not {state:?}: {r:?}\n{}",
            cluster.log_tail(id, 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn expect_replica_failed(cluster: &Cluster, id: u64, group: u64) {
    let reply = cluster
        .propose(
            id,
            group,
            &KvCommand::Put {
                key: "x".into(),
                value: "y".into(),
            },
            Duration::from_secs(2),
        )
        .await;
    assert!(
        matches!(reply, Err(InternalError::ReplicaFailed(_))),
        "a failed replica must answer ReplicaFailed: {reply:?}"
    );
    let read = cluster
        .read(id, group, &KvRead::Len, Duration::from_secs(2))
        .await;
    assert!(
        matches!(read, Err(InternalError::ReplicaFailed(_))),
        "{read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_middle_wal_segment_fails_that_group_alone() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Options {
        wal_segment_bytes: Some(4096),
        ..Options::default()
    });
    cluster.wait_all_leaders(LONG).await;
    let (group, other) = (1, 2);
    let value = "v".repeat(300);
    for i in 0..60 {
        cluster
            .put(group, &format!("k{i}"), &value, LONG)
            .await
            .expect("put");
    }
    let victim = 3;
    cluster.wait_converged(group, &[1, 2, 3], LONG).await;
    cluster.kill(victim);

    let dir = wal_dir(&cluster, victim, group);
    let segs = segment::list(&dir).expect("segments");
    assert!(segs.len() >= 3, "want a middle segment: {segs:?}");
    let middle = segment::path(&dir, segs[1]);
    let starts = frame_starts(&middle);
    assert!(starts.len() >= 2, "{starts:?}");
    let frame = starts[starts.len() / 2];
    let mut bytes = fs::read(&middle).unwrap();
    bytes[frame as usize + 12] ^= 0x5a;
    fs::write(&middle, &bytes).unwrap();

    cluster.spawn(victim);
    let failed = wait_state(&cluster, victim, group, ReplicaState::Failed).await;
    let error = failed.error.expect("a failed replica says why");
    let name = segment::file_name(segs[1]);
    assert!(
        error.contains("WAL damaged")
            && error.contains(&name)
            && error.contains(&format!("offset {frame}")),
        "{error}"
    );
    assert!(cluster.is_running(victim), "the node runs");
    // Nothing was cut: every segment is still there.
    assert_eq!(segment::list(&dir).unwrap(), segs);
    expect_replica_failed(&cluster, victim, group).await;

    // The node's other groups serve, and the cluster takes writes in every group.
    wait_state(&cluster, victim, other, ReplicaState::Running).await;
    wait_state(&cluster, victim, 0, ReplicaState::Running).await;
    cluster.put(other, "after", "1", LONG).await.expect("put");
    cluster.put(group, "after", "1", LONG).await.expect("put");
    cluster.wait_converged(other, &[1, 2, 3], LONG).await;
    assert_eq!(
        cluster.get(group, "k0", LONG).await.expect("get"),
        Some(value)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_entry_stops_its_group_without_killing_nodes_or_crash_looping() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Options::default());
    cluster.wait_all_leaders(LONG).await;
    let (group, other) = (1, 2);
    cluster.put(group, "before", "1", LONG).await.expect("put");
    let leader = cluster.wait_leader(group, &[1, 2, 3], LONG).await;
    // The proposer is never answered (its replica stops first).
    let _ = cluster
        .propose(
            leader,
            group,
            &KvCommand::PanicOnApply,
            Duration::from_secs(2),
        )
        .await;
    for id in [1, 2, 3] {
        let r = wait_state(&cluster, id, group, ReplicaState::Failed).await;
        let error = r.error.unwrap_or_default();
        assert!(
            error.contains("apply of entry") && error.contains("panicked"),
            "{error}"
        );
        assert!(cluster.is_running(id));
    }
    cluster
        .put(other, "still", "serving", LONG)
        .await
        .expect("put");

    // A restart replays the entry, fails the group again at it, and keeps running.
    cluster.kill(2);
    cluster.spawn(2);
    let r = wait_state(&cluster, 2, group, ReplicaState::Failed).await;
    assert!(r.error.unwrap_or_default().contains("panicked"));
    wait_state(&cluster, 2, other, ReplicaState::Running).await;
    tokio::time::sleep(election_timeout() * 4).await;
    let status = cluster.status(2).await.expect("node 2 still answers");
    assert!(status
        .replicas
        .iter()
        .any(|r| r.group == group && r.state == ReplicaState::Failed));
    cluster
        .put(other, "after restart", "1", LONG)
        .await
        .expect("put");
    expect_replica_failed(&cluster, 2, group).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_does_not_vote_with_an_empty_log() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Options::default());
    cluster.wait_all_leaders(LONG).await;
    let groups = cluster.groups();
    for &g in &groups {
        for i in 0..5 {
            cluster
                .put(g, &format!("k{i}"), &format!("g{g}-{i}"), LONG)
                .await
                .expect("put");
        }
    }
    let wiped = 3;
    cluster.kill(wiped);
    fs::remove_dir_all(cluster.config.node_data_dir(wiped)).expect("wipe");
    cluster.spawn(wiped);
    for &g in &groups {
        let r = wait_state(&cluster, wiped, g, ReplicaState::Failed).await;
        let error = r.error.unwrap_or_default();
        assert!(
            error.contains("lost its data") && error.contains("new member"),
            "{error}"
        );
        assert_eq!((r.term, r.last_index), (0, 0));
        expect_replica_failed(&cluster, wiped, g).await;
    }
    // The verdict is sticky: a second restart without asking anyone still refuses.
    cluster.kill(wiped);
    cluster.spawn(wiped);
    wait_state(&cluster, wiped, 1, ReplicaState::Failed).await;

    // It never votes: with node 1 down, node 2 alone cannot win an election.
    cluster.kill(1);
    tokio::time::sleep(election_timeout() * 6).await;
    for &g in &groups {
        let l = cluster.find_leader(g, &[2, wiped]).await;
        assert!(
            l.is_none(),
            "group {g} has leader {l:?} without a quorum of real logs"
        );
    }
    // With node 1 back, every acknowledged write is there.
    cluster.spawn(1);
    for &g in &groups {
        for i in 0..5 {
            assert_eq!(
                cluster.get(g, &format!("k{i}"), LONG).await.expect("get"),
                Some(format!("g{g}-{i}"))
            );
        }
    }
    cluster
        .put(1, "after", "1", LONG)
        .await
        .expect("writes still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_whose_peers_are_down_waits_without_voting_until_they_answer() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(Options::default());
    cluster.wait_all_leaders(LONG).await;
    cluster.put(1, "acked", "1", LONG).await.expect("put");
    for id in [1, 2, 3] {
        cluster.kill(id);
    }
    fs::remove_dir_all(cluster.config.node_data_dir(3)).expect("wipe");
    cluster.spawn(3);
    // Nobody to ask: every group waits, not started, not voting.
    for g in cluster.groups() {
        let r = wait_state(&cluster, 3, g, ReplicaState::Waiting).await;
        assert!(
            r.error.unwrap_or_default().contains("waiting for nodes"),
            "group {g}"
        );
    }
    tokio::time::sleep(election_timeout() * 4).await;
    for g in cluster.groups() {
        let r = cluster.replica(3, g).await.expect("node 3 answers");
        assert_eq!(r.state, ReplicaState::Waiting, "group {g}: {r:?}");
        assert_eq!(r.term, 0);
    }
    // The peers come back and remember node 3: its groups fail, the cluster serves.
    cluster.spawn(1);
    cluster.spawn(2);
    for g in cluster.groups() {
        wait_state(&cluster, 3, g, ReplicaState::Failed).await;
    }
    assert_eq!(
        cluster.get(1, "acked", LONG).await.expect("get"),
        Some("1".to_string())
    );
}
