//! The unindexed tail (`shard::indexer`): what is applied is visible to queries
//! before the background indexer inserts it, with its current vector only.

use common::command::{AddMode, RecordWrite, ShardCommand};
use common::{Filter, MetadataValue, Space};

use super::model::{Driver, COLLECTION};
use crate::raft::state_machine::BackgroundRole;
use crate::shard::snapshot::{capture, read_snapshot, write_snapshot};

const DIM: usize = 4;

/// The role of a group's only replica: it leads, with nobody to send hints to.
fn leader() -> BackgroundRole {
    BackgroundRole {
        leading: true,
        ..BackgroundRole::default()
    }
}

/// A record at `(x, 0, 0, 0)` with metadata `tag`.
fn rec(id: &str, x: f32, tag: i64) -> RecordWrite {
    let mut embedding = vec![0.0; DIM];
    embedding[0] = x;
    RecordWrite {
        id: id.into(),
        embedding: Some(embedding),
        metadata: Some([("tag".to_owned(), Some(MetadataValue::Int(tag)))].into()),
        document: None,
        uri: None,
    }
}

fn upsert(records: Vec<RecordWrite>) -> ShardCommand {
    ShardCommand::Upsert {
        collection: COLLECTION.into(),
        records,
    }
}

/// 3,000 indexed records at x = 1000..4000 (far from the queries near 0), so
/// queries go through the graph, not the small-index exact scan.
fn indexed_driver() -> Driver {
    let mut d = Driver::new(Space::L2);
    let records = (0..3000)
        .map(|i| rec(&format!("g{i}"), 1000.0 + i as f32, 0))
        .collect();
    d.apply(ShardCommand::Add {
        collection: COLLECTION.into(),
        records,
        mode: AddMode::RejectExisting,
    });
    assert_eq!(d.sm.index_lag(), 0);
    d
}

fn q(x: f32) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[0] = x;
    v
}

fn tag(t: i64) -> Filter {
    Filter::parse(Some(&serde_json::json!({ "tag": t })), None).expect("valid filter")
}

#[test]
fn an_applied_write_is_found_before_it_is_indexed() {
    let mut d = indexed_driver();
    d.apply_unindexed(upsert(vec![rec("new", 1.0, 1), rec("other", 2.0, 2)]));
    assert_eq!(d.sm.index_lag(), 2);
    let hits = d.query(&q(0.0), 3, Filter::default());
    assert_eq!(hits[0], ("new".to_owned(), 1.0));
    assert_eq!(hits[1], ("other".to_owned(), 4.0));
    assert_eq!(hits[2].0, "g0", "the graph's nearest follows the tail's");
    // A filter applies to the tail exactly as to the graph.
    let hits = d.query(&q(0.0), 2, tag(2));
    assert_eq!(hits, vec![("other".to_owned(), 4.0)]);
    // Once indexed, both are in the graph and none in the tail.
    d.sm.index_everything();
    assert_eq!(d.sm.index_lag(), 0);
    let c = d.sm.collection(COLLECTION).unwrap();
    let (index, through) = c.index().read();
    assert_eq!(index.map(|i| i.len_live()), Some(3002));
    assert_eq!(through, c.state().next_point);
}

#[test]
fn updates_and_deletes_in_the_tail_never_show_stale_hits() {
    let mut d = indexed_driver();
    // g0 (indexed at x = 1000) moves next to the query; its new vector is in the tail.
    d.apply_unindexed(upsert(vec![rec("g0", 0.5, 0)]));
    let hits = d.query(&q(1000.0), 2, Filter::default());
    assert_eq!(hits[0].0, "g1", "g0's old vector must not answer: {hits:?}");
    assert!(hits.iter().all(|h| h.0 != "g0"));
    assert_eq!(
        d.query(&q(0.0), 1, Filter::default())[0],
        ("g0".into(), 0.25)
    );
    // A record added and then updated, both in the tail: only its last vector counts.
    d.apply_unindexed(upsert(vec![rec("t", 3.0, 0)]));
    d.apply_unindexed(upsert(vec![rec("t", 999.0, 0)]));
    let hits = d.query(&q(3.0), 2, Filter::default());
    assert_eq!(hits, vec![("g0".into(), 6.25), ("t".into(), 996.0 * 996.0)]);
    // Deletes of an indexed record and of a tail record hide both at once.
    for id in ["g1", "t"] {
        d.apply_unindexed(ShardCommand::Delete {
            collection: COLLECTION.into(),
            ids: Some(vec![id.into()]),
            filter: Filter::default(),
            limit: None,
        });
    }
    let hits = d.query(&q(1000.0), 3, Filter::default());
    let ids: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(ids, ["g2", "g3", "g4"]);
    let hits = d.query(&q(999.0), 1, Filter::default());
    assert_eq!(hits[0].0, "g2");
    // Filtered queries too (the metadata filter sees the current record only).
    let hits = d.query(&q(1000.0), 2, tag(0));
    assert!(hits.iter().all(|h| h.0 != "g0" && h.0 != "g1"), "{hits:?}");
    // After indexing (tombstones applied) the answers are the same.
    d.sm.index_everything();
    assert_eq!(d.query(&q(1000.0), 3, Filter::default()).len(), 3);
    assert_eq!(d.query(&q(1000.0), 3, Filter::default())[0].0, "g2");
}

