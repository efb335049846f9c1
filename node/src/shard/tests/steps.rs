//! Long reads run in steps (`read.rs`): a write is applied between two steps
//! of a scan instead of after it, a scan resumes after the last id it
//! examined whatever was written in between, and a collection dropped
//! between steps ends the read cleanly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::command::{AddMode, Proposal, RecordWrite, ShardCommand};
use common::read::{
    GetRequest, Include, QueryRequest, ShardRead, ShardReadError, ShardReadReply, ShardReadValue,
};
use common::{Filter, Space};
use serde_json::json;

use super::model::{Driver, COLLECTION};
use crate::raft::state_machine::{read_in_steps, read_step_bytes, Encoded, ReadCursor};
use crate::raft::AppliedPosition;
use crate::shard::read::SCAN_STEP;
use crate::shard::state_machine::ReadInProgress;

fn record(id: String, document: &str) -> RecordWrite {
    let x = id.len() as f32;
    RecordWrite {
        embedding: Some(vec![x, id.bytes().map(f32::from).sum::<f32>() / 100.0]),
        id,
        metadata: None,
        document: Some(document.into()),
        uri: None,
    }
}

fn add(d: &mut Driver, records: Vec<RecordWrite>) {
    for chunk in records.chunks(1000) {
        d.apply(ShardCommand::Add {
            collection: COLLECTION.into(),
            records: chunk.to_vec(),
            mode: AddMode::RejectExisting,
        });
    }
}

/// `n` records `r00000`.. whose document contains "doc" when `matches(i)`.
fn driver(n: usize, matches: impl Fn(usize) -> bool) -> Driver {
    let mut d = Driver::new(Space::L2);
    let records = (0..n)
        .map(|i| {
            record(
                format!("r{i:05}"),
                if matches(i) { "a doc" } else { "other" },
            )
        })
        .collect();
    add(&mut d, records);
    d
}

fn contains_doc() -> Filter {
    Filter::parse(None, Some(&json!({"$contains": "doc"}))).expect("valid")
}

fn get_request(filter: Filter, offset: usize, limit: Option<usize>) -> GetRequest {
    GetRequest {
        collection: COLLECTION.into(),
        ids: None,
        filter,
        offset,
        limit,
        include: Include::default(),
    }
}

fn ids(value: Option<Result<ShardReadValue, crate::shard::ShardError>>) -> Vec<String> {
    match value {
        Some(Ok(ShardReadValue::Records(records))) => records.into_iter().map(|r| r.id).collect(),
        other => panic!("expected records, got {other:?}"),
    }
}

#[test]
fn a_write_is_applied_between_the_steps_of_a_long_scan() {
    let n = 2 * SCAN_STEP + 10;
    let d = driver(n, |_| true);
    let next_index = d.next_index;
    let sm: crate::raft::SharedStateMachine =
        Arc::new(parking_lot::RwLock::new(Box::new(Encoded(d.sm))));
    let request = bincode::serialize(&ShardRead::Count(get_request(contains_doc(), 0, None)))
        .expect("encodes");

    // The reader counts its steps; in its first (holding the read lock) it
    // lets the writer go and waits until the writer queued for the lock.
    let steps = Arc::new(AtomicUsize::new(0));
    let (go, ready) = mpsc::channel();
    let reader = {
        let (sm, steps) = (sm.clone(), steps.clone());
        std::thread::spawn(move || {
            read_in_steps(&sm, &request, || {
                if steps.fetch_add(1, Ordering::SeqCst) == 0 {
                    go.send(()).expect("writer waits");
                    while !sm.is_locked_exclusive() {
                        std::thread::yield_now();
                    }
                }
                Ok::<(), ()>(())
            })
        })
    };

    ready.recv().expect("reader started");
    let proposal = Proposal {
        request_id: u128::MAX,
        deadline_ms: 0,
        command: ShardCommand::Add {
            collection: COLLECTION.into(),
            records: vec![record("zz-written-during-the-scan".into(), "doc")],
            mode: AddMode::RejectExisting,
        },
    };
    let steps_when_written = {
        let mut guard = sm.write();
        guard.apply(
            AppliedPosition {
                index: next_index,
                term: 1,
            },
            0,
            &bincode::serialize(&proposal).expect("encodes"),
        );
        steps.load(Ordering::SeqCst)
    };

    let reply = reader.join().expect("reader").expect("replica ok");
    let total_steps = steps.load(Ordering::SeqCst);
    // The write went in after the scan's first step and before its last:
    // it waited for one step, not for the scan.
    assert_eq!(steps_when_written, 1);
    assert!(total_steps >= 3, "{total_steps} steps");
    // Written before the scan reached its id: the scan counts it.
    let reply: ShardReadReply = bincode::deserialize(&reply).expect("decodes");
    assert_eq!(reply, Ok(ShardReadValue::Count(n as u64 + 1)));
}

