//! Poison requests (issue 9, "No poison pills"): valid-looking hostile input
//! through the router, and hostile bincode posted straight to a node's
//! internal API. Each gets the right 4xx (or a typed refusal from the node),
//! every node keeps running, the data is unchanged and the cluster keeps
//! serving. The limits are in `common::limits`.

use std::time::Duration;

use common::catalog::{
    CatalogCommand, CatalogOutcome, CatalogProposal, CatalogSuccess, CollectionConfiguration,
};
use common::command::{ApplyOutcome, IndexConfig, Proposal, ShardCommand};
use common::filter::ast::{FieldOp, Scalar, Where};
use common::hash::shard_index;
use common::limits;
use common::read::{GetRequest, Include, ShardRead, ShardReadError, ShardReadReply};
use common::secret::CLUSTER_SECRET_HEADER;
use common::wire::{self, InternalError, InternalReply, BINCODE_CONTENT_TYPE};
use common::{Filter, Space};
use serde_json::{json, Value};
use tests::{unique_name, Checks, Client, Cluster, ClusterOptions, DEFAULT_DB};

const DIM: usize = 4;

fn embedding(i: usize) -> Vec<f32> {
    (0..DIM).map(|d| ((i * 7 + d * 3) % 11) as f32).collect()
}

/// Creates a collection holding `n` records; returns its id.
async fn seeded(c: &Client, prefix: &str, n: usize) -> String {
    let id = c.new_collection(&unique_name(prefix), json!({})).await;
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..n).map(embedding).collect();
    let documents: Vec<String> = (0..n).map(|i| format!("document {i}")).collect();
    let metadatas: Vec<Value> = (0..n).map(|i| json!({"i": i})).collect();
    c.add_ok(
        &id,
        &json!({"ids": ids, "embeddings": embeddings, "documents": documents, "metadatas": metadatas}),
    )
    .await;
    id
}

/// Everything a collection holds, for "unchanged" checks.
async fn contents(c: &Client, id: &str) -> Value {
    c.get_ok(
        id,
        &json!({"include": ["embeddings", "documents", "metadatas"]}),
    )
    .await
}

/// A request the router must refuse with `status` / `error`, and a message
/// naming `needle`.
#[track_caller]
fn refused(what: &str, resp: tests::Resp, status: u16, error: &str, needle: &str) {
    let message = resp.expect_error(status, error, what);
    assert!(
        message.contains(needle),
        "{what}: message should name {needle}: {message}"
    );
}

fn collections_path() -> String {
    format!("{DEFAULT_DB}/collections")
}

async fn hnsw_parameters(c: Client) {
    let cases = [
        (
            json!({"configuration": {"hnsw": {"ef_construction": 4611686018427387904u64}}}),
            "ef_construction",
        ),
        (
            json!({"configuration": {"hnsw": {"max_neighbors": 4611686018427387904u64}}}),
            "max_neighbors",
        ),
        (
            json!({"configuration": {"hnsw": {"ef_search": 10_001}}}),
            "ef_search",
        ),
        (
            json!({"metadata": {"hnsw:M": 1_000_000_000}}),
            "max_neighbors",
        ),
        (
            json!({"metadata": {"hnsw:construction_ef": 4611686018427387904i64}}),
            "ef_construction",
        ),
    ];
    for (extra, field) in cases {
        let name = unique_name("poison");
        let mut body = json!({"name": name});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let resp = c.post(&collections_path(), &body).await;
        refused(
            &format!("create {body}"),
            resp,
            400,
            "InvalidArgumentError",
            field,
        );
        // Nothing was created.
        c.get(&format!("{}/{name}", collections_path()))
            .await
            .expect_error(404, "NotFoundError", "the refused collection");
    }
    // The top of each range is accepted, and the index works with it.
    let id = c
        .new_collection(
            &unique_name("edge"),
            json!({"configuration": {"hnsw": {"ef_construction": 10_000, "max_neighbors": 1024, "ef_search": 10_000}}}),
        )
        .await;
    let ids: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..20).map(embedding).collect();
    c.add_ok(&id, &json!({"ids": ids, "embeddings": embeddings}))
        .await;
    assert_query_finds(&c, &id, 3, 3).await;
}

