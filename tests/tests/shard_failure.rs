//! Shard failure (http-api.md "Errors": 503 naming the shard, never a hang
//! past the request timeout; architecture.md promise 4) and the contract for
//! writes spanning several shards when only some fail (README "Writes across
//! shards").

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::read::{GetRequest, Include, ShardRead, ShardReadReply, ShardReadValue};
use common::wire::{self, InternalError};
use common::Filter;
use serde_json::{json, Value};
use tests::http::eventually;
use tests::{rows, str_list, Checks, Client, Cluster, ClusterOptions, Resp, RouterOptions};

/// `router.request_timeout_ms` of these clusters.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(3000);
/// What a 503 may take beyond the request timeout (scheduling on two busy
/// cores; the router must stop at its deadline, not after a retry round).
const SLACK: Duration = Duration::from_millis(2000);
const LONG: Duration = Duration::from_secs(30);

/// Sends a request and asserts it answered 503 within the deadline; returns
/// the error message.
async fn expect_503<F, Fut>(what: &str, send: F) -> String
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let started = Instant::now();
    let resp = send().await;
    let took = started.elapsed();
    assert!(
        took <= REQUEST_TIMEOUT + SLACK,
        "{what}: answered after {took:?}, past the {REQUEST_TIMEOUT:?} request timeout"
    );
    assert_eq!(
        resp.status, 503,
        "{what}: expected 503 within the timeout, got {} {} after {took:?}",
        resp.status, resp.body
    );
    let message = resp.body["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        resp.body["error"].is_string() && !message.is_empty(),
        "{what}: 503 body is not a Chroma error: {}",
        resp.body
    );
    eprintln!("{what}: 503 after {took:?}: {message}");
    message
}

fn records_body(ids: &[String], tag: &str) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().enumerate().map(|(i, _)| vec![i as f32, 1.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|i| format!("{tag} {i}")).collect::<Vec<_>>(),
    })
}

/// Two of three nodes stopped: every group loses its quorum. Reads and
/// writes answer 503 within the request timeout, then succeed once the nodes
/// resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_quorum_answers_503_in_time_and_recovers() {
    let cluster = Cluster::start(ClusterOptions {
        request_timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client_with_timeout(0, Duration::from_secs(20));
    let id = c.new_collection("fragile", json!({})).await;
    let ids: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
    c.add_ok(&id, &records_body(&ids, "before")).await;

    cluster.pause_node(2, true);
    cluster.pause_node(3, true);
    // Node 1's leaders may answer reads on their lease for up to 90% of an election
    // timeout after their last confirmed round (README "Reads on a leader lease");
    // after that every group is down for reads too, `add`'s existence check included.
    tokio::time::sleep(tests::cluster::election_timeout()).await;
    let mut checks = Checks::new();
    {
        let (c, id) = (c.clone(), id.clone());
        checks
            .run(
                "503 in time for writes and reads without a quorum",
                async move {
                    let late: Vec<String> = (0..12).map(|i| format!("late-{i}")).collect();
                    assert_eq!(by_shard(&id, &late).len(), 3, "late ids span every shard");
                    let body = records_body(&late, "late");
                    // All at once: each takes the whole request timeout.
                    let requests = [
                        ("upsert", body.clone()),
                        ("add", body),
                        ("get", json!({"ids": ["r1"]})),
                        ("get", json!({})),
                        (
                            "query",
                            json!({"query_embeddings": [[0.0, 1.0]], "n_results": 3}),
                        ),
                    ];
                    let tasks: Vec<_> = requests
                        .into_iter()
                        .map(|(verb, body)| {
                            let (c, id) = (c.clone(), id.clone());
                            tokio::spawn(async move {
                                let msg = expect_503(&format!("{verb} without quorum"), || {
                                    c.records(&id, verb, &body)
                                })
                                .await;
                                (verb, msg)
                            })
                        })
                        .collect();
                    let mut messages = Vec::new();
                    for task in tasks {
                        match task.await {
                            Ok(m) => messages.push(m),
                            Err(e) => std::panic::resume_unwind(e.into_panic()),
                        }
                    }
                    for (verb, msg) in &messages {
                        // Every group is down, the catalogue included: the message
                        // names the shard, or the metadata group when the router
                        // could not even resolve the collection.
                        assert!(
                            msg.contains("Shard") || msg.contains("metadata group"),
                            "{verb}: message names neither a shard nor the metadata group: {msg}"
                        );
                    }
                    let health = c.get("/api/v2/healthcheck").await;
                    assert_ne!(health.status, 200, "healthcheck without a metadata quorum");
                    // CONTRACT (README "Writes across shards"): a write's 503
                    // names every failed shard; here all three failed.
                    for (verb, msg) in messages {
                        if matches!(verb, "upsert" | "add") && msg.contains("Shard") {
                            for shard in ["Shard 1 ", "Shard 2 ", "Shard 3 "] {
                                assert!(
                                    msg.contains(shard),
                                    "{verb}: the 503 does not name {shard}(all shards are down): {msg}"
                                );
                            }
                        }
                    }
                },
            )
            .await;
    }
    cluster.pause_node(2, false);
    cluster.pause_node(3, false);
    {
        let (c, id, ids) = (c.clone(), id.clone(), ids.clone());
        checks
            .run(
                "after resuming, requests succeed and data is intact",
                async move {
                    eventually("healthcheck after resume", 200, LONG, || {
                        c.get("/api/v2/healthcheck")
                    })
                    .await;
                    let after_body = records_body(&["after".into()], "after");
                    eventually("upsert after resume", 200, LONG, || {
                        c.records(&id, "upsert", &after_body)
                    })
                    .await;
                    let got = c.get_ok(&id, &json!({"ids": ids})).await;
                    assert_eq!(str_list(&got["ids"]).len(), 30, "records written before");
                    let q = c
                        .query_ok(
                            &id,
                            &json!({"query_embeddings": [[0.0, 1.0]], "n_results": 1}),
                        )
                        .await;
                    assert_eq!(q["ids"].as_array().map(Vec::len), Some(1), "{q}");
                },
            )
            .await;
    }
    checks.finish();
}

/// Ids of `ids` per shard index of collection `id` (3 shards).
fn by_shard(id: &str, ids: &[String]) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for r in ids {
        out.entry(common::hash::shard_index(id, r, 3))
            .or_default()
            .push(r.clone());
    }
    out
}

