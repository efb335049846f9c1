//! The write rules of http-api.md as the shard enforces them, request-id
//! dedup, stable paging, and no stale hits on the HNSW path.

use common::command::{AddMode, ApplyOutcome, Proposal, RecordWrite, ShardCommand};
use common::read::{GetRequest, Include};
use common::{Filter, Space};
use tests::vectors::clustered;

use super::model::{Driver, COLLECTION};
use crate::raft::StateMachine;
use crate::shard::AppliedPosition;

fn rec(id: &str, e: Vec<f32>) -> RecordWrite {
    RecordWrite {
        id: id.into(),
        embedding: Some(e),
        metadata: None,
        document: None,
        uri: None,
    }
}

fn add(records: Vec<RecordWrite>, mode: AddMode) -> ShardCommand {
    ShardCommand::Add {
        collection: COLLECTION.into(),
        records,
        mode,
    }
}

/// The metadata `{"bucket": b}`.
fn bucket(b: i64) -> common::command::MetadataPatch {
    [("bucket".to_owned(), Some(common::MetadataValue::Int(b)))].into()
}

/// An add of records "0".."n-1", record i with metadata `{"bucket": bucket_of(i)}`.
fn bucketed(
    n: i64,
    bucket_of: impl Fn(i64) -> i64,
    embedding: impl Fn(i64) -> Vec<f32>,
) -> ShardCommand {
    let records = (0..n)
        .map(|i| RecordWrite {
            metadata: Some(bucket(bucket_of(i))),
            ..rec(&i.to_string(), embedding(i))
        })
        .collect();
    add(records, AddMode::RejectExisting)
}

#[test]
fn add_of_existing_id_in_reject_mode_writes_nothing() {
    let mut d = Driver::new(Space::L2);
    assert_eq!(
        d.apply(add(vec![rec("a", vec![1.0, 0.0])], AddMode::RejectExisting)),
        ApplyOutcome::Done
    );
    let digest = d.sm.digest();
    let outcome = d.apply(add(
        vec![rec("b", vec![0.0, 1.0]), rec("a", vec![2.0, 2.0])],
        AddMode::RejectExisting,
    ));
    assert_eq!(outcome, ApplyOutcome::IdsAlreadyExist(vec!["a".into()]));
    assert_eq!(d.sm.digest(), digest);
    assert_eq!(d.get_all(Filter::default()), vec!["a"]);
    // Skip mode adds the new id and leaves the existing one untouched.
    d.apply(add(
        vec![rec("b", vec![0.0, 1.0]), rec("a", vec![2.0, 2.0])],
        AddMode::SkipExisting,
    ));
    assert_eq!(d.get_all(Filter::default()), vec!["a", "b"]);
    assert_eq!(
        d.query(&[1.0, 0.0], 1, Filter::default()),
        vec![("a".into(), 0.0)]
    );
}

#[test]
fn bad_commands_are_rejected_whole() {
    let mut d = Driver::new(Space::L2);
    d.apply(add(vec![rec("a", vec![1.0, 0.0])], AddMode::RejectExisting));
    let digest = d.sm.digest();
    let cases = [
        add(
            vec![rec("b", vec![1.0, 0.0]), rec("c", vec![1.0, 0.0, 3.0])],
            AddMode::RejectExisting,
        ),
        add(vec![rec("b", vec![1.0, f32::NAN])], AddMode::RejectExisting),
        add(
            vec![rec("b", vec![1.0, 0.0]), rec("b", vec![1.0, 0.0])],
            AddMode::RejectExisting,
        ),
        ShardCommand::Upsert {
            collection: COLLECTION.into(),
            records: vec![
                rec("a", vec![5.0, 5.0]),
                RecordWrite {
                    embedding: None,
                    ..rec("new", vec![])
                },
            ],
        },
        ShardCommand::Update {
            collection: COLLECTION.into(),
            records: vec![rec("a", vec![1.0])],
        },
        ShardCommand::Add {
            collection: "nope".into(),
            records: vec![rec("z", vec![1.0, 0.0])],
            mode: AddMode::SkipExisting,
        },
    ];
    for cmd in cases {
        let outcome = d.apply(cmd.clone());
        assert!(
            matches!(
                outcome,
                ApplyOutcome::Rejected(_) | ApplyOutcome::NoSuchCollection
            ),
            "{cmd:?} gave {outcome:?}"
        );
        assert_eq!(d.sm.digest(), digest, "{cmd:?} changed state");
    }
}