async fn modify_ef_search(c: Client) {
    let id = seeded(&c, "modify", 30).await;
    let path = format!("{}/{id}", collections_path());
    let before = c.get(&format!("{}/by-id/{id}", collections_path())).await;
    let resp = c
        .put(
            &path,
            &json!({"new_configuration": {"hnsw": {"ef_search": 4611686018427387904u64}}}),
        )
        .await;
    refused(
        "modify ef_search",
        resp,
        400,
        "InvalidArgumentError",
        "ef_search",
    );
    let after = c.get(&format!("{}/by-id/{id}", collections_path())).await;
    assert_eq!(
        before.body["configuration_json"],
        after.body["configuration_json"]
    );
    assert_query_finds(&c, &id, 5, 5).await;
}

async fn filters(c: Client) {
    let id = seeded(&c, "filters", 20).await;
    let before = contents(&c, &id).await;
    // Deeper than serde_json's recursion limit: refused as JSON.
    let mut deep = json!({"i": 1});
    for _ in 0..300 {
        deep = json!({"$and": [deep, {"i": 2}]});
    }
    let text = json!({"where": deep}).to_string();
    let resp = c
        .post_raw(&format!("{}/{id}/get", collections_path()), &text)
        .await;
    refused(
        "deep where (JSON)",
        resp,
        400,
        "InvalidArgumentError",
        "recursion limit",
    );
    let big_in: Vec<usize> = (0..=limits::MAX_IN_VALUES).collect();
    for (verb, body, needle) in [
        (
            "get",
            json!({"where": {"i": {"$in": big_in}}}),
            "MAX_IN_VALUES",
        ),
        (
            "delete",
            json!({"where": {"i": {"$nin": big_in}}}),
            "MAX_IN_VALUES",
        ),
        (
            "get",
            json!({"where_document": {"$or": (0..=limits::MAX_REGEXES).map(|i| json!({"$regex": format!("d{i}")})).collect::<Vec<_>>()}}),
            "MAX_REGEXES",
        ),
        (
            "get",
            json!({"where_document": {"$regex": "(a{1000}){1000}"}}),
            "size limit",
        ),
        (
            "delete",
            json!({"where_document": {"$regex": "a".repeat(limits::MAX_REGEX_PATTERN_BYTES + 1)}}),
            "MAX_REGEX_PATTERN_BYTES",
        ),
        (
            "query",
            json!({"query_embeddings": [embedding(1)], "where_document": {"$not_regex": "(b{1000}){1000}"}}),
            "size limit",
        ),
    ] {
        let resp = c.records(&id, verb, &body).await;
        refused(
            &format!("{verb} with {needle}"),
            resp,
            400,
            "InvalidArgumentError",
            needle,
        );
    }
    assert_eq!(
        contents(&c, &id).await,
        before,
        "a refused filter changed the data"
    );
}

async fn read_sizes(c: Client) {
    let id = seeded(&c, "reads", 10).await;
    let many: Vec<Vec<f32>> = (0..=limits::MAX_QUERY_EMBEDDINGS).map(embedding).collect();
    let texts: Vec<String> = (0..=limits::MAX_QUERY_EMBEDDINGS)
        .map(|i| format!("t{i}"))
        .collect();
    for (verb, body, needle) in [
        (
            "query",
            json!({"query_embeddings": many}),
            "MAX_QUERY_EMBEDDINGS",
        ),
        (
            "query",
            json!({"query_texts": texts}),
            "MAX_QUERY_EMBEDDINGS",
        ),
        (
            "query",
            json!({"query_embeddings": [embedding(1)], "n_results": 1_000_000_000_000u64}),
            "MAX_N_RESULTS",
        ),
        ("get", json!({"limit": 1u64 << 40}), "MAX_LIMIT_OFFSET"),
        ("get", json!({"offset": 1u64 << 40}), "MAX_LIMIT_OFFSET"),
        (
            "get",
            json!({"ids": ["x".repeat(limits::MAX_ID_BYTES + 1)]}),
            "MAX_ID_BYTES",
        ),
        (
            "upsert",
            json!({"ids": ["a"], "embeddings": [vec![0.5f32; limits::MAX_EMBEDDING_DIMENSION + 1]]}),
            "MAX_EMBEDDING_DIMENSION",
        ),
    ] {
        let resp = c.records(&id, verb, &body).await;
        refused(
            &format!("{verb} with {needle}"),
            resp,
            400,
            "InvalidArgumentError",
            needle,
        );
    }
    assert_eq!(c.count(&id).await, 10);
}