/// One get per shard index, by the ids placed there, all at once (a get on
/// a failed shard takes the whole request timeout): (index, ids, answer).
async fn get_per_shard(c: &Client, id: &str, ids: &[String]) -> Vec<(usize, Vec<String>, Resp)> {
    let tasks: Vec<_> = by_shard(id, ids)
        .into_iter()
        .map(|(index, part)| {
            let (c, id) = (c.clone(), id.to_string());
            tokio::spawn(async move {
                let resp = c.records(&id, "get", &json!({ "ids": part })).await;
                (index, part, resp)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("get task"));
    }
    out
}

/// Five nodes, replication 3, three shards: group g lives on three
/// consecutive nodes from index g mod 5 (common::placement), so the
/// catalogue (group 0) is on 1,2,3, shard 1 on 2,3,4, shard 2 on 3,4,5 and
/// shard 3 on 4,5,1. Cutting node 4 off and killing node 5 leaves the
/// catalogue and shard 1 with a quorum, shards 2 and 3 without.
///
/// CONTRACT (README "Writes across shards"; align the wording with these
/// assertions): each shard applies its part atomically; the shards that
/// acknowledged keep their part; the client gets 503 naming every failed
/// shard; retrying the same request after the fault is safe and converges
/// (upsert is idempotent, so every id ends up present exactly once). An add
/// in reject mode spanning several shards first checks every shard for
/// existing ids, so while any of them is down it writes nothing and its
/// retry succeeds (201); an add in skip mode behaves like upsert here
/// (partial, then a retry completes it, skipping what the first attempt wrote).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_across_shards_with_some_shards_down() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 5,
        request_timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
        routers: vec![RouterOptions::default(), RouterOptions::skip_existing()],
        ..ClusterOptions::default()
    })
    .await;
    assert_eq!(cluster.replicas_of(0), [1, 2, 3]);
    assert_eq!(cluster.replicas_of(1), [2, 3, 4]);
    assert_eq!(cluster.replicas_of(2), [3, 4, 5]);
    assert_eq!(cluster.replicas_of(3), [4, 5, 1]);
    let c = cluster.client_with_timeout(0, Duration::from_secs(20));
    let skip = cluster.client_with_timeout(1, Duration::from_secs(20));
    let id = c.new_collection("partial", json!({})).await;
    // Records are placed by common::hash::shard_index; which index maps to
    // which group is the catalogue's business, so the test learns which
    // indexes are healthy from gets instead of assuming the order.
    let upsert_ids: Vec<String> = (0..60).map(|i| format!("u{i}")).collect();
    let add_ids: Vec<String> = (0..60).map(|i| format!("a{i}")).collect();
    let skip_ids: Vec<String> = (0..60).map(|i| format!("s{i}")).collect();
    for ids in [&upsert_ids, &add_ids, &skip_ids] {
        assert_eq!(by_shard(&id, ids).len(), 3, "ids span every shard");
    }
    // Fix the dimension before the fault (the catalogue must be reachable).
    c.add_ok(&id, &records_body(&["warm".into()], "warm")).await;

    cluster.partition(&[4]).await;
    cluster.kill_node(5);
    // The catalogue and shard 1 re-elect on the majority side if needed.
    cluster.wait_leader(0, &[1, 2, 3], LONG).await;
    cluster.wait_leader(1, &[2, 3], LONG).await;

    let mut checks = Checks::new();
    // shard index -> whether its group kept a quorum, learned from gets.
    let healthy: std::sync::Arc<parking_lot::Mutex<BTreeMap<usize, bool>>> = Default::default();
    {
        let (c, id, ids, healthy) = (c.clone(), id.clone(), upsert_ids.clone(), healthy.clone());
        checks
            .run(
                "multi-shard upsert: 503 naming shards 2 and 3, shard 1's part applied",
                async move {
                    let upsert_body = records_body(&ids, "first");
                    let msg = expect_503("upsert across shards", || {
                        c.records(&id, "upsert", &upsert_body)
                    })
                    .await;
                    assert!(
                        msg.contains("Shard 2") && msg.contains("Shard 3"),
                        "the 503 names both failed shards: {msg}"
                    );
                    assert!(!msg.contains("Shard 1 "), "shard 1 did not fail: {msg}");
                    // Per shard index, a get by those ids touches that shard only.
                    let mut down_groups = Vec::new();
                    for (index, part, resp) in get_per_shard(&c, &id, &ids).await {
                        match resp.status {
                            200 => {
                                let mut got = str_list(&resp.body["ids"]);
                                got.sort();
                                let mut want = part.clone();
                                want.sort();
                                assert_eq!(
                                    got, want,
                                    "shard index {index} (healthy) keeps its part"
                                );
                                healthy.lock().insert(index, true);
                            }
                            503 => {
                                let m = resp.body["message"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string();
                                down_groups.push(m);
                                healthy.lock().insert(index, false);
                            }
                            s => panic!("get of shard index {index}: unexpected {s} {}", resp.body),
                        }
                    }
                    let up = healthy.lock().values().filter(|h| **h).count();
                    assert_eq!(
                        up, 1,
                        "exactly one shard (group 1) healthy; down: {down_groups:?}"
                    );
                },
            )
            .await;
    }
    {
        let (c, id, ids) = (c.clone(), id.clone(), add_ids.clone());
        checks
            .run(
                "multi-shard add (reject mode): 503 and nothing written",
                async move {
                    let add_body = records_body(&ids, "add");
                    let msg =
                        expect_503("add across shards", || c.records(&id, "add", &add_body)).await;
                    // CONTRACT: reject mode checks every shard before writing, so
                    // no part of a failed add is written, healthy shards included.
                    for (index, _, resp) in get_per_shard(&c, &id, &ids).await {
                        if resp.status == 200 {
                            assert_eq!(
                                resp.body["ids"],
                                json!([]),
                                "shard index {index}: part of a failed reject-mode add was written"
                            );
                        }
                    }
                    // CONTRACT: the 503 names every failed shard (2 and 3).
                    assert!(
                        msg.contains("Shard 2 ") && msg.contains("Shard 3 "),
                        "the 503 names both failed shards: {msg}"
                    );
                },
            )
            .await;
    }
    {
        let (c, id, ids, healthy) = (skip.clone(), id.clone(), skip_ids.clone(), healthy.clone());
        checks
            .run(
                "multi-shard add (skip mode): 503, healthy shard's part applied",
                async move {
                    let skip_body = records_body(&ids, "skip");
                    expect_503("skip-mode add across shards", || {
                        c.records(&id, "add", &skip_body)
                    })
                    .await;
                    let healthy = healthy.lock().clone();
                    for (index, part) in by_shard(&id, &ids) {
                        if healthy.get(&index) == Some(&true) {
                            let got = c.records(&id, "get", &json!({"ids": part})).await;
                            let got = got.expect_status(200, "get on the healthy shard");
                            assert_eq!(
                                str_list(&got["ids"]).len(),
                                part.len(),
                                "skip-mode part kept"
                            );
                        }
                    }
                },
            )
            .await;
    }

    cluster.heal().await;
    cluster.spawn_node(5);
    cluster.wait_all_leaders(LONG).await;

    {
        let (c, skip, id) = (c.clone(), skip.clone(), id.clone());
        let (upsert_ids, add_ids, skip_ids) =
            (upsert_ids.clone(), add_ids.clone(), skip_ids.clone());
        checks
            .run(
                "after heal, retries converge: every id present exactly once",
                async move {
                    let upsert_body = records_body(&upsert_ids, "first");
                    eventually("upsert retry", 200, LONG, || {
                        c.records(&id, "upsert", &upsert_body)
                    })
                    .await;
                    let add_body = records_body(&add_ids, "add");
                    eventually("reject-mode add retry", 201, LONG, || {
                        c.records(&id, "add", &add_body)
                    })
                    .await;
                    let skip_body = records_body(&skip_ids, "skip");
                    eventually("skip-mode add retry", 201, LONG, || {
                        skip.records(&id, "add", &skip_body)
                    })
                    .await;
                    let got = c.get_ok(&id, &json!({"include": ["documents"]})).await;
                    let all = str_list(&got["ids"]);
                    let r = rows(&got);
                    assert_eq!(all.len(), r.len(), "an id returned twice");
                    assert_eq!(all.len(), 181, "warm + 3 x 60 records");
                    assert_eq!(c.count(&id).await, 181);
                    for (ids, tag) in [
                        (&upsert_ids, "first"),
                        (&add_ids, "add"),
                        (&skip_ids, "skip"),
                    ] {
                        for rid in ids {
                            assert_eq!(
                                r.get(rid).map(|row| row.document.clone()),
                                Some(json!(format!("{tag} {rid}"))),
                                "record {rid}"
                            );
                        }
                    }
                },
            )
            .await;
    }
    checks.finish();
}

