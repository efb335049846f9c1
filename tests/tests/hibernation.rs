//! Hibernating groups on real processes: once nothing happens, every shard group stops
//! ticking and heartbeating (the nodes' Raft traffic all but stops), a write wakes its
//! groups and is acknowledged as usual, the sleeping leader of a group cut off in a
//! minority steps down, and killing the node that leads a sleeping group still brings a
//! new leader and writes through (its followers notice the silence of the leader's node
//! through the transport's node-level keepalives).

use std::time::{Duration, Instant};

use common::wire::RaftRole;
use serde_json::json;
use tests::{Cluster, ClusterOptions};

/// Waits until every replica of every shard group on `nodes` hibernates.
async fn wait_all_shards_asleep(cluster: &Cluster, nodes: &[u64], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut awake = Vec::new();
        for &id in nodes {
            let status = cluster.status(id).await.expect("status");
            for r in status.replicas.iter().filter(|r| r.group != 0) {
                if !r.hibernating {
                    awake.push((id, r.group));
                }
            }
        }
        if awake.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still awake after {timeout:?}: {awake:?}\n{}",
            cluster.log_tails(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Raft messages sent by `nodes` so far.
async fn sent(cluster: &Cluster, nodes: &[u64]) -> u64 {
    let mut total = 0;
    for &id in nodes {
        total += cluster.status(id).await.expect("status").sent_messages;
    }
    total
}

fn batch(prefix: &str) -> serde_json::Value {
    let ids: Vec<String> = (0..30).map(|i| format!("{prefix}{i}")).collect();
    let embeddings: Vec<Vec<f64>> = (0..30).map(|i| vec![i as f64, 1.0, 0.5]).collect();
    json!({"ids": ids, "embeddings": embeddings})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_groups_sleep_wake_on_writes_and_fail_over_when_their_leader_dies() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let all = cluster.ids();
    let client = cluster.client(0);
    let collection = client.new_collection("sleepy", json!({})).await;
    client.add_ok(&collection, &batch("a")).await;

    // Idle: every shard group sleeps (1 s of idle ticks at 50 ms, then the quiet
    // heartbeat), and the cluster's Raft traffic drops. Awake, the four groups'
    // heartbeats and answers are 2 followers x 10/s x 2 x 4 = 160 messages a second
    // (480 in 3 s); asleep, only the metadata group sends any (the router reads the
    // cluster map every 2 s, which wakes it for a second or more): at most 40 a
    // second (120 in 3 s; about 100 measured).
    wait_all_shards_asleep(&cluster, &all, Duration::from_secs(20)).await;
    let before = sent(&cluster, &all).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = sent(&cluster, &all).await - before;
    eprintln!("raft messages in 3 s with every shard group asleep: {quiet}");
    assert!(
        quiet < 240,
        "{quiet} raft messages in 3 s with every shard group asleep"
    );

    // A write wakes the groups it touches and is acknowledged as usual.
    client.add_ok(&collection, &batch("b")).await;
    assert_eq!(client.count(&collection).await, 60);
    wait_all_shards_asleep(&cluster, &all, Duration::from_secs(20)).await;

    // The node leading group 2 is cut off from the others while the group sleeps: the
    // majority elects a leader, and the old one, though asleep, notices that it no
    // longer hears a quorum, wakes and steps down (check_quorum) instead of calling
    // itself the leader until the partition heals.
    let cut = cluster.find_leader(2, &all).await.expect("group 2 leader");
    let majority: Vec<u64> = all.iter().copied().filter(|&n| n != cut).collect();
    cluster.partition(&[cut]).await;
    let cut_at = Instant::now();
    let elected = cluster
        .wait_leader(2, &majority, Duration::from_secs(20))
        .await;
    assert_ne!(elected, cut);
    let stepped_down = cluster
        .wait_stepped_down(cut, 2, cut_at, Duration::from_secs(20))
        .await;
    eprintln!("group 2's sleeping leader stepped down {stepped_down:?} after being cut off");
    cluster.heal().await;
    client.add_ok(&collection, &batch("p")).await;
    assert_eq!(client.count(&collection).await, 90);
    wait_all_shards_asleep(&cluster, &all, Duration::from_secs(20)).await;

    // The node leading group 1 dies while the group sleeps: its followers notice the
    // silence of that node, elect a leader, and writes go through.
    let leader = cluster.find_leader(1, &all).await.expect("group 1 leader");
    cluster.kill_node(leader);
    let rest: Vec<u64> = all.iter().copied().filter(|&n| n != leader).collect();
    let killed = Instant::now();
    let new_leader = cluster.wait_leader(1, &rest, Duration::from_secs(20)).await;
    eprintln!(
        "group 1 led again {:?} after its sleeping leader's node died",
        killed.elapsed()
    );
    assert_ne!(new_leader, leader);
    let replica = cluster.replica(new_leader, 1).await.expect("replica");
    assert_eq!(replica.role, RaftRole::Leader);
    client.add_ok(&collection, &batch("c")).await;
    assert_eq!(client.count(&collection).await, 120);
}
