//! The record operations over three in-memory shard groups: where writes
//! land, how pages and nearest neighbours merge across shards, and what one
//! failed shard does to a request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::catalog::{CollectionConfiguration, CollectionModel};
use common::command::{AddMode, IndexConfig, RecordWrite, ShardCommand};
use common::read::{Include, QueryHit, RecordView, ShardRead};
use common::{Filter, MetadataValue};
use serde_json::json;

use super::{count, delete, get, query, write, Query, Selection, WriteKind};
use crate::error::ApiError;
use crate::routing::Placement;
use crate::shards::memory::{Call, MemoryCatalogue, MemoryShards};
use crate::shards::{on_every_group, CollectionShards};

const GROUPS: [u64; 3] = [1, 2, 3];
const ID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn model(dimension: Option<u32>) -> CollectionModel {
    CollectionModel {
        id: ID.into(),
        name: "c".into(),
        tenant: "default_tenant".into(),
        database: "default_database".into(),
        metadata: None,
        configuration: CollectionConfiguration::new(IndexConfig::default()),
        index_config: IndexConfig::default(),
        dimension,
        version: 0,
        shards: GROUPS.to_vec(),
    }
}

/// Three groups, each with the collection's part, and the catalogue.
struct Cluster {
    shards: MemoryShards,
    catalogue: MemoryCatalogue,
}

impl Cluster {
    async fn new() -> Self {
        let shards = MemoryShards::new(&GROUPS);
        let create = ShardCommand::CreateCollection {
            collection: ID.into(),
            config: IndexConfig::default(),
        };
        assert!(on_every_group(&shards, &GROUPS, &create, deadline())
            .await
            .is_empty());
        shards.take_calls();
        Cluster {
            shards,
            catalogue: MemoryCatalogue::with(&model(None)),
        }
    }

    /// The collection as a request sees it (its dimension known once written).
    fn view(&self, dimension: Option<u32>) -> CollectionShards<'_, MemoryShards, &MemoryCatalogue> {
        CollectionShards {
            cluster: &self.shards,
            catalog: &self.catalogue,
            collection: model(dimension),
            deadline: deadline(),
        }
    }

    /// Adds `n` records: id `r00`.., embedding `[i, 0]`, metadata `n: i`.
    async fn with_records(n: usize) -> Self {
        let cluster = Cluster::new().await;
        let records = (0..n).map(|i| record(i, i as f32)).collect();
        let add = WriteKind::Add(AddMode::RejectExisting);
        write(&mut cluster.view(None), add, records, Some(2))
            .await
            .unwrap();
        cluster.shards.take_calls();
        cluster
    }
}

fn record(i: usize, x: f32) -> RecordWrite {
    RecordWrite {
        id: format!("r{i:02}"),
        embedding: Some(vec![x, 0.0]),
        metadata: Some(BTreeMap::from([(
            "n".to_owned(),
            Some(MetadataValue::Int(i as i64)),
        )])),
        document: Some(format!("doc {i}")),
        uri: None,
    }
}