/// One node of three lost (kill -9, then SIGSTOP of another after the
/// first is back): every group keeps a quorum, so reads and writes through
/// the router go on (architecture.md promise 4); the router follows the new
/// leaders within the request deadline instead of answering 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_minority_is_transparent() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client_with_timeout(0, Duration::from_secs(20));
    let id = c.new_collection("survivor", json!({})).await;
    let ids: Vec<String> = (0..45).map(|i| format!("m{i}")).collect();
    assert_eq!(by_shard(&id, &ids).len(), 3, "ids span every shard");
    let parts: Vec<Vec<String>> = ids.chunks(15).map(<[String]>::to_vec).collect();
    c.add_ok(&id, &records_body(&parts[0], "part")).await;

    // The node leading the most groups is the one whose loss forces the
    // most elections.
    let leaders = cluster.wait_all_leaders(LONG).await;
    let busiest = |leaders: &BTreeMap<u64, u64>| {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for l in leaders.values() {
            *counts.entry(*l).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(node, _)| node)
            .expect("some leader")
    };
    let victim = busiest(&leaders);
    let mut checks = Checks::new();

    cluster.kill_node(victim);
    {
        let (c, id, part) = (c.clone(), id.clone(), parts[1].clone());
        let all = ids[..30].to_vec();
        checks
            .run(
                &format!("node {victim} killed: add and get succeed"),
                async move {
                    let started = Instant::now();
                    c.records(&id, "add", &records_body(&part, "part"))
                        .await
                        .expect_status(201, "add with one node dead");
                    eprintln!("add after kill -9 took {:?}", started.elapsed());
                    let mut want = all.clone();
                    want.sort();
                    assert_eq!(c.present_ids(&id, &all).await, want);
                },
            )
            .await;
    }
    cluster.spawn_node(victim);
    cluster.wait_all_leaders(LONG).await;

    let leaders = cluster.wait_all_leaders(LONG).await;
    let paused = busiest(&leaders);
    cluster.pause_node(paused, true);
    {
        let (c, id, part) = (c.clone(), id.clone(), parts[2].clone());
        let all = ids.clone();
        checks
            .run(
                &format!("node {paused} stopped: upsert, get and query succeed"),
                async move {
                    let started = Instant::now();
                    c.records(&id, "upsert", &records_body(&part, "part"))
                        .await
                        .expect_status(200, "upsert with one node stopped");
                    eprintln!("upsert after SIGSTOP took {:?}", started.elapsed());
                    let mut want = all.clone();
                    want.sort();
                    assert_eq!(c.present_ids(&id, &all).await, want);
                    let q = c
                        .query_ok(
                            &id,
                            &json!({"query_embeddings": [[0.0, 1.0]], "n_results": 5}),
                        )
                        .await;
                    assert_eq!(str_list(&q["ids"][0]).len(), 5, "{q}");
                },
            )
            .await;
    }
    cluster.pause_node(paused, false);
    checks.finish();
}

