//! Multi-process tests of the node's multi-raft runtime: real `node` processes, real
//! sockets, real files. Every group runs the KV test state machine.

mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use common::wire::{self, InternalError, Proposal};
use harness::kv::{self, KvClient, KvCommand, KvOutcome, KvRead};
use harness::{election_timeout, Cluster, ClusterOptions, SERIAL};

const LONG: Duration = Duration::from_secs(30);

fn key(i: usize) -> String {
    format!("key-{i:04}")
}

/// A started 3-node cluster with `count` keys written to `group` (value
/// "before"), and that group's current leader.
async fn cluster_with_writes(group: u64, count: usize) -> (Cluster, u64) {
    let cluster = Cluster::start(kv::options()).await;
    cluster.wait_all_leaders(LONG).await;
    for i in 0..count {
        cluster
            .put(group, &key(i), "before", LONG)
            .await
            .expect("put");
    }
    let leader = cluster
        .find_leader(group, &cluster.ids())
        .await
        .expect("leader");
    (cluster, leader)
}

#[tokio::test]
async fn three_nodes_elect_leaders_and_replicate_writes_to_every_replica() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(kv::options()).await;
    let leaders = cluster.wait_all_leaders(LONG).await;
    assert_eq!(leaders.len(), 3, "groups 0, 1, 2");

    for g in cluster.groups() {
        for i in 0..30 {
            cluster
                .put(g, &key(i), &format!("g{g}-v{i}"), LONG)
                .await
                .unwrap_or_else(|e| panic!("put {i} in group {g}: {e}"));
        }
    }
    for g in cluster.groups() {
        assert_eq!(
            cluster.get(g, &key(7), LONG).await.unwrap(),
            Some(format!("g{g}-v7"))
        );
        assert_eq!(cluster.get(g, "absent", LONG).await.unwrap(), None);
        let (applied, digest) = cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
        assert!(applied >= 30);
        assert_ne!(digest, format!("{:016x}", 0));
        for id in cluster.ids() {
            let r = cluster.replica(id, g).await.expect("status");
            assert_eq!(r.records, Some(30), "node {id} group {g}");
        }
    }
    // Groups hold different data.
    let d1 = cluster.replica(1, 1).await.unwrap().digest;
    let d2 = cluster.replica(1, 2).await.unwrap().digest;
    assert_ne!(d1, d2);

    // Every node reports its groups and agrees on the leaders.
    for id in cluster.ids() {
        let infos = cluster.group_infos(id).await;
        assert_eq!(
            infos.iter().map(|i| i.group).collect::<Vec<_>>(),
            cluster.groups()
        );
        for info in infos {
            assert!(info.applied >= 30, "{info:?}");
            assert!(info.leader.is_some(), "{info:?}");
        }
    }

    // Leadership moves on request (and the preferred leader takes it back later).
    let from = cluster
        .find_leader(0, &cluster.ids())
        .await
        .expect("leader");
    let to = cluster
        .ids()
        .into_iter()
        .find(|&i| i != from)
        .expect("other node");
    cluster.transfer_leader(from, 0, to).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.find_leader(0, &cluster.ids()).await != Some(to) {
        assert!(
            Instant::now() < deadline,
            "leadership of group 0 did not move to {to}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster
        .put(0, "after-transfer", "ok", LONG)
        .await
        .expect("put");

    // A follower answers NotLeader with the leader's id.
    let leader = cluster
        .find_leader(1, &cluster.ids())
        .await
        .expect("leader");
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    let cmd = KvCommand::Put {
        key: "x".into(),
        value: "y".into(),
    };
    match cluster
        .propose(follower, 1, &cmd, Duration::from_secs(2))
        .await
    {
        Err(InternalError::NotLeader { leader: Some(l) }) => assert_eq!(l, leader),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    match cluster
        .read(follower, 1, &KvRead::Len, Duration::from_secs(2))
        .await
    {
        Err(InternalError::NotLeader { .. }) => {}
        other => panic!("expected NotLeader, got {other:?}"),
    }
    match cluster
        .propose(leader, 99, &cmd, Duration::from_secs(2))
        .await
    {
        Err(InternalError::UnknownGroup(99)) => {}
        other => panic!("expected UnknownGroup, got {other:?}"),
    }
}

#[tokio::test]
async fn killed_leader_is_replaced_and_writes_go_on() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(kv::options()).await;
    cluster.wait_all_leaders(LONG).await;
    let group = 1;
    for i in 0..20 {
        cluster
            .put(group, &key(i), "before", LONG)
            .await
            .expect("put before");
    }
    let old = cluster
        .find_leader(group, &cluster.ids())
        .await
        .expect("leader");
    cluster.kill_node(old);
    let killed_at = Instant::now();

    cluster
        .put(group, "after", "yes", LONG)
        .await
        .expect("a write after the leader died");
    let took = killed_at.elapsed();
    let new = cluster
        .find_leader(group, &cluster.running())
        .await
        .expect("new leader");
    assert_ne!(new, old);
    assert!(
        took < election_timeout() * 8,
        "new leader took {took:?} (election timeout {:?})",
        election_timeout()
    );
    for i in 0..20 {
        assert_eq!(
            cluster.get(group, &key(i), LONG).await.unwrap().as_deref(),
            Some("before")
        );
    }
    // Every group is still served (the dead node led some of them, maybe).
    cluster.wait_all_leaders(LONG).await;

    // The old leader comes back, catches up, and the replicas converge.
    cluster.spawn_node(old);
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    assert_eq!(
        cluster.get(group, "after", LONG).await.unwrap().as_deref(),
        Some("yes")
    );
}

/// What [`lag_a_follower`] left behind.
struct Lagged {
    leader: u64,
    /// The follower killed, and its last log index then.
    lagger: u64,
    lagger_last: u64,
    live: Vec<u64>,
    /// The index the live replicas converged on.
    applied: u64,
}

/// Writes a key to `group`, kills one of its followers, writes 150 more keys on the
/// others and waits until they converge.
async fn lag_a_follower(cluster: &Cluster, group: u64) -> Lagged {
    cluster.put(group, "first", "1", LONG).await.expect("put");
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    let leader = cluster
        .find_leader(group, &cluster.ids())
        .await
        .expect("leader");
    let lagger = cluster
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    let lagger_last = cluster
        .replica(lagger, group)
        .await
        .expect("status")
        .last_index;
    cluster.kill_node(lagger);
    for i in 0..150 {
        cluster
            .put(group, &key(i), &format!("v{i}"), LONG)
            .await
            .expect("put");
    }
    let live = cluster.running();
    let (applied, _) = cluster.wait_group_converged(group, &live, LONG).await;
    Lagged {
        leader,
        lagger,
        lagger_last,
        live,
        applied,
    }
}

/// Restarts `lagger` and waits until it holds what the others hold (all 151 keys).
async fn catch_up(cluster: &Cluster, group: u64, lagger: u64, applied: u64) -> wire::ReplicaStatus {
    cluster.spawn_node(lagger);
    let (caught_up, digest) = cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    assert!(caught_up >= applied);
    let r = cluster.replica(lagger, group).await.expect("status");
    assert_eq!(r.digest, digest);
    assert_eq!(r.records, Some(151));
    r
}

#[tokio::test]
async fn lagging_node_catches_up_by_snapshot_after_log_compaction() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(ClusterOptions {
        snapshot_interval_entries: Some(20),
        ..kv::options()
    })
    .await;
    cluster.wait_all_leaders(LONG).await;
    let group = 1;
    // A follower is killed; the others write well past several compactions.
    let Lagged {
        leader,
        lagger,
        lagger_last,
        live,
        applied,
    } = lag_a_follower(&cluster, group).await;
    for &id in &live {
        let r = cluster.replica(id, group).await.expect("status");
        assert!(
            r.snapshot_index > lagger_last + 1,
            "node {id}: log must be compacted past the lagger's last index {lagger_last}: {r:?}"
        );
    }

    let r = catch_up(&cluster, group, lagger, applied).await;
    assert!(
        r.snapshot_index > lagger_last,
        "the lagger installed a snapshot: {r:?}"
    );
    assert!(
        std::fs::read_to_string(cluster.node_log(lagger))
            .unwrap_or_default()
            .contains("snapshot installed"),
        "{}",
        cluster.node_log_tail(lagger, 40)
    );

    // It serves as a full replica afterwards: it can lead and answer.
    cluster.kill_node(leader);
    cluster
        .put(group, "post", "snapshot", LONG)
        .await
        .expect("put after failover");
    assert_eq!(
        cluster
            .get(group, &key(149), LONG)
            .await
            .unwrap()
            .as_deref(),
        Some("v149")
    );
}

