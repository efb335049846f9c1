//! Backup and restore (`backup` binary, `router::backup`; issue 10) on real processes: a
//! backup taken while a client writes, restored into a fresh cluster with another shard
//! count, gives identical collections and records (the manifest's digests, every write
//! acknowledged before the backup started, record for record equal content); a cluster with
//! collections is refused without `--force`; a damaged backup is refused and changes
//! nothing; hostile requests to the backup endpoint get clear errors.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::backup::{BackupRequest, BACKUP_MAGIC};
use common::wire::{self, InternalError};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tests::cluster::binary;
use tests::data::{add_bodies, dataset};
use tests::{Client, Cluster, ClusterOptions, DEFAULT_DB};

/// Runs `backup <args> --config <cluster>`; returns (success, stdout + stderr).
async fn run_backup(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(binary("backup"));
    cmd.args(args)
        .arg("--config")
        .arg(&cluster.config_path)
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run the backup binary"))
        .await
        .expect("join");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every record of a collection with every field, in id order.
async fn all_records(client: &Client, db: &str, id: &str) -> Value {
    client
        .post(
            &format!("{db}/collections/{id}/get"),
            &json!({"include": ["embeddings", "metadatas", "documents", "uris"]}),
        )
        .await
        .expect_status(200, "get everything")
}

/// The parts of a collection model a restore must bring back.
fn identity(model: &Value) -> Value {
    json!({
        "id": model["id"], "name": model["name"], "metadata": model["metadata"],
        "configuration_json": model["configuration_json"], "dimension": model["dimension"],
        "tenant": model["tenant"], "database": model["database"],
    })
}

async fn model(client: &Client, db: &str, name: &str) -> Value {
    client
        .get(&format!("{db}/collections/{name}"))
        .await
        .expect_status(200, &format!("collection {name}"))
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
        .expect("manifest JSON")
}

const ACME_DB: &str = "/api/v2/tenants/acme/databases/db1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_identically_into_another_shard_count() {
    let source = Cluster::start(ClusterOptions::default()).await;
    let a = source.client(0);

    // A tenant and database of their own, a collection with metadata and configuration
    // there, and one in the default database that a writer keeps changing.
    a.post("/api/v2/tenants", &json!({"name": "acme"}))
        .await
        .expect_status(200, "tenant");
    a.post("/api/v2/tenants/acme/databases", &json!({"name": "db1"}))
        .await
        .expect_status(200, "database");
    let fixed = a
        .post(
            &format!("{ACME_DB}/collections"),
            &json!({"name": "fixed", "metadata": {"owner": "ops", "n": 3},
                    "configuration": {"hnsw": {"space": "cosine", "ef_search": 50}}}),
        )
        .await
        .expect_status(200, "create fixed");
    let fixed_id = fixed["id"].as_str().expect("id").to_owned();
    for body in add_bodies(&dataset("f", 300, 8, 1)) {
        a.post(&format!("{ACME_DB}/collections/{fixed_id}/add"), &body)
            .await
            .expect_status(201, "add fixed");
    }
    let live_id = a.new_collection("live", json!({})).await;
    for body in add_bodies(&dataset("l", 200, 8, 2)) {
        a.add_ok(&live_id, &body).await;
    }

    // A writer upserting new ids for the whole backup; acknowledged ids are noted.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop, live_id) = (
            source.client(0),
            acked.clone(),
            stop.clone(),
            live_id.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<String> = (n..n + 20).map(|i| format!("w-{i:06}")).collect();
                let embeddings: Vec<Vec<f32>> = (n..n + 20).map(|i| vec![i as f32; 8]).collect();
                let resp = client
                    .records(
                        &live_id,
                        "upsert",
                        &json!({"ids": ids, "embeddings": embeddings,
                                "documents": ids, "metadatas": ids.iter().map(|i| json!({"w": i})).collect::<Vec<_>>()}),
                    )
                    .await;
                if resp.status == 200 {
                    acked.lock().extend(ids);
                }
                n += 20;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_before: Vec<String> = acked.lock().clone();
    assert!(
        !acked_before.is_empty(),
        "the writer wrote nothing before the backup"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("bk");
    let dir_arg = dir.to_str().expect("utf-8 path");
    let (ok, out) = run_backup(&source, &["backup", dir_arg]).await;
    assert!(ok, "backup failed: {out}\n{}", source.log_tails(20));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let written_during = acked.lock().len() - acked_before.len();
    assert!(
        written_during > 0,
        "no write ran concurrently with the backup"
    );

    // A second backup into the same (now non-empty) directory is refused.
    let (ok, out) = run_backup(&source, &["backup", dir_arg]).await;
    assert!(
        !ok && out.contains("not empty"),
        "backup into a used dir: {out}"
    );

    let m = manifest(&dir);
    assert_eq!(m["groups"].as_array().map(Vec::len), Some(4), "{m}");
    let entry = |id: &str| {
        m["collections"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("collection {id} in the manifest: {m}"))
            .clone()
    };
    assert_eq!(entry(&fixed_id)["records"], 300);
    let live_records = entry(&live_id)["records"].as_u64().expect("records");
    assert!(
        live_records >= 200 + acked_before.len() as u64,
        "the backup misses acknowledged writes: {live_records}"
    );

    // A fresh cluster with two shard groups instead of three.
    let target = Cluster::start(ClusterOptions {
        shard_count: 2,
        ..ClusterOptions::default()
    })
    .await;
    let b = target.client(0);
    let (ok, out) = run_backup(&target, &["restore", dir_arg]).await;
    assert!(ok, "restore failed: {out}\n{}", target.log_tails(20));
    assert!(out.contains("match the manifest"), "{out}");

    // Same ids, names, metadata, configuration, dimension; same records field by field.
    assert_eq!(
        identity(&model(&b, ACME_DB, "fixed").await),
        identity(&model(&a, ACME_DB, "fixed").await)
    );
    assert_eq!(
        all_records(&b, ACME_DB, &fixed_id).await,
        all_records(&a, ACME_DB, &fixed_id).await,
        "the fixed collection's records differ after restore"
    );
    let restored_live = model(&b, DEFAULT_DB, "live").await;
    assert_eq!(restored_live["id"], live_id.as_str());
    assert_eq!(b.count(&live_id).await, live_records);
    assert_eq!(
        b.present_ids(&live_id, &acked_before).await.len(),
        acked_before.len(),
        "a write acknowledged before the backup started is missing"
    );
    // The restored cluster answers queries (the index was built from the records).
    let hits = b
        .post(
            &format!("{ACME_DB}/collections/{fixed_id}/query"),
            &json!({"query_embeddings": [vec![0.1f32; 8]], "n_results": 5}),
        )
        .await
        .expect_status(200, "query the restored collection");
    assert_eq!(hits["ids"][0].as_array().map(Vec::len), Some(5), "{hits}");

    // Not into a cluster with collections without --force; with it, the backup's
    // collections are replaced and the result is the same.
    let before = b.count(&live_id).await;
    let (ok, out) = run_backup(&target, &["restore", dir_arg]).await;
    assert!(
        !ok && out.contains("already has"),
        "restore into a non-empty cluster: {out}"
    );
    let (ok, out) = run_backup(&target, &["restore", "--force", dir_arg]).await;
    assert!(ok, "restore --force failed: {out}");
    assert_eq!(b.count(&live_id).await, before);

    // A damaged backup is refused before anything changes.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir(&damaged).expect("dir");
    for f in std::fs::read_dir(&dir).expect("backup dir") {
        let f = f.expect("entry");
        std::fs::copy(f.path(), damaged.join(f.file_name())).expect("copy");
    }
    let file = damaged.join("group-2.vdbbak");
    let mut bytes = std::fs::read(&file).expect("group file");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&file, bytes).expect("damage");
    b.delete(&format!("{DEFAULT_DB}/collections/live"))
        .await
        .expect_status(200, "delete live");
    let (ok, out) = run_backup(
        &target,
        &["restore", "--force", damaged.to_str().expect("utf-8")],
    )
    .await;
    assert!(
        !ok && out.contains("group-2.vdbbak") && out.contains("SHA-256"),
        "damaged backup: {out}"
    );
    b.get(&format!("{DEFAULT_DB}/collections/live"))
        .await
        .expect_status(404, "nothing restored from a damaged backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_backup_requests_get_clear_errors() {
    let cluster = Cluster::start(ClusterOptions {
        routers: vec![],
        ..ClusterOptions::default()
    })
    .await;
    let leaders = cluster.wait_all_leaders(Duration::from_secs(30)).await;
    let budget = Duration::from_secs(3);
    let good = wire::encode(&BackupRequest {
        include_records: false,
    })
    .expect("encode");

    let reply = cluster
        .post_internal(1, "/internal/99/backup", good.clone(), budget)
        .await;
    assert_eq!(reply, Err(InternalError::UnknownGroup(99)));

    let leader = leaders[&1];
    for body in [vec![], vec![0xff; 3], vec![7; 100]] {
        let reply = cluster
            .post_internal(leader, "/internal/1/backup", body.clone(), budget)
            .await;
        assert!(
            matches!(&reply, Err(InternalError::Invalid(m)) if m.contains("backup request")),
            "body {body:?}: {reply:?}"
        );
    }

    let follower = cluster
        .replicas_of(1)
        .into_iter()
        .find(|&n| n != leader)
        .expect("a follower");
    let reply = cluster
        .post_internal(follower, "/internal/1/backup", good.clone(), budget)
        .await;
    assert!(
        matches!(reply, Err(InternalError::NotLeader { .. })),
        "{reply:?}"
    );

    // Without the cluster secret: 401 before anything is read or taken.
    let resp = reqwest::Client::new()
        .post(format!("{}/internal/1/backup", cluster.node_url(leader)))
        .header("content-type", "application/x-bincode")
        .body(good.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let reply: common::wire::InternalReply =
        wire::decode(&resp.bytes().await.expect("body")).expect("bincode reply");
    assert_eq!(reply, Err(InternalError::Unauthorized));

    // The leader answers a stream (not an InternalReply) starting with the magic.
    let resp = reqwest::Client::new()
        .post(format!("{}/internal/1/backup", cluster.node_url(leader)))
        .header("x-cluster-secret", cluster.cluster_secret().header_value())
        .header("content-type", "application/x-bincode")
        .body(good)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("body");
    assert!(bytes.starts_with(BACKUP_MAGIC));
    common::backup::verify(&bytes[..]).expect("a valid stream without records");
    assert!(cluster.exited().is_empty(), "a node exited");
}
