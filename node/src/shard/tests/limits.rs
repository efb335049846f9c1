//! Hostile commands and reads that reach the shard without a router: HNSW
//! parameters far out of range are capped so the index never sees them,
//! records and reads over the limits of `common::limits` are refused, the
//! same way on every replica.

use common::command::{AddMode, ApplyOutcome, IndexConfig, RecordWrite, ShardCommand};
use common::limits;
use common::read::{GetRequest, Include, QueryRequest, ShardRead, ShardReadError, ShardReadReply};
use common::{Filter, Space};

use super::model::{Driver, COLLECTION};
use crate::raft::state_machine::{read_step_bytes, ReadCursor};

fn records(n: usize) -> Vec<RecordWrite> {
    (0..n)
        .map(|i| RecordWrite {
            id: format!("r{i:05}"),
            embedding: Some(vec![
                (i % 37) as f32,
                (i % 11) as f32,
                (i % 5) as f32,
                i as f32 / 100.0,
            ]),
            metadata: None,
            document: None,
            uri: None,
        })
        .collect()
}

fn poisoned() -> IndexConfig {
    IndexConfig {
        space: Space::L2,
        ef_construction: 4611686018427387904,
        ef_search: usize::MAX,
        max_neighbors: usize::MAX,
    }
}

#[test]
fn out_of_range_hnsw_parameters_are_capped_and_the_index_works() {
    let mut d = Driver::with_config(poisoned());
    let config = d.sm.collection(COLLECTION).unwrap().state().config.clone();
    assert_eq!(config, poisoned().capped());
    // More than the exact-scan threshold, in one parallel batch: the graph is built and searched.
    let outcome = d.apply(ShardCommand::Add {
        collection: COLLECTION.into(),
        records: records(1_200),
        mode: AddMode::RejectExisting,
    });
    assert_eq!(outcome, ApplyOutcome::Done);
    let hits = d.query(&[3.0, 3.0, 3.0, 0.03], 5, Filter::default());
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].0, "r00003");
    // A modify to a huge ef_search: capped, and queries still answer.
    d.apply(ShardCommand::ModifyCollection {
        collection: COLLECTION.into(),
        config: IndexConfig {
            ef_search: usize::MAX,
            ..config
        },
    });
    let (index, _) = d.sm.collection(COLLECTION).unwrap().index().read();
    assert_eq!(index.unwrap().ef_search(), *limits::HNSW_EF_SEARCH.end());
    assert_eq!(d.query(&[3.0, 3.0, 3.0, 0.03], 5, Filter::default()), hits);
}

#[test]
fn records_over_the_limits_are_refused_whole() {
    let mut d = Driver::new(Space::L2);
    d.apply(ShardCommand::Add {
        collection: COLLECTION.into(),
        records: records(3),
        mode: AddMode::RejectExisting,
    });
    let digest = d.sm.digest();
    let mut long_id = records(2);
    long_id[1].id = "x".repeat(limits::MAX_ID_BYTES + 1);
    let mut big_document = records(2);
    big_document[0].id = "new".into();
    big_document[0].document = Some("d".repeat(limits::MAX_DOCUMENT_BYTES + 1));
    for (what, records) in [("id", long_id), ("document", big_document)] {
        for command in [
            ShardCommand::Upsert {
                collection: COLLECTION.into(),
                records: records.clone(),
            },
            ShardCommand::Add {
                collection: COLLECTION.into(),
                records: records.clone(),
                mode: AddMode::SkipExisting,
            },
        ] {
            match d.apply(command) {
                ApplyOutcome::Rejected(m) => assert!(m.contains("MAX_"), "{what}: {m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    assert_eq!(d.sm.digest(), digest);
}

fn read(d: &Driver, request: &ShardRead) -> ShardReadReply {
    let request = bincode::serialize(request).unwrap();
    let mut cursor = ReadCursor::default();
    loop {
        if let Some(bytes) = read_step_bytes(&d.sm, &request, &mut cursor) {
            return bincode::deserialize(&bytes).unwrap();
        }
    }
}

#[test]
fn reads_over_the_limits_are_refused() {
    let mut d = Driver::new(Space::L2);
    d.apply(ShardCommand::Add {
        collection: COLLECTION.into(),
        records: records(3),
        mode: AddMode::RejectExisting,
    });
    let query = |embeddings: usize, n_results: usize| {
        ShardRead::Query(QueryRequest {
            collection: COLLECTION.into(),
            embeddings: vec![vec![0.0; 4]; embeddings],
            n_results,
            ids: None,
            filter: Filter::default(),
            include: Include::default(),
        })
    };
    assert!(read(&d, &query(2, 3)).is_ok());
    for (bad, limit) in [
        (query(1, limits::MAX_N_RESULTS + 1), "MAX_N_RESULTS"),
        (
            query(limits::MAX_QUERY_EMBEDDINGS + 1, 1),
            "MAX_QUERY_EMBEDDINGS",
        ),
        (query(1_000, 1_001), "MAX_QUERY_HITS"),
        (
            ShardRead::Get(GetRequest {
                collection: COLLECTION.into(),
                ids: Some(vec!["y".repeat(limits::MAX_ID_BYTES + 1)]),
                filter: Filter::default(),
                offset: 0,
                limit: None,
                include: Include::default(),
            }),
            "MAX_ID_BYTES",
        ),
    ] {
        match read(&d, &bad) {
            Err(ShardReadError::Invalid(m)) => assert!(m.contains(limit), "{m}"),
            other => panic!("{limit}: {other:?}"),
        }
    }
}
