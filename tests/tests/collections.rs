//! Collections (http-api.md "Collections"): the model, get_or_create,
//! uniqueness, names, listing, count, modify, delete.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::{str_list, Checks, Client, Cluster, ClusterOptions, DEFAULT_DB};

fn coll(path: &str) -> String {
    format!("{DEFAULT_DB}/collections{path}")
}

#[track_caller]
fn assert_model(model: &Value, name: &str, metadata: &Value) {
    let id = model["id"].as_str().unwrap_or_default();
    // A UUID in its hyphenated form.
    assert!(
        id.len() == 36 && id.matches('-').count() == 4,
        "collection id is not a uuid: {model}"
    );
    assert_eq!(model["name"], json!(name), "{model}");
    assert_eq!(&model["metadata"], metadata, "{model}");
    assert_eq!(model["tenant"], json!("default_tenant"), "{model}");
    assert_eq!(model["database"], json!("default_database"), "{model}");
    assert_eq!(model["log_position"], json!(0), "{model}");
    assert_eq!(model["version"], json!(0), "{model}");
    assert!(
        model["configuration_json"]["hnsw"]["space"].is_string(),
        "configuration_json.hnsw.space: {model}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_names() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();

    checks
        .run(
            "create returns the collection model; get by name and by id agree",
            {
                let c = c.clone();
                async move {
                    let meta = json!({"owner": "t", "n": 3, "x": 1.5, "ok": true});
                    let model = c
                        .create_collection("model-check", json!({"metadata": meta}))
                        .await;
                    assert_model(&model, "model-check", &meta);
                    assert_eq!(
                        model["dimension"],
                        Value::Null,
                        "no dimension before a write"
                    );
                    assert_eq!(model["configuration_json"]["hnsw"]["space"], json!("l2"));
                    let id = model["id"].as_str().expect("id").to_string();
                    let by_name = c
                        .get(&coll("/model-check"))
                        .await
                        .expect_status(200, "get by name");
                    assert_model(&by_name, "model-check", &meta);
                    assert_eq!(by_name["id"], json!(id));
                    let by_id = c
                        .get(&coll(&format!("/by-id/{id}")))
                        .await
                        .expect_status(200, "get by id");
                    assert_model(&by_id, "model-check", &meta);
                    // The first write fixes the dimension, and the model says so.
                    c.add_ok(&id, &json!({"ids": ["a"], "embeddings": [[1.0, 2.0, 3.0]]}))
                        .await;
                    let after = c.get(&coll("/model-check")).await.expect_status(200, "get");
                    assert_eq!(after["dimension"], json!(3), "{after}");
                }
            },
        )
        .await;

    checks
        .run("no metadata is null", {
            let c = c.clone();
            async move {
                let model = c.create_collection("no-meta", json!({})).await;
                assert_model(&model, "no-meta", &Value::Null);
            }
        })
        .await;

    checks
        .run(
            "duplicate name 409 UniqueConstraintError; get_or_create returns it unchanged",
            {
                let c = c.clone();
                async move {
                    let meta = json!({"v": 1});
                    let first = c.create_collection("dup", json!({"metadata": meta})).await;
                    c.post(&coll(""), &json!({"name": "dup"}))
                        .await
                        .expect_error(409, "UniqueConstraintError", "duplicate collection");
                    c.post(&coll(""), &json!({"name": "dup", "get_or_create": false}))
                        .await
                        .expect_error(409, "UniqueConstraintError", "get_or_create false");
                    let again = c
                        .create_collection(
                            "dup",
                            json!({"get_or_create": true, "metadata": {"v": 2, "other": "x"}}),
                        )
                        .await;
                    assert_eq!(
                        again["id"], first["id"],
                        "get_or_create returns the same id"
                    );
                    assert_eq!(again["metadata"], meta, "get_or_create leaves metadata");
                    let stored = c.get(&coll("/dup")).await.expect_status(200, "get");
                    assert_eq!(stored["metadata"], meta);
                    // get_or_create of a new name creates it.
                    let fresh = c
                        .create_collection("dup-new", json!({"get_or_create": true}))
                        .await;
                    assert_model(&fresh, "dup-new", &Value::Null);
                }
            },
        )
        .await;

    checks
        .run(
            "missing collection 404 NotFoundError by name, id, count, delete",
            {
                let c = c.clone();
                async move {
                    c.get(&coll("/no-such-collection")).await.expect_error(
                        404,
                        "NotFoundError",
                        "get missing by name",
                    );
                    let uuid = "00000000-0000-4000-8000-000000000000";
                    c.get(&coll(&format!("/by-id/{uuid}"))).await.expect_error(
                        404,
                        "NotFoundError",
                        "get missing by id",
                    );
                    c.get(&coll(&format!("/{uuid}/count"))).await.expect_error(
                        404,
                        "NotFoundError",
                        "count of missing",
                    );
                    c.delete(&coll("/no-such-collection")).await.expect_error(
                        404,
                        "NotFoundError",
                        "delete missing",
                    );
                    c.put(&coll(&format!("/{uuid}")), &json!({"new_name": "zzz"}))
                        .await
                        .expect_error(404, "NotFoundError", "modify missing");
                }
            },
        )
        .await;

    checks
        .run("invalid names are 400 InvalidArgumentError", {
            let c = c.clone();
            async move {
                let long = "a".repeat(513);
                for name in [
                    "ab", "-abc", "abc-", "_abc", "abc.", "a b c", "abc/d", "ab$c", &long,
                ] {
                    c.post(&coll(""), &json!({"name": name}))
                        .await
                        .expect_error(400, "InvalidArgumentError", &format!("name {name:?}"));
                }
                let max = format!("a{}z", "b".repeat(510));
                for name in ["abc", "a.b-c_d", "A1.2", max.as_str()] {
                    c.post(&coll(""), &json!({"name": name}))
                        .await
                        .expect_status(200, &format!("valid name {name:?}"));
                }
            }
        })
        .await;

    checks
        .run("space from hnsw:space metadata and from configuration", {
            let c = c.clone();
            async move {
                let m = c
                    .create_collection("space-meta", json!({"metadata": {"hnsw:space": "cosine"}}))
                    .await;
                assert_eq!(
                    m["configuration_json"]["hnsw"]["space"],
                    json!("cosine"),
                    "{m}"
                );
                let m = c
                    .create_collection(
                        "space-config",
                        json!({"configuration": {"hnsw": {"space": "ip"}}}),
                    )
                    .await;
                assert_eq!(m["configuration_json"]["hnsw"]["space"], json!("ip"), "{m}");
                let got = c
                    .get(&coll("/space-config"))
                    .await
                    .expect_status(200, "get");
                assert_eq!(
                    got["configuration_json"]["hnsw"]["space"],
                    json!("ip"),
                    "{got}"
                );
            }
        })
        .await;

    checks
        .run(
            "hnsw parameters: Chroma's defaults, legacy metadata keys, configuration, modify",
            {
                let c = c.clone();
                async move {
                    let m = c.create_collection("hnsw-default", json!({})).await;
                    let hnsw = &m["configuration_json"]["hnsw"];
                    // Chroma 1.5.9's defaults.
                    assert_eq!(hnsw["ef_construction"], json!(100), "{m}");
                    assert_eq!(hnsw["ef_search"], json!(100), "{m}");
                    assert_eq!(hnsw["max_neighbors"], json!(16), "{m}");
                    let m = c
                        .create_collection(
                            "hnsw-legacy",
                            json!({"metadata": {"hnsw:space": "ip", "hnsw:construction_ef": 150,
                                            "hnsw:search_ef": 77, "hnsw:M": 24}}),
                        )
                        .await;
                    let hnsw = &m["configuration_json"]["hnsw"];
                    assert_eq!(hnsw["space"], json!("ip"), "{m}");
                    assert_eq!(hnsw["ef_construction"], json!(150), "{m}");
                    assert_eq!(hnsw["ef_search"], json!(77), "{m}");
                    assert_eq!(hnsw["max_neighbors"], json!(24), "{m}");
                    let m = c
                        .create_collection(
                            "hnsw-config",
                            json!({"configuration": {"hnsw": {"space": "cosine", "ef_search": 55,
                                                          "ef_construction": 120,
                                                          "max_neighbors": 20}}}),
                        )
                        .await;
                    let hnsw = &m["configuration_json"]["hnsw"];
                    assert_eq!(
                        (
                            &hnsw["space"],
                            &hnsw["ef_search"],
                            &hnsw["ef_construction"],
                            &hnsw["max_neighbors"]
                        ),
                        (&json!("cosine"), &json!(55), &json!(120), &json!(20)),
                        "{m}"
                    );
                    // ef_search may change after creation (Chroma 1.5.9's
                    // UpdateHnswConfiguration).
                    let id = m["id"].as_str().expect("id").to_string();
                    c.put(
                        &coll(&format!("/{id}")),
                        &json!({"new_configuration": {"hnsw": {"ef_search": 200}}}),
                    )
                    .await
                    .expect_status(200, "modify ef_search");
                    let got = c.get(&coll("/hnsw-config")).await.expect_status(200, "get");
                    assert_eq!(
                        got["configuration_json"]["hnsw"]["ef_search"],
                        json!(200),
                        "{got}"
                    );
                    assert_eq!(
                        got["configuration_json"]["hnsw"]["space"],
                        json!("cosine"),
                        "{got}"
                    );
                }
            },
        )
        .await;

    checks
        .run("invalid collection metadata is 400", {
            let c = c.clone();
            async move {
                for meta in [json!({"": 1}), json!({"#k": 1}), json!({"chroma:k": 1})] {
                    c.post(&coll(""), &json!({"name": "bad-meta", "metadata": meta}))
                        .await
                        .expect_error(400, "InvalidArgumentError", &format!("metadata {meta}"));
                }
            }
        })
        .await;
    checks.finish();
}

/// Lists collection names in database `db` of the default tenant.
async fn list_names(c: &Client, db: &str, query: &str) -> Vec<String> {
    let list = c
        .get(&format!(
            "/api/v2/tenants/default_tenant/databases/{db}/collections{query}"
        ))
        .await
        .expect_status(200, &format!("list collections {query}"));
    list.as_array()
        .unwrap_or_else(|| panic!("collection list is not a list: {list}"))
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits (briefly) until the shard leaders report `expected` records in
/// total: admin status is read from each leader, which applies the write
/// before the router is answered, but the status read races the next tick.
async fn wait_shard_total(cluster: &Cluster, expected: u64) -> BTreeMap<u64, u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = cluster.shard_records().await;
        if records.values().sum::<u64>() == expected || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_count_modify_delete() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();

    checks
        .run("list with limit/offset and collections_count", {
            let c = c.clone();
            async move {
                c.post(
                    "/api/v2/tenants/default_tenant/databases",
                    &json!({"name": "listing"}),
                )
                .await
                .expect_status(200, "create database");
                let base = "/api/v2/tenants/default_tenant/databases/listing";
                for i in 0..5 {
                    c.post(
                        &format!("{base}/collections"),
                        &json!({"name": format!("coll-{i}")}),
                    )
                    .await
                    .expect_status(200, "create");
                }
                let all = list_names(&c, "listing", "").await;
                let mut sorted = all.clone();
                sorted.sort();
                assert_eq!(sorted, ["coll-0", "coll-1", "coll-2", "coll-3", "coll-4"]);
                let mut paged = Vec::new();
                for offset in [0, 2, 4] {
                    let page =
                        list_names(&c, "listing", &format!("?limit=2&offset={offset}")).await;
                    assert!(page.len() <= 2, "{page:?}");
                    paged.extend(page);
                }
                assert_eq!(paged, all, "pages of 2 vs the full list");
                assert_eq!(
                    list_names(&c, "listing", "?offset=5").await,
                    Vec::<String>::new()
                );
                assert_eq!(list_names(&c, "listing", "?limit=1").await.len(), 1);
                let count = c
                    .get(&format!("{base}/collections_count"))
                    .await
                    .expect_status(200, "collections_count");
                assert_eq!(count, json!(5));
            }
        })
        .await;

    checks
        .run("modify renames and replaces metadata", {
            let c = c.clone();
            async move {
                let id = c
                    .new_collection("before-rename", json!({"metadata": {"a": 1, "b": "x"}}))
                    .await;
                c.add_ok(&id, &json!({"ids": ["r"], "embeddings": [[1.0]]}))
                    .await;
                c.put(
                    &coll(&format!("/{id}")),
                    &json!({"new_name": "after-rename", "new_metadata": {"c": 2}}),
                )
                .await
                .expect_status(200, "modify");
                c.get(&coll("/before-rename")).await.expect_error(
                    404,
                    "NotFoundError",
                    "old name after rename",
                );
                let m = c
                    .get(&coll("/after-rename"))
                    .await
                    .expect_status(200, "new name");
                assert_eq!(m["id"], json!(id));
                // Chroma 1.5.9 replaces the collection's metadata on modify.
                assert_eq!(m["metadata"], json!({"c": 2}), "{m}");
                assert_eq!(c.count(&id).await, 1, "records stay with the collection");
                // Metadata only.
                c.put(
                    &coll(&format!("/{id}")),
                    &json!({"new_metadata": {"d": true}}),
                )
                .await
                .expect_status(200, "modify metadata");
                let m = c
                    .get(&coll("/after-rename"))
                    .await
                    .expect_status(200, "get");
                assert_eq!(m["metadata"], json!({"d": true}), "{m}");
                // Renaming onto an existing name is refused.
                c.new_collection("taken-name", json!({})).await;
                c.put(&coll(&format!("/{id}")), &json!({"new_name": "taken-name"}))
                    .await
                    .expect_error(409, "UniqueConstraintError", "rename onto existing");
                c.put(&coll(&format!("/{id}")), &json!({"new_name": "x"}))
                    .await
                    .expect_error(400, "InvalidArgumentError", "rename to an invalid name");
            }
        })
        .await;

    // Sequential on purpose: the shard record counts must not move under it.
    checks
        .run(
            "delete removes the collection and its records on every shard",
            {
                let c = c.clone();
                async move {
                    let id = c.new_collection("to-delete", json!({})).await;
                    let ids: Vec<String> = (0..60).map(|i| format!("d{i}")).collect();
                    let embeddings: Vec<Vec<f32>> = (0..60).map(|i| vec![i as f32, 0.5]).collect();
                    c.add_ok(&id, &json!({"ids": ids, "embeddings": embeddings}))
                        .await;
                    assert_eq!(c.count(&id).await, 60);
                    c.delete(&coll("/to-delete"))
                        .await
                        .expect_status(200, "delete collection");
                    c.get(&coll("/to-delete")).await.expect_error(
                        404,
                        "NotFoundError",
                        "get after delete",
                    );
                    c.get(&coll(&format!("/by-id/{id}"))).await.expect_error(
                        404,
                        "NotFoundError",
                        "by-id after delete",
                    );
                    c.records(&id, "get", &json!({})).await.expect_error(
                        404,
                        "NotFoundError",
                        "get records after delete",
                    );
                    c.records(
                        &id,
                        "add",
                        &json!({"ids": ["z"], "embeddings": [[1.0, 1.0]]}),
                    )
                    .await
                    .expect_error(404, "NotFoundError", "add after delete");
                    let again = c.new_collection("to-delete", json!({})).await;
                    assert_ne!(again, id, "a recreated collection is a new one");
                    assert_eq!(c.count(&again).await, 0);
                    let got = c.get_ok(&again, &json!({"ids": ["d1", "d2"]})).await;
                    assert_eq!(str_list(&got["ids"]), Vec::<String>::new());
                }
            },
        )
        .await;
    checks.finish();

    // The shards themselves dropped the records: with the collections of this
    // test quiet, the per-shard totals (admin status, every replica set's
    // leader) hold only the one record of "after-rename".
    let records = wait_shard_total(&cluster, 1).await;
    assert_eq!(
        records.values().sum::<u64>(),
        1,
        "records held by the shards after the delete: {records:?}"
    );
}
