//! Storage faults through the router (issue 12): power cuts of nodes running
//! in the lose-unsynced storage mode (`tests::faults::power`) under write
//! load, and mid-log WAL corruption of one replica (`tests::faults::corrupt`),
//! then its repair.
//! Both need no root. No acknowledged write may be lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wire::{InternalError, ReplicaState};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tests::cluster::NodeProgram;
use tests::faults::members::{replace_replica, voter_set_problems, Placed, Rejoin};
use tests::faults::power::power_loss_program;
use tests::{Client, Cluster, ClusterOptions};

const LONG: Duration = Duration::from_secs(60);

fn records(ids: &[String]) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().enumerate().map(|(i, _)| vec![i as f32, 1.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|i| format!("doc {i}")).collect::<Vec<_>>(),
    })
}

/// Writers upserting fresh ids in batches until `stop`; every batch the
/// router acknowledged (200) is added to `acked`.
fn spawn_writers(
    c: &Client,
    col: &str,
    writers: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let (c, col, stop, acked) = (c.clone(), col.to_owned(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<String> = (0..5).map(|k| format!("w{w}-{i}-{k}")).collect();
                    i += 1;
                    if c.records(&col, "upsert", &records(&ids)).await.status == 200 {
                        acked.lock().extend(ids);
                    }
                }
            })
        })
        .collect()
}

/// Power cuts under write load: each node alone, then all three at once
/// (the case only fsync protects), with snapshots and WAL compaction on. Every
/// write the router acknowledged is there afterwards and the replicas agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_under_write_load_lose_no_acknowledged_write() {
    let cluster = Cluster::start(ClusterOptions {
        request_timeout_ms: 5_000,
        snapshot_interval_entries: Some(40),
        wal_segment_bytes: Some(16 << 10),
        node_program: power_loss_program(NodeProgram::default()),
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client(0);
    let col = c.new_collection("power", json!({})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers = spawn_writers(&c, &col, 3, &stop, &acked);

    for victim in cluster.ids() {
        tokio::time::sleep(Duration::from_millis(800)).await;
        cluster.power_cut(victim);
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.spawn_node(victim);
        cluster.wait_node_up(victim, LONG).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before_blackout = acked.lock().len();
    for id in cluster.ids() {
        cluster.power_cut(id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in cluster.ids() {
        cluster.spawn_node(id);
    }
    cluster.wait_all_leaders(LONG).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().clone();
    eprintln!(
        "{} ids acknowledged ({before_blackout} before the whole-cluster power cut)",
        acked.len()
    );
    assert!(
        before_blackout >= 50 && acked.len() > before_blackout,
        "too little load to prove anything: {before_blackout} then {}",
        acked.len()
    );
    c.assert_all_present(&col, &acked).await;
    cluster.wait_converged(LONG).await;
}

/// Waits until node `id` reports its replica of `group` in `state`.
async fn wait_state(
    cluster: &Cluster,
    id: u64,
    group: u64,
    state: ReplicaState,
) -> common::wire::ReplicaStatus {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(r) = cluster.replica(id, group).await {
            if r.state == state {
                return r;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {id}'s replica of group {group} never {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bytes flipped in the middle of one replica's WAL (a sealed segment) while
/// its node is down, with writes acknowledged meanwhile: the node detects it
/// (CRC), that replica stays failed and serves nothing, the node's other
/// replicas and the group's other two run on, no acknowledged write is lost.
/// Then the operator replaces it under writes and the group is whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_log_corruption_fails_one_replica_and_loses_nothing() {
    let cluster = Cluster::start(ClusterOptions {
        // One replica's own log: what this test is about (see the next for the
        // node-wide log, where the same damage stops the whole node).
        raft_log: Some("group".into()),
        wal_segment_bytes: Some(4096),
        request_timeout_ms: 5_000,
        snapshot_interval_entries: Some(40),
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client(0);
    let col = c.new_collection("corrupt", json!({})).await;
    let mut acked = Vec::new();
    for batch in 0..20 {
        let ids: Vec<String> = (0..10).map(|k| format!("a{batch}-{k}")).collect();
        c.add_ok(&col, &records(&ids)).await;
        acked.extend(ids);
    }
    let (victim, group) = (3, 1);
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    cluster.kill_node(victim);
    for batch in 0..5 {
        let ids: Vec<String> = (0..10).map(|k| format!("b{batch}-{k}")).collect();
        c.add_ok(&col, &records(&ids)).await;
        acked.extend(ids);
    }
    let hit = cluster.corrupt_wal(victim, group).expect("corrupt");
    assert!(hit.segments >= 2, "a sealed segment to corrupt: {hit:?}");
    eprintln!("{hit}");
    cluster.spawn_node(victim);
    cluster.wait_node_up(victim, LONG).await;

    let failed = wait_state(&cluster, victim, group, ReplicaState::Failed).await;
    let error = failed.error.unwrap_or_default();
    let file = hit.file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        error.contains("WAL damaged") && error.contains(&file),
        "the failed replica names the damage: {error}"
    );
    let read = cluster
        .post_internal(
            victim,
            &format!("/internal/{group}/read"),
            Vec::new(),
            Duration::from_secs(2),
        )
        .await;
    assert!(
        matches!(read, Err(InternalError::ReplicaFailed(_))),
        "the failed replica serves nothing: {read:?}"
    );

    let others: Vec<u64> = cluster.ids().into_iter().filter(|&n| n != victim).collect();
    for g in cluster.groups().into_iter().filter(|&g| g != group) {
        cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
    }
    cluster.wait_leader(group, &others, LONG).await;
    let after: Vec<String> = (0..10).map(|k| format!("c-{k}")).collect();
    c.add_ok(&col, &records(&after)).await;
    acked.extend(after);
    c.assert_all_present(&col, &acked).await;
    cluster.wait_group_converged(group, &others, LONG).await;
    // Still failed: it neither ran nor took data from its peers.
    let still = wait_state(&cluster, victim, group, ReplicaState::Failed).await;
    assert_eq!(
        still.applied, 0,
        "a failed replica applies nothing: {still:?}"
    );

    // The operator's repair: the failed replica removed from its group and
    // deleted (`DELETE /admin/replicas/{group}` deletes a failed replica
    // too), an empty one added, caught up from a snapshot and promoted.
    // Writers run through it: the new replica must catch up from a snapshot
    // taken after its removal, and only writes make one.
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(Mutex::new(Vec::new()));
    let writers = spawn_writers(&c, &col, 2, &stop, &during);
    let deadline = Instant::now() + Duration::from_secs(90);
    let replaced = replace_replica(&cluster, group, victim, Rejoin::JoinedAt, deadline).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    eprintln!(
        "replaced: {}",
        replaced.expect("the damaged replica is replaced")
    );
    acked.extend(during.lock().iter().cloned());
    cluster
        .wait_group_converged(group, &cluster.ids(), LONG)
        .await;
    assert_eq!(
        voter_set_problems(&cluster, Placed::Kept).await,
        Vec::<String>::new()
    );
    c.assert_all_present(&col, &acked).await;
}