#[test]
fn a_scan_resumes_after_the_last_id_it_examined() {
    let n = 2 * SCAN_STEP + 10;
    let mut d = driver(n, |_| true);
    let mut read = ReadInProgress::from(ShardRead::Get(get_request(contains_doc(), 0, None)));
    assert!(d.sm.answer_step(&mut read).is_none(), "more than one step");
    // Behind the scan: a deleted record was already returned, a new one is
    // not seen. Ahead of it: the deleted one is not returned, the new one is.
    d.apply(ShardCommand::Delete {
        collection: COLLECTION.into(),
        ids: Some(vec!["r00010".into(), format!("r{:05}", SCAN_STEP + 100)]),
        filter: Filter::default(),
        limit: None,
    });
    add(
        &mut d,
        vec![
            record("a-new".into(), "doc"),
            record("r99999".into(), "doc"),
        ],
    );
    let got = loop {
        if let Some(answer) = d.sm.answer_step(&mut read) {
            break ids(Some(answer));
        }
    };
    let mut expected: Vec<String> = (0..n)
        .filter(|&i| i != SCAN_STEP + 100)
        .map(|i| format!("r{i:05}"))
        .collect();
    expected.push("r99999".into());
    assert_eq!(got, expected);
}

#[test]
fn offset_and_limit_cut_the_page_across_steps() {
    let d = driver(2 * SCAN_STEP + 10, |i| i % 2 == 0);
    let got =
        d.sm.get(&get_request(contains_doc(), SCAN_STEP / 2 - 5, Some(10)))
            .expect("exists");
    let got: Vec<String> = got.into_iter().map(|r| r.id).collect();
    let expected: Vec<String> = (SCAN_STEP / 2 - 5..SCAN_STEP / 2 + 5)
        .map(|i| format!("r{:05}", 2 * i))
        .collect();
    assert_eq!(got, expected);
    // In several steps, the same answer as in one.
    let mut read = ReadInProgress::from(ShardRead::Get(get_request(
        contains_doc(),
        SCAN_STEP / 2 - 5,
        Some(10),
    )));
    let mut steps = 1;
    let stepped = loop {
        if let Some(answer) = d.sm.answer_step(&mut read) {
            break ids(Some(answer));
        }
        steps += 1;
    };
    assert_eq!(steps, 2);
    assert_eq!(stepped, expected);
}

#[test]
fn a_collection_dropped_between_steps_ends_the_read_as_not_found() {
    let mut d = driver(2 * SCAN_STEP + 10, |_| true);
    let request = bincode::serialize(&ShardRead::Count(get_request(contains_doc(), 0, None)))
        .expect("encodes");
    let mut cursor = ReadCursor::default();
    assert!(read_step_bytes(&d.sm, &request, &mut cursor).is_none());
    d.apply(ShardCommand::DropCollection {
        collection: COLLECTION.into(),
    });
    let reply = read_step_bytes(&d.sm, &request, &mut cursor).expect("answered");
    let reply: ShardReadReply = bincode::deserialize(&reply).expect("decodes");
    assert_eq!(reply, Err(ShardReadError::NoSuchCollection));
}

#[test]
fn a_filtered_query_rereads_its_candidates_before_answering() {
    let n = 2 * SCAN_STEP + 10;
    let mut d = driver(n, |i| i % 100 == 0);
    let req = QueryRequest {
        collection: COLLECTION.into(),
        embeddings: vec![vec![6.0, 0.0]],
        n_results: 5,
        ids: None,
        filter: contains_doc(),
        include: Include::default(),
    };
    let mut read = ReadInProgress::from(ShardRead::Query(req));
    assert!(d.sm.answer_step(&mut read).is_none(), "more than one step");
    // A candidate collected in the first step is deleted before the last.
    let before = d.query(&[6.0, 0.0], 5, contains_doc());
    let gone = before[0].0.clone();
    assert!(
        gone.as_str() < format!("r{SCAN_STEP:05}").as_str(),
        "{gone}"
    );
    d.apply(ShardCommand::Delete {
        collection: COLLECTION.into(),
        ids: Some(vec![gone.clone()]),
        filter: Filter::default(),
        limit: None,
    });
    let hits = loop {
        if let Some(answer) = d.sm.answer_step(&mut read) {
            break answer;
        }
    };
    let Ok(ShardReadValue::Hits(mut hits)) = hits else {
        panic!("expected hits, got {hits:?}");
    };
    let got: Vec<(String, f32)> = hits
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|h| (h.record.id, h.distance))
        .collect();
    assert!(got.iter().all(|(id, _)| *id != gone));
    assert_eq!(got, d.query(&[6.0, 0.0], 5, contains_doc()));
}
