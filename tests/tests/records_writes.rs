//! Record writes (http-api.md "Records", "The seed's rules for writes"): add,
//! upsert, update, delete, base64 embeddings, empty requests, writes that
//! span every shard.

use serde_json::{json, Value};
use tests::data::base64_f32;
use tests::{f32_list, rows, str_list, unique_name, Checks, Client, Cluster, ClusterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();
    checks
        .run(
            "add 201 {} and get returns every field",
            add_and_get_all_fields(c.clone()),
        )
        .await;
    checks
        .run(
            "add spanning every shard, count",
            add_many_across_shards(c.clone()),
        )
        .await;
    checks
        .run(
            "unicode ids and documents, 64-bit integers round-trip",
            unicode_and_big_numbers(c.clone()),
        )
        .await;
    checks
        .run(
            "base64 and list embeddings are both accepted",
            base64_embeddings(c.clone()),
        )
        .await;
    checks
        .run(
            "null entries in metadatas/documents lists",
            null_entries(c.clone()),
        )
        .await;
    checks
        .run(
            "upsert creates and replaces; left-out fields kept",
            upsert(c.clone()),
        )
        .await;
    checks
        .run(
            "update: missing ids ignored, left-out fields kept, metadata merged",
            update(c.clone()),
        )
        .await;
    checks
        .run(
            "update of an embedding moves the record in queries",
            update_embedding_changes_query(c.clone()),
        )
        .await;
    checks
        .run(
            "delete by ids, where, where_document returns deleted counts",
            delete(c.clone()),
        )
        .await;
    checks
        .run("empty ids lists are 2xx no-ops", empty_ids(c.clone()))
        .await;
    checks.finish();
}

async fn add_and_get_all_fields(c: Client) {
    let id = c.new_collection(&unique_name("add"), json!({})).await;
    let body = json!({
        "ids": ["a", "b"],
        "embeddings": [[1.0, 2.0, 3.0], [0.5, -0.25, 4.0]],
        "metadatas": [
            {"s": "x", "i": 7, "f": 2.5, "b": true, "ls": ["p", "q"], "li": [1, 2], "lf": [0.5], "lb": [false]},
            {"s": "y"}
        ],
        "documents": ["first doc", "second doc"],
        "uris": ["s3://a", "s3://b"],
    });
    let resp = c.records(&id, "add", &body).await;
    assert_eq!(
        resp.expect_status(201, "add"),
        json!({}),
        "add answers {{}}"
    );
    let got = c
        .get_ok(
            &id,
            &json!({"include": ["embeddings", "documents", "metadatas", "uris"]}),
        )
        .await;
    let rows = rows(&got);
    assert_eq!(rows.len(), 2, "{got}");
    let a = &rows["a"];
    assert_eq!(f32_list(&a.embedding), [1.0, 2.0, 3.0]);
    assert_eq!(a.document, json!("first doc"));
    assert_eq!(a.metadata, body["metadatas"][0]);
    assert_eq!(a.uri, json!("s3://a"));
    let b = &rows["b"];
    assert_eq!(f32_list(&b.embedding), [0.5, -0.25, 4.0]);
    assert_eq!(b.metadata, json!({"s": "y"}));
    assert_eq!(c.count(&id).await, 2);
}