#[test]
fn update_of_missing_id_is_ignored_and_fields_merge() {
    let mut d = Driver::new(Space::L2);
    let mut a = rec("a", vec![1.0, 0.0]);
    a.document = Some("doc".into());
    a.metadata = Some([("x".to_owned(), Some(common::MetadataValue::Int(1)))].into());
    d.apply(add(vec![a], AddMode::RejectExisting));
    let update = RecordWrite {
        id: "a".into(),
        embedding: None,
        metadata: Some([("y".to_owned(), Some(common::MetadataValue::Bool(true)))].into()),
        document: None,
        uri: Some("u".into()),
    };
    d.apply(ShardCommand::Update {
        collection: COLLECTION.into(),
        records: vec![update, rec("ghost", vec![0.0, 0.0])],
    });
    let got = d.get_records(Filter::default());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].document.as_deref(), Some("doc"));
    assert_eq!(got[0].uri.as_deref(), Some("u"));
    assert_eq!(got[0].metadata.as_ref().map(|m| m.len()), Some(2));
    assert_eq!(got[0].embedding.as_deref(), Some(&[1.0, 0.0][..]));
}

#[test]
fn a_retried_request_id_applies_once() {
    let mut d = Driver::new(Space::L2);
    let proposal = Proposal {
        request_id: 42,
        deadline_ms: 0,
        command: add(vec![rec("a", vec![1.0, 0.0])], AddMode::RejectExisting),
    };
    assert_eq!(
        d.sm.apply(AppliedPosition { index: 10, term: 2 }, 0, &proposal),
        ApplyOutcome::Done
    );
    // The retry is committed again at a later index: same outcome, no IDAlreadyExists.
    assert_eq!(
        d.sm.apply(AppliedPosition { index: 11, term: 3 }, 0, &proposal),
        ApplyOutcome::Done
    );
    assert_eq!(d.sm.applied(), AppliedPosition { index: 11, term: 3 });
    let upsert = Proposal {
        request_id: 43,
        deadline_ms: 0,
        command: ShardCommand::Delete {
            collection: COLLECTION.into(),
            ids: None,
            filter: Filter::default(),
            limit: None,
        },
    };
    assert_eq!(
        d.sm.apply(AppliedPosition { index: 12, term: 3 }, 0, &upsert),
        ApplyOutcome::Deleted(1)
    );
    d.apply(add(vec![rec("a", vec![1.0, 0.0])], AddMode::RejectExisting));
    assert_eq!(
        d.sm.apply(AppliedPosition { index: 14, term: 3 }, 0, &upsert),
        ApplyOutcome::Deleted(1)
    );
    assert_eq!(
        d.get_all(Filter::default()),
        vec!["a"],
        "the retried delete must not delete again"
    );
}

#[test]
fn get_pages_in_stable_order_without_gaps_or_repeats() {
    let mut d = Driver::new(Space::L2);
    let data = clustered(250, 3, 5, 0.1, 9);
    for (i, chunk) in data.chunks(50).enumerate() {
        let records = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| rec(&format!("r{}", (i * 50 + j) * 7919 % 1000), v.clone()));
        d.apply(add(records.collect(), AddMode::RejectExisting));
    }
    let all = d.get_all(Filter::default());
    assert_eq!(all.len(), 250);
    let mut paged = Vec::new();
    for page in 0.. {
        let req = GetRequest {
            collection: COLLECTION.into(),
            ids: None,
            filter: Filter::default(),
            offset: page * 17,
            limit: Some(17),
            include: Include::default(),
        };
        let got = d.sm.get(&req).unwrap();
        if got.is_empty() {
            break;
        }
        paged.extend(got.into_iter().map(|r| r.id));
    }
    assert_eq!(paged, all);
}

