//! The chaos workload: many clients on a small key space (several clients
//! per id), each a closed loop of random operations through one of the
//! routers, every operation recorded in the [`Recorder`]'s history with its
//! outcome and, for reads, what it returned.
//!
//! The mix: `add` (reject mode, one id), `upsert`, `update`, `delete` by ids
//! (1-3 ids), `delete` where `g` = a group, `get` by ids (1-4), `query` (top
//! 5, sometimes where `g` = a group) and `count`. Every written value is
//! unique ([`Value`]) and stored in the document, the metadata and the
//! embedding, so a read names the write it observes.

mod value;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

pub use value::{observed, Value, DIM, GROUPS};

use crate::history::{Event, Op, OpKind, Outcome, Recorder};
use crate::http::{Client, Resp, DEFAULT_DB};

/// The client id of the final reads after the heal (the lost-write check
/// looks at them).
pub const FINAL_CLIENT: u32 = 1000;

/// The record id of key `i`.
pub fn key(i: u32) -> String {
    format!("k{i:02}")
}

/// What one client needs.
#[derive(Clone)]
pub struct Target {
    pub collection: String,
    pub keys: u32,
    pub recorder: Recorder,
}

/// Relative weights of the operation kinds.
const MIX: [(Kind, u32); 8] = [
    (Kind::Add, 10),
    (Kind::Upsert, 20),
    (Kind::Update, 10),
    (Kind::Delete, 8),
    (Kind::DeleteWhere, 2),
    (Kind::Get, 25),
    (Kind::Query, 15),
    (Kind::Count, 10),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Add,
    Upsert,
    Update,
    Delete,
    DeleteWhere,
    Get,
    Query,
    Count,
}

