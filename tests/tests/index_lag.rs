//! Background indexing (issue 11): with every node's indexer paused
//! (`VDB_TEST_INDEXER_PAUSED=1`, inherited by the node processes), an
//! acknowledged write is found by the next query, and updates and deletes of
//! records the graph does not hold yet never show stale hits; `/admin/status`
//! reports the lag.

use reqwest::Method;
use serde_json::json;
use tests::data::{add_bodies, dataset};
use tests::{num_list, query_slice, str_list, Cluster, ClusterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_queried_before_they_are_indexed() {
    // Before any node starts: the node processes inherit it.
    std::env::set_var("VDB_TEST_INDEXER_PAUSED", "1");
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let recs = dataset("r", 300, 8, 7);
    let id = c.new_collection("lagging", json!({})).await;
    for body in add_bodies(&recs) {
        c.add_ok(&id, &body).await;
    }
    let nearest =
        |v: &Vec<f32>| json!({"query_embeddings": [v], "n_results": 1, "include": ["distances"]});

    // Each record is its own nearest neighbour, at distance 0.
    for r in recs.iter().step_by(37) {
        let got = c.query_ok(&id, &nearest(&r.embedding)).await;
        let q = query_slice(&got, 0);
        assert_eq!(str_list(&q["ids"]), vec![r.id.clone()], "query by {}", r.id);
        assert!(num_list(&q["distances"])[0].abs() < 1e-6);
    }

    // Move r0 far away and delete r1: neither answers at its old place.
    let far = vec![100.0f32; 8];
    c.records(
        &id,
        "update",
        &json!({"ids": [recs[0].id], "embeddings": [far]}),
    )
    .await
    .expect_status(200, "update");
    c.records(&id, "delete", &json!({"ids": [recs[1].id]}))
        .await
        .expect_status(200, "delete");
    for (old, gone) in [(&recs[0], &recs[0].id), (&recs[1], &recs[1].id)] {
        let got = c.query_ok(&id, &nearest(&old.embedding)).await;
        let ids = str_list(&query_slice(&got, 0)["ids"]);
        assert_ne!(ids, vec![gone.clone()], "stale hit for {gone}");
    }
    let got = c.query_ok(&id, &nearest(&far)).await;
    let q = query_slice(&got, 0);
    assert_eq!(str_list(&q["ids"]), vec![recs[0].id.clone()]);
    assert!(
        num_list(&q["distances"])[0].abs() < 1e-6,
        "the new vector's distance"
    );

    // The lag is reported per shard replica: every version applied, none indexed.
    let mut lag = 0;
    for node in 1..=3 {
        let (_, status) = cluster
            .admin_json(node, Method::GET, "/admin/status?digest=false", None)
            .await
            .expect("status");
        for r in status["replicas"].as_array().expect("replicas") {
            if r["kind"] == "shard" {
                lag += r["index_lag"]
                    .as_u64()
                    .expect("index_lag on a shard replica");
            }
        }
    }
    // 300 adds and 1 new version, on 3 replicas each.
    assert_eq!(lag, 3 * 301, "index lag summed over the nodes");
}
