//! Record reads (http-api.md "Records", "Filters"): get and query against an
//! in-test brute-force oracle, every filter operator, include combinations,
//! paging across shards, exact distances for every space.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tests::data::{
    add_bodies, assert_top_k, brute_force, dataset, document_filters, record_matches,
    where_filters, Rec, Space,
};
use tests::{
    f32_list, num_list, query_slice, rows, str_list, unique_name, Checks, Client, Cluster,
    ClusterOptions,
};

async fn load(c: &Client, id: &str, recs: &[Rec]) {
    for body in add_bodies(recs) {
        c.add_ok(id, &body).await;
    }
    assert_eq!(c.count(id).await, recs.len() as u64, "all records loaded");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn expected_ids(recs: &[Rec], w: Option<&Value>, d: Option<&Value>) -> Vec<String> {
    sorted(
        recs.iter()
            .filter(|r| record_matches(r, w, d))
            .map(|r| r.id.clone())
            .collect(),
    )
}

/// Checks one filter through get (the matching set) and through query with
/// n_results above the collection size (the same set, by ascending distance).
async fn check_filter(c: &Client, id: &str, recs: &[Rec], w: Option<&Value>, d: Option<&Value>) {
    let what = format!("where {w:?} where_document {d:?}");
    let expected = expected_ids(recs, w, d);
    let mut body = json!({"include": ["metadatas", "documents"]});
    if let Some(w) = w {
        body["where"] = w.clone();
    }
    if let Some(d) = d {
        body["where_document"] = d.clone();
    }
    let got = c.get_ok(id, &body).await;
    let got_ids = str_list(&got["ids"]);
    assert_eq!(
        got_ids.len(),
        got_ids.iter().collect::<BTreeSet<_>>().len(),
        "get {what}: duplicate ids"
    );
    assert_eq!(sorted(got_ids), expected, "get {what}");
    // The returned metadata is the record's own.
    for (rid, row) in rows(&got) {
        let rec = recs.iter().find(|r| r.id == rid).expect("known id");
        assert_eq!(
            row.metadata,
            rec.metadata.clone().map_or(Value::Null, Value::Object),
            "get {what}: metadata of {rid}"
        );
    }

    let query = recs[7].embedding.clone();
    let mut body = json!({"query_embeddings": [query], "n_results": recs.len() + 50,
                          "include": ["distances"]});
    if let Some(w) = w {
        body["where"] = w.clone();
    }
    if let Some(d) = d {
        body["where_document"] = d.clone();
    }
    let got = c.query_ok(id, &body).await;
    let q = query_slice(&got, 0);
    let ids = str_list(&q["ids"]);
    let distances = num_list(&q["distances"]);
    let exp = brute_force(recs, Space::L2, &recs[7].embedding, usize::MAX, w, d);
    assert_top_k(
        &format!("query {what}"),
        recs,
        Space::L2,
        &recs[7].embedding,
        &ids,
        &distances,
        &exp,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_match_a_brute_force_oracle() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let recs = dataset("f", 200, 8, 42);
    let id = c.new_collection("filters", json!({})).await;
    load(&c, &id, &recs).await;

    let mut checks = Checks::new();
    for w in where_filters() {
        let (c, id, recs) = (c.clone(), id.clone(), recs.clone());
        checks
            .run(&format!("where {w}"), async move {
                check_filter(&c, &id, &recs, Some(&w), None).await;
            })
            .await;
    }
    for d in document_filters() {
        let (c, id, recs) = (c.clone(), id.clone(), recs.clone());
        checks
            .run(&format!("where_document {d}"), async move {
                check_filter(&c, &id, &recs, None, Some(&d)).await;
            })
            .await;
    }
    let combined = [
        (
            json!({"color": {"$ne": "red"}}),
            json!({"$contains": "alpha"}),
        ),
        (
            json!({"$or": [{"color": "red"}, {"f": {"$gt": 9.0}}]}),
            json!({"$not_regex": "gamma|delta"}),
        ),
    ];
    for (w, d) in combined {
        let (c, id, recs) = (c.clone(), id.clone(), recs.clone());
        checks
            .run(&format!("where {w} and where_document {d}"), async move {
                check_filter(&c, &id, &recs, Some(&w), Some(&d)).await;
            })
            .await;
    }
    {
        let (c, id, recs) = (c.clone(), id.clone(), recs.clone());
        checks
            .run("ids and where together intersect", async move {
                let ids: Vec<String> = recs.iter().take(40).map(|r| r.id.clone()).collect();
                let w = json!({"color": "red"});
                let got = c.get_ok(&id, &json!({"ids": ids, "where": w})).await;
                let expected: Vec<String> = recs
                    .iter()
                    .take(40)
                    .filter(|r| record_matches(r, Some(&w), None))
                    .map(|r| r.id.clone())
                    .collect();
                assert_eq!(sorted(str_list(&got["ids"])), sorted(expected));
                // Query restricted to ids (Chroma 1.x's `ids` on query).
                let q = c
                    .query_ok(
                        &id,
                        &json!({"query_embeddings": [recs[0].embedding.clone()],
                                "ids": ["f-0003", "f-0004", "f-0005"], "n_results": 10,
                                "include": []}),
                    )
                    .await;
                assert_eq!(
                    sorted(str_list(&q["ids"][0])),
                    ["f-0003", "f-0004", "f-0005"],
                    "{q}"
                );
            })
            .await;
    }
    {
        let (c, recs) = (c.clone(), recs.clone());
        checks
            .run(
                "delete by where / where_document removes exactly the matches",
                async move {
                    // A copy of the dataset, so the shared collection stays whole.
                    let id = c.new_collection("filters-delete", json!({})).await;
                    load(&c, &id, &recs).await;
                    let mut left: Vec<Rec> = recs.clone();
                    for (w, d) in [
                        (
                            Some(json!({"$or": [{"color": "red"}, {"m": {"$gte": 3}}]})),
                            None,
                        ),
                        (None, Some(json!({"$regex": "alpha|Zeta"}))),
                        (
                            Some(json!({"tags": {"$not_contains": "a"}})),
                            Some(json!({"$contains": "doc"})),
                        ),
                    ] {
                        let mut body = json!({});
                        if let Some(w) = &w {
                            body["where"] = w.clone();
                        }
                        if let Some(d) = &d {
                            body["where_document"] = d.clone();
                        }
                        let matching = left
                            .iter()
                            .filter(|r| record_matches(r, w.as_ref(), d.as_ref()))
                            .count();
                        let resp = c.records(&id, "delete", &body).await;
                        assert_eq!(
                            resp.expect_status(200, &format!("delete {body}")),
                            json!({"deleted": matching}),
                            "delete {body}"
                        );
                        left.retain(|r| !record_matches(r, w.as_ref(), d.as_ref()));
                        let got = c.get_ok(&id, &json!({"include": []})).await;
                        assert_eq!(
                            sorted(str_list(&got["ids"])),
                            sorted(left.iter().map(|r| r.id.clone()).collect()),
                            "records left after delete {body}"
                        );
                    }
                    assert_eq!(c.count(&id).await, left.len() as u64);
                },
            )
            .await;
    }
    {
        let (c, id, recs) = (c.clone(), id.clone(), recs.clone());
        checks
            .run("filtered query top-k equals brute force", async move {
                for (w, qi) in [
                    (json!({"m": {"$gte": 2}}), 3),
                    (json!({"tags": {"$contains": "b"}}), 50),
                ] {
                    let query = recs[qi].embedding.clone();
                    let got = c
                        .query_ok(
                            &id,
                            &json!({"query_embeddings": [query], "n_results": 5, "where": w,
                                    "include": ["distances"]}),
                        )
                        .await;
                    let exp = brute_force(&recs, Space::L2, &recs[qi].embedding, 5, Some(&w), None);
                    assert_top_k(
                        &format!("top-5 where {w}"),
                        &recs,
                        Space::L2,
                        &recs[qi].embedding,
                        &str_list(&got["ids"][0]),
                        &num_list(&got["distances"][0]),
                        &exp,
                    );
                }
            })
            .await;
    }
    checks.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_and_include() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();
    checks
        .run(
            "limit/offset pages of 7 over 300 records concatenate exactly",
            paging(c.clone()),
        )
        .await;
    checks
        .run("include combinations on get", get_include(c.clone()))
        .await;
    checks
        .run("include combinations on query", query_include(c.clone()))
        .await;
    checks
        .run(
            "get by ids, missing ids omitted; peek is get with limit",
            get_by_ids(c.clone()),
        )
        .await;
    checks.finish();
}

async fn paging(c: Client) {
    let id = c.new_collection(&unique_name("paging"), json!({})).await;
    let recs = dataset("p", 300, 4, 7);
    load(&c, &id, &recs).await;
    let full = str_list(&c.get_ok(&id, &json!({"include": []})).await["ids"]);
    assert_eq!(full.len(), 300);
    assert_eq!(
        sorted(full.clone()),
        sorted(recs.iter().map(|r| r.id.clone()).collect())
    );
    // Stable across calls.
    let again = str_list(&c.get_ok(&id, &json!({"include": []})).await["ids"]);
    assert_eq!(again, full, "get order differs between two calls");
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let page = str_list(
            &c.get_ok(&id, &json!({"limit": 7, "offset": offset, "include": []}))
                .await["ids"],
        );
        assert!(page.len() <= 7, "page at {offset} has {}", page.len());
        if page.is_empty() {
            break;
        }
        paged.extend(page);
        offset += 7;
        assert!(offset <= 350, "paging does not end");
    }
    assert_eq!(paged.len(), 300, "pages hold every record once");
    assert_eq!(
        paged, full,
        "pages of 7 concatenate to the full ordered list"
    );
    // A second pass over a few pages gives the same pages.
    for offset in [0, 140, 294] {
        let page = str_list(
            &c.get_ok(&id, &json!({"limit": 7, "offset": offset, "include": []}))
                .await["ids"],
        );
        let end = (offset + 7).min(300);
        assert_eq!(
            page,
            full[offset..end],
            "page at {offset} differs on a second call"
        );
    }
    // Paging a filtered get too.
    let w = json!({"m": {"$in": [1, 2]}});
    let filtered = str_list(&c.get_ok(&id, &json!({"where": w, "include": []})).await["ids"]);
    let mut fpaged = Vec::new();
    for offset in (0..filtered.len() + 7).step_by(7) {
        fpaged.extend(str_list(
            &c.get_ok(
                &id,
                &json!({"where": w, "limit": 7, "offset": offset, "include": []}),
            )
            .await["ids"],
        ));
    }
    assert_eq!(fpaged, filtered, "filtered pages");
    // limit without offset; offset past the end.
    let first = str_list(&c.get_ok(&id, &json!({"limit": 10, "include": []})).await["ids"]);
    assert_eq!(first, full[..10]);
    let past = c.get_ok(&id, &json!({"offset": 1000, "include": []})).await;
    assert_eq!(past["ids"], json!([]));
}

fn include_set(v: &Value) -> BTreeSet<String> {
    str_list(v).into_iter().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn small_collection(c: &Client) -> (String, Vec<Rec>) {
    let id = c.new_collection(&unique_name("include"), json!({})).await;
    // Every record gets metadata and a document here (null entries have
    // their own check in records_writes).
    let recs: Vec<Rec> = dataset("i", 12, 3, 3)
        .into_iter()
        .map(|mut r| {
            r.metadata.get_or_insert_with(|| {
                serde_json::from_value(json!({"none": true})).expect("a map")
            });
            r.document.get_or_insert_with(|| format!("filler {}", r.id));
            r
        })
        .collect();
    let body = json!({
        "ids": recs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "embeddings": recs.iter().map(|r| r.embedding.clone()).collect::<Vec<_>>(),
        "metadatas": recs.iter().map(|r| r.metadata.clone()).collect::<Vec<_>>(),
        "documents": recs.iter().map(|r| r.document.clone()).collect::<Vec<_>>(),
        "uris": recs.iter().map(|r| format!("uri://{}", r.id)).collect::<Vec<_>>(),
    });
    c.add_ok(&id, &body).await;
    (id, recs)
}

async fn get_include(c: Client) {
    let (id, recs) = small_collection(&c).await;
    // Default: documents and metadatas.
    let got = c.get_ok(&id, &json!({})).await;
    assert_eq!(
        include_set(&got["include"]),
        set(&["documents", "metadatas"]),
        "{got}"
    );
    assert!(
        got["documents"].is_array() && got["metadatas"].is_array(),
        "{got}"
    );
    assert_eq!(got["embeddings"], Value::Null, "{got}");
    assert_eq!(got["uris"], Value::Null, "{got}");
    assert!(
        got.get("distances").is_none_or(Value::is_null),
        "get has no distances: {got}"
    );
    assert_eq!(str_list(&got["ids"]).len(), 12);

    for include in [
        vec![],
        vec!["embeddings"],
        vec!["uris", "documents"],
        vec!["metadatas", "embeddings", "documents", "uris"],
    ] {
        let got = c.get_ok(&id, &json!({"include": include})).await;
        assert_eq!(
            include_set(&got["include"]),
            set(&include),
            "include echoed: {got}"
        );
        assert_eq!(str_list(&got["ids"]).len(), 12, "ids always come back");
        for (field, name) in [
            ("embeddings", "embeddings"),
            ("documents", "documents"),
            ("metadatas", "metadatas"),
            ("uris", "uris"),
        ] {
            assert_eq!(
                got[field].is_array(),
                include.contains(&name),
                "include {include:?}: {field} should be {}: {got}",
                if include.contains(&name) {
                    "a list"
                } else {
                    "null"
                }
            );
        }
        if include.len() == 4 {
            for (rid, row) in rows(&got) {
                let rec = recs.iter().find(|r| r.id == rid).expect("known id");
                assert_eq!(f32_list(&row.embedding), rec.embedding, "{rid}");
                assert_eq!(row.document, json!(rec.document), "{rid}");
                assert_eq!(row.uri, json!(format!("uri://{rid}")), "{rid}");
            }
        }
    }
}

async fn query_include(c: Client) {
    let (id, recs) = small_collection(&c).await;
    let q = [recs[0].embedding.clone(), recs[5].embedding.clone()];
    let got = c
        .query_ok(&id, &json!({"query_embeddings": q, "n_results": 3}))
        .await;
    assert_eq!(
        include_set(&got["include"]),
        set(&["documents", "metadatas", "distances"]),
        "default query include: {got}"
    );
    assert_eq!(got["embeddings"], Value::Null, "{got}");
    assert_eq!(got["uris"], Value::Null, "{got}");
    // One list per query embedding; each query's nearest is itself at 0.
    assert_eq!(got["ids"].as_array().map(Vec::len), Some(2), "{got}");
    assert_eq!(got["ids"][0][0], json!(recs[0].id));
    assert_eq!(got["ids"][1][0], json!(recs[5].id));
    assert!(num_list(&got["distances"][0])[0].abs() < 1e-5, "{got}");
    for qi in [0, 1] {
        let slice = query_slice(&got, qi);
        assert_eq!(str_list(&slice["documents"]).len(), 3, "{slice}");
    }

    for include in [
        vec![],
        vec!["distances"],
        vec!["embeddings", "uris"],
        vec!["metadatas", "embeddings", "documents", "uris", "distances"],
    ] {
        let got = c
            .query_ok(
                &id,
                &json!({"query_embeddings": q, "n_results": 4, "include": include}),
            )
            .await;
        assert_eq!(
            include_set(&got["include"]),
            set(&include),
            "include echoed: {got}"
        );
        assert_eq!(got["ids"][0].as_array().map(Vec::len), Some(4), "{got}");
        for field in ["embeddings", "documents", "metadatas", "uris", "distances"] {
            assert_eq!(
                got[field].is_array(),
                include.contains(&field),
                "include {include:?}: {field}: {got}"
            );
        }
        if include.contains(&"embeddings") {
            let slice = query_slice(&got, 1);
            let r = rows(&slice);
            for (rid, row) in r {
                let rec = recs.iter().find(|x| x.id == rid).expect("known id");
                assert_eq!(f32_list(&row.embedding), rec.embedding, "{rid}");
            }
        }
    }
    // A filter matching nothing: one empty list per query.
    let got = c
        .query_ok(
            &id,
            &json!({"query_embeddings": q, "n_results": 3, "where": {"nothing": "here"}}),
        )
        .await;
    assert_eq!(got["ids"], json!([[], []]), "{got}");
    assert_eq!(got["distances"], json!([[], []]), "{got}");
    // n_results larger than the collection returns what there is.
    let got = c
        .query_ok(
            &id,
            &json!({"query_embeddings": [q[0].clone()], "n_results": 100}),
        )
        .await;
    assert_eq!(str_list(&got["ids"][0]).len(), 12, "{got}");
    let d = num_list(&got["distances"][0]);
    assert!(
        d.windows(2).all(|w| w[0] <= w[1]),
        "ascending distances: {d:?}"
    );
}

async fn get_by_ids(c: Client) {
    let (id, recs) = small_collection(&c).await;
    let got = c
        .get_ok(
            &id,
            &json!({"ids": [recs[3].id, "missing", recs[9].id], "include": ["documents"]}),
        )
        .await;
    let r = rows(&got);
    assert_eq!(
        r.keys().cloned().collect::<Vec<_>>(),
        sorted(vec![recs[3].id.clone(), recs[9].id.clone()]),
        "{got}"
    );
    assert_eq!(r[&recs[3].id].document, json!(recs[3].document));
    // peek(5) = get with limit 5: the first five of the stable order.
    let full = str_list(&c.get_ok(&id, &json!({"include": []})).await["ids"]);
    let peek = c
        .get_ok(
            &id,
            &json!({"limit": 5, "include": ["embeddings", "documents", "metadatas"]}),
        )
        .await;
    assert_eq!(str_list(&peek["ids"]), full[..5]);
    assert_eq!(peek["embeddings"].as_array().map(Vec::len), Some(5));
}

/// Exact search per space: a small collection (every shard small enough to
/// be searched exactly, or HNSW at recall 1 on 60 points) must give the
/// brute-force top-k with the brute-force distances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_matches_brute_force_in_every_space() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();
    for (space, extra) in [
        (Space::L2, json!({})),
        (Space::Cosine, json!({"metadata": {"hnsw:space": "cosine"}})),
        (
            Space::Ip,
            json!({"configuration": {"hnsw": {"space": "ip"}}}),
        ),
    ] {
        let c = c.clone();
        checks
            .run(
                &format!("exact top-k and distances, {}", space.name()),
                async move {
                    let id = c.new_collection(&unique_name(space.name()), extra).await;
                    let recs = dataset(space.name(), 60, 6, 11);
                    load(&c, &id, &recs).await;
                    let queries: Vec<Vec<f32>> = {
                        use rand::SeedableRng;
                        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
                        (0..5)
                            .map(|_| tests::data::random_embedding(&mut rng, 6))
                            .collect()
                    };
                    let got = c
                        .query_ok(
                            &id,
                            &json!({"query_embeddings": queries, "n_results": 10,
                                "include": ["distances"]}),
                        )
                        .await;
                    for (qi, query) in queries.iter().enumerate() {
                        let slice = query_slice(&got, qi);
                        let exp = brute_force(&recs, space, query, 10, None, None);
                        assert_top_k(
                            &format!("{} query {qi}", space.name()),
                            &recs,
                            space,
                            query,
                            &str_list(&slice["ids"]),
                            &num_list(&slice["distances"]),
                            &exp,
                        );
                    }
                },
            )
            .await;
    }
    checks.finish();
}