async fn add_many_across_shards(c: Client) {
    let id = c.new_collection(&unique_name("many"), json!({})).await;
    let ids: Vec<String> = (0..150).map(|i| format!("m{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..150).map(|i| vec![i as f32, -(i as f32)]).collect();
    let metadatas: Vec<Value> = (0..150).map(|i| json!({"i": i})).collect();
    // With three shards, 150 ids put records on every one of them.
    let shards: std::collections::BTreeSet<usize> = ids
        .iter()
        .map(|r| common::hash::shard_index(&id, r, 3))
        .collect();
    assert_eq!(shards.len(), 3, "the request spans every shard");
    c.add_ok(
        &id,
        &json!({"ids": ids, "embeddings": embeddings, "metadatas": metadatas}),
    )
    .await;
    assert_eq!(c.count(&id).await, 150);
    let got = c.get_ok(&id, &json!({"include": ["metadatas"]})).await;
    let rows = rows(&got);
    assert_eq!(rows.len(), 150);
    for (rid, row) in &rows {
        let i: u64 = rid[1..].parse().expect("numeric id suffix");
        assert_eq!(row.metadata, json!({"i": i}), "record {rid}");
    }
}

async fn base64_embeddings(c: Client) {
    let id = c.new_collection(&unique_name("b64"), json!({})).await;
    let e1 = [0.1f32, -2.5, 3.25e-3];
    let e2 = [1.0f32, 1e10, -0.0];
    let e3 = [7.0f32, 8.0, 9.0];
    c.add_ok(
        &id,
        &json!({"ids": ["x1", "x2"], "embeddings": [base64_f32(&e1), base64_f32(&e2)]}),
    )
    .await;
    // Items of one list may mix the two forms.
    c.records(
        &id,
        "upsert",
        &json!({"ids": ["x3", "x1"], "embeddings": [e3.to_vec(), base64_f32(&e1)]}),
    )
    .await
    .expect_status(200, "upsert mixing list and base64");
    let got = c.get_ok(&id, &json!({"include": ["embeddings"]})).await;
    let rows = rows(&got);
    // Responses carry plain float lists holding the exact f32 values.
    assert_eq!(f32_list(&rows["x1"].embedding), e1);
    assert_eq!(f32_list(&rows["x2"].embedding), e2);
    assert_eq!(f32_list(&rows["x3"].embedding), e3);
    // Queries find them by distance as usual.
    let q = c
        .query_ok(
            &id,
            &json!({"query_embeddings": [e3.to_vec()], "n_results": 1, "include": ["distances"]}),
        )
        .await;
    assert_eq!(q["ids"], json!([["x3"]]), "{q}");
}

async fn null_entries(c: Client) {
    let id = c.new_collection(&unique_name("nulls"), json!({})).await;
    c.add_ok(
        &id,
        &json!({
            "ids": ["n1", "n2"],
            "embeddings": [[1.0], [2.0]],
            "metadatas": [{"k": 1}, null],
            "documents": [null, "doc two"],
        }),
    )
    .await;
    let rows = rows(&c.get_ok(&id, &json!({})).await);
    assert_eq!(rows["n1"].metadata, json!({"k": 1}));
    assert_eq!(rows["n1"].document, Value::Null);
    assert_eq!(rows["n2"].metadata, Value::Null);
    assert_eq!(rows["n2"].document, json!("doc two"));
}

async fn upsert(c: Client) {
    let id = c.new_collection(&unique_name("upsert"), json!({})).await;
    c.add_ok(
        &id,
        &json!({
            "ids": ["u1", "u2"],
            "embeddings": [[1.0, 1.0], [2.0, 2.0]],
            "metadatas": [{"v": 1}, {"v": 2}],
            "documents": ["one", "two"],
        }),
    )
    .await;
    let resp = c
        .records(
            &id,
            "upsert",
            &json!({
                "ids": ["u2", "u3"],
                "embeddings": [[5.0, 5.0], [3.0, 3.0]],
                "metadatas": [{"v": 20}, {"v": 3}],
                "documents": ["TWO", "three"],
            }),
        )
        .await;
    assert_eq!(resp.expect_status(200, "upsert"), json!({}));
    let all = json!({"include": ["embeddings", "documents", "metadatas"]});
    let r = rows(&c.get_ok(&id, &all).await);
    assert_eq!(r.len(), 3);
    assert_eq!(f32_list(&r["u2"].embedding), [5.0, 5.0]);
    assert_eq!(r["u2"].document, json!("TWO"));
    assert_eq!(r["u2"].metadata, json!({"v": 20}));
    assert_eq!(r["u3"].document, json!("three"));
    assert_eq!(r["u1"].document, json!("one"), "untouched record");

    // Upsert with only embeddings: document and metadata keep their values.
    c.records(
        &id,
        "upsert",
        &json!({"ids": ["u1"], "embeddings": [[9.0, 9.0]]}),
    )
    .await
    .expect_status(200, "upsert embeddings only");
    let r = rows(&c.get_ok(&id, &all).await);
    assert_eq!(f32_list(&r["u1"].embedding), [9.0, 9.0]);
    assert_eq!(r["u1"].document, json!("one"), "left-out document kept");
    assert_eq!(r["u1"].metadata, json!({"v": 1}), "left-out metadata kept");
    // Upserting the same request twice leaves the same state (idempotent).
    let same = json!({"ids": ["u4"], "embeddings": [[4.0, 4.0]], "documents": ["four"]});
    for _ in 0..2 {
        c.records(&id, "upsert", &same)
            .await
            .expect_status(200, "repeated upsert");
    }
    assert_eq!(c.count(&id).await, 4);
}

async fn update(c: Client) {
    let id = c.new_collection(&unique_name("update"), json!({})).await;
    c.add_ok(
        &id,
        &json!({
            "ids": ["p1", "p2"],
            "embeddings": [[1.0, 0.0], [0.0, 1.0]],
            "metadatas": [{"a": 1, "b": 2}, {"a": 10}],
            "documents": ["doc one", "doc two"],
        }),
    )
    .await;
    // Metadata given: merged key by key; document and embedding left out: kept.
    // "ghost" does not exist: ignored, not created.
    let resp = c
        .records(
            &id,
            "update",
            &json!({"ids": ["p1", "ghost"], "metadatas": [{"b": 3, "c": "new"}, {"z": 1}]}),
        )
        .await;
    assert_eq!(resp.expect_status(200, "update"), json!({}));
    let all = json!({"include": ["embeddings", "documents", "metadatas"]});
    let r = rows(&c.get_ok(&id, &all).await);
    assert_eq!(r.len(), 2, "update does not create ghost: {r:?}");
    assert_eq!(
        r["p1"].metadata,
        json!({"a": 1, "b": 3, "c": "new"}),
        "merged"
    );
    assert_eq!(r["p1"].document, json!("doc one"));
    assert_eq!(f32_list(&r["p1"].embedding), [1.0, 0.0]);

    // Document only.
    c.records(
        &id,
        "update",
        &json!({"ids": ["p2"], "documents": ["changed"]}),
    )
    .await
    .expect_status(200, "update document");
    let r = rows(&c.get_ok(&id, &all).await);
    assert_eq!(r["p2"].document, json!("changed"));
    assert_eq!(r["p2"].metadata, json!({"a": 10}), "metadata kept");
    assert_eq!(f32_list(&r["p2"].embedding), [0.0, 1.0], "embedding kept");

    // Only missing ids: a no-op.
    c.records(
        &id,
        "update",
        &json!({"ids": ["ghost2"], "documents": ["x"]}),
    )
    .await
    .expect_status(200, "update of only missing ids");
    assert_eq!(c.count(&id).await, 2);
}

async fn update_embedding_changes_query(c: Client) {
    let id = c.new_collection(&unique_name("update-q"), json!({})).await;
    let ids: Vec<String> = (0..20).map(|i| format!("q{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32, 0.0]).collect();
    c.add_ok(&id, &json!({"ids": ids, "embeddings": embeddings}))
        .await;
    let query =
        json!({"query_embeddings": [[100.0, 0.0]], "n_results": 1, "include": ["distances"]});
    assert_eq!(c.query_ok(&id, &query).await["ids"], json!([["q19"]]));
    c.records(
        &id,
        "update",
        &json!({"ids": ["q3"], "embeddings": [[99.0, 0.0]]}),
    )
    .await
    .expect_status(200, "update embedding");
    let got = c.query_ok(&id, &query).await;
    assert_eq!(
        got["ids"],
        json!([["q3"]]),
        "updated record is nearest: {got}"
    );
    assert_eq!(got["distances"], json!([[1.0]]), "{got}");
}

async fn delete(c: Client) {
    let id = c.new_collection(&unique_name("delete"), json!({})).await;
    let n = 40;
    let ids: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..n).map(|i| vec![i as f32, 1.0]).collect();
    let metadatas: Vec<Value> = (0..n)
        .map(|i| json!({"group": i % 4, "even": i % 2 == 0}))
        .collect();
    let documents: Vec<String> = (0..n)
        .map(|i| format!("text {} end", if i % 5 == 0 { "fizz" } else { "plain" }))
        .collect();
    c.add_ok(
        &id,
        &json!({"ids": ids, "embeddings": embeddings, "metadatas": metadatas, "documents": documents}),
    )
    .await;

    // By ids; an absent id is not counted.
    let resp = c
        .records(&id, "delete", &json!({"ids": ["k1", "k2", "absent"]}))
        .await;
    assert_eq!(
        resp.expect_status(200, "delete by ids"),
        json!({"deleted": 2})
    );
    assert_eq!(c.count(&id).await, 38);
    assert!(c
        .present_ids(&id, &["k1".into(), "k2".into()])
        .await
        .is_empty());

    // By where: group 3 is k3, k7, ..., k39 (10 records).
    let resp = c
        .records(&id, "delete", &json!({"where": {"group": 3}}))
        .await;
    assert_eq!(
        resp.expect_status(200, "delete by where"),
        json!({"deleted": 10})
    );
    assert_eq!(c.count(&id).await, 28);

    // By where_document: "fizz" is on k0, k5, k10, ..., k35; k15, k35 had
    // group 3 and are gone already: 6 left.
    let resp = c
        .records(
            &id,
            "delete",
            &json!({"where_document": {"$contains": "fizz"}}),
        )
        .await;
    assert_eq!(
        resp.expect_status(200, "delete by where_document"),
        json!({"deleted": 6})
    );
    assert_eq!(c.count(&id).await, 22);

    // Ids and where together: only ids that match.
    let resp = c
        .records(
            &id,
            "delete",
            &json!({"ids": ["k4", "k6", "k9"], "where": {"even": true}}),
        )
        .await;
    assert_eq!(
        resp.expect_status(200, "delete by ids and where"),
        json!({"deleted": 2})
    );
    let left = c
        .present_ids(&id, &["k4".into(), "k6".into(), "k9".into()])
        .await;
    assert_eq!(left, ["k9"]);

    // Deleted records never come back from get or query.
    let got = c.get_ok(&id, &json!({"include": []})).await;
    let remaining = str_list(&got["ids"]);
    assert_eq!(remaining.len(), 20);
    for gone in ["k1", "k2", "k3", "k0", "k4", "k6"] {
        assert!(
            !remaining.contains(&gone.to_string()),
            "{gone} still returned"
        );
    }
    let q = c
        .query_ok(
            &id,
            &json!({"query_embeddings": [[0.0, 1.0]], "n_results": 100, "include": []}),
        )
        .await;
    let mut qids = str_list(&q["ids"][0]);
    qids.sort();
    let mut sorted = remaining.clone();
    sorted.sort();
    assert_eq!(qids, sorted, "query after deletes");

    // Neither ids nor a filter: refused, nothing deleted.
    c.records(&id, "delete", &json!({})).await.expect_error(
        400,
        "InvalidArgumentError",
        "delete with neither",
    );
    assert_eq!(c.count(&id).await, 20);
}

async fn empty_ids(c: Client) {
    let id = c.new_collection(&unique_name("empty"), json!({})).await;
    c.add_ok(&id, &json!({"ids": ["e1"], "embeddings": [[1.0, 2.0]]}))
        .await;
    for (verb, body) in [
        ("add", json!({"ids": [], "embeddings": []})),
        ("upsert", json!({"ids": [], "embeddings": []})),
        ("update", json!({"ids": []})),
        ("delete", json!({"ids": []})),
    ] {
        let resp = c.records(&id, verb, &body).await;
        assert!(
            (200..300).contains(&resp.status),
            "{verb} with empty ids: expected 200 no-op, got {} {}",
            resp.status,
            resp.body
        );
    }
    // An empty ids list on delete is not "delete everything".
    assert_eq!(c.count(&id).await, 1);
}

async fn unicode_and_big_numbers(c: Client) {
    let id = c.new_collection(&unique_name("unicode"), json!({})).await;
    let ids = ["ünïcødé-😀", "日本語", "plain"];
    let meta = json!({"big": 9_007_199_254_740_993_i64, "neg": -42, "tiny": 1e-300,
                      "text": "naïve café ✓"});
    c.add_ok(
        &id,
        &json!({
            "ids": ids,
            "embeddings": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
            "metadatas": [meta, {"k": 1}, {"k": 2}],
            "documents": ["grüße 😀 aus Köln", "東京の天気", "plain text"],
        }),
    )
    .await;
    let got = c
        .get_ok(
            &id,
            &json!({"ids": ids, "include": ["metadatas", "documents"]}),
        )
        .await;
    let r = rows(&got);
    assert_eq!(r.len(), 3, "{got}");
    // Integers are 64-bit in Chroma: no rounding through f64.
    assert_eq!(r["ünïcødé-😀"].metadata, meta, "{got}");
    assert_eq!(r["日本語"].document, json!("東京の天気"));
    let found = c
        .get_ok(
            &id,
            &json!({"where_document": {"$contains": "😀"}, "include": []}),
        )
        .await;
    assert_eq!(found["ids"], json!(["ünïcødé-😀"]));
    let found = c
        .get_ok(
            &id,
            &json!({"where": {"big": 9_007_199_254_740_993_i64}, "include": []}),
        )
        .await;
    assert_eq!(found["ids"], json!(["ünïcødé-😀"]), "exact 64-bit equality");
    let found = c
        .get_ok(
            &id,
            &json!({"where": {"big": 9_007_199_254_740_992_i64}, "include": []}),
        )
        .await;
    assert_eq!(found["ids"], json!([]), "2^53 is a different integer");
}