#[tokio::test]
async fn lagging_node_catches_up_from_entries_the_leader_reads_back_from_its_wal() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(ClusterOptions {
        // No applied entry stays in memory, and no snapshot compacts the log.
        entry_cache_bytes: Some(0),
        wal_segment_bytes: Some(8 << 10),
        ..kv::options()
    })
    .await;
    cluster.wait_all_leaders(LONG).await;
    let group = 1;
    let Lagged {
        leader,
        lagger,
        applied,
        ..
    } = lag_a_follower(&cluster, group).await;
    let r = catch_up(&cluster, group, lagger, applied).await;
    assert_eq!(r.snapshot_index, 0, "caught up from entries: {r:?}");
    let leader_log = std::fs::read_to_string(cluster.node_log(leader)).unwrap_or_default();
    assert!(
        !leader_log.contains("cannot read entries back"),
        "{}",
        cluster.node_log_tail(leader, 40)
    );
}

#[tokio::test]
async fn whole_cluster_restart_keeps_every_committed_write() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(ClusterOptions {
        snapshot_interval_entries: Some(25),
        ..kv::options()
    })
    .await;
    cluster.wait_all_leaders(LONG).await;
    for g in cluster.groups() {
        for i in 0..40 {
            cluster
                .put(g, &key(i), &format!("{g}/{i}"), LONG)
                .await
                .expect("put");
        }
    }
    let digests: Vec<String> = {
        let mut d = Vec::new();
        for g in cluster.groups() {
            d.push(
                cluster
                    .wait_group_converged(g, &cluster.ids(), LONG)
                    .await
                    .1,
            );
        }
        d
    };
    for id in cluster.ids() {
        cluster.kill_node(id);
    }
    for id in cluster.ids() {
        cluster.spawn_node(id);
    }
    cluster.wait_all_leaders(LONG).await;
    for g in cluster.groups() {
        for i in 0..40 {
            assert_eq!(
                cluster.get(g, &key(i), LONG).await.expect("get").as_deref(),
                Some(format!("{g}/{i}").as_str()),
                "group {g} key {i}"
            );
        }
        let (_, digest) = cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
        assert_eq!(digest, digests[g as usize], "group {g}");
    }
    // And the cluster takes writes again.
    cluster
        .put(1, "after-restart", "ok", LONG)
        .await
        .expect("put");
}

