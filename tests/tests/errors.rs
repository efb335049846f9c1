//! Every error case of http-api.md ("The seed's rules for writes",
//! "Filters", "Errors"): status, error name, message, and that nothing of a
//! refused request was written to any shard.

use serde_json::{json, Value};
use tests::data::{base64, base64_f32};
use tests::{
    rows, unique_name, Checks, Client, Cluster, ClusterOptions, RouterOptions, DEFAULT_DB,
};

const DIM3: &str = "Collection expecting embedding with dimension of 3, got 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors() {
    // A small max_batch_size keeps the "exactly the maximum is accepted"
    // write cheap: 5461 records in one add take ~7 s on a debug build.
    let cluster = Cluster::start(ClusterOptions {
        max_batch_size: Some(300),
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client(0);
    let mut checks = Checks::new();
    checks
        .run(
            "length mismatch 400 InvalidArgumentError",
            length_mismatch(c.clone()),
        )
        .await;
    checks
        .run(
            "duplicate ids in a request 400 DuplicateID",
            duplicate_ids(c.clone()),
        )
        .await;
    checks
        .run(
            "dimension mismatch 400 with Chroma's message",
            dimension_mismatch(c.clone()),
        )
        .await;
    checks
        .run(
            "add without embeddings 400",
            add_without_embeddings(c.clone()),
        )
        .await;
    checks
        .run("malformed JSON 400", malformed_json(c.clone()))
        .await;
    checks.run("wrong types 400", wrong_types(c.clone())).await;
    checks
        .run(
            "NaN and infinite floats 400, nothing written",
            non_finite(c.clone()),
        )
        .await;
    checks
        .run(
            "malformed filters 400 InvalidArgumentError",
            malformed_filters(c.clone()),
        )
        .await;
    checks
        .run(
            "unknown collection 404 NotFoundError on every verb",
            unknown_collection(c.clone()),
        )
        .await;
    checks
        .run(
            "batch over max_batch_size 413 BatchSizeExceededError",
            batch_size(c.clone()),
        )
        .await;
    checks
        .run("invalid record metadata 400", invalid_metadata(c.clone()))
        .await;
    checks.finish();
}

/// A fresh collection with one record `seed` of dimension 3.
async fn seeded(c: &Client, prefix: &str) -> String {
    let id = c.new_collection(&unique_name(prefix), json!({})).await;
    c.add_ok(
        &id,
        &json!({"ids": ["seed"], "embeddings": [[1.0, 2.0, 3.0]], "documents": ["seed doc"],
                "metadatas": [{"k": "v"}]}),
    )
    .await;
    id
}

/// The collection still holds exactly the seed record, unchanged.
#[track_caller]
fn assert_only_seed(got: &Value, what: &str) {
    let r = rows(got);
    assert_eq!(
        r.keys().cloned().collect::<Vec<_>>(),
        ["seed"],
        "{what}: something was written: {got}"
    );
    assert_eq!(
        r["seed"].document,
        json!("seed doc"),
        "{what}: seed changed"
    );
    assert_eq!(
        r["seed"].metadata,
        json!({"k": "v"}),
        "{what}: seed changed"
    );
}

async fn only_seed(c: &Client, id: &str, what: &str) {
    let got = c.get_ok(id, &json!({})).await;
    assert_only_seed(&got, what);
}

async fn length_mismatch(c: Client) {
    let id = seeded(&c, "len").await;
    let e = json!([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    for (verb, body) in [
        (
            "add",
            json!({"ids": ["a", "b"], "embeddings": [[1.0, 2.0, 3.0]]}),
        ),
        (
            "add",
            json!({"ids": ["a", "b"], "embeddings": e, "metadatas": [{"x": 1}]}),
        ),
        (
            "add",
            json!({"ids": ["a", "b"], "embeddings": e, "documents": ["1", "2", "3"]}),
        ),
        (
            "add",
            json!({"ids": ["a", "b"], "embeddings": e, "uris": ["u"]}),
        ),
        ("upsert", json!({"ids": ["a"], "embeddings": e})),
        ("update", json!({"ids": ["seed", "a"], "documents": ["x"]})),
    ] {
        c.records(&id, verb, &body).await.expect_error(
            400,
            "InvalidArgumentError",
            &format!("{verb} {body}"),
        );
    }
    only_seed(&c, &id, "after length mismatches").await;
}

async fn duplicate_ids(c: Client) {
    let id = seeded(&c, "dupids").await;
    let e = json!([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]);
    for verb in ["add", "upsert"] {
        c.records(&id, verb, &json!({"ids": ["a", "b", "a"], "embeddings": e}))
            .await
            .expect_error(400, "DuplicateID", &format!("{verb} with a repeated id"));
    }
    c.records(
        &id,
        "update",
        &json!({"ids": ["seed", "seed"], "documents": ["x", "y"]}),
    )
    .await
    .expect_error(400, "DuplicateID", "update with a repeated id");
    only_seed(&c, &id, "after duplicate ids").await;
}

async fn dimension_mismatch(c: Client) {
    let id = seeded(&c, "dim").await;
    for (verb, body) in [
        ("add", json!({"ids": ["a"], "embeddings": [[1.0, 2.0]]})),
        ("upsert", json!({"ids": ["a"], "embeddings": [[1.0, 2.0]]})),
        (
            "update",
            json!({"ids": ["seed"], "embeddings": [[1.0, 2.0]]}),
        ),
        (
            "add",
            json!({"ids": ["a"], "embeddings": [base64_f32(&[1.0, 2.0])]}),
        ),
        (
            "query",
            json!({"query_embeddings": [[1.0, 2.0]], "n_results": 1}),
        ),
    ] {
        let msg = c.records(&id, verb, &body).await.expect_error(
            400,
            "InvalidArgumentError",
            &format!("{verb} {body}"),
        );
        assert_eq!(msg, DIM3, "{verb}: message");
    }
    // One bad embedding among good ones: the whole request is refused.
    c.records(
        &id,
        "add",
        &json!({"ids": ["a", "b"], "embeddings": [[1.0, 2.0, 3.0], [1.0, 2.0]]}),
    )
    .await
    .expect_error(400, "InvalidArgumentError", "add with one short embedding");
    only_seed(&c, &id, "after dimension mismatches").await;
}

async fn add_without_embeddings(c: Client) {
    let id = seeded(&c, "noemb").await;
    c.records(&id, "add", &json!({"ids": ["a"]}))
        .await
        .expect_error(400, "InvalidArgumentError", "add with neither");
    c.records(&id, "add", &json!({"ids": ["a"], "metadatas": [{"x": 1}]}))
        .await
        .expect_error(400, "InvalidArgumentError", "add with metadata only");
    // Documents without embeddings and no embedding function configured:
    // the message says why.
    let msg = c
        .records(&id, "add", &json!({"ids": ["a"], "documents": ["text"]}))
        .await
        .expect_error(400, "InvalidArgumentError", "add documents only");
    assert!(
        msg.to_lowercase().contains("embedding"),
        "message should say there is no embedding function: {msg}"
    );
    c.records(&id, "query", &json!({"n_results": 1}))
        .await
        .expect_error(
            400,
            "InvalidArgumentError",
            "query without query_embeddings",
        );
    only_seed(&c, &id, "after adds without embeddings").await;
}

async fn malformed_json(c: Client) {
    let id = seeded(&c, "badjson").await;
    let coll = format!("{DEFAULT_DB}/collections");
    for (path, body) in [
        (
            format!("{coll}/{id}/add"),
            r#"{"ids": ["a"], "embeddings": [[1,2,3]"#,
        ),
        (format!("{coll}/{id}/add"), "not json at all"),
        (format!("{coll}/{id}/get"), r#"{"ids": ["a",]}"#),
        (
            format!("{coll}/{id}/query"),
            r#"{"query_embeddings": [[1,2,3]], }"#,
        ),
        (coll.clone(), r#"{"name": "x"#),
        ("/api/v2/tenants".into(), "{"),
    ] {
        let resp = c.post_raw(&path, body).await;
        assert_eq!(
            resp.status, 400,
            "{path} {body}: got {} {}",
            resp.status, resp.body
        );
        resp.expect_error(400, "InvalidArgumentError", &format!("{path} {body}"));
    }
    only_seed(&c, &id, "after malformed JSON").await;
}

async fn wrong_types(c: Client) {
    let id = seeded(&c, "types").await;
    for (verb, body) in [
        (
            "add",
            json!({"ids": [1, 2], "embeddings": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]}),
        ),
        ("add", json!({"ids": "a", "embeddings": [[1.0, 2.0, 3.0]]})),
        (
            "add",
            json!({"ids": ["a"], "embeddings": [["x", "y", "z"]]}),
        ),
        (
            "add",
            json!({"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]], "metadatas": "m"}),
        ),
        (
            "add",
            json!({"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]], "documents": [5]}),
        ),
        ("get", json!({"limit": "ten"})),
        ("get", json!({"limit": -1})),
        ("get", json!({"include": ["bogus"]})),
        (
            "query",
            json!({"query_embeddings": [[1.0, 2.0, 3.0]], "n_results": "ten"}),
        ),
        ("query", json!({"query_embeddings": "abc", "n_results": 1})),
    ] {
        c.records(&id, verb, &body).await.expect_error(
            400,
            "InvalidArgumentError",
            &format!("{verb} {body}"),
        );
    }
    c.post(&format!("{DEFAULT_DB}/collections"), &json!({"name": 5}))
        .await
        .expect_error(
            400,
            "InvalidArgumentError",
            "collection name of the wrong type",
        );
    only_seed(&c, &id, "after wrong types").await;
}

async fn non_finite(c: Client) {
    let id = seeded(&c, "nan").await;
    let path = |verb: &str| format!("{DEFAULT_DB}/collections/{id}/{verb}");
    // JSON has no NaN literal: what a client can send is an out-of-range
    // number (1e999 overflows to infinity) or a base64 NaN / infinity.
    for (verb, body) in [
        (
            "add",
            r#"{"ids": ["a", "b"], "embeddings": [[1.0, 2.0, 3.0], [1e999, 0.0, 0.0]]}"#,
        ),
        (
            "upsert",
            r#"{"ids": ["a"], "embeddings": [[1.0, -1e999, 3.0]]}"#,
        ),
        (
            "add",
            r#"{"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]], "metadatas": [{"f": 1e999}]}"#,
        ),
        (
            "update",
            r#"{"ids": ["seed"], "metadatas": [{"f": -1e999}]}"#,
        ),
        (
            "query",
            r#"{"query_embeddings": [[1e999, 2.0, 3.0]], "n_results": 1}"#,
        ),
        ("get", r#"{"where": {"f": {"$gt": 1e999}}}"#),
    ] {
        let resp = c.post_raw(&path(verb), body).await;
        assert_eq!(
            resp.status, 400,
            "{verb} {body}: got {} {}",
            resp.status, resp.body
        );
    }
    let nan = base64(
        &[
            f32::NAN.to_le_bytes(),
            1f32.to_le_bytes(),
            2f32.to_le_bytes(),
        ]
        .concat(),
    );
    let inf = base64_f32(&[1.0, f32::INFINITY, 2.0]);
    for (what, emb) in [
        ("base64 NaN", json!(nan)),
        ("base64 infinity", json!(inf)),
        // 5 bytes: not a whole number of f32s.
        ("base64 of 5 bytes", json!(base64(&[0, 0, 128, 63, 1]))),
        ("invalid base64", json!("!!!not base64")),
    ] {
        let body = json!({"ids": ["a", "b"], "embeddings": [[1.0, 2.0, 3.0], emb]});
        c.records(&id, "add", &body)
            .await
            .expect_error(400, "InvalidArgumentError", what);
    }
    only_seed(&c, &id, "after non-finite floats").await;
}

fn bad_where_filters() -> Vec<Value> {
    vec![
        json!({"$and": [{"a": 1}]}),
        json!({"$or": []}),
        json!({"$and": {"a": 1}}),
        json!({"a": 1, "b": 2}),
        json!({"a": {"$gt": "x"}}),
        json!({"a": {"$lt": true}}),
        json!({"a": {"$bogus": 1}}),
        json!({"a": {"$eq": 1, "$ne": 2}}),
        json!({"a": {}}),
        json!({"a": {"$in": 5}}),
        json!({"a": {"$nin": "x"}}),
        json!({"a": {"$eq": [1, 2]}}),
        json!({"a": {"$eq": {"b": 1}}}),
        json!({"a": null}),
        json!({"$not": {"a": 1}}),
        // An empty `{}` is not here: Chroma 1.5.9 (and its JS client, which
        // sends it by default) treats it as no filter.
        json!([{"a": 1}]),
        json!("a"),
    ]
}

fn bad_document_filters() -> Vec<Value> {
    vec![
        json!({"$contains": ""}),
        json!({"$not_contains": ""}),
        json!({"$contains": 5}),
        json!({"$regex": "("}),
        json!({"$bogus": "x"}),
        json!({"$and": [{"$contains": "x"}]}),
        json!({"$contains": "x", "$regex": "y"}),
        json!("x"),
    ]
}

async fn malformed_filters(c: Client) {
    let id = seeded(&c, "badfilter").await;
    for w in bad_where_filters() {
        for verb in ["get", "query", "delete"] {
            let mut body = json!({"where": w});
            if verb == "query" {
                body["query_embeddings"] = json!([[1.0, 2.0, 3.0]]);
                body["n_results"] = json!(1);
            }
            c.records(&id, verb, &body).await.expect_error(
                400,
                "InvalidArgumentError",
                &format!("{verb} where {w}"),
            );
        }
    }
    for d in bad_document_filters() {
        for verb in ["get", "delete"] {
            c.records(&id, verb, &json!({"where_document": d}))
                .await
                .expect_error(
                    400,
                    "InvalidArgumentError",
                    &format!("{verb} where_document {d}"),
                );
        }
    }
    only_seed(&c, &id, "after malformed filters (delete refused)").await;
    // `{}` means no filter (Chroma 1.5.9), on get; delete with only `{}`
    // filters has neither ids nor a filter and is refused.
    let got = c
        .get_ok(&id, &json!({"where": {}, "where_document": {}}))
        .await;
    assert_only_seed(&got, "get with empty filters");
}

async fn unknown_collection(c: Client) {
    let uuid = "6f1d2c3b-0000-4000-8000-00000000abcd";
    for (verb, body) in [
        ("add", json!({"ids": ["a"], "embeddings": [[1.0]]})),
        ("upsert", json!({"ids": ["a"], "embeddings": [[1.0]]})),
        ("update", json!({"ids": ["a"], "documents": ["x"]})),
        ("delete", json!({"ids": ["a"]})),
        ("get", json!({})),
        (
            "query",
            json!({"query_embeddings": [[1.0]], "n_results": 1}),
        ),
    ] {
        c.records(uuid, verb, &body).await.expect_error(
            404,
            "NotFoundError",
            &format!("{verb} on an unknown collection"),
        );
    }
    c.get(&format!("{DEFAULT_DB}/collections/{uuid}/count"))
        .await
        .expect_error(404, "NotFoundError", "count of an unknown collection");
    c.get(&format!("{DEFAULT_DB}/collections/never-created"))
        .await
        .expect_error(404, "NotFoundError", "get by an unknown name");
    // A collection of another database is unknown here.
    c.post(
        "/api/v2/tenants/default_tenant/databases",
        &json!({"name": "elsewhere"}),
    )
    .await
    .expect_status(200, "create database");
    c.post(
        "/api/v2/tenants/default_tenant/databases/elsewhere/collections",
        &json!({"name": "hidden"}),
    )
    .await
    .expect_status(200, "create collection in another database");
    c.get(&format!("{DEFAULT_DB}/collections/hidden"))
        .await
        .expect_error(
            404,
            "NotFoundError",
            "collection of another database by name",
        );
}

async fn batch_size(c: Client) {
    let pre = c
        .get("/api/v2/pre-flight-checks")
        .await
        .expect_status(200, "pre-flight");
    let max = pre["max_batch_size"]
        .as_u64()
        .unwrap_or_else(|| panic!("max_batch_size: {pre}")) as usize;
    assert_eq!(max, 300, "pre-flight reports the configured max_batch_size");
    let id = c.new_collection(&unique_name("batch"), json!({})).await;
    let batch = |n: usize| {
        json!({
            "ids": (0..n).map(|i| format!("b{i}")).collect::<Vec<_>>(),
            "embeddings": (0..n).map(|i| vec![i as f32]).collect::<Vec<_>>(),
        })
    };
    for verb in ["add", "upsert"] {
        c.records(&id, verb, &batch(max + 1)).await.expect_error(
            413,
            "BatchSizeExceededError",
            &format!("{verb} of max+1"),
        );
    }
    assert_eq!(
        c.count(&id).await,
        0,
        "nothing of an oversized batch written"
    );
    // Exactly the maximum is accepted.
    c.add_ok(&id, &batch(max)).await;
    assert_eq!(c.count(&id).await, max as u64);
}

async fn invalid_metadata(c: Client) {
    let id = seeded(&c, "badmeta").await;
    for meta in [
        json!({"": 1}),
        json!({"#doc": 1}),
        json!({"chroma:x": 1}),
        json!({"a": []}),
        json!({"a": [1, "x"]}),
        json!({"a": [1, 2.5, true]}),
        json!({"a": {"nested": 1}}),
        json!({"a": [[1]]}),
    ] {
        let add = json!({"ids": ["a", "b"], "embeddings": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],
                         "metadatas": [{"ok": 1}, meta]});
        c.records(&id, "add", &add).await.expect_error(
            400,
            "InvalidArgumentError",
            &format!("add metadata {meta}"),
        );
        c.records(
            &id,
            "update",
            &json!({"ids": ["seed"], "metadatas": [meta]}),
        )
        .await
        .expect_error(
            400,
            "InvalidArgumentError",
            &format!("update metadata {meta}"),
        );
    }
    only_seed(&c, &id, "after invalid metadata").await;
}

/// Add of an existing id: the default (reject) answers 409 IDAlreadyExists
/// naming the id and writes nothing of the request on any shard; a router
/// with ROUTER_ADD_EXISTING=skip skips existing ids and adds the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_of_existing_ids() {
    let cluster = Cluster::start(ClusterOptions {
        routers: vec![RouterOptions::default(), RouterOptions::skip_existing()],
        ..ClusterOptions::default()
    })
    .await;
    let reject = cluster.client(0);
    let skip = cluster.client(1);
    let mut checks = Checks::new();
    let id = reject.new_collection("existing", json!({})).await;
    reject
        .add_ok(
            &id,
            &json!({"ids": ["old-1", "old-2"], "embeddings": [[1.0, 1.0], [2.0, 2.0]],
                    "documents": ["first", "second"]}),
        )
        .await;
    // 30 new ids spread over every shard, plus one existing id.
    let new_ids: Vec<String> = (0..30).map(|i| format!("new-{i}")).collect();
    let shards: std::collections::BTreeSet<usize> = new_ids
        .iter()
        .map(|r| common::hash::shard_index(&id, r, 3))
        .collect();
    assert_eq!(shards.len(), 3, "the new ids span every shard");
    let mut ids = new_ids.clone();
    ids.insert(17, "old-2".into());
    let body = json!({
        "ids": ids,
        "embeddings": ids.iter().map(|_| vec![5.0f32, 5.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|i| format!("replacement {i}")).collect::<Vec<_>>(),
    });

    {
        let (c, id, body, new_ids) = (reject.clone(), id.clone(), body.clone(), new_ids.clone());
        checks
            .run(
                "reject: 409 IDAlreadyExists naming the id, nothing written",
                async move {
                    let msg = c.records(&id, "add", &body).await.expect_error(
                        409,
                        "IDAlreadyExists",
                        "add with an existing id",
                    );
                    assert!(
                        msg.contains("old-2"),
                        "message names the existing id: {msg}"
                    );
                    assert!(
                        !msg.contains("old-1"),
                        "message names only existing ids of the request: {msg}"
                    );
                    assert_eq!(
                        c.present_ids(&id, &new_ids).await,
                        Vec::<String>::new(),
                        "ids of the refused request were written"
                    );
                    assert_eq!(c.count(&id).await, 2);
                    let got = c.get_ok(&id, &json!({"ids": ["old-2"]})).await;
                    assert_eq!(
                        got["documents"],
                        json!(["second"]),
                        "existing record unchanged"
                    );
                },
            )
            .await;
    }
    {
        let (c, id, body, new_ids) = (skip.clone(), id.clone(), body.clone(), new_ids.clone());
        let reject = reject.clone();
        checks
            .run("skip: existing ids skipped, new ids added", async move {
                let resp = c.records(&id, "add", &body).await;
                resp.expect_status(201, "add in skip mode");
                let mut expected = new_ids.clone();
                expected.sort();
                assert_eq!(c.present_ids(&id, &new_ids).await, expected);
                assert_eq!(c.count(&id).await, 32);
                let got = c.get_ok(&id, &json!({"ids": ["old-2"]})).await;
                assert_eq!(
                    got["documents"],
                    json!(["second"]),
                    "existing record not replaced"
                );
                // Visible through the rejecting router at once, which now
                // refuses the same request.
                reject.records(&id, "add", &body).await.expect_error(
                    409,
                    "IDAlreadyExists",
                    "same add via the rejecting router",
                );
            })
            .await;
    }
    {
        let (c, id) = (reject.clone(), id.clone());
        checks
            .run(
                "reject: every existing id of the request is named",
                async move {
                    // old-1 and (after the skip-mode add) new-3 exist.
                    let msg = c
                        .records(
                            &id,
                            "add",
                            &json!({"ids": ["old-1", "brand-new", "new-3"],
                                "embeddings": [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]}),
                        )
                        .await
                        .expect_error(409, "IDAlreadyExists", "add with two existing ids");
                    assert!(msg.contains("old-1") && msg.contains("new-3"), "{msg}");
                    assert!(
                        c.present_ids(&id, &["brand-new".into()]).await.is_empty(),
                        "brand-new written by a refused add"
                    );
                },
            )
            .await;
    }
    checks.finish();
}
