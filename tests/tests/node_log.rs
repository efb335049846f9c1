//! A cluster on the node-wide Raft log (`raft.log = "node"`, issue 11): one log
//! per node for all its replicas. Real processes: kill -9 under writes, a
//! replica removed and replaced by an empty one on the same node (its records
//! discarded from the shared log, a fresh log opened in it), old segments freed
//! while groups keep writing, and bytes flipped in the shared log (the node
//! refuses to start; the groups run on, on the other two, losing nothing).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use tests::faults::members::{replace_replica, voter_set_problems, Placed, Rejoin};
use tests::{Client, Cluster, ClusterOptions};

const LONG: Duration = Duration::from_secs(60);

fn options() -> ClusterOptions {
    ClusterOptions {
        raft_log: Some("node".into()),
        // Small segments: the log rolls, and old ones must be freed, within a
        // short run.
        wal_segment_bytes: Some(64 << 10),
        snapshot_interval_entries: Some(40),
        request_timeout_ms: 5_000,
        ..ClusterOptions::default()
    }
}

fn records(ids: &[String]) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().enumerate().map(|(i, _)| vec![i as f32, 1.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|i| format!("document {i} ").repeat(20)).collect::<Vec<_>>(),
    })
}

async fn add_batches(c: &Client, col: &str, prefix: &str, batches: usize, acked: &mut Vec<String>) {
    for batch in 0..batches {
        let ids: Vec<String> = (0..10).map(|k| format!("{prefix}{batch}-{k}")).collect();
        c.add_ok(col, &records(&ids)).await;
        acked.extend(ids);
    }
}

/// The segments of each lane of the node log in `node_dir` (sequence numbers,
/// ascending), lanes in directory order.
fn segments(node_dir: &Path) -> Vec<Vec<u64>> {
    let files = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let log = node_dir.join("raft-log");
    files(&log)
        .iter()
        .filter(|n| n.starts_with("lane-"))
        .map(|lane| {
            files(&log.join(lane))
                .iter()
                .filter_map(|n| n.strip_suffix(".wal")?.parse().ok())
                .collect()
        })
        .collect()
}

/// Writers adding batches of 10 until `stop`; what they got acknowledged goes to `acked`.
fn spawn_writers(
    c: &Client,
    col: &str,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|w| {
            let (c, col, stop, acked) = (c.clone(), col.to_string(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut batch = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<String> = (0..10).map(|k| format!("w{w}-{batch}-{k}")).collect();
                    if c.records(&col, "add", &records(&ids)).await.status == 201 {
                        acked.lock().extend(ids);
                    }
                    batch += 1;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_a_replaced_replica_lose_nothing_and_old_segments_go() {
    let cluster = Cluster::start(options()).await;
    let c = cluster.client(0);
    let col = c.new_collection("nodelog", json!({})).await;
    let mut acked = Vec::new();
    add_batches(&c, &col, "a", 30, &mut acked).await;

    // Every node keeps its replicas' logs in one place, none in a group directory.
    for id in cluster.ids() {
        let dir = cluster.config.node_data_dir(id);
        let lanes = segments(&dir);
        assert!(
            lanes.iter().any(|l| !l.is_empty()),
            "node {id} has a node log: {lanes:?}"
        );
        for g in cluster.groups() {
            let wal = dir.join(format!("group-{g}")).join("wal");
            assert!(!wal.exists(), "node {id} wrote {}", wal.display());
        }
    }

    // kill -9 under writes, then back: it recovers every group from its one log.
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(Mutex::new(Vec::new()));
    let writers = spawn_writers(&c, &col, &stop, &during);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill_node(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.spawn_node(2);
    cluster.wait_node_up(2, LONG).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Its replica of a shard group removed and replaced by an empty one, under
    // writes: the old records are discarded from the shared log, the new
    // replica opens a fresh log in it and catches up.
    let group = cluster.shard_groups()[0];
    let deadline = Instant::now() + Duration::from_secs(90);
    let replaced = replace_replica(&cluster, group, 2, Rejoin::JoinedAt, deadline).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    eprintln!("replaced: {}", replaced.expect("the replica is replaced"));
    acked.extend(during.lock().iter().cloned());
    add_batches(&c, &col, "b", 10, &mut acked).await;
    for g in cluster.groups() {
        cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
    }
    assert_eq!(
        voter_set_problems(&cluster, Placed::Kept).await,
        Vec::<String>::new()
    );
    c.assert_all_present(&col, &acked).await;

    // The replaced replica's state survives another restart of its node.
    cluster.kill_node(2);
    cluster.spawn_node(2);
    cluster.wait_node_up(2, LONG).await;
    for g in cluster.groups() {
        cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
    }
    c.assert_all_present(&col, &acked).await;

    // Old segments go: compaction releases them, the collector rewrites groups
    // that pin any past 8 (per lane). Megabytes were written in 64 KiB segments.
    let dir = cluster.config.node_data_dir(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lanes = segments(&dir);
        let bounded = lanes.iter().all(|l| l.len() <= 8);
        let freed = lanes.iter().any(|l| l.first().is_some_and(|&s| s > 8));
        if bounded && freed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1's log lanes keep old segments: {lanes:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_node_log_stops_its_node_and_the_groups_lose_nothing() {
    let cluster = Cluster::start(options()).await;
    let c = cluster.client(0);
    let col = c.new_collection("damaged", json!({})).await;
    let mut acked = Vec::new();
    add_batches(&c, &col, "a", 20, &mut acked).await;
    let victim = 3;
    for g in cluster.groups() {
        cluster.wait_group_converged(g, &cluster.ids(), LONG).await;
    }
    cluster.kill_node(victim);
    add_batches(&c, &col, "b", 5, &mut acked).await;
    let hit = cluster.corrupt_wal(victim, 1).expect("corrupt");
    eprintln!("{hit}");
    cluster.spawn_node(victim);

    // No frame says whose it was: every replica of the node is suspect, so the
    // node refuses to start and names the damage.
    let status = cluster.wait_node_exit(victim, LONG).await;
    assert!(
        !status.success(),
        "node {victim} exits with an error: {status}"
    );
    cluster.kill_node(victim);
    let log = cluster.node_log_tail(victim, 20);
    let file = hit.file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.contains("cannot open the Raft logs") && log.contains(&file),
        "the node names the damaged file: {log}"
    );

    let others: Vec<u64> = cluster.ids().into_iter().filter(|&n| n != victim).collect();
    for g in cluster.groups() {
        cluster.wait_leader(g, &others, LONG).await;
    }
    add_batches(&c, &col, "c", 5, &mut acked).await;
    c.assert_all_present(&col, &acked).await;
}