#[tokio::test]
async fn partitioned_minority_leader_stops_serving_and_nothing_diverges_after_heal() {
    let _serial = SERIAL.lock().await;
    let group = 1;
    let (cluster, old) = cluster_with_writes(group, 10).await;
    let majority: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != old).collect();
    cluster.partition(&[old]).await;

    // The old leader must not acknowledge a write or a read any more.
    let cmd = KvCommand::Put {
        key: "minority".into(),
        value: "lost".into(),
    };
    let reply = cluster
        .propose(old, group, &cmd, Duration::from_secs(2))
        .await;
    assert!(
        reply.is_err(),
        "minority leader acknowledged a write: {reply:?}"
    );
    let read = cluster
        .read(old, group, &KvRead::Len, Duration::from_secs(2))
        .await;
    assert!(read.is_err(), "minority leader answered a read: {read:?}");

    // The majority elects a leader and goes on.
    let new = cluster.wait_leader(group, &majority, LONG).await;
    assert_ne!(new, old);
    let new_read = cluster
        .read(
            new,
            group,
            &KvRead::Get { key: key(3) },
            Duration::from_secs(2),
        )
        .await
        .expect("majority read");
    assert_eq!(new_read, kv::KvReadReply::Value(Some("before".into())));
    let cmd2 = KvCommand::Put {
        key: "majority".into(),
        value: "kept".into(),
    };
    let mut ok = false;
    for _ in 0..50 {
        if cluster
            .propose(new, group, &cmd2, Duration::from_secs(2))
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the majority leader accepts writes");
    // The cut-off node still does not serve.
    let reply = cluster
        .propose(old, group, &cmd, Duration::from_secs(1))
        .await;
    assert!(
        reply.is_err(),
        "partitioned node acknowledged a write: {reply:?}"
    );

    cluster.heal().await;
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    assert_eq!(
        cluster
            .get(group, "majority", LONG)
            .await
            .unwrap()
            .as_deref(),
        Some("kept")
    );
    assert_eq!(
        cluster.get(group, "minority", LONG).await.unwrap(),
        None,
        "an unacknowledged minority write survived"
    );
    for g in cluster.groups() {
        cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
    }
}

