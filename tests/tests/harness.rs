//! The harness itself, without a router: nodes start on free ports, every
//! group elects a leader, the binaries are found, and a killed node is gone.
//! When a router test fails at startup, this tells harness from router.

use std::time::Duration;

use tests::{Cluster, ClusterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_and_elect_leaders() {
    let cluster = Cluster::start(ClusterOptions {
        routers: vec![],
        ..ClusterOptions::default()
    })
    .await;
    let leaders = cluster.wait_all_leaders(Duration::from_secs(30)).await;
    // The catalogue group and three shard groups.
    assert_eq!(
        leaders.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    cluster.kill_node(3);
    assert!(
        cluster.status(3).await.is_none(),
        "killed node still answers"
    );
    assert_eq!(cluster.running(), vec![1, 2]);
}
