//! Link hints (issue 11) through real node processes: a shard leader's indexer
//! proposes where it linked each point, the followers link the same points without
//! searching (`linked_from_hints` in `/admin/status`), and a follower's graph built
//! that way serves queries once it leads, also after its leader died mid-load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::placement::GroupKind;
use common::wire::{RaftRole, ReplicaStatus};
use serde_json::json;
use tests::data::{add_bodies, dataset, Rec};
use tests::{num_list, query_slice, str_list, Client, Cluster, ClusterOptions};

const RECORDS: usize = 6_000;
const NODES: [u64; 3] = [1, 2, 3];

/// Every node's status of every shard replica: group -> [(node, status)].
async fn shard_replicas(cluster: &Cluster) -> BTreeMap<u64, Vec<(u64, ReplicaStatus)>> {
    let mut groups: BTreeMap<u64, Vec<(u64, ReplicaStatus)>> = BTreeMap::new();
    for node in NODES {
        let status = cluster.status(node).await.expect("node status");
        for r in status.replicas {
            if r.kind == GroupKind::Shard {
                groups.entry(r.group).or_default().push((node, r));
            }
        }
    }
    groups
}

/// Waits until the three replicas of every shard group hold the same number of
/// records, [`RECORDS`] in all, and have indexed all of them; returns their status.
async fn wait_indexed(cluster: &Cluster) -> BTreeMap<u64, Vec<(u64, ReplicaStatus)>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let groups = shard_replicas(cluster).await;
        let indexed = groups
            .values()
            .flatten()
            .all(|(_, r)| r.index_lag == Some(0));
        let complete = groups.values().all(|replicas| {
            replicas.len() == NODES.len()
                && replicas
                    .iter()
                    .all(|(_, r)| r.records == replicas[0].1.records)
        });
        let records: u64 = groups
            .values()
            .filter_map(|g| g.first())
            .filter_map(|(_, r)| r.records)
            .sum();
        if indexed && complete && records == RECORDS as u64 {
            return groups;
        }
        assert!(
            Instant::now() < deadline,
            "replicas still indexing: {groups:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Hands the lead of `group` to `node` and waits until it leads. A transfer is best
/// effort in Raft (the leader drops it while the target lags, or the message is lost),
/// so it is asked again every 2 s.
async fn move_leader(cluster: &Cluster, group: u64, node: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = cluster
            .wait_leader(group, &NODES, Duration::from_secs(10))
            .await;
        if leader == node {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} did not move to node {node}"
        );
        cluster.transfer_leader(leader, group, node).await;
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(2)
            && cluster.find_leader(group, &NODES).await != Some(node)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every 30th record, queried by its own vector, comes first at distance 0 (98% of
/// them at least: the graph is approximate).
async fn assert_found_first(c: &Client, id: &str, recs: &[Rec]) {
    let mut found = 0;
    let sample: Vec<&Rec> = recs.iter().step_by(30).collect();
    for r in &sample {
        let body =
            json!({"query_embeddings": [r.embedding], "n_results": 1, "include": ["distances"]});
        let got = c.query_ok(id, &body).await;
        let q = query_slice(&got, 0);
        if str_list(&q["ids"]) == vec![r.id.clone()] && num_list(&q["distances"])[0].abs() < 1e-6 {
            found += 1;
        }
    }
    assert!(
        found * 100 >= sample.len() * 98,
        "{found} of {} records found themselves first",
        sample.len()
    );
}

async fn two_shard_cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        shard_count: 2,
        ..ClusterOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_link_from_the_leaders_hints_and_their_graphs_answer() {
    let cluster = two_shard_cluster().await;
    let c = cluster.client(0);
    let recs = dataset("r", RECORDS, 16, 11);
    let id = c.new_collection("hinted", json!({})).await;
    for body in add_bodies(&recs) {
        c.add_ok(&id, &body).await;
    }
    let groups = wait_indexed(&cluster).await;

    // Per group: a follower linked most of its points from hints; it then leads.
    let mut moved = 0;
    for (group, replicas) in &groups {
        let records = replicas[0].1.records.expect("records");
        if records < 1_000 {
            continue; // a group this small is searched exactly, whatever its graph
        }
        let (node, linked) = replicas
            .iter()
            .filter(|(_, r)| r.role != RaftRole::Leader)
            .map(|(n, r)| (*n, r.linked_from_hints.expect("linked_from_hints")))
            .max_by_key(|&(_, linked)| linked)
            .expect("a follower");
        assert!(
            linked >= records / 2,
            "group {group}: the best follower linked {linked} of {records} points from hints"
        );
        move_leader(&cluster, *group, node).await;
        moved += 1;
    }
    assert!(moved > 0, "no group large enough: {groups:?}");

    // Queried through those graphs, records find themselves first.
    assert_found_first(&c, &id, &recs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_during_a_hinted_load_loses_nothing_and_every_graph_answers() {
    let cluster = two_shard_cluster().await;
    let c = cluster.client(0);
    let recs = dataset("r", RECORDS, 16, 12);
    let id = c.new_collection("hinted-kill", json!({})).await;
    let bodies = add_bodies(&recs);
    let (first, second) = bodies.split_at(bodies.len() / 2);
    for body in first {
        c.add_ok(&id, body).await;
    }
    // A shard leader killed mid-load: its followers lose the hints it had not sent
    // yet, one of them leads (and searches), and the load goes on.
    let group = cluster.groups().into_iter().max().expect("a shard group");
    let victim = cluster
        .wait_leader(group, &NODES, Duration::from_secs(10))
        .await;
    cluster.kill_node(victim);
    for body in second {
        c.add_ok(&id, body).await;
    }
    cluster.spawn_node(victim);
    cluster.wait_node_up(victim, Duration::from_secs(30)).await;
    for g in cluster.groups() {
        cluster
            .wait_group_converged(g, &NODES, Duration::from_secs(60))
            .await;
    }
    wait_indexed(&cluster).await;
    assert_found_first(&c, &id, &recs).await;

    // The restarted replica (its graph from a snapshot or rebuilt, then the log with
    // its hints replayed) leads and answers too.
    move_leader(&cluster, group, victim).await;
    assert_found_first(&c, &id, &recs).await;
}
