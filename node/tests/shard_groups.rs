//! Multi-process tests with the real state machines: the catalogue on the
//! metadata group, the shard state machine on shard groups, driven through
//! the node's internal API as the router will drive it.

mod harness;

use std::time::Duration;

use common::catalog::{CatalogCommand, CatalogOutcome, CatalogProposal, CollectionConfiguration};
use common::command::{AddMode, ApplyOutcome, IndexConfig, Proposal, RecordWrite, ShardCommand};
use common::read::{Include, QueryRequest, ShardRead, ShardReadReply, ShardReadValue};
use common::{wire, Filter, Space};
use harness::{Cluster, SERIAL};

const LONG: Duration = Duration::from_secs(30);
const COLLECTION: &str = "3f1c2b7e-0000-4000-8000-000000000001";

async fn propose<T: serde::Serialize, R: serde::de::DeserializeOwned>(
    cluster: &Cluster,
    group: u64,
    value: &T,
) -> R {
    let leader = cluster.wait_leader(group, &cluster.running(), LONG).await;
    let body = wire::encode(value).expect("encode");
    let bytes = cluster
        .post_internal(leader, &format!("/internal/{group}/propose"), body, LONG)
        .await
        .unwrap_or_else(|e| panic!("propose on group {group}: {e:?}"));
    wire::decode(&bytes).expect("decode outcome")
}

async fn query(cluster: &Cluster, group: u64, q: Vec<f32>) -> Vec<(String, f32)> {
    let leader = cluster.wait_leader(group, &cluster.running(), LONG).await;
    let read = ShardRead::Query(QueryRequest {
        collection: COLLECTION.into(),
        embeddings: vec![q],
        n_results: 3,
        ids: None,
        filter: Filter::default(),
        include: Include::default(),
    });
    let bytes = cluster
        .post_internal(
            leader,
            &format!("/internal/{group}/read"),
            wire::encode(&read).expect("encode"),
            LONG,
        )
        .await
        .expect("read");
    match wire::decode::<ShardReadReply>(&bytes).expect("decode") {
        Ok(ShardReadValue::Hits(mut hits)) => hits
            .pop()
            .unwrap_or_default()
            .into_iter()
            .map(|h| (h.record.id, h.distance))
            .collect(),
        other => panic!("unexpected reply {other:?}"),
    }
}

#[tokio::test]
async fn catalogue_and_shard_groups_replicate_and_survive_a_leader_kill() {
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start(harness::options()).await;
    cluster.wait_all_leaders(LONG).await;

    let created: CatalogOutcome = propose(
        &cluster,
        0,
        &CatalogProposal {
            request_id: 1,
            deadline_ms: tests::cluster::proposal_deadline(),
            command: CatalogCommand::CreateCollection {
                tenant: "default_tenant".into(),
                database: "default_database".into(),
                id: COLLECTION.into(),
                name: "docs".into(),
                metadata: None,
                configuration: CollectionConfiguration::new(IndexConfig::default()),
                shards: vec![1, 2],
                get_or_create: false,
            },
        },
    )
    .await;
    assert!(created.is_ok(), "{created:?}");

    let config = IndexConfig {
        space: Space::L2,
        ..IndexConfig::default()
    };
    for g in [1u64, 2] {
        let create = Proposal {
            request_id: 100 + g as u128,
            deadline_ms: tests::cluster::proposal_deadline(),
            command: ShardCommand::CreateCollection {
                collection: COLLECTION.into(),
                config: config.clone(),
            },
        };
        assert_eq!(
            propose::<_, ApplyOutcome>(&cluster, g, &create).await,
            ApplyOutcome::Done
        );
        let records = (0..20)
            .map(|i| RecordWrite {
                id: format!("g{g}-{i}"),
                embedding: Some(vec![i as f32, g as f32]),
                metadata: None,
                document: None,
                uri: None,
            })
            .collect();
        let add = Proposal {
            request_id: 200 + g as u128,
            deadline_ms: tests::cluster::proposal_deadline(),
            command: ShardCommand::Add {
                collection: COLLECTION.into(),
                records,
                mode: AddMode::RejectExisting,
            },
        };
        assert_eq!(
            propose::<_, ApplyOutcome>(&cluster, g, &add).await,
            ApplyOutcome::Done
        );
        // The same request retried (e.g. after a lost reply) applies once.
        assert_eq!(
            propose::<_, ApplyOutcome>(&cluster, g, &add).await,
            ApplyOutcome::Done
        );
    }
    let ids = cluster.ids();
    for g in [0u64, 1, 2] {
        cluster.wait_group_converged(g, &ids, LONG).await;
    }
    assert_eq!(query(&cluster, 1, vec![5.2, 1.0]).await[0].0, "g1-5");

    // Kill group 1's leader: a new one answers, and the restarted node converges.
    let leader = cluster.wait_leader(1, &ids, LONG).await;
    cluster.kill_node(leader);
    assert_eq!(query(&cluster, 1, vec![7.1, 1.0]).await[0].0, "g1-7");
    cluster.spawn_node(leader);
    let (_, digest) = cluster.wait_group_converged(1, &ids, LONG).await;
    assert_ne!(digest, format!("{:016x}", 0));
    for id in &ids {
        assert_eq!(
            cluster.replica(*id, 1).await.expect("status").records,
            Some(20),
            "node {id}"
        );
    }
}
