//! Link hints (issue 11) through real node processes: a shard leader's indexer
//! proposes where it linked each point, the followers link the same points without
//! searching (`linked_from_hints` in `/admin/status`), and a follower's graph built
//! that way serves queries once it leads.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::placement::GroupKind;
use common::wire::{RaftRole, ReplicaStatus};
use serde_json::json;
use tests::data::{add_bodies, dataset};
use tests::{num_list, query_slice, str_list, Cluster, ClusterOptions};

const RECORDS: usize = 6_000;

/// Every node's status of every shard replica: group -> [(node, status)].
async fn shard_replicas(cluster: &Cluster) -> BTreeMap<u64, Vec<(u64, ReplicaStatus)>> {
    let mut groups: BTreeMap<u64, Vec<(u64, ReplicaStatus)>> = BTreeMap::new();
    for node in 1..=3 {
        let status = cluster.status(node).await.expect("node status");
        for r in status.replicas {
            if r.kind == GroupKind::Shard {
                groups.entry(r.group).or_default().push((node, r));
            }
        }
    }
    groups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_link_from_the_leaders_hints_and_their_graphs_answer() {
    let cluster = Cluster::start(ClusterOptions {
        shard_count: 2,
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client(0);
    let recs = dataset("r", RECORDS, 16, 11);
    let id = c.new_collection("hinted", json!({})).await;
    for body in add_bodies(&recs) {
        c.add_ok(&id, &body).await;
    }

    // Every replica indexes everything.
    let deadline = Instant::now() + Duration::from_secs(120);
    let groups = loop {
        let groups = shard_replicas(&cluster).await;
        let indexed = groups
            .values()
            .flatten()
            .all(|(_, r)| r.index_lag == Some(0));
        let records: u64 = groups
            .values()
            .filter_map(|g| g.first())
            .filter_map(|(_, r)| r.records)
            .sum();
        if indexed && records == RECORDS as u64 {
            break groups;
        }
        assert!(
            Instant::now() < deadline,
            "replicas still indexing: {groups:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Per group: a follower linked most of its points from hints; hand it the lead.
    let mut hinted_followers = Vec::new();
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
        let leader = cluster
            .wait_leader(*group, &[1, 2, 3], Duration::from_secs(10))
            .await;
        cluster.transfer_leader(leader, *group, node).await;
        hinted_followers.push((*group, node));
    }
    assert!(
        !hinted_followers.is_empty(),
        "no group large enough: {groups:?}"
    );
    for (group, node) in &hinted_followers {
        let deadline = Instant::now() + Duration::from_secs(20);
        while cluster.find_leader(*group, &[1, 2, 3]).await != Some(*node) {
            assert!(
                Instant::now() < deadline,
                "group {group} did not move to node {node}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Queried through those graphs, records find themselves first.
    let mut found = 0;
    let sample: Vec<_> = recs.iter().step_by(30).collect();
    for r in &sample {
        let got = c
            .query_ok(
                &id,
                &json!({"query_embeddings": [r.embedding], "n_results": 1, "include": ["distances"]}),
            )
            .await;
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