/// An add whose part for one shard encodes past the node's proposal limit,
/// while its part for another shard is small: refused whole with 413, and
/// neither part is written. Metadata is what bincode expands most (`"3ff":0`
/// is 8 bytes of JSON and about 24 of bincode), so the body (~23 MB) stays
/// under the router's body limit while the shard part is over 64 MiB.
async fn oversized_shard_part(c: Client, shards: usize) {
    let id = seeded(&c, "oversize", 6).await;
    let before = contents(&c, &id).await;
    let target = shard_index(&id, "big-0", shards);
    let mut ids: Vec<String> = (0..)
        .map(|i| format!("big-{i}"))
        .filter(|s| shard_index(&id, s, shards) == target)
        .take(2_900)
        .collect();
    let big = ids.len();
    ids.push(
        (0..)
            .map(|i| format!("small-{i}"))
            .find(|s| shard_index(&id, s, shards) != target)
            .unwrap(),
    );
    let keys: Vec<String> = (0..limits::MAX_METADATA_KEYS)
        .map(|k| format!("\"{k:x}\":0"))
        .collect();
    let metadata = format!("{{{}}}", keys.join(","));
    let mut metadatas = vec![metadata.as_str(); big];
    metadatas.push(r#"{"small":1}"#);
    let embeddings: Vec<Vec<f32>> = (0..ids.len()).map(embedding).collect();
    let body = format!(
        r#"{{"ids":{},"embeddings":{},"metadatas":[{}]}}"#,
        json!(ids),
        json!(embeddings),
        metadatas.join(",")
    );
    let resp = c
        .post_raw(&format!("{}/{id}/add", collections_path()), &body)
        .await;
    refused(
        "add with an oversized shard part",
        resp,
        413,
        "BatchSizeExceededError",
        "MAX_PROPOSAL_BYTES",
    );
    assert_eq!(
        contents(&c, &id).await,
        before,
        "part of a refused add was written"
    );
}

// ---- Straight to a node ----------------------------------------------------

/// POSTs bincode to a node's internal API and decodes the typed reply. Every
/// node endpoint request goes through here, so a header the nodes come to
/// require (a cluster secret) is added in one place.
async fn node_post(cluster: &Cluster, node: u64, path: &str, body: Vec<u8>) -> InternalReply {
    let addr = addr(cluster, node);
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header(reqwest::header::CONTENT_TYPE, BINCODE_CONTENT_TYPE)
        .header(
            CLUSTER_SECRET_HEADER,
            cluster.cluster_secret().header_value(),
        )
        .timeout(Duration::from_secs(30))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path} to {addr}: {e}"));
    let bytes = resp.bytes().await.expect("reply body");
    wire::decode(&bytes).unwrap_or_else(|e| panic!("POST {path}: untyped reply ({e}): {bytes:?}"))
}

fn leaf() -> Where {
    Where::Field {
        key: "i".into(),
        op: FieldOp::Eq(Scalar::Int(1)),
    }
}