#[test]
fn hnsw_path_never_returns_deleted_or_replaced_versions() {
    let mut d = Driver::new(Space::L2);
    let mut all = clustered(3050, 16, 20, 0.5, 3);
    let queries = all.split_off(3000);
    let data = all;
    for (b, chunk) in data.chunks(500).enumerate() {
        let records = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| rec(&format!("{}", b * 500 + j), v.clone()));
        d.apply(add(records.collect(), AddMode::RejectExisting));
    }
    // Delete every third record; move every fifth far away.
    let deleted: Vec<String> = (0..3000).step_by(3).map(|i| i.to_string()).collect();
    d.apply(ShardCommand::Delete {
        collection: COLLECTION.into(),
        ids: Some(deleted.clone()),
        filter: Filter::default(),
        limit: None,
    });
    let moved: Vec<RecordWrite> = (1..3000)
        .step_by(5)
        .map(|i| rec(&i.to_string(), vec![100.0; 16]))
        .collect();
    d.apply(ShardCommand::Update {
        collection: COLLECTION.into(),
        records: moved.clone(),
    });
    for q in queries {
        for (id, dist) in d.query(&q, 10, Filter::default()) {
            assert!(!deleted.contains(&id), "deleted id {id} returned");
            let i: usize = id.parse().unwrap();
            let current = if i % 5 == 1 {
                vec![100.0; 16]
            } else {
                data[i].clone()
            };
            assert_eq!(
                dist,
                Space::L2.distance(&q, &current),
                "stale distance for {id}"
            );
        }
    }
}

#[test]
fn selective_filters_through_the_metadata_index_agree_with_a_scan() {
    let mut d = Driver::new(Space::L2);
    d.apply(bucketed(2000, |i| i % 100, |i| vec![i as f32, 1.0]));
    // Move some records between buckets (metadata only, and with a new embedding),
    // drop the key from others, and delete a few.
    let moved = (0..2000).step_by(7).map(|i| RecordWrite {
        id: i.to_string(),
        embedding: (i % 2 == 0).then(|| vec![0.0, i as f32]),
        metadata: Some(bucket(3)),
        document: None,
        uri: None,
    });
    d.apply(ShardCommand::Update {
        collection: COLLECTION.into(),
        records: moved.collect(),
    });
    let dropped = (1..2000).step_by(11).map(|i| RecordWrite {
        id: i.to_string(),
        embedding: None,
        metadata: Some([("bucket".to_owned(), None)].into()),
        document: None,
        uri: None,
    });
    d.apply(ShardCommand::Upsert {
        collection: COLLECTION.into(),
        records: dropped.collect(),
    });
    d.apply(ShardCommand::Delete {
        collection: COLLECTION.into(),
        ids: Some((0..2000).step_by(13).map(|i| i.to_string()).collect()),
        filter: Filter::default(),
        limit: None,
    });
    let all = d.get_records(Filter::default());
    for w in [
        serde_json::json!({"bucket": 3}),
        serde_json::json!({"bucket": 3.0}),
        serde_json::json!({"bucket": {"$in": [5, 6, 99]}}),
        serde_json::json!({"$and": [{"bucket": 3}, {"bucket": {"$ne": 4}}]}),
        serde_json::json!({"$or": [{"bucket": 1}, {"bucket": 2}]}),
        serde_json::json!({"bucket": {"$lt": 2}}),
        serde_json::json!({"bucket": {"$gt": 97.5}}),
        serde_json::json!({"$and": [{"bucket": {"$gte": 3}}, {"bucket": {"$lte": 4}}]}),
        serde_json::json!({"$and": [{"bucket": {"$gt": 0}}, {"bucket": 3}]}),
    ] {
        let filter = Filter::parse(Some(&w), None).unwrap();
        let want: Vec<String> = all
            .iter()
            .filter(|r| filter.matches(r.metadata.as_ref(), r.document.as_deref()))
            .map(|r| r.id.clone())
            .collect();
        assert!(
            !want.is_empty() && want.len() < all.len() / 4,
            "{w}: filter must take the index path"
        );
        assert_eq!(d.get_all(filter.clone()), want, "{w}");
        let q = [5.0, 1.0];
        let hits = d.query(&q, 5, filter.clone());
        assert!(
            hits.iter().all(|(id, _)| want.contains(id)),
            "{w}: query hit outside the filter"
        );
        // Few candidates: answered by an exact scan, so the distances are the
        // brute-force top 5's (ids may differ only among ties).
        let mut exact: Vec<f32> = all
            .iter()
            .filter(|r| filter.matches(r.metadata.as_ref(), r.document.as_deref()))
            .filter_map(|r| Some(Space::L2.distance(&q, r.embedding.as_deref()?)))
            .collect();
        exact.sort_by(f32::total_cmp);
        exact.truncate(5);
        let got: Vec<f32> = hits.iter().map(|(_, dist)| *dist).collect();
        assert_eq!(got, exact, "{w}");
    }
}

