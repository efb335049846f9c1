//! `GET /metrics` on the router and the nodes (Prometheus text format): the values move
//! as the cluster works. Real processes; the nodes are scraped the way a Prometheus
//! `authorization` block does it (the cluster secret as a bearer token).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tests::cluster::Scrape;
use tests::{unique_name, Cluster, ClusterOptions};

/// `GET url` (with the bearer token if any): 200 in Prometheus's text format.
async fn scrape(url: String, bearer: Option<&str>) -> Scrape {
    let mut req = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(10));
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(resp.status(), 200, "{url}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&resp.text().await.expect("metrics body"))
}

async fn scrape_node(cluster: &Cluster, id: u64) -> Scrape {
    let url = format!("{}/metrics", cluster.node_url(id));
    scrape(url, Some(cluster.cluster_secret().header_value())).await
}

async fn scrape_router(cluster: &Cluster) -> Scrape {
    scrape(format!("{}/metrics", cluster.client(0).base()), None).await
}

fn add_body(prefix: &str, n: usize) -> serde_json::Value {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let embeddings: Vec<[f32; 2]> = (0..n).map(|i| [i as f32, 1.0]).collect();
    json!({ "ids": ids, "embeddings": embeddings })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_the_cluster_works() {
    let cluster = Cluster::start(ClusterOptions {
        // Small, so a few writes make every shard group take a snapshot.
        snapshot_interval_entries: Some(20),
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client(0);
    let leaders = cluster.wait_all_leaders(Duration::from_secs(30)).await;

    // Without the secret a node's /metrics is refused like every node route.
    let refused = reqwest::get(format!("{}/metrics", cluster.node_url(1)))
        .await
        .expect("unauthenticated scrape");
    assert_eq!(refused.status(), 401);

    let col = c.new_collection(&unique_name("metrics"), json!({})).await;

    // One record: exactly one shard group takes a write, and only its counts move.
    let records_before = cluster.shard_records().await;
    let mut before = BTreeMap::new();
    for (&g, &leader) in &leaders {
        before.insert(g, scrape_node(&cluster, leader).await);
    }
    let router_before = scrape_router(&cluster).await;
    c.add_ok(&col, &add_body("one", 1)).await;
    let records_after = cluster.shard_records().await;
    let written: Vec<u64> = cluster
        .shard_groups()
        .into_iter()
        .filter(|g| records_after.get(g) > records_before.get(g))
        .collect();
    assert_eq!(
        written.len(),
        1,
        "records {records_before:?} -> {records_after:?}"
    );
    let target = written[0];
    for g in cluster.shard_groups() {
        let leader = leaders[&g];
        let after = scrape_node(&cluster, leader).await;
        let label = g.to_string();
        let ok = [("group", label.as_str()), ("outcome", "ok")];
        let grew = after.get("vdb_raft_proposals_total", &ok)
            - before[&g].get("vdb_raft_proposals_total", &ok);
        if g == target {
            assert!(grew >= 1.0, "group {g} (written) proposals +{grew}");
            let group = [("group", label.as_str())];
            assert!(
                after.get("vdb_raft_proposal_duration_seconds_count", &group)
                    > before[&g].get("vdb_raft_proposal_duration_seconds_count", &group)
            );
            assert!(
                after.get("vdb_raft_applied_index", &group)
                    > before[&g].get("vdb_raft_applied_index", &group)
            );
            assert_eq!(
                after.get("vdb_shard_records", &group),
                records_after[&g] as f64,
                "records gauge of group {g}"
            );
        } else {
            assert_eq!(grew, 0.0, "group {g} (not written) proposals +{grew}");
        }
        assert_eq!(
            after.get(
                "vdb_raft_role",
                &[("group", &label), ("kind", "shard"), ("role", "leader")]
            ),
            1.0
        );
        assert_eq!(
            after.get("vdb_raft_leader", &[("group", &label)]),
            leader as f64
        );
        assert!(after.get("vdb_raft_leader_changes_total", &[("group", &label)]) >= 1.0);
        assert!(after.get("vdb_raft_term", &[("group", &label)]) >= 1.0);
        assert!(after.get("vdb_wal_fsync_duration_seconds_count", &[]) >= 1.0);
        assert!(after.get("vdb_wal_flush_bytes_sum", &[]) > 0.0);
        assert!(after.get("process_resident_memory_bytes", &[]) > 0.0);
    }
    let router_after = scrape_router(&cluster).await;
    let adds = |s: &Scrape| {
        s.0.iter()
            .filter(|(k, _)| {
                k.starts_with("vdb_router_http_request_duration_seconds_count{")
                    && k.contains("/add\"")
                    && k.contains("method=\"POST\"")
                    && k.contains("status=\"201\"")
            })
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    assert_eq!(adds(&router_after) - adds(&router_before), 1.0);
    assert!(router_after.get("process_resident_memory_bytes", &[]) > 0.0);

    // Enough writes for every shard group to pass the snapshot interval.
    for round in 0..25 {
        c.add_ok(&col, &add_body(&format!("r{round}"), 12)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for g in cluster.shard_groups() {
        let label = g.to_string();
        loop {
            let s = scrape_node(&cluster, leaders[&g]).await;
            let taken = s.sum(
                "vdb_raft_snapshots_total",
                &[("group", &label), ("event", "taken")],
            );
            if taken >= 1.0 {
                assert!(s.get("vdb_raft_snapshot_index", &[("group", &label)]) > 0.0);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "group {g} took no snapshot"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
