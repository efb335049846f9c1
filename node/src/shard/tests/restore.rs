//! A replica restarting from its snapshot plus the WAL tail holds exactly
//! the state it had (same digest, same answers), on real files.

use common::command::{AddMode, ApplyOutcome, Proposal, RecordWrite, ShardCommand};
use common::{Filter, MetadataValue, Space};
use raft::prelude::Entry;
use raft::Storage as _;
use tests::vectors::clustered;

use super::model::{Driver, COLLECTION};
use crate::raft::StateMachine;
use crate::shard::snapshot::{read_snapshot, write_snapshot};
use crate::shard::AppliedPosition;
use crate::storage::{RaftLogStorage, WalOptions};

fn commands() -> Vec<ShardCommand> {
    let data = clustered(2400, 8, 10, 0.5, 5);
    let mut cmds: Vec<ShardCommand> = data
        .chunks(200)
        .enumerate()
        .map(|(b, chunk)| ShardCommand::Add {
            collection: COLLECTION.into(),
            records: chunk
                .iter()
                .enumerate()
                .map(|(j, v)| RecordWrite {
                    id: format!("{}", b * 200 + j),
                    embedding: Some(v.clone()),
                    metadata: Some([("b".to_owned(), Some(MetadataValue::Int(b as i64)))].into()),
                    document: Some(format!("doc {b}")),
                    uri: None,
                })
                .collect(),
            mode: AddMode::RejectExisting,
        })
        .collect();
    let filter = |b: i64| Filter::parse(Some(&serde_json::json!({ "b": b })), None).expect("valid");
    cmds.insert(
        5,
        ShardCommand::Delete {
            collection: COLLECTION.into(),
            ids: None,
            filter: filter(1),
            limit: None,
        },
    );
    cmds.push(ShardCommand::Delete {
        collection: COLLECTION.into(),
        ids: None,
        filter: filter(7),
        limit: Some(50),
    });
    cmds.push(ShardCommand::Upsert {
        collection: COLLECTION.into(),
        records: (0..300)
            .map(|i| RecordWrite {
                id: format!("{}", i * 7),
                embedding: Some(vec![i as f32; 8]),
                metadata: None,
                document: None,
                uri: None,
            })
            .collect(),
    });
    cmds
}

fn entry(index: u64, proposal: &Proposal) -> Entry {
    Entry {
        index,
        term: 1,
        data: bincode::serialize(proposal).expect("encode").into(),
        ..Default::default()
    }
}

#[test]
fn snapshot_plus_wal_tail_restores_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let wal = RaftLogStorage::open(&dir.path().join("wal"), WalOptions::default()).unwrap();
    let snap_path = dir.path().join("shard.snap");

    let mut live = Driver::new(Space::Cosine);
    // The collection was created by log entry 1.
    let create = ShardCommand::CreateCollection {
        collection: COLLECTION.into(),
        config: common::command::IndexConfig {
            space: Space::Cosine,
            ..Default::default()
        },
    };
    wal.append(
        &[entry(
            1,
            &Proposal {
                request_id: 1,
                deadline_ms: 0,
                command: create,
            },
        )],
        None,
    )
    .unwrap();
    let mut snapshot_at = None;
    for (i, command) in commands().into_iter().enumerate() {
        let index = live.next_index;
        let proposal = Proposal {
            request_id: 1000 + i as u128,
            deadline_ms: 0,
            command,
        };
        wal.append(&[entry(index, &proposal)], None).unwrap();
        live.next_index += 1;
        live.sm
            .apply(AppliedPosition { index, term: 1 }, 0, &proposal);
        if i == 7 {
            write_snapshot(&live.sm, &snap_path).unwrap();
            snapshot_at = Some(index);
        }
    }
    let snapshot_at = snapshot_at.unwrap();
    let queries = clustered(2420, 8, 10, 0.5, 5).split_off(2400);
    // Graphs built in a different order differ, so compare answers on the
    // exact path (a filter leaving few candidates), and all records by `get`.
    let b3 = Filter::parse(Some(&serde_json::json!({"b": 3})), None).expect("valid");
    let answers: Vec<_> = queries
        .iter()
        .map(|q| live.query(q, 10, b3.clone()))
        .collect();
    let records = live.get_all(Filter::default());
    let digest = live.sm.digest();
    drop(live);
    drop(wal);

    // Restart: snapshot, then the log tail from the reopened WAL.
    let mut restored = read_snapshot(&snap_path).unwrap();
    assert_eq!(restored.applied().index, snapshot_at);
    let wal = RaftLogStorage::open(&dir.path().join("wal"), WalOptions::default()).unwrap();
    let last = wal.last_index().unwrap();
    let tail = wal
        .entries(
            snapshot_at + 1,
            last + 1,
            None,
            raft::GetEntriesContext::empty(false),
        )
        .unwrap();
    for e in tail {
        let proposal: Proposal = bincode::deserialize(e.get_data()).unwrap();
        restored.apply(
            AppliedPosition {
                index: e.index,
                term: e.term,
            },
            0,
            &proposal,
        );
    }
    assert_eq!(restored.digest(), digest);
    let restored = Driver {
        sm: restored,
        next_index: last + 1,
    };
    for (q, want) in queries.iter().zip(&answers) {
        assert_eq!(&restored.query(q, 10, b3.clone()), want);
    }
    assert_eq!(restored.get_all(Filter::default()), records);
}