/// How an HTTP answer classifies: a 2xx took effect; a 4xx is a definite
/// refusal (the router validates before it proposes anything, and a 409
/// add writes nothing); anything else (5xx, no answer) may or may not have
/// taken effect.
pub fn outcome_of(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Ok,
        400..=499 => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

/// Runs client `client` through `http` (router `router`) until `stop`.
pub async fn run_client(
    client: u32,
    router: u32,
    http: Client,
    target: Target,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let kind = MIX
            .choose_weighted(&mut rng, |(_, w)| *w)
            .map(|(k, _)| *k)
            .unwrap_or(Kind::Get);
        let op = random_op(kind, client, seq, &target, &mut rng);
        let outcome = perform(&http, router, client, op, &target).await;
        if outcome != Outcome::Ok {
            // A 503 may come back at once (no leader known): do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Distinct random keys, 1..=max of them.
fn some_keys(rng: &mut StdRng, keys: u32, max: usize) -> Vec<String> {
    let n = rng.gen_range(1..=max);
    let all: Vec<u32> = (0..keys).collect();
    all.choose_multiple(rng, n).map(|i| key(*i)).collect()
}

fn random_op(kind: Kind, client: u32, seq: u32, t: &Target, rng: &mut StdRng) -> OpKind {
    let values = |n: usize, rng: &mut StdRng| -> Vec<String> {
        (0..n)
            .map(|i| {
                Value {
                    client,
                    seq,
                    index: i as u32,
                    group: rng.gen_range(0..GROUPS),
                }
                .text()
            })
            .collect()
    };
    match kind {
        Kind::Add => {
            let id = some_keys(rng, t.keys, 1).remove(0);
            let value = values(1, rng).remove(0);
            OpKind::Add { id, value }
        }
        Kind::Upsert | Kind::Update => {
            let ids = some_keys(rng, t.keys, 3);
            let values = values(ids.len(), rng);
            if matches!(kind, Kind::Upsert) {
                OpKind::Upsert { ids, values }
            } else {
                OpKind::Update { ids, values }
            }
        }
        Kind::Delete => OpKind::Delete {
            ids: some_keys(rng, t.keys, 3),
        },
        Kind::DeleteWhere => OpKind::DeleteWhere {
            group: rng.gen_range(0..GROUPS),
        },
        Kind::Get => OpKind::Get {
            ids: some_keys(rng, t.keys, 4),
            read: None,
        },
        Kind::Query => OpKind::Query {
            group: rng.gen_bool(0.5).then(|| rng.gen_range(0..GROUPS)),
            read: None,
        },
        Kind::Count => OpKind::Count { count: None },
    }
}

/// The request body of a write of `ids` = `values`.
fn write_body(ids: &[String], values: &[String]) -> Json {
    let parsed: Vec<Value> = values.iter().filter_map(|v| Value::parse(v)).collect();
    json!({
        "ids": ids,
        "documents": values,
        "metadatas": parsed.iter().map(Value::metadata).collect::<Vec<_>>(),
        "embeddings": parsed.iter().map(Value::embedding).collect::<Vec<_>>(),
    })
}

/// A query vector near some written value.
fn query_vector(seed: u64) -> [f32; DIM] {
    let mut rng = StdRng::seed_from_u64(seed);
    [
        rng.gen_range(0.0..16.0),
        rng.gen_range(0.0..200.0),
        rng.gen_range(0.0..3.0),
        rng.gen_range(0.0..3.0),
    ]
}

async fn send(http: &Client, t: &Target, op: &OpKind, n: u64) -> Resp {
    let c = &t.collection;
    match op {
        OpKind::Add { id, value } => {
            let body = write_body(std::slice::from_ref(id), std::slice::from_ref(value));
            http.records(c, "add", &body).await
        }
        OpKind::Upsert { ids, values } => http.records(c, "upsert", &write_body(ids, values)).await,
        OpKind::Update { ids, values } => http.records(c, "update", &write_body(ids, values)).await,
        OpKind::Delete { ids } => http.records(c, "delete", &json!({ "ids": ids })).await,
        OpKind::DeleteWhere { group } => {
            http.records(c, "delete", &json!({ "where": { "g": group } }))
                .await
        }
        OpKind::Get { ids, .. } => {
            let body = json!({"ids": ids, "include": ["documents", "metadatas", "embeddings"]});
            http.records(c, "get", &body).await
        }
        OpKind::Query { group, .. } => {
            let mut body = json!({
                "query_embeddings": [query_vector(n)],
                "n_results": 5,
                "include": ["documents", "metadatas", "embeddings"],
            });
            if let Some(g) = group {
                body["where"] = json!({ "g": g });
            }
            http.records(c, "query", &body).await
        }
        OpKind::Count { .. } => {
            http.get(&format!("{DEFAULT_DB}/collections/{c}/count"))
                .await
        }
    }
}

/// Item `i` of a list field of `body`, or `Null`.
fn item(list: &Json, i: usize) -> &Json {
    list.get(i).unwrap_or(&Json::Null)
}

/// The (id, value) pairs of a GetResult-shaped object (a query's first
/// slice included), or `None` if it is not one.
fn returned(body: &Json, slice: Option<usize>) -> Option<Vec<(String, String)>> {
    let field = |name: &str| -> Json {
        let f = &body[name];
        match slice {
            Some(q) => item(f, q).clone(),
            None => f.clone(),
        }
    };
    let ids = field("ids");
    let (docs, metas, embs) = (field("documents"), field("metadatas"), field("embeddings"));
    ids.as_array()?
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let id = id.as_str()?.to_string();
            Some((
                id,
                observed(item(&docs, i), item(&metas, i), item(&embs, i)),
            ))
        })
        .collect()
}

/// What a 2xx answer says, filled into the operation; `Err` if the body
/// is not what the API promises.
fn fill_read(op: &mut OpKind, body: &Json) -> Result<(), String> {
    let bad = || format!("malformed answer: {body}");
    match op {
        OpKind::Get { ids, read } => {
            let got = returned(body, None).ok_or_else(bad)?;
            *read = Some(
                ids.iter()
                    .map(|id| {
                        let v = got.iter().find(|(g, _)| g == id).map(|(_, v)| v.clone());
                        (id.clone(), v)
                    })
                    .collect(),
            );
        }
        OpKind::Query { read, .. } => *read = Some(returned(body, Some(0)).ok_or_else(bad)?),
        OpKind::Count { count } => *count = Some(body.as_u64().ok_or_else(bad)?),
        _ => {}
    }
    Ok(())
}

/// Sends one operation and records it; returns its outcome.
pub async fn perform(
    http: &Client,
    router: u32,
    client: u32,
    mut kind: OpKind,
    t: &Target,
) -> Outcome {
    let rec = &t.recorder;
    let n = rec.next_n();
    let invoke_ns = rec.now_ns();
    let resp = send(http, t, &kind, n).await;
    let complete_ns = rec.now_ns();
    let mut outcome = outcome_of(resp.status);
    let mut error = (outcome != Outcome::Ok).then(|| short(&resp.body));
    if outcome == Outcome::Ok {
        if let Err(e) = fill_read(&mut kind, &resp.body) {
            // A 2xx the API does not allow: flagged as an unexpected answer.
            outcome = Outcome::Failed;
            error = Some(short(&Json::String(e)));
        }
    }
    rec.record(Event::Op(Op {
        n,
        client,
        router,
        kind,
        invoke_ns,
        complete_ns,
        outcome,
        status: resp.status,
        error,
    }));
    outcome
}

/// An error body, cut to a line.
fn short(body: &Json) -> String {
    let text = match body {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().take(200).collect()
}

/// The final reads after the heal: a `get` of every key through each
/// router, retried until it answers (at most `patience`); recorded as
/// [`FINAL_CLIENT`]'s operations. Returns whether every router answered.
pub async fn final_reads(routers: &[Client], t: &Target, patience: Duration) -> bool {
    let ids: Vec<String> = (0..t.keys).map(key).collect();
    let mut all = true;
    for (r, http) in routers.iter().enumerate() {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let op = OpKind::Get {
                ids: ids.clone(),
                read: None,
            };
            if perform(http, r as u32, FINAL_CLIENT, op, t).await == Outcome::Ok {
                break;
            }
            if std::time::Instant::now() > deadline {
                all = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    all
}