/// kill -9 of every node, then a restart: every acknowledged write is still
/// there through the (still running) router, deletes stay deleted, and
/// queries work on the recovered indexes (architecture.md promises 1, 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_kill_and_restart_keeps_acknowledged_writes() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client_with_timeout(0, Duration::from_secs(20));
    let id = c.new_collection("durable", json!({})).await;
    let ids: Vec<String> = (0..90).map(|i| format!("d{i}")).collect();
    c.add_ok(&id, &records_body(&ids, "kept")).await;
    c.records(&id, "delete", &json!({"ids": ["d0", "d1", "d2"]}))
        .await
        .expect_status(200, "delete before the crash");
    c.records(
        &id,
        "update",
        &json!({"ids": ["d3"], "documents": ["updated"]}),
    )
    .await
    .expect_status(200, "update before the crash");

    for node in cluster.ids() {
        cluster.kill_node(node);
    }
    for node in cluster.ids() {
        cluster.spawn_node(node);
    }
    cluster.wait_all_leaders(LONG).await;

    let mut checks = Checks::new();
    checks
        .run(
            "acknowledged writes survive kill -9 of every node",
            async move {
                let get_all = json!({"include": ["documents"]});
                let got = eventually("get after restart", 200, LONG, || {
                    c.records(&id, "get", &get_all)
                })
                .await;
                let r = rows(&got);
                assert_eq!(r.len(), 87, "90 added, 3 deleted");
                for gone in ["d0", "d1", "d2"] {
                    assert!(
                        !r.contains_key(gone),
                        "{gone} deleted before the crash is back"
                    );
                }
                assert_eq!(r["d3"].document, json!("updated"));
                assert_eq!(r["d50"].document, json!("kept d50"));
                // records_body puts record i at [i, 1]: the nearest to [50, 1]
                // are d50, then d49 / d51.
                let q = c
                    .query_ok(
                        &id,
                        &json!({"query_embeddings": [[50.0, 1.0]], "n_results": 3,
                            "include": ["distances"]}),
                    )
                    .await;
                assert_eq!(q["ids"][0][0], json!("d50"), "{q}");
                assert_eq!(q["distances"][0], json!([0.0, 1.0, 1.0]), "{q}");
                assert_eq!(c.count(&id).await, 87);
            },
        )
        .await;
    checks.finish();
}