#[test]
fn snapshot_round_trip_reuses_the_index_and_rejects_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.snap");
    let mut d = Driver::new(Space::L2);
    for cmd in commands() {
        d.apply(cmd);
    }
    let info = write_snapshot(&d.sm, &path).unwrap();
    assert_eq!(info.applied, d.sm.applied());
    let restored = read_snapshot(&path).unwrap();
    assert_eq!(restored.digest(), d.sm.digest());
    let c = restored.collection(COLLECTION).unwrap();
    assert_eq!(c.index().read().0.map(|i| i.len_live()), Some(c.len()));
    // One copy of each vector after a restore: the reloaded graph and the index
    // store use the records' own vectors.
    let (index, _) = c.index().read();
    let index = index.expect("an index");
    let copies = c
        .state()
        .records
        .values()
        .filter(|r| !index.shares_vector(r.point, &r.embedding))
        .count();
    assert_eq!(copies, 0, "of {} records", c.len());
    drop(index);

    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(read_snapshot(&path).is_err(), "cut at {cut} accepted");
    }
    for pos in [9, 40, bytes.len() / 3, bytes.len() - 20] {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x5a;
        std::fs::write(&path, &damaged).unwrap();
        assert!(read_snapshot(&path).is_err(), "flip at {pos} accepted");
    }
}

/// A dropped collection's part is never created again, also after a restore from a
/// snapshot taken after the drop (issue 12, finding 3: a router's late repair could
/// recreate it while a delete through another router ran).
#[test]
fn a_dropped_part_stays_dropped_across_a_snapshot() {
    let mut d = Driver::new(Space::L2);
    let create = ShardCommand::CreateCollection {
        collection: COLLECTION.into(),
        config: Default::default(),
    };
    let drop = ShardCommand::DropCollection {
        collection: COLLECTION.into(),
    };
    assert_eq!(d.apply(drop), ApplyOutcome::Done);
    assert_eq!(d.apply(create.clone()), ApplyOutcome::CollectionDropped);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    write_snapshot(&d.sm, &path).unwrap();
    let mut restored = read_snapshot(&path).unwrap();
    let outcome = restored.apply(
        AppliedPosition {
            index: d.next_index,
            term: 1,
        },
        0,
        &Proposal {
            request_id: 7,
            deadline_ms: 0,
            command: create,
        },
    );
    assert_eq!(outcome, ApplyOutcome::CollectionDropped);
    assert_eq!(restored.collection_ids().count(), 0);
}