fn ids(records: &[RecordView]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn hit_ids(hits: &[QueryHit]) -> Vec<String> {
    hits.iter().map(|h| h.record.id.clone()).collect()
}

fn all(limit: Option<usize>) -> Selection {
    Selection {
        ids: None,
        filter: Filter::default(),
        limit,
    }
}

fn groups_called(calls: &[(u64, Call)]) -> Vec<u64> {
    calls.iter().map(|(g, _)| *g).collect()
}

#[tokio::test]
async fn a_write_lands_on_the_groups_routing_names_in_one_command_each() {
    let cluster = Cluster::with_records(30).await;
    let placement = Placement::new(ID, &GROUPS);
    let mut total = 0;
    for group in GROUPS {
        let held = cluster.shards.ids_on(group, ID);
        assert!(!held.is_empty(), "30 ids reach group {group}");
        assert!(held.iter().all(|id| placement.group_of(id) == group));
        total += held.len();
    }
    assert_eq!(total, 30);

    // An upsert of two ids on one group is one command to that group only.
    let on_one: Vec<RecordWrite> = (0..30)
        .map(|i| record(i, 0.0))
        .filter(|r| placement.group_of(&r.id) == 2)
        .take(2)
        .collect();
    write(
        &mut cluster.view(Some(2)),
        WriteKind::Upsert,
        on_one,
        Some(2),
    )
    .await
    .unwrap();
    let calls = cluster.shards.take_calls();
    assert_eq!(groups_called(&calls), [2]);
    match &calls[0].1 {
        Call::Propose(ShardCommand::Upsert { records, .. }) => assert_eq!(records.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&cluster.view(Some(2))).await.unwrap(), 30);
}

#[tokio::test]
async fn pages_span_shards_without_gaps_or_repeats() {
    let cluster = Cluster::with_records(25).await;
    let view = cluster.view(Some(2));
    let everything = ids(&get(&view, all(None), 0, Include::ALL).await.unwrap());
    let expected: Vec<String> = (0..25).map(|i| format!("r{i:02}")).collect();
    assert_eq!(everything, expected);

    for (offset, limit) in [(0, 7), (3, 10), (7, 7), (20, 10), (24, 1), (25, 5), (40, 2)] {
        let page = get(&view, all(Some(limit)), offset, Include::default())
            .await
            .unwrap();
        let want: Vec<String> = expected.iter().skip(offset).take(limit).cloned().collect();
        assert_eq!(ids(&page), want, "offset {offset} limit {limit}");
    }
    // Each shard was asked for its first offset + limit records.
    cluster.shards.take_calls();
    get(&view, all(Some(4)), 6, Include::default())
        .await
        .unwrap();
    let calls = cluster.shards.take_calls();
    assert_eq!(groups_called(&calls), GROUPS);
    for (_, call) in calls {
        match call {
            Call::Read(ShardRead::Get(r)) => assert_eq!((r.offset, r.limit), (0, Some(10))),
            other => panic!("{other:?}"),
        }
    }
    // Pages of 4 walk the whole collection.
    let mut walked = Vec::new();
    for offset in (0..25).step_by(4) {
        let page = get(&view, all(Some(4)), offset, Include::default());
        walked.extend(ids(&page.await.unwrap()));
    }
    assert_eq!(walked, expected);
    // A limit of 0 asks no shard.
    cluster.shards.take_calls();
    assert!(get(&view, all(Some(0)), 0, Include::ALL)
        .await
        .unwrap()
        .is_empty());
    assert!(cluster.shards.take_calls().is_empty());
}

#[tokio::test]
async fn get_by_ids_asks_only_their_groups_and_returns_id_order() {
    let cluster = Cluster::with_records(12).await;
    let wanted = vec!["r09".to_owned(), "r02".to_owned(), "nope".to_owned()];
    let selection = Selection {
        ids: Some(wanted.clone()),
        filter: Filter::default(),
        limit: None,
    };
    let view = cluster.view(Some(2));
    let records = get(&view, selection, 0, Include::ALL).await.unwrap();
    assert_eq!(ids(&records), ["r02", "r09"]);
    assert_eq!(records[0].document.as_deref(), Some("doc 2"));
    assert_eq!(records[0].embedding.as_deref(), Some(&[2.0, 0.0][..]));
    let placement = Placement::new(ID, &GROUPS);
    let mut asked = groups_called(&cluster.shards.take_calls());
    let mut holding: Vec<u64> = wanted.iter().map(|id| placement.group_of(id)).collect();
    asked.sort();
    holding.sort();
    holding.dedup();
    assert_eq!(asked, holding);
}

#[tokio::test]
async fn query_merges_the_nearest_of_every_shard_ties_by_id() {
    let cluster = Cluster::new().await;
    // Pairs at equal distance from 0: (r00, r01) at 1, (r02, r03) at 4 ...
    // spread over the groups by their ids.
    let records: Vec<RecordWrite> = (0..12)
        .map(|i| {
            let x = (i / 2 + 1) as f32;
            record(i, if i % 2 == 0 { x } else { -x })
        })
        .collect();
    let placement = Placement::new(ID, &GROUPS);
    let spread: std::collections::BTreeSet<u64> =
        records.iter().map(|r| placement.group_of(&r.id)).collect();
    assert_eq!(spread.len(), 3);
    write(&mut cluster.view(None), WriteKind::Upsert, records, Some(2))
        .await
        .unwrap();
    let q = |n_results, embeddings: Vec<Vec<f32>>| Query {
        dimension: Some(2),
        embeddings,
        n_results,
        ids: None,
        filter: Filter::default(),
        include: Include::default(),
    };
    let mut view = cluster.view(Some(2));
    let hits = query(&mut view, q(5, vec![vec![0.0, 0.0], vec![6.0, 0.0]]))
        .await
        .unwrap();
    assert_eq!(hit_ids(&hits[0]), ["r00", "r01", "r02", "r03", "r04"]);
    assert_eq!(hits[0][0].distance, hits[0][1].distance);
    assert!(hits[0].windows(2).all(|w| w[0].distance <= w[1].distance));
    assert_eq!(hit_ids(&hits[1]), ["r10", "r08", "r06", "r04", "r02"]);
    // More than there are: every record once.
    let hits = query(&mut view, q(50, vec![vec![0.0, 0.0]])).await.unwrap();
    assert_eq!(hits[0].len(), 12);
    // No embeddings or no results: no shard is asked.
    cluster.shards.take_calls();
    assert_eq!(
        query(&mut view, q(0, vec![vec![0.0, 0.0]])).await.unwrap(),
        [vec![]]
    );
    assert!(cluster.shards.take_calls().is_empty());
}

#[tokio::test]
async fn query_checks_the_dimension_the_catalogue_has() {
    let cluster = Cluster::with_records(3).await;
    let wrong = Query {
        dimension: Some(3),
        embeddings: vec![vec![0.0; 3]],
        n_results: 2,
        ids: None,
        filter: Filter::default(),
        include: Include::default(),
    };
    // The cached collection has no dimension yet: the catalogue's is used.
    let mut view = cluster.view(None);
    match query(&mut view, wrong).await {
        Err(ApiError::InvalidArgument(m)) => {
            assert_eq!(
                m,
                "Collection expecting embedding with dimension of 2, got 3"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(view.collection.dimension, Some(2));
    // A collection never written to answers no hits and asks no shard.
    let fresh = MemoryCatalogue::with(&model(None));
    let mut view = CollectionShards {
        catalog: &fresh,
        ..cluster.view(None)
    };
    cluster.shards.take_calls();
    let q = Query {
        dimension: Some(5),
        embeddings: vec![vec![0.0; 5], vec![1.0; 5]],
        n_results: 2,
        ids: None,
        filter: Filter::default(),
        include: Include::default(),
    };
    assert_eq!(query(&mut view, q).await.unwrap(), [vec![], vec![]]);
    assert!(cluster.shards.take_calls().is_empty());
}

#[tokio::test]
async fn the_first_write_fixes_the_dimension_and_another_writes_nothing() {
    let cluster = Cluster::new().await;
    let first = vec![record(0, 1.0)];
    write(&mut cluster.view(None), WriteKind::Upsert, first, Some(2))
        .await
        .unwrap();
    let mut longer = record(1, 1.0);
    longer.embedding = Some(vec![1.0; 3]);
    cluster.shards.take_calls();
    // The request's cached collection still has no dimension: the
    // catalogue's compare-and-set refuses the other one.
    let mut view = cluster.view(None);
    match write(&mut view, WriteKind::Upsert, vec![longer], Some(3)).await {
        Err(ApiError::InvalidArgument(m)) => assert_eq!(
            m,
            "Collection expecting embedding with dimension of 2, got 3"
        ),
        other => panic!("{other:?}"),
    }
    assert!(cluster.shards.take_calls().is_empty());
    assert_eq!(count(&cluster.view(Some(2))).await.unwrap(), 1);
}

/// What the API answers today when shard 2 has no leader.
fn shard_2_unavailable() -> String {
    format!(
        "Shard 2 (Raft group 2) of collection {ID} is unavailable: no leader with a quorum (in-memory group marked down)"
    )
}

#[tokio::test]
async fn one_failed_shard_fails_reads_with_503_naming_it() {
    let cluster = Cluster::with_records(20).await;
    cluster.shards.take_down(2);
    let view = cluster.view(Some(2));
    let unavailable = Some(ApiError::Unavailable(shard_2_unavailable()));
    assert_eq!(
        get(&view, all(Some(5)), 0, Include::default()).await.err(),
        unavailable
    );
    assert_eq!(count(&view).await.err(), unavailable);
    let q = Query {
        dimension: Some(2),
        embeddings: vec![vec![0.0, 0.0]],
        n_results: 3,
        ids: None,
        filter: Filter::default(),
        include: Include::default(),
    };
    let mut view = cluster.view(Some(2));
    assert_eq!(query(&mut view, q).await.err(), unavailable);

    // Two failed shards: one 503 naming both.
    cluster.shards.take_down(3);
    match count(&view).await {
        Err(ApiError::Unavailable(m)) => {
            assert!(m.starts_with(&shard_2_unavailable()), "{m}");
            assert!(m.contains("; Shard 3 (Raft group 3)"), "{m}");
        }
        other => panic!("{other:?}"),
    } // A command on every group (create, drop, reset) names the failed ones.
    let modify = ShardCommand::ModifyCollection {
        collection: ID.into(),
        config: IndexConfig::default(),
    };
    let failed = on_every_group(&cluster.shards, &GROUPS, &modify, deadline()).await;
    let failed: Vec<u64> = failed.iter().map(|(g, _)| *g).collect();
    assert_eq!(failed, [2, 3]);
}

#[tokio::test]
async fn a_write_with_one_failed_shard_applies_the_other_parts_and_names_it() {
    let cluster = Cluster::new().await;
    cluster.shards.take_down(2);
    let records: Vec<RecordWrite> = (0..30).map(|i| record(i, i as f32)).collect();
    let placement = Placement::new(ID, &GROUPS);
    let expected = |group| {
        let mut ids: Vec<String> = records
            .iter()
            .filter(|r| placement.group_of(&r.id) == group)
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        ids
    };
    let (on_1, on_3) = (expected(1), expected(3));
    let result = write(
        &mut cluster.view(None),
        WriteKind::Upsert,
        records.clone(),
        Some(2),
    )
    .await;
    assert_eq!(result, Err(ApiError::Unavailable(shard_2_unavailable())));
    // The README's contract: the other shards' parts are applied.
    assert_eq!(cluster.shards.ids_on(1, ID), on_1);
    assert_eq!(cluster.shards.ids_on(3, ID), on_3);
    assert!(cluster.shards.ids_on(2, ID).is_empty());
}

#[tokio::test]
async fn add_in_reject_mode_across_shards_writes_nothing_when_an_id_exists() {
    let cluster = Cluster::with_records(1).await;
    let add = WriteKind::Add(AddMode::RejectExisting);
    let records: Vec<RecordWrite> = (0..10).map(|i| record(i, 1.0)).collect();
    match write(&mut cluster.view(Some(2)), add, records, Some(2)).await {
        Err(ApiError::IdAlreadyExists(m)) => assert!(m.ends_with("existing ids: r00"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&cluster.view(Some(2))).await.unwrap(), 1);
    // Skip mode writes the new ones and leaves r00 as it was.
    let skip = WriteKind::Add(AddMode::SkipExisting);
    let records: Vec<RecordWrite> = (0..10).map(|i| record(i, 1.0)).collect();
    write(&mut cluster.view(Some(2)), skip, records, Some(2))
        .await
        .unwrap();
    assert_eq!(count(&cluster.view(Some(2))).await.unwrap(), 10);
    let r00 = Selection {
        ids: Some(vec!["r00".into()]),
        filter: Filter::default(),
        limit: None,
    };
    let kept = get(&cluster.view(Some(2)), r00, 0, Include::ALL)
        .await
        .unwrap();
    assert_eq!(kept[0].embedding.as_deref(), Some(&[0.0, 0.0][..]));
}

#[tokio::test]
async fn delete_with_a_filter_and_limit_holds_the_limit_across_shards() {
    let cluster = Cluster::with_records(20).await;
    let view = cluster.view(Some(2));
    let selection = Selection {
        ids: None,
        filter: Filter::parse(Some(&json!({"n": {"$gte": 5}})), None).unwrap(),
        limit: Some(6),
    };
    assert_eq!(delete(&view, selection).await.unwrap(), 6);
    let left = ids(&get(&view, all(None), 0, Include::default()).await.unwrap());
    let expected: Vec<String> = (0..5).chain(11..20).map(|i| format!("r{i:02}")).collect();
    assert_eq!(left, expected);
    // Without a limit every shard deletes its matches.
    let selection = Selection {
        ids: None,
        filter: Filter::parse(Some(&json!({"n": {"$lt": 3}})), None).unwrap(),
        limit: None,
    };
    assert_eq!(delete(&view, selection).await.unwrap(), 3);
    assert_eq!(count(&view).await.unwrap(), 11);
}

#[tokio::test]
async fn a_missing_part_is_created_from_the_catalogue_or_the_collection_is_gone() {
    let cluster = Cluster::with_records(12).await;
    let on_2 = cluster.shards.ids_on(2, ID).len() as u64;
    assert!(on_2 > 0);
    cluster.shards.lose_part(2, ID);
    // Group 2 lost its records with its part; the read recreates it empty.
    let view = cluster.view(Some(2));
    assert_eq!(count(&view).await.unwrap(), 12 - on_2);
    let again = (0..12).map(|i| record(i, 0.0)).collect();
    write(
        &mut cluster.view(Some(2)),
        WriteKind::Upsert,
        again,
        Some(2),
    )
    .await
    .unwrap();
    assert_eq!(count(&view).await.unwrap(), 12);

    // Deleted through another router: the part is not recreated, 404.
    cluster.catalogue.delete(ID);
    let drop = ShardCommand::DropCollection {
        collection: ID.into(),
    };
    assert!(on_every_group(&cluster.shards, &GROUPS, &drop, deadline())
        .await
        .is_empty());
    match count(&view).await {
        Err(ApiError::NotFound(m)) => assert!(m.contains(ID), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(cluster.shards.ids_on(1, ID).is_empty());
}

/// A repair that read the catalogue before a delete through another router committed, and
/// proposes the part's creation after that router dropped it, ends in 404: the shard never
/// creates a dropped part again (issue 12, finding 3: the late create brought back an
/// orphan part, the write was acknowledged, and routers with the collection cached kept
/// writing to it).
#[tokio::test]
async fn a_repair_racing_with_a_delete_ends_in_not_found_not_in_an_orphan_part() {
    let cluster = Cluster::with_records(12).await;
    // The other router's delete: the catalogue entry goes first, then the parts. This
    // router's catalogue read happened before it (the catalogue here still answers).
    let drop = ShardCommand::DropCollection {
        collection: ID.into(),
    };
    assert!(on_every_group(&cluster.shards, &GROUPS, &drop, deadline())
        .await
        .is_empty());
    let late = (0..12).map(|i| record(i, 1.0)).collect();
    match write(&mut cluster.view(Some(2)), WriteKind::Upsert, late, Some(2)).await {
        Err(ApiError::NotFound(m)) => assert!(m.contains(ID), "{m}"),
        other => panic!("expected 404 after the drop, got {other:?}"),
    }
    for group in GROUPS {
        assert!(
            cluster.shards.ids_on(group, ID).is_empty(),
            "group {group} holds an orphan part of the deleted collection"
        );
    }
}