/// The transport filter's delay (the fallback for `tc netem delay`, which
/// this kernel lacks): with every node's Raft messages held, a write, which
/// needs a round trip from its leader to a follower, cannot be acknowledged
/// sooner than the delay; it still succeeds; after the heal the cluster
/// works on. A delay past the documented limit is refused and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_delay_holds_commits_and_heals() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client_with_timeout(0, Duration::from_secs(20));
    let id = c.new_collection("delayed", json!({})).await;
    let first: Vec<String> = (0..6).map(|i| format!("d{i}")).collect();
    c.add_ok(&id, &records_body(&first, "before")).await;

    let refused = cluster
        .admin_json(
            1,
            reqwest::Method::POST,
            "/admin/delay",
            Some(&json!({ "ms": common::wire::MAX_FAULT_DELAY_MS + 1 })),
        )
        .await;
    assert!(
        matches!(&refused, Some((s, _)) if s.as_u16() == 400),
        "a delay past the limit is refused: {refused:?}"
    );

    // Below the 500 ms election timeout: leaders keep their followers.
    const DELAY: Duration = Duration::from_millis(250);
    for n in cluster.ids() {
        cluster.delay(n, DELAY.as_millis() as u64).await;
    }
    let held: Vec<String> = (0..6).map(|i| format!("h{i}")).collect();
    let started = Instant::now();
    c.add_ok(&id, &records_body(&held, "held")).await;
    let took = started.elapsed();
    eprintln!("add with {DELAY:?} on every node's raft messages took {took:?}");
    assert!(
        took >= DELAY,
        "a write was acknowledged in {took:?}, sooner than the {DELAY:?} raft delay"
    );

    cluster.heal().await;
    let after: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
    c.add_ok(&id, &records_body(&after, "after")).await;
    let all: Vec<String> = first.iter().chain(&held).chain(&after).cloned().collect();
    let mut want = all.clone();
    want.sort();
    assert_eq!(c.present_ids(&id, &all).await, want);
    cluster.wait_converged(LONG).await;
}