/// A proposal waiting on a leader that loses its quorum is answered `NotLeader` when that
/// leader steps down (the router then retries on the new leader with the same request id),
/// not left to wait out its budget on an entry that may never commit.
#[tokio::test]
async fn a_deposed_leader_answers_its_waiting_proposals_at_once() {
    let _serial = SERIAL.lock().await;
    let group = 1;
    let (cluster, old) = cluster_with_writes(group, 1).await;
    cluster.partition(&[old]).await;
    // Sent at once, it reaches the old leader before check_quorum deposes it (an
    // election timeout later): the entry is appended and cannot commit.
    let cmd = KvCommand::Put {
        key: "cut-off".into(),
        value: "unknown".into(),
    };
    let budget = Duration::from_secs(20);
    match cluster.propose(old, group, &cmd, budget).await {
        Err(InternalError::NotLeader { .. }) => {}
        other => panic!("expected NotLeader from the deposed leader, got {other:?}"),
    }
    cluster.heal().await;
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
}

#[test]
fn bad_config_exits_with_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[cluster]\nname = 3\n").expect("write");
    for args in [
        vec![
            "--config".to_string(),
            bad.display().to_string(),
            "--id".into(),
            "1".into(),
        ],
        vec![
            "--config".into(),
            dir.path().join("missing.toml").display().to_string(),
            "--id".into(),
            "1".into(),
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_node"))
            .args(&args)
            .output()
            .expect("run node");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("node:"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let good =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster-config/local-3.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_node"))
        .args(["--config", &good.display().to_string(), "--id", "9"])
        .output()
        .expect("run node");
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_node"))
        .args(["--config", &good.display().to_string(), "--print-nodes"])
        .output()
        .expect("run node");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[tokio::test]
async fn acknowledged_writes_survive_a_leader_kill_under_concurrent_load() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(ClusterOptions {
        snapshot_interval_entries: Some(40),
        ..kv::options()
    })
    .await;
    cluster.wait_all_leaders(LONG).await;
    let group = 2;
    let leader = cluster
        .find_leader(group, &cluster.ids())
        .await
        .expect("leader");
    let acked = parking_lot::Mutex::new(Vec::new());
    let writer = |w: usize| {
        let (cluster, acked) = (&cluster, &acked);
        async move {
            for i in 0..40 {
                let k = format!("w{w}-{i:02}");
                if cluster.put(group, &k, &k, LONG).await.is_ok() {
                    acked.lock().push(k);
                }
            }
        }
    };
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.kill_node(leader);
    };
    futures::future::join(futures::future::join_all((0..4).map(writer)), killer).await;
    let acked = acked.into_inner();
    assert_eq!(acked.len(), 160, "every write is eventually acknowledged");
    for k in &acked {
        assert_eq!(
            cluster.get(group, k, LONG).await.expect("get").as_deref(),
            Some(k.as_str())
        );
    }
    cluster.spawn_node(leader);
    let (_, digest) = cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    let r = cluster.replica(leader, group).await.expect("status");
    assert_eq!(r.digest, digest);
    assert_eq!(r.records, Some(160));
}

#[tokio::test]
async fn paused_leader_is_replaced_and_rejoins_without_divergence() {
    let _serial = SERIAL.lock().await;
    let group = 1;
    let (cluster, old) = cluster_with_writes(group, 10).await;
    let others: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != old).collect();
    cluster.pause_node(old, true);
    let new = cluster.wait_leader(group, &others, LONG).await;
    assert_ne!(new, old);
    cluster
        .put(group, "during-pause", "yes", LONG)
        .await
        .expect("write while the old leader is paused");
    cluster.pause_node(old, false);
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    assert_eq!(
        cluster
            .get(group, "during-pause", LONG)
            .await
            .unwrap()
            .as_deref(),
        Some("yes")
    );
    for g in cluster.groups() {
        cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
    }
}

