//! The elastic cluster on real processes (issue 10): the placement driver on the metadata
//! leader replaces the replicas of a node whose data directory was wiped (it rejoins every
//! group as a new member, never voting with a lost log), rebuilds the replicas of a node
//! down past `placement.down_after_secs` on a spare node, gives a node that joined later
//! replicas and a shard group of its own that new collections use, and empties a drained
//! node — all while a client keeps writing, and nothing acknowledged is lost; a
//! whole-cluster restart keeps the new membership and the new group; a group no
//! collection uses is retired when the node that brought it leaves.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::PlacementSection;
use reqwest::Method;
use serde_json::{json, Value};
use tests::{Client, Cluster, ClusterOptions};

fn options(nodes: usize, join_nodes: usize) -> ClusterOptions {
    ClusterOptions {
        nodes,
        join_nodes,
        placement: Some(PlacementSection {
            enabled: true,
            tick_ms: 300,
            down_after_secs: 4,
            move_interval_ms: 200,
        }),
        ..ClusterOptions::default()
    }
}

/// Writes records `{from}..{to}` (one per request) until `stop`; counts the acknowledged.
async fn writer(
    client: Client,
    collection: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> BTreeSet<String> {
    let mut ok = BTreeSet::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("w{i}");
        let body = json!({"ids": [id], "embeddings": [[i as f64, 1.0, 2.0]]});
        if client.records(&collection, "add", &body).await.status == 201 {
            ok.insert(id);
            acked.fetch_add(1, Ordering::Relaxed);
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok
}

/// `GET /admin/cluster` from the first running node that answers.
async fn report(cluster: &Cluster) -> Option<Value> {
    for id in cluster.running() {
        if let Some((s, v)) = cluster
            .admin_json(id, Method::GET, "/admin/cluster", None)
            .await
        {
            if s.is_success() {
                return Some(v);
            }
        }
    }
    None
}

/// Node `id`'s entry of a report.
fn node_entry(report: &Value, id: u64) -> Value {
    report["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until every group is healthy, `placed` holds for each group's replicas and
/// `also` for the whole report; returns the report.
async fn wait_placement(
    cluster: &Cluster,
    what: &str,
    timeout: Duration,
    placed: impl Fn(&[u64]) -> bool,
    also: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(r) = report(cluster).await {
            let groups = r["groups"].as_array().cloned().unwrap_or_default();
            // The config's groups, and any the driver created as nodes joined.
            let done = groups.len() >= cluster.groups().len()
                && groups.iter().all(|g| {
                    let replicas: Vec<u64> = g["replicas"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default();
                    g["healthy"] == true && placed(&replicas)
                })
                && also(&r);
            if done {
                return r;
            }
            last = r;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!(
        "{what}: not reached in {timeout:?}; last report {last:#}\n{}",
        cluster.log_tails(30)
    );
}

/// Starts a writer on a new collection; returns what stops it and its result.
async fn start_writes(
    cluster: &Cluster,
) -> (
    Client,
    String,
    Arc<AtomicBool>,
    tokio::task::JoinHandle<BTreeSet<String>>,
) {
    let client = cluster.client(0);
    let collection = client.new_collection("elastic", json!({})).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let handle = tokio::spawn(writer(
        cluster.client(0),
        collection.clone(),
        stop.clone(),
        acked,
    ));
    (client, collection, stop, handle)
}

/// Stops the writer; every acknowledged record is there.
async fn check_writes(
    client: &Client,
    collection: &str,
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<BTreeSet<String>>,
) {
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<String> = handle.await.expect("writer").into_iter().collect();
    assert!(
        acked.len() > 20,
        "the writer got {} writes through",
        acked.len()
    );
    let present = client.present_ids(collection, &acked).await;
    assert_eq!(present.len(), acked.len(), "acknowledged writes lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_rejoins_every_group_and_then_another_node_may_fail() {
    let cluster = Cluster::start(options(3, 0)).await;
    let (client, collection, stop, writes) = start_writes(&cluster).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.kill_node(3);
    let dir = cluster.config.node_data_dir(3);
    std::fs::remove_dir_all(&dir).expect("wipe node 3");
    cluster.spawn_node(3);
    // Back to full replication with node 3 a member of every group again.
    wait_placement(
        &cluster,
        "node 3 rebuilt",
        Duration::from_secs(90),
        |r| r == [1, 2, 3],
        |_| true,
    )
    .await;

    // Node 3 now holds real copies: with node 1 gone, every group keeps a quorum.
    cluster.kill_node(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_writes(&client, &collection, stop, writes).await;
    let body = json!({"ids": ["after"], "embeddings": [[0.0, 0.0, 1.0]]});
    client.add_ok(&collection, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_down_past_the_timeout_is_rebuilt_on_a_node_that_joined() {
    let cluster = Cluster::start(options(3, 1)).await;
    let (client, collection, stop, writes) = start_writes(&cluster).await;
    // The node that joins gets replicas (evening out) without anything failing.
    cluster.spawn_node(4);
    // 4 groups x 3 replicas over 4 nodes: 3 each once even.
    wait_placement(
        &cluster,
        "node 4 gets its share of replicas",
        Duration::from_secs(120),
        |r| r.len() == 3,
        |r| node_entry(r, 4)["replicas"].as_u64() >= Some(2),
    )
    .await;

    // Node 2 dies for good: its replicas are rebuilt on the others.
    cluster.kill_node(2);
    wait_placement(
        &cluster,
        "node 2 replaced",
        Duration::from_secs(120),
        |r| !r.contains(&2) && r.len() == 3,
        |_| true,
    )
    .await;

    // A whole-cluster restart keeps the new membership (from the logs, not the config).
    for id in [1, 3, 4] {
        cluster.kill_node(id);
    }
    for id in [1, 3, 4] {
        cluster.spawn_node(id);
    }
    wait_placement(
        &cluster,
        "membership after a restart",
        Duration::from_secs(90),
        |r| !r.contains(&2) && r.len() == 3,
        |_| true,
    )
    .await;
    check_writes(&client, &collection, stop, writes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_node_is_emptied_and_marked_removed() {
    let cluster = Cluster::start(options(4, 0)).await;
    let (client, collection, stop, writes) = start_writes(&cluster).await;
    let answer = cluster
        .admin_json(1, Method::POST, "/admin/nodes/2/drain", Some(&json!({})))
        .await;
    assert!(
        matches!(&answer, Some((s, _)) if s.is_success()),
        "drain: {answer:?}"
    );
    wait_placement(
        &cluster,
        "node 2 drained and removed",
        Duration::from_secs(120),
        |r| !r.contains(&2) && r.len() == 3,
        |r| node_entry(r, 2)["state"] == "removed",
    )
    .await;
    check_writes(&client, &collection, stop, writes).await;
}

/// The groups of a report, by id.
fn group_ids(report: &Value) -> Vec<u64> {
    report["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// Node `node`'s status of its replica of `group`: `None` when the node did not answer,
/// `Some(None)` when it hosts no replica of the group.
async fn replica_on(cluster: &Cluster, node: u64, group: u64) -> Option<Option<Value>> {
    let (_, status) = cluster
        .admin_json(node, Method::GET, "/admin/status", None)
        .await?;
    let replicas = status["replicas"].as_array()?;
    Some(replicas.iter().find(|r| r["group"] == group).cloned())
}

/// Records held by node `node`'s replica of `group`, if it answers and hosts one.
async fn records_on(cluster: &Cluster, node: u64, group: u64) -> Option<u64> {
    replica_on(cluster, node, group).await.flatten()?["records"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_joins_brings_a_shard_group_that_new_collections_use() {
    let cluster = Cluster::start(options(3, 1)).await;
    let (client, collection, stop, writes) = start_writes(&cluster).await;
    // Three shard groups for three nodes; a fourth node brings a fourth group (id 4,
    // the first the config does not use), bootstrapped on three nodes while writes go on.
    cluster.spawn_node(4);
    let report = wait_placement(
        &cluster,
        "a shard group for node 4",
        Duration::from_secs(120),
        |r| r.len() == 3,
        |r| group_ids(r) == [0, 1, 2, 3, 4] && node_entry(r, 4)["leaders"].as_u64() >= Some(1),
    )
    .await;
    let group = 4;
    let holders: Vec<u64> = report["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == group))
        .and_then(|g| g["replicas"].as_array())
        .map(|r| r.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(holders.len(), 3, "{report:#}");

    // Once marked ready and followed by the router (every 2 s), new collections are
    // spread over three of the four groups: ten of them miss group 4 with
    // probability 4^-10.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut made = Vec::new();
    loop {
        let c = client
            .new_collection(&format!("grown-{}", made.len()), json!({}))
            .await;
        let ids: Vec<String> = (0..30).map(|i| format!("g{i}")).collect();
        let embeddings: Vec<Vec<f64>> = (0..30).map(|i| vec![i as f64, 0.5, 1.0]).collect();
        client
            .add_ok(&c, &json!({"ids": ids, "embeddings": embeddings}))
            .await;
        made.push(c);
        if made.len() >= 10 && records_on(&cluster, holders[0], group).await > Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new collection uses group {group}\n{}",
            cluster.log_tails(30)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A whole-cluster restart reopens the new group's replicas (bootstrapped at run
    // time, so not in any config placement) with their records.
    for id in [1, 2, 3, 4] {
        cluster.kill_node(id);
    }
    for id in [1, 2, 3, 4] {
        cluster.spawn_node(id);
    }
    wait_placement(
        &cluster,
        "the grown cluster after a restart",
        Duration::from_secs(90),
        |r| r.len() == 3,
        |r| group_ids(r) == [0, 1, 2, 3, 4],
    )
    .await;
    for c in &made {
        assert_eq!(client.count(c).await, 30, "collection {c}");
    }
    check_writes(&client, &collection, stop, writes).await;

    // A backup finds the run-time group through the cluster map and takes its records.
    let dir = tempfile::tempdir().expect("backup dir");
    let out = std::process::Command::new(tests::cluster::binary("backup"))
        .arg("backup")
        .arg(dir.path())
        .arg("--config")
        .arg(&cluster.config_path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the backup binary");
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let backed_up: Vec<u64> = manifest["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["group"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(backed_up, [0, 1, 2, 3, 4], "{manifest:#}");
}

/// Whether a node hosts a replica of `group` (`None`: it did not answer).
async fn hosts(cluster: &Cluster, node: u64, group: u64) -> Option<bool> {
    replica_on(cluster, node, group).await.map(|r| r.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_no_collection_uses_is_retired_when_the_node_that_brought_it_leaves() {
    let cluster = Cluster::start(options(3, 1)).await;
    // The writer's collection is spread over the config's groups 1-3.
    let (client, collection, stop, writes) = start_writes(&cluster).await;
    cluster.spawn_node(4);
    wait_placement(
        &cluster,
        "a shard group for node 4",
        Duration::from_secs(120),
        |r| r.len() == 3,
        |r| group_ids(r) == [0, 1, 2, 3, 4],
    )
    .await;
    let answer = cluster
        .admin_json(1, Method::POST, "/admin/nodes/4/drain", Some(&json!({})))
        .await;
    assert!(
        matches!(&answer, Some((s, _)) if s.is_success()),
        "drain: {answer:?}"
    );
    // Three nodes call for three groups again: group 4, unused, is retired.
    let report = wait_placement(
        &cluster,
        "node 4 removed and group 4 retired",
        Duration::from_secs(120),
        |r| !r.contains(&4) && r.len() == 3,
        |r| {
            node_entry(r, 4)["state"] == "removed"
                && group_ids(r) == [0, 1, 2, 3]
                && r["retired_groups"] == json!([4])
        },
    )
    .await;
    // Its replicas are deleted wherever they were.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut left = Vec::new();
        for node in [1, 2, 3, 4] {
            if hosts(&cluster, node, 4).await != Some(false) {
                left.push(node);
            }
        }
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {left:?} still host group 4 (or do not answer); {report:#}\n{}",
            cluster.log_tails(30)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // New collections go to the config's groups only.
    let c = client.new_collection("after-retirement", json!({})).await;
    client
        .add_ok(&c, &json!({"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]]}))
        .await;
    assert_eq!(client.count(&c).await, 1);
    check_writes(&client, &collection, stop, writes).await;
}
