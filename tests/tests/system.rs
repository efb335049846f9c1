//! System endpoints, tenants, databases and reset (http-api.md "System",
//! "Tenants, databases").

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tests::{str_list, unique_name, Checks, Cluster, ClusterOptions, RouterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_endpoints() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();

    checks
        .run("heartbeat is nanoseconds since the epoch", {
            let c = c.clone();
            async move {
                let body = c
                    .get("/api/v2/heartbeat")
                    .await
                    .expect_status(200, "heartbeat");
                let ns = body["nanosecond heartbeat"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("heartbeat body {body}"));
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock after epoch")
                    .as_nanos() as u64;
                // Same machine: within a minute of our clock.
                assert!(
                    ns.abs_diff(now) < 60_000_000_000,
                    "heartbeat {ns} vs now {now}"
                );
            }
        })
        .await;
    checks
        .run("version is a non-empty string", {
            let c = c.clone();
            async move {
                let body = c.get("/api/v2/version").await.expect_status(200, "version");
                assert!(
                    body.as_str().is_some_and(|s| !s.is_empty()),
                    "version body {body}"
                );
            }
        })
        .await;
    checks
        .run(
            "pre-flight-checks reports the configured batch size and base64",
            {
                let c = c.clone();
                async move {
                    let body = c
                        .get("/api/v2/pre-flight-checks")
                        .await
                        .expect_status(200, "pre-flight");
                    // The test TOML leaves router.max_batch_size at its default.
                    assert_eq!(body["max_batch_size"], json!(5461), "{body}");
                    assert_eq!(body["supports_base64_encoding"], json!(true), "{body}");
                }
            },
        )
        .await;
    checks
        .run("auth/identity names the default tenant and database", {
            let c = c.clone();
            async move {
                let body = c
                    .get("/api/v2/auth/identity")
                    .await
                    .expect_status(200, "identity");
                assert!(body["user_id"].is_string(), "{body}");
                assert_eq!(body["tenant"], json!("default_tenant"), "{body}");
                assert_eq!(body["databases"], json!(["default_database"]), "{body}");
            }
        })
        .await;
    checks
        .run("healthcheck answers 200", {
            let c = c.clone();
            async move {
                c.get("/api/v2/healthcheck")
                    .await
                    .expect_status(200, "healthcheck");
            }
        })
        .await;
    checks
        .run("reset is 403 ChromaError when disabled and wipes nothing", {
            let c = c.clone();
            async move {
                let name = unique_name("keep");
                let id = c.new_collection(&name, json!({})).await;
                c.add_ok(&id, &json!({"ids": ["a"], "embeddings": [[1.0, 2.0]]}))
                    .await;
                let resp = c.post("/api/v2/reset", &json!({})).await;
                assert_eq!(
                    (resp.status, &resp.body),
                    (
                        403,
                        &json!({"error": "ChromaError", "message": "Reset is disabled by config"})
                    ),
                    "reset when disabled"
                );
                assert_eq!(c.count(&id).await, 1, "records survive a refused reset");
            }
        })
        .await;
    checks.finish();
}