/// The document of `key` as the node `node` answers it from its replica of
/// `group` (`None`: not there), or the node's refusal.
async fn read_on_node(
    cluster: &Cluster,
    node: u64,
    group: u64,
    collection: &str,
    key: &str,
) -> Result<Option<String>, InternalError> {
    let read = ShardRead::Get(GetRequest {
        collection: collection.into(),
        ids: Some(vec![key.to_owned()]),
        filter: Filter::default(),
        offset: 0,
        limit: None,
        include: Include::ALL,
    });
    let body = wire::encode(&read).expect("encode");
    let path = format!("/internal/{group}/read");
    let bytes = cluster
        .post_internal(node, &path, body, Duration::from_secs(10))
        .await?;
    match wire::decode::<ShardReadReply>(&bytes).expect("a read reply") {
        Ok(ShardReadValue::Records(r)) => Ok(r.into_iter().next().and_then(|r| r.document)),
        other => panic!("read of {key} on node {node}: {other:?}"),
    }
}

/// A leader answers reads on a lease (no heartbeat round) only while no other
/// leader can have been elected; stopped (SIGSTOP) past its lease while the
/// others elect a new leader and take a write, it must not answer from its old
/// state when it resumes: the read, sent while it is stopped so that it is
/// served the moment it resumes (before its missed ticks depose it, if it is
/// first), either finds the new value or is refused as not the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_past_its_lease_never_answers_a_stale_read() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client_with_timeout(0, Duration::from_secs(20));
    let collection = c.new_collection("lease", json!({})).await;
    let key = "k".to_string();
    c.add_ok(
        &collection,
        &records_body(std::slice::from_ref(&key), "before"),
    )
    .await;

    // The group holding the key, and its leader: the one whose read finds it
    // (a read on the lease, or the round that starts it).
    let mut holder = None;
    for group in cluster.shard_groups() {
        let leader = cluster
            .wait_leader(group, &cluster.replicas_of(group), LONG)
            .await;
        let found = read_on_node(&cluster, leader, group, &collection, &key).await;
        if found == Ok(Some("before k".to_string())) {
            holder = Some((group, leader));
        }
    }
    let (group, old_leader) = holder.expect("a shard leader holds the key");

    cluster.pause_node(old_leader, true);
    let started = Instant::now();
    c.records(
        &collection,
        "upsert",
        &records_body(std::slice::from_ref(&key), "after"),
    )
    .await
    .expect_status(200, "upsert while the old leader is stopped");
    let others: Vec<u64> = cluster
        .replicas_of(group)
        .into_iter()
        .filter(|&n| n != old_leader)
        .collect();
    let new_leader = cluster.wait_leader(group, &others, LONG).await;
    eprintln!(
        "new leader {new_leader} took the write after {:?}",
        started.elapsed()
    );

    let stale = {
        let cluster = &cluster;
        let (collection, key) = (collection.clone(), key.clone());
        async move { read_on_node(cluster, old_leader, group, &collection, &key).await }
    };
    let resume = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.pause_node(old_leader, false);
    };
    let (answer, ()) = tokio::join!(stale, resume);
    eprintln!("the resumed old leader answered {answer:?}");
    match answer {
        Ok(Some(doc)) => assert_eq!(doc, "after k", "a stale read from the old leader"),
        Err(InternalError::NotLeader { .. }) => {}
        other => panic!("the resumed old leader answered {other:?}"),
    }
}