#[tokio::test]
async fn five_nodes_host_groups_by_placement() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(ClusterOptions {
        nodes: 5,
        shard_count: 5,
        ..kv::options()
    })
    .await;
    let leaders = cluster.wait_all_leaders(LONG).await;
    assert_eq!(leaders.len(), 6);
    for (&g, &leader) in &leaders {
        let replicas = cluster.replicas_of(g);
        assert_eq!(replicas.len(), 3);
        assert!(
            replicas.contains(&leader),
            "group {g} led by {leader}, not a replica"
        );
        cluster
            .put(g, "k", &format!("group {g}"), LONG)
            .await
            .expect("put");
        cluster.wait_group_converged(g, &replicas, LONG).await;
        for id in cluster.ids() {
            let hosted = cluster.replica(id, g).await.is_some();
            assert_eq!(hosted, replicas.contains(&id), "node {id} group {g}");
        }
        // A node outside the group knows nothing of it.
        let outsider = cluster
            .ids()
            .into_iter()
            .find(|i| !replicas.contains(i))
            .expect("outsider");
        let cmd = KvCommand::Put {
            key: "x".into(),
            value: "y".into(),
        };
        assert_eq!(
            cluster
                .propose(outsider, g, &cmd, Duration::from_secs(1))
                .await,
            Err(InternalError::UnknownGroup(g))
        );
    }
}