/// `shallow` (an encoded message whose filter is `where: leaf()`) with the
/// filter nested `levels` single-child `$and`s deep, built as bytes: such a
/// value could not even be dropped in this process.
fn deepen(shallow: &[u8], levels: usize) -> Vec<u8> {
    let child = wire::encode(&leaf()).unwrap();
    let one = wire::encode(&Where::And(vec![leaf()])).unwrap();
    let header = &one[..one.len() - child.len()];
    let at = shallow
        .windows(child.len())
        .position(|w| w == child.as_slice())
        .expect("the leaf in the message");
    let mut out = shallow[..at].to_vec();
    for _ in 0..levels {
        out.extend_from_slice(header);
    }
    out.extend_from_slice(&shallow[at..]);
    out
}

fn leaf_filter() -> Filter {
    Filter {
        where_clause: Some(leaf()),
        where_document: None,
    }
}

/// A node address per node id.
fn addr(cluster: &Cluster, node: u64) -> String {
    cluster.config.node(node).expect("node").addr.clone()
}

async fn deep_bincode_filter(cluster: &Cluster, collection: &str) {
    let group = cluster.shard_groups()[0];
    let leader = cluster
        .wait_leader(group, &cluster.replicas_of(group), Duration::from_secs(20))
        .await;
    let read = ShardRead::Get(GetRequest {
        collection: collection.into(),
        ids: None,
        filter: leaf_filter(),
        offset: 0,
        limit: None,
        include: Include::default(),
    });
    let body = deepen(&wire::encode(&read).unwrap(), 300_000);
    let reply = node_post(cluster, leader, &format!("/internal/{group}/read"), body).await;
    let answer: ShardReadReply = wire::decode(&reply.expect("read reply")).unwrap();
    match answer {
        Err(ShardReadError::Invalid(m)) => assert!(m.contains("MAX_FILTER_DEPTH"), "{m}"),
        other => panic!("deep read: {other:?}"),
    }
    let proposal = Proposal {
        request_id: 0x5eed,
        deadline_ms: tests::cluster::proposal_deadline(),
        command: ShardCommand::Delete {
            collection: collection.into(),
            ids: None,
            filter: leaf_filter(),
            limit: None,
        },
    };
    let body = deepen(&wire::encode(&proposal).unwrap(), 300_000);
    let reply = node_post(cluster, leader, &format!("/internal/{group}/propose"), body).await;
    let outcome: ApplyOutcome = wire::decode(&reply.expect("propose reply")).unwrap();
    match outcome {
        ApplyOutcome::Rejected(m) => assert!(m.contains("MAX_FILTER_DEPTH"), "{m}"),
        other => panic!("deep propose: {other:?}"),
    }
}

/// A body over the node's proposal limit gets a typed refusal, not a
/// plain-text 413 a router would retry.
async fn oversized_proposal(cluster: &Cluster) {
    let group = cluster.shard_groups()[0];
    let node = cluster.replicas_of(group)[0];
    let body = vec![0u8; limits::MAX_PROPOSAL_BYTES + 1];
    match node_post(cluster, node, &format!("/internal/{group}/propose"), body).await {
        Err(InternalError::TooLarge { limit, .. }) => {
            assert_eq!(limit, limits::MAX_PROPOSAL_BYTES as u64)
        }
        other => panic!("oversized proposal: {other:?}"),
    }
}