#[test]
fn a_snapshot_keeps_the_watermark_and_the_tail_is_indexed_after_restore() {
    let mut d = indexed_driver();
    let records = (0..600)
        .map(|i| rec(&format!("n{i}"), i as f32, 0))
        .collect();
    d.apply_unindexed(upsert(records));
    // One chunk indexed; an indexed record replaced with its tombstone still queued.
    d.sm.index_job(leader()).expect("a job").1.run();
    d.apply_unindexed(upsert(vec![rec("g5", -1.0, 0)]));
    let lag = d.sm.index_lag();
    assert!(lag > 0 && lag < 601, "lag {lag}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.snap");
    write_snapshot(&d.sm, &path).unwrap();
    let restored = read_snapshot(&path).unwrap();
    assert_eq!(
        restored.index_lag(),
        lag,
        "what was indexed is not indexed again"
    );
    let c = restored.collection(COLLECTION).unwrap();
    let (index, through) = c.index().read();
    let in_graph = index.map(|i| i.len_live()).unwrap_or(0);
    assert_eq!(
        in_graph,
        c.state()
            .records
            .values()
            .filter(|r| r.point < through)
            .count()
    );
    let before = d.query(&q(-1.0), 5, Filter::default());
    d.sm = restored;
    assert_eq!(d.query(&q(-1.0), 5, Filter::default()), before);
    assert_eq!(before[0], ("g5".into(), 0.0));
    d.sm.index_everything();
    assert_eq!(d.sm.index_lag(), 0);
    assert_eq!(d.query(&q(-1.0), 5, Filter::default()), before);
}

#[test]
fn a_query_while_a_chunk_is_linked_sees_each_point_once() {
    let mut d = indexed_driver();
    let records = (0..600)
        .map(|i| rec(&format!("n{i}"), i as f32, 0))
        .collect();
    d.apply_unindexed(upsert(records));
    // The first chunk (n0..n255) is in the graph, the watermark still below it:
    // the indexer's state while it links, with queries running.
    let (_, job) = d.sm.index_job(leader()).expect("a job");
    job.stage_and_link();
    assert_eq!(d.sm.index_lag(), 600);
    let hits = d.query(&q(0.0), 5, Filter::default());
    let ids: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(ids, ["n0", "n1", "n2", "n3", "n4"]);
    let all = d.query(&q(0.0), 700, Filter::default());
    let unique: std::collections::HashSet<&str> = all.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(unique.len(), all.len(), "a point answered twice: {all:?}");
    assert_eq!(all.len(), 700);
    assert_eq!(d.query(&q(0.0), 3, tag(0))[2].0, "n2");
    job.finish_linked();
    assert_eq!(d.sm.index_lag(), 600 - 256);
    // Now n0..n255 answer from the graph (approximately: points on a line are
    // HNSW's worst case, so only uniqueness is exact here).
    let all = d.query(&q(0.0), 700, Filter::default());
    let unique: std::collections::HashSet<&str> = all.iter().map(|h| h.0.as_str()).collect();
    assert_eq!((unique.len(), all.len()), (700, 700));
}

/// A record off the line the other tests use (a line is HNSW's worst case, and
/// this test needs the graph to find what it holds): `(x, 3 sin x, 3 cos x, 3 sin 2x)`.
fn spread(id: &str, x: f32) -> RecordWrite {
    let mut r = rec(id, x, 0);
    r.embedding = Some(spread_at(x));
    r
}

fn spread_at(x: f32) -> Vec<f32> {
    vec![x, 3.0 * x.sin(), 3.0 * x.cos(), 3.0 * (2.0 * x).sin()]
}

#[test]
fn a_snapshot_is_of_its_capture_while_the_graph_moves_on() {
    let mut d = indexed_driver();
    let records = (0..600)
        .map(|i| spread(&format!("n{i}"), i as f32))
        .collect();
    d.apply_unindexed(upsert(records));
    d.sm.index_job(leader()).expect("a job").1.run(); // the first chunk in the graph
    let digest = d.sm.digest();
    let captured = capture(&d.sm).unwrap();

    // Between the capture and the file: deletes of indexed and unindexed records,
    // an update, a new record, and the indexer catching up with all of it.
    for id in ["g1", "n10", "n400"] {
        d.apply_unindexed(ShardCommand::Delete {
            collection: COLLECTION.into(),
            ids: Some(vec![id.into()]),
            filter: Filter::default(),
            limit: None,
        });
    }
    d.apply_unindexed(upsert(vec![spread("n20", 700.0), spread("late", 701.0)]));
    d.sm.index_everything();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.snap");
    captured.write(&path).unwrap();
    let restored = read_snapshot(&path).unwrap();
    assert_eq!(restored.digest(), digest, "the records of the capture");
    let c = restored.collection(COLLECTION).unwrap();
    let (index, through) = c.index().read();
    let index = index.expect("a graph");
    assert_eq!(through, c.state().next_point, "nothing left to index");
    assert_eq!(index.len_live(), c.state().records.len());
    assert!(
        index.tombstones() > 0,
        "the saved graph is reused (reconciled), not rebuilt"
    );
    drop(index);
    d.sm = restored;
    // Every record of the capture answers from the graph at its own vector, the
    // later ones do not exist.
    for (id, v) in [
        ("g1", q(1001.0)),
        ("n10", spread_at(10.0)),
        ("n20", spread_at(20.0)),
        ("n400", spread_at(400.0)),
    ] {
        assert_eq!(d.query(&v, 1, Filter::default())[0], (id.to_owned(), 0.0));
    }
    let hits = d.query(&spread_at(700.5), 3, Filter::default());
    assert!(
        hits.iter().all(|h| h.0 != "late" && h.0 != "n20"),
        "{hits:?}"
    );
}
