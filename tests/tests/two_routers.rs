//! Two routers on one cluster (architecture.md: the catalogue is its own
//! Raft group, so what one router does is visible through another at once).

use serde_json::json;
use tests::{str_list, Checks, Cluster, ClusterOptions, RouterOptions, DEFAULT_DB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_share_the_catalogue() {
    let cluster = Cluster::start(ClusterOptions {
        routers: vec![RouterOptions::default(), RouterOptions::default()],
        ..ClusterOptions::default()
    })
    .await;
    let a = cluster.client(0);
    let b = cluster.client(1);
    let mut checks = Checks::new();

    {
        let (a, b) = (a.clone(), b.clone());
        checks
            .run("created via A, written via B, read via A", async move {
                let id = a.new_collection("shared", json!({})).await;
                let by_b = b
                    .get(&format!("{DEFAULT_DB}/collections/shared"))
                    .await
                    .expect_status(200, "get via B right after create via A");
                assert_eq!(by_b["id"], json!(id));
                b.add_ok(
                    &id,
                    &json!({"ids": ["x", "y"], "embeddings": [[1.0, 2.0], [3.0, 4.0]],
                            "documents": ["dx", "dy"]}),
                )
                .await;
                let got = a.get_ok(&id, &json!({"ids": ["x", "y"]})).await;
                let mut ids = str_list(&got["ids"]);
                ids.sort();
                assert_eq!(ids, ["x", "y"], "B's write visible via A at once");
                assert_eq!(a.count(&id).await, 2);
                // get_or_create via B returns A's collection; plain create is 409.
                let again = b
                    .create_collection("shared", json!({"get_or_create": true}))
                    .await;
                assert_eq!(again["id"], json!(id));
                b.post(
                    &format!("{DEFAULT_DB}/collections"),
                    &json!({"name": "shared"}),
                )
                .await
                .expect_error(
                    409,
                    "UniqueConstraintError",
                    "create via B of A's name",
                );
            })
            .await;
    }
    {
        let (a, b) = (a.clone(), b.clone());
        checks
            .run("deleted via A is 404 via B", async move {
                let id = a.new_collection("short-lived", json!({})).await;
                b.add_ok(&id, &json!({"ids": ["r"], "embeddings": [[1.0]]}))
                    .await;
                a.delete(&format!("{DEFAULT_DB}/collections/short-lived"))
                    .await
                    .expect_status(200, "delete via A");
                b.get(&format!("{DEFAULT_DB}/collections/short-lived"))
                    .await
                    .expect_error(404, "NotFoundError", "get by name via B");
                // B must not keep serving the old id from a cache.
                b.records(&id, "add", &json!({"ids": ["s"], "embeddings": [[1.0]]}))
                    .await
                    .expect_error(404, "NotFoundError", "add via B to a deleted collection");
                b.records(&id, "get", &json!({})).await.expect_error(
                    404,
                    "NotFoundError",
                    "get via B from a deleted collection",
                );
                // Recreated via B: a new, empty collection, seen via A.
                let new_id = b.new_collection("short-lived", json!({})).await;
                assert_ne!(new_id, id);
                assert_eq!(a.count(&new_id).await, 0);
            })
            .await;
    }
    {
        let (a, b) = (a.clone(), b.clone());
        checks
            .run("dimension fixed via A is enforced via B", async move {
                let id = a.new_collection("dims", json!({})).await;
                // B knows the collection before its dimension is fixed (a
                // cached model with dimension null must not let B accept
                // another dimension later).
                assert_eq!(b.count(&id).await, 0);
                a.add_ok(&id, &json!({"ids": ["d"], "embeddings": [[1.0, 2.0, 3.0]]}))
                    .await;
                // Ids on every shard, including the ones that hold no record
                // of this collection yet.
                let ids: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
                let msg = b
                    .records(
                        &id,
                        "add",
                        &json!({"ids": ids, "embeddings": vec![vec![1.0f32, 2.0]; 12]}),
                    )
                    .await
                    .expect_error(400, "InvalidArgumentError", "short embedding via B");
                assert_eq!(
                    msg,
                    "Collection expecting embedding with dimension of 3, got 2"
                );
                let msg = b
                    .records(
                        &id,
                        "query",
                        &json!({"query_embeddings": [[1.0, 2.0]], "n_results": 1}),
                    )
                    .await
                    .expect_error(400, "InvalidArgumentError", "short query via B");
                assert_eq!(
                    msg,
                    "Collection expecting embedding with dimension of 3, got 2"
                );
                assert_eq!(b.count(&id).await, 1);
            })
            .await;
    }
    {
        let (a, b) = (a.clone(), b.clone());
        checks
            .run("rename via A seen via B", async move {
                let id = a.new_collection("old-name", json!({})).await;
                a.put(
                    &format!("{DEFAULT_DB}/collections/{id}"),
                    &json!({"new_name": "new-name", "new_metadata": {"k": 1}}),
                )
                .await
                .expect_status(200, "modify via A");
                let m = b
                    .get(&format!("{DEFAULT_DB}/collections/new-name"))
                    .await
                    .expect_status(200, "new name via B");
                assert_eq!(m["metadata"], json!({"k": 1}));
                b.get(&format!("{DEFAULT_DB}/collections/old-name"))
                    .await
                    .expect_error(404, "NotFoundError", "old name via B");
            })
            .await;
    }
    {
        let (a, b) = (a.clone(), b.clone());
        checks
            .run("concurrent writers on both routers: every write read back at once via the other", async move {
                let id = a.new_collection("concurrent", json!({})).await;
                let tasks: Vec<_> = (0..8)
                    .map(|t| {
                        let (writer, reader) = if t % 2 == 0 {
                            (a.clone(), b.clone())
                        } else {
                            (b.clone(), a.clone())
                        };
                        let id = id.clone();
                        tokio::spawn(async move {
                            for i in 0..10 {
                                let rid = format!("t{t}-{i}");
                                writer
                                    .records(
                                        &id,
                                        "upsert",
                                        &json!({"ids": [rid], "embeddings": [[t as f32, i as f32]]}),
                                    )
                                    .await
                                    .expect_status(200, "concurrent upsert");
                                // Linearizable: acknowledged means visible
                                // through any router.
                                assert_eq!(
                                    reader.present_ids(&id, std::slice::from_ref(&rid)).await,
                                    vec![rid.clone()],
                                    "{rid} not visible through the other router right after its write"
                                );
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    if let Err(e) = task.await {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
                assert_eq!(a.count(&id).await, 80);
                assert_eq!(b.count(&id).await, 80);
            })
            .await;
    }
    checks.finish();
}