/// A catalogue create and a shard modify sent past the router with HNSW
/// parameters far out of range: capped where applied, and the collection works.
async fn bypassing_commands_are_capped(cluster: &Cluster, c: &Client, existing: &str) {
    let leader = cluster
        .wait_leader(0, &cluster.replicas_of(0), Duration::from_secs(20))
        .await;
    let name = unique_name("bypass");
    let id = "0badf00d-0000-4000-8000-000000000001".to_owned();
    let proposal = CatalogProposal {
        request_id: 0xbad,
        deadline_ms: tests::cluster::proposal_deadline(),
        command: CatalogCommand::CreateCollection {
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            id: id.clone(),
            name: name.clone(),
            metadata: None,
            configuration: CollectionConfiguration::new(IndexConfig {
                space: Space::L2,
                ef_construction: 4611686018427387904,
                ef_search: usize::MAX,
                max_neighbors: usize::MAX,
            }),
            shards: cluster.shard_groups(),
            get_or_create: false,
        },
    };
    let reply = node_post(
        cluster,
        leader,
        "/internal/0/propose",
        wire::encode(&proposal).unwrap(),
    )
    .await;
    let outcome: CatalogOutcome = wire::decode(&reply.expect("catalogue reply")).unwrap();
    match outcome {
        Ok(CatalogSuccess::CollectionCreated { collection, .. }) => {
            assert_eq!(collection.index_config, proposal_config_capped());
        }
        other => panic!("bypassing create: {other:?}"),
    }
    // The router creates the shard parts from the (capped) catalogue entry.
    let ids: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..40).map(embedding).collect();
    c.add_ok(&id, &json!({"ids": ids, "embeddings": embeddings}))
        .await;
    assert_eq!(c.count(&id).await, 40);

    // A shard modify straight to a shard leader.
    let group = cluster.shard_groups()[1];
    let shard_leader = cluster
        .wait_leader(group, &cluster.replicas_of(group), Duration::from_secs(20))
        .await;
    let proposal = Proposal {
        request_id: 0xbad2,
        deadline_ms: tests::cluster::proposal_deadline(),
        command: ShardCommand::ModifyCollection {
            collection: existing.into(),
            config: IndexConfig {
                ef_search: usize::MAX,
                ..IndexConfig::default()
            },
        },
    };
    let reply = node_post(
        cluster,
        shard_leader,
        &format!("/internal/{group}/propose"),
        wire::encode(&proposal).unwrap(),
    )
    .await;
    assert_eq!(
        wire::decode::<ApplyOutcome>(&reply.expect("modify reply")).unwrap(),
        ApplyOutcome::Done
    );
    assert_query_finds(c, existing, 2, 4).await;
}

fn proposal_config_capped() -> IndexConfig {
    IndexConfig {
        space: Space::L2,
        ef_construction: 4611686018427387904,
        ef_search: usize::MAX,
        max_neighbors: usize::MAX,
    }
    .capped()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_requests_are_refused_and_nothing_breaks() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let shards = cluster.shard_groups().len();
    let mut checks = Checks::new();
    checks
        .run(
            "HNSW parameters out of range on create: 400",
            hnsw_parameters(c.clone()),
        )
        .await;
    checks
        .run(
            "huge ef_search by modify: 400, unchanged",
            modify_ef_search(c.clone()),
        )
        .await;
    checks
        .run(
            "deep, huge and regex-heavy filters: 400",
            filters(c.clone()),
        )
        .await;
    checks
        .run(
            "query and get sizes over the limits: 400",
            read_sizes(c.clone()),
        )
        .await;
    checks
        .run(
            "an add with one oversized shard part: 413, nothing written",
            oversized_shard_part(c.clone(), shards),
        )
        .await;
    checks.finish();

    // Straight to the nodes.
    let victim = seeded(&c, "victim", 25).await;
    let before = contents(&c, &victim).await;
    deep_bincode_filter(&cluster, &victim).await;
    oversized_proposal(&cluster).await;
    bypassing_commands_are_capped(&cluster, &c, &victim).await;
    assert_eq!(
        contents(&c, &victim).await,
        before,
        "the victim's records changed"
    );

    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );
    assert_eq!(cluster.running().len(), cluster.ids().len());
    cluster.wait_converged(Duration::from_secs(60)).await;
    // Still serving writes and reads.
    let after = seeded(&c, "after", 5).await;
    assert_eq!(c.count(&after).await, 5);
}

/// A query for `embedding(seed)` on collection `id` answers `n` hits: the
/// collection still serves after the attack.
async fn assert_query_finds(c: &Client, id: &str, seed: usize, n: usize) {
    let got = c
        .query_ok(
            id,
            &json!({"query_embeddings": [embedding(seed)], "n_results": n}),
        )
        .await;
    assert_eq!(got["ids"][0].as_array().map(Vec::len), Some(n), "{got}");
}