fn db_names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("database list is not a list: {list}"))
        .iter()
        .map(|d| {
            d["name"]
                .as_str()
                .unwrap_or_else(|| panic!("database without name: {d}"))
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_databases() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let c = cluster.client(0);
    let mut checks = Checks::new();

    checks
        .run("tenant create, get, duplicate 409, missing 404", {
            let c = c.clone();
            async move {
                c.post("/api/v2/tenants", &json!({"name": "acme"}))
                    .await
                    .expect_status(200, "create tenant");
                let t = c
                    .get("/api/v2/tenants/acme")
                    .await
                    .expect_status(200, "get tenant");
                assert_eq!(t["name"], json!("acme"), "{t}");
                c.post("/api/v2/tenants", &json!({"name": "acme"}))
                    .await
                    .expect_error(409, "UniqueConstraintError", "duplicate tenant");
                // Chroma 1.5.9 requires tenant names of 3 characters or more.
                c.post("/api/v2/tenants", &json!({"name": "ab"}))
                    .await
                    .expect_error(400, "InvalidArgumentError", "tenant name too short");
                c.get("/api/v2/tenants/nobody").await.expect_error(
                    404,
                    "NotFoundError",
                    "missing tenant",
                );
                c.get("/api/v2/tenants/default_tenant")
                    .await
                    .expect_status(200, "default tenant exists at bootstrap");
            }
        })
        .await;

    checks
        .run(
            "databases: create, get, list with limit/offset, delete, errors",
            {
                let c = c.clone();
                async move {
                    c.post("/api/v2/tenants", &json!({"name": "dbs"}))
                        .await
                        .expect_status(200, "create tenant");
                    let base = "/api/v2/tenants/dbs/databases";
                    for name in ["db0", "db1", "db2", "db3", "db4"] {
                        c.post(base, &json!({"name": name}))
                            .await
                            .expect_status(200, &format!("create database {name}"));
                    }
                    let d = c
                        .get(&format!("{base}/db2"))
                        .await
                        .expect_status(200, "get database");
                    assert_eq!(d["name"], json!("db2"), "{d}");
                    assert_eq!(d["tenant"], json!("dbs"), "{d}");
                    assert!(d["id"].is_string(), "database model has an id: {d}");

                    c.post(base, &json!({"name": "db1"})).await.expect_error(
                        409,
                        "UniqueConstraintError",
                        "duplicate database",
                    );
                    // Chroma 1.5.9 requires database names of 3 characters or more.
                    c.post(base, &json!({"name": "db"})).await.expect_error(
                        400,
                        "InvalidArgumentError",
                        "database name too short",
                    );
                    c.get(&format!("{base}/nope")).await.expect_error(
                        404,
                        "NotFoundError",
                        "missing database",
                    );
                    c.post(
                        "/api/v2/tenants/no-such-tenant/databases",
                        &json!({"name": "xyz"}),
                    )
                    .await
                    .expect_error(
                        404,
                        "NotFoundError",
                        "database in a missing tenant",
                    );

                    let all = db_names(&c.get(base).await.expect_status(200, "list databases"));
                    let mut sorted = all.clone();
                    sorted.sort();
                    assert_eq!(sorted, ["db0", "db1", "db2", "db3", "db4"], "list: {all:?}");
                    // Pages of 2 concatenate to the full list, in the same order.
                    let mut paged = Vec::new();
                    for offset in [0, 2, 4, 6] {
                        let page = db_names(
                            &c.get(&format!("{base}?limit=2&offset={offset}"))
                                .await
                                .expect_status(200, "list page"),
                        );
                        assert!(page.len() <= 2, "page at {offset}: {page:?}");
                        paged.extend(page);
                    }
                    assert_eq!(paged, all, "pages of 2 vs the full list");

                    c.delete(&format!("{base}/db3"))
                        .await
                        .expect_status(200, "delete database");
                    c.get(&format!("{base}/db3")).await.expect_error(
                        404,
                        "NotFoundError",
                        "deleted database",
                    );
                    c.delete(&format!("{base}/db3")).await.expect_error(
                        404,
                        "NotFoundError",
                        "delete of a missing database",
                    );
                    let after = db_names(&c.get(base).await.expect_status(200, "list"));
                    assert!(!after.contains(&"db3".to_string()), "{after:?}");
                    assert_eq!(after.len(), 4, "{after:?}");
                }
            },
        )
        .await;

    checks
        .run("collections live in their own tenant/database", {
            let c = c.clone();
            async move {
                c.post("/api/v2/tenants", &json!({"name": "iso"}))
                    .await
                    .expect_status(200, "create tenant");
                c.post("/api/v2/tenants/iso/databases", &json!({"name": "isodb"}))
                    .await
                    .expect_status(200, "create database");
                let base = "/api/v2/tenants/iso/databases/isodb";
                let model = c
                    .post(
                        &format!("{base}/collections"),
                        &json!({"name": "shared-name"}),
                    )
                    .await
                    .expect_status(200, "create collection in iso/db");
                assert_eq!(model["tenant"], json!("iso"), "{model}");
                assert_eq!(model["database"], json!("isodb"), "{model}");
                let id = model["id"].as_str().expect("id").to_string();
                // The same name in the default database is a different collection.
                let other = c.new_collection("shared-name", json!({})).await;
                assert_ne!(other, id);
                c.post(
                    &format!("{base}/collections/{id}/add"),
                    &json!({"ids": ["x"], "embeddings": [[0.5]]}),
                )
                .await
                .expect_status(201, "add in iso/db");
                let got = c
                    .post(&format!("{base}/collections/{id}/get"), &json!({}))
                    .await
                    .expect_status(200, "get in iso/db");
                assert_eq!(str_list(&got["ids"]), ["x"]);
                assert_eq!(c.count(&other).await, 0, "default-db collection is empty");
                let count = c
                    .get(&format!("{base}/collections_count"))
                    .await
                    .expect_status(200, "collections_count");
                assert_eq!(count, json!(1));
                // Deleting a database that holds collections removes them too.
                c.delete("/api/v2/tenants/iso/databases/isodb")
                    .await
                    .expect_status(200, "delete database with a collection");
                c.get(&format!("{base}/collections/shared-name"))
                    .await
                    .expect_error(404, "NotFoundError", "collection of a deleted database");
            }
        })
        .await;
    checks.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_when_enabled_wipes_everything_and_recreates_defaults() {
    let cluster = Cluster::start(ClusterOptions {
        routers: vec![RouterOptions::reset_allowed(), RouterOptions::default()],
        ..ClusterOptions::default()
    })
    .await;
    let c = cluster.client(0);
    let other_router = cluster.client(1);
    let mut checks = Checks::new();
    checks
        .run("reset with ROUTER_ALLOW_RESET=true", {
            let c = c.clone();
            async move {
                c.post("/api/v2/tenants", &json!({"name": "gone"}))
                    .await
                    .expect_status(200, "create tenant");
                c.post("/api/v2/tenants/gone/databases", &json!({"name": "gonedb"}))
                    .await
                    .expect_status(200, "create database");
                let id = c.new_collection("wiped", json!({})).await;
                let ids: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
                let embeddings: Vec<Vec<f32>> = (0..30).map(|i| vec![i as f32, 1.0]).collect();
                c.add_ok(&id, &json!({"ids": ids, "embeddings": embeddings}))
                    .await;

                let resp = c.post("/api/v2/reset", &json!({})).await;
                assert_eq!(resp.expect_status(200, "reset"), json!(true));

                c.get("/api/v2/tenants/gone").await.expect_error(
                    404,
                    "NotFoundError",
                    "tenant after reset",
                );
                c.get("/api/v2/tenants/default_tenant")
                    .await
                    .expect_status(200, "default tenant after reset");
                c.get("/api/v2/tenants/default_tenant/databases/default_database")
                    .await
                    .expect_status(200, "default database after reset");
                let list = c
                    .get(&format!("{}/collections", tests::DEFAULT_DB))
                    .await
                    .expect_status(200, "list after reset");
                assert_eq!(list, json!([]), "collections after reset");
                c.get(&format!("{}/collections/wiped", tests::DEFAULT_DB))
                    .await
                    .expect_error(404, "NotFoundError", "collection after reset");
                c.get(&format!("{}/collections/{id}/count", tests::DEFAULT_DB))
                    .await
                    .expect_error(404, "NotFoundError", "count by old id after reset");
                // The records are gone from every shard: a new collection of the
                // same name is empty, and the shards hold nothing.
                let new_id = c.new_collection("wiped", json!({})).await;
                assert_eq!(c.count(&new_id).await, 0);
                let got = c.get_ok(&new_id, &json!({"ids": ["r1", "r2"]})).await;
                assert_eq!(got["ids"], json!([]));
            }
        })
        .await;
    let records = cluster.shard_records().await;
    checks
        .run(
            "reset removed the records from every shard replica",
            async move {
                assert!(
                    records.values().all(|n| *n == 0),
                    "records per shard after reset: {records:?}"
                );
            },
        )
        .await;
    checks
        .run("the other router sees the reset at once", async move {
            other_router
                .get(&format!("{}/collections/wiped", tests::DEFAULT_DB))
                .await
                .expect_status(200, "new collection via the other router");
            other_router.get("/api/v2/tenants/gone").await.expect_error(
                404,
                "NotFoundError",
                "tenant via the other router",
            );
            // The other router keeps its own (disabled) reset setting.
            other_router
                .post("/api/v2/reset", &json!({}))
                .await
                .expect_error(403, "ChromaError", "reset via a router without it");
        })
        .await;
    checks.finish();
}