#[test]
fn an_indexed_filter_with_more_candidates_than_an_exact_scan_takes_searches_only_them() {
    // 6000 records in 3 buckets: `$in` two of them leaves 4000 candidates,
    // more than an exact scan takes and few enough to collect in one step,
    // so the graph search is restricted to exactly those points.
    let mut d = Driver::new(Space::L2);
    d.apply(bucketed(
        6000,
        |i| i % 3,
        |i| vec![(i % 80) as f32, (i / 80) as f32],
    ));
    let filter =
        Filter::parse(Some(&serde_json::json!({"bucket": {"$in": [0, 2]}})), None).unwrap();
    let want = d.get_all(filter.clone());
    assert_eq!(want.len(), 4000);
    for q in [[10.2, 30.1], [79.0, 0.0], [40.6, 74.4]] {
        let hits = d.query(&q, 5, filter.clone());
        assert_eq!(hits.len(), 5, "{q:?}");
        assert!(
            hits.iter()
                .all(|(id, _)| id.parse::<usize>().unwrap() % 3 != 1),
            "{q:?}: a hit outside the filter: {hits:?}"
        );
        let mut exact: Vec<f32> = (0..6000)
            .filter(|i| i % 3 != 1)
            .map(|i| Space::L2.distance(&q, &[(i % 80) as f32, (i / 80) as f32]))
            .collect();
        exact.sort_by(f32::total_cmp);
        // A 2-d graph at ef 100 finds the nearest; the rest may differ among ties.
        assert_eq!(hits[0].1, exact[0], "{q:?}: {hits:?}");
    }
}

#[test]
fn broad_filters_search_the_graph_with_the_filter_checked_lazily() {
    use common::command::MetadataPatch;
    use common::MetadataValue;
    let mut d = Driver::new(Space::L2);
    let mut all = clustered(10_020, 8, 30, 0.5, 11);
    let queries = all.split_off(10_000);
    let parity = |i: usize| -> MetadataPatch {
        [(
            "even".to_owned(),
            Some(MetadataValue::Bool(i.is_multiple_of(2))),
        )]
        .into()
    };
    for (b, chunk) in all.chunks(2000).enumerate() {
        let records = chunk.iter().enumerate().map(|(j, v)| {
            let i = b * 2000 + j;
            RecordWrite {
                metadata: Some(parity(i)),
                ..rec(&i.to_string(), v.clone())
            }
        });
        d.apply(add(records.collect(), AddMode::RejectExisting));
    }
    let filter = Filter::parse(Some(&serde_json::json!({"even": true})), None).unwrap();
    let mut found = 0;
    for q in &queries {
        let hits = d.query(q, 10, filter.clone());
        assert_eq!(hits.len(), 10);
        assert!(
            hits.iter()
                .all(|(id, _)| id.parse::<usize>().unwrap().is_multiple_of(2)),
            "hit outside the filter"
        );
        let mut exact: Vec<(f32, usize)> = (0..all.len())
            .step_by(2)
            .map(|i| (Space::L2.distance(q, &all[i]), i))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        found += exact[..10]
            .iter()
            .filter(|(_, i)| hits.iter().any(|(id, _)| id == &i.to_string()))
            .count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "recall {recall}");
}