#[tokio::test]
async fn without_a_quorum_requests_fail_before_their_deadline() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(kv::options()).await;
    cluster.wait_all_leaders(LONG).await;
    cluster.put(1, "a", "1", LONG).await.expect("put");
    cluster.kill_node(2);
    cluster.kill_node(3);
    let budget = Duration::from_secs(1);
    let cmd = KvCommand::Put {
        key: "b".into(),
        value: "2".into(),
    };
    // Until node 1 notices (check_quorum), it may still think it leads; either way nothing
    // succeeds and nothing takes much longer than the budget.
    for _ in 0..5 {
        for g in cluster.groups() {
            let started = Instant::now();
            let reply = cluster.propose(1, g, &cmd, budget).await;
            assert!(
                reply.is_err(),
                "group {g}: a write without a quorum succeeded"
            );
            assert!(
                started.elapsed() < budget + Duration::from_millis(900),
                "propose took {:?}",
                started.elapsed()
            );
            let started = Instant::now();
            let read = cluster.read(1, g, &KvRead::Len, budget).await;
            assert!(
                read.is_err(),
                "group {g}: a read without a quorum succeeded: {read:?}"
            );
            assert!(
                started.elapsed() < budget + Duration::from_millis(900),
                "read took {:?}",
                started.elapsed()
            );
        }
    }
    // Once node 1 has stepped down, it says so at once.
    tokio::time::sleep(election_timeout() * 3).await;
    let started = Instant::now();
    match cluster.propose(1, 1, &cmd, budget).await {
        Err(InternalError::NotLeader { leader: None }) => {}
        other => panic!("expected NotLeader without a hint, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    // The majority comes back: the write goes through again.
    cluster.spawn_node(2);
    cluster
        .put(1, "c", "3", LONG)
        .await
        .expect("put after the quorum is back");
    // ("b" timed out: its outcome is unknown. If node 1 had appended it and wins the next
    // election with the longer log, it commits; either way every replica agrees.)
    assert_eq!(
        cluster.get(1, "c", LONG).await.unwrap().as_deref(),
        Some("3")
    );
    cluster.wait_group_converged(1, &[1, 2], LONG).await;
}

/// A copy of an acknowledged proposal that arrives late (it waited in some node's queue
/// while the router retried elsewhere) never applies a second time, even after more
/// requests than the dedup window counts went through the group: while the window only
/// counted, such a copy overwrote a later acknowledged write to the same key (issue 12,
/// finding 2). A copy whose deadline has passed is refused before it enters the log.
#[tokio::test]
async fn a_late_copy_of_an_applied_proposal_never_applies_again() {
    let _serial = SERIAL.lock().await;
    let group = 1;
    let (cluster, leader) = cluster_with_writes(group, 1).await;
    let budget = Duration::from_secs(60);
    let put = |value: &str| KvCommand::Put {
        key: "x".into(),
        value: value.into(),
    };
    let first = node::kv::proposal(&put("first"), budget);
    let path = format!("/internal/{group}/propose");
    let send = |proposal: &Proposal<KvCommand>| {
        let body = wire::encode(proposal).expect("encode");
        cluster.post_internal(leader, &path, body, LONG)
    };
    send(&first).await.expect("the first copy applies");

    // More other requests than the window counts, so a count alone would forget `first`.
    let others: Vec<usize> = (0..node::kv::DEDUP_WINDOW + 100).collect();
    for chunk in others.chunks(32) {
        let puts = chunk.iter().map(|&i| {
            let cmd = KvCommand::Put {
                key: key(i),
                value: "filler".into(),
            };
            let cluster = &cluster;
            async move { cluster.propose(leader, group, &cmd, LONG).await }
        });
        for reply in futures::future::join_all(puts).await {
            reply.expect("filler put");
        }
    }
    cluster
        .put(group, "x", "second", LONG)
        .await
        .expect("second put");

    let late = send(&first).await.expect("the late copy is answered");
    let outcome: KvOutcome = wire::decode(&late).expect("outcome");
    assert!(matches!(outcome, KvOutcome::Done { .. }), "{outcome:?}");
    assert_eq!(
        cluster.get(group, "x", LONG).await.expect("get"),
        Some("second".to_owned()),
        "the late copy of the first put applied again over the acknowledged second"
    );

    let expired = Proposal {
        request_id: rand::random(),
        deadline_ms: common::clock::unix_ms() - 1,
        command: put("expired"),
    };
    match send(&expired).await {
        Err(InternalError::Timeout) => {}
        other => panic!("expected Timeout for an expired proposal, got {other:?}"),
    }
    assert_eq!(
        cluster.get(group, "x", LONG).await.expect("get"),
        Some("second".to_owned())
    );
}
