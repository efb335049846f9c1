//! The cluster's inside is closed (issue 9, part 2): every node endpoint requires the
//! cluster secret, and a Raft batch that passes it still cannot crash a node or change
//! data unless it is what a correct peer sends. Real processes: a 3-node cluster and a
//! router; the attacks are sent straight to the nodes' ports.

use std::collections::BTreeMap;
use std::time::Duration;

use common::catalog::{CatalogCommand, CatalogProposal};
use common::secret::CLUSTER_SECRET_HEADER;
use common::wire::{
    self, GroupMessage, InternalError, InternalReply, RaftBatch, BINCODE_CONTENT_TYPE,
};
use raft::prelude::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use serde_json::json;
use tests::{Cluster, ClusterOptions};

const LONG: Duration = Duration::from_secs(30);

/// One request to a node endpoint, built by the test.
struct Call {
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Call {
    fn post(path: impl Into<String>, content_type: &'static str, body: Vec<u8>) -> Call {
        Call {
            method: "POST",
            path: path.into(),
            content_type,
            body,
        }
    }

    fn delete(path: impl Into<String>) -> Call {
        Call {
            method: "DELETE",
            path: path.into(),
            content_type: "application/json",
            body: b"{}".to_vec(),
        }
    }

    fn get(path: impl Into<String>) -> Call {
        Call {
            method: "GET",
            path: path.into(),
            content_type: "",
            body: Vec::new(),
        }
    }

    /// Sends the call to `base` with `secret` (if any); returns status and body.
    async fn send(&self, base: &str, secret: Option<&str>) -> (u16, Vec<u8>) {
        let http = reqwest::Client::new();
        let url = format!("{base}{}", self.path);
        let mut req = match self.method {
            "GET" => http.get(url),
            "DELETE" => http.delete(url).body(self.body.clone()),
            _ => http.post(url).body(self.body.clone()),
        };
        if !self.content_type.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, self.content_type);
        }
        if let Some(s) = secret {
            req = req.header(CLUSTER_SECRET_HEADER, s);
        }
        let resp = req
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("node answers");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }
}

fn raft_message(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

fn batch(from: u64, group: u64, messages: &[Message]) -> Vec<u8> {
    wire::encode(&RaftBatch {
        from,
        messages: messages
            .iter()
            .map(|m| GroupMessage {
                group,
                message: protobuf::Message::write_to_bytes(m).expect("encode message"),
            })
            .collect(),
    })
    .expect("encode batch")
}

/// Per group: (commit, digest) on every replica, plus each replica's term.
async fn snapshot_state(cluster: &Cluster) -> BTreeMap<(u64, u64), (u64, String, u64)> {
    let mut out = BTreeMap::new();
    for id in cluster.ids() {
        let status = cluster.status(id).await.expect("node status");
        for r in status.replicas {
            out.insert((id, r.group), (r.applied, r.digest, r.term));
        }
    }
    out
}

fn count_in_log(cluster: &Cluster, id: u64, needle: &str) -> usize {
    std::fs::read_to_string(cluster.node_log(id))
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[tokio::test]
async fn every_node_endpoint_refuses_a_caller_without_the_secret() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let client = cluster.client(0);
    let collection = client.new_collection("guarded", json!({})).await;
    client
        .add_ok(
            &collection,
            &json!({"ids": ["a", "b", "c"], "embeddings": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]}),
        )
        .await;
    cluster.wait_converged(LONG).await;
    let before = snapshot_state(&cluster).await;

    let reset = wire::encode(&CatalogProposal {
        request_id: 42,
        deadline_ms: tests::cluster::proposal_deadline(),
        command: CatalogCommand::Reset,
    })
    .expect("encode reset");
    let mut heartbeat = raft_message(MessageType::MsgHeartbeat, 2, 1, 1_000_000);
    heartbeat.commit = 1 << 40;
    let calls = [
        Call::post("/internal/0/propose", BINCODE_CONTENT_TYPE, reset.clone()),
        Call::post("/internal/1/read", BINCODE_CONTENT_TYPE, vec![0; 16]),
        Call::get("/internal/groups"),
        Call::get("/admin/status"),
        Call::post(
            "/admin/partition",
            "application/json",
            br#"{"blocked": [1, 2, 3]}"#.to_vec(),
        ),
        Call::post("/admin/heal", "application/json", b"{}".to_vec()),
        Call::post(
            "/admin/transfer-leader",
            "application/json",
            br#"{"group": 0, "to": 2}"#.to_vec(),
        ),
        // Membership: removing the catalogue's voters, a replica, a peer's address.
        Call::post(
            "/admin/members",
            "application/json",
            br#"{"group": 0, "changes": [{"op": "remove", "node": 1}, {"op": "remove", "node": 2}]}"#
                .to_vec(),
        ),
        Call::post("/admin/replicas", "application/json", br#"{"group": 9}"#.to_vec()),
        Call::delete("/admin/replicas/0"),
        Call::post(
            "/admin/peers",
            "application/json",
            br#"{"id": 2, "addr": "127.0.0.1:9"}"#.to_vec(),
        ),
        Call::post(
            "/raft/batch",
            BINCODE_CONTENT_TYPE,
            batch(2, 0, &[heartbeat.clone()]),
        ),
        Call::post(
            "/raft/snapshot",
            BINCODE_CONTENT_TYPE,
            batch(2, 0, &[heartbeat]),
        ),
    ];
    let right = cluster.cluster_secret().header_value().to_string();
    let mut wrong = right.clone().into_bytes();
    wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
    let wrong = String::from_utf8(wrong).expect("ascii");
    let short = right[..right.len() - 1].to_string();
    for id in cluster.ids() {
        let base = cluster.node_url(id);
        for call in &calls {
            for (what, secret) in [
                ("no secret", None),
                ("wrong secret", Some(wrong.as_str())),
                ("truncated secret", Some(short.as_str())),
                ("empty secret", Some("")),
            ] {
                let (status, body) = call.send(&base, secret).await;
                assert_eq!(
                    status, 401,
                    "node {id} {} {} with {what}",
                    call.method, call.path
                );
                if call.path.starts_with("/internal/") {
                    let reply: InternalReply = wire::decode(&body).expect("bincode reply");
                    assert_eq!(reply, Err(InternalError::Unauthorized));
                }
            }
        }
    }
    // The right secret with the wrong content type: 415, nothing done.
    let leader0 = cluster
        .find_leader(0, &cluster.ids())
        .await
        .expect("catalogue leader");
    let (status, body) = Call::post("/internal/0/propose", "text/plain", reset)
        .send(&cluster.node_url(leader0), Some(&right))
        .await;
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
    let (status, _) = Call::post(
        "/admin/partition",
        "text/plain",
        br#"{"blocked": [2]}"#.to_vec(),
    )
    .send(&cluster.node_url(1), Some(&right))
    .await;
    assert_eq!(status, 415);

    // Nothing changed: no partition, same data, every node up, the router still serves.
    assert!(cluster.exited().is_empty(), "{:?}", cluster.exited());
    for id in cluster.ids() {
        let status = cluster.status(id).await.expect("status with the secret");
        assert!(
            status.blocked.is_empty(),
            "node {id} partitioned: {status:?}"
        );
    }
    let after = snapshot_state(&cluster).await;
    for (key, (applied, digest, term)) in &before {
        let (applied_now, digest_now, term_now) = &after[key];
        assert_eq!(
            applied_now, applied,
            "{key:?}: something was applied (term {term} -> {term_now})"
        );
        assert_eq!(digest_now, digest, "{key:?}: data changed");
    }
    assert_eq!(client.count(&collection).await, 3);
}

#[tokio::test]
async fn forged_raft_batches_with_the_secret_leave_every_node_serving() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let client = cluster.client(0);
    let collection = client.new_collection("raft-forged", json!({})).await;
    let ids: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
    let embeddings: Vec<Vec<f32>> = (0..30).map(|i| vec![i as f32, 1.0]).collect();
    client
        .add_ok(&collection, &json!({"ids": ids, "embeddings": embeddings}))
        .await;
    cluster.wait_converged(LONG).await;
    let secret = cluster.cluster_secret().header_value().to_string();

    let mut refused_before = BTreeMap::new();
    for id in cluster.ids() {
        refused_before.insert(id, count_in_log(&cluster, id, "raft message refused"));
    }
    let mut expected_refusals: BTreeMap<u64, usize> = BTreeMap::new();
    for group in [0, 1] {
        let leader = cluster
            .find_leader(group, &cluster.ids())
            .await
            .expect("leader");
        let followers: Vec<u64> = cluster
            .replicas_of(group)
            .into_iter()
            .filter(|&n| n != leader)
            .collect();
        let (target, third) = (followers[0], followers[1]);
        let r = cluster
            .replica(target, group)
            .await
            .expect("replica status");
        let (term, commit, last) = (r.term, r.commit, r.last_index);
        let url = cluster.node_url(target);
        let send = |body: Vec<u8>, path: &'static str| {
            let secret = secret.clone();
            let url = url.clone();
            async move {
                Call::post(path, BINCODE_CONTENT_TYPE, body)
                    .send(&url, Some(&secret))
                    .await
                    .0
            }
        };

        // A sender that is not a peer (or is the node itself): refused whole.
        let hb = raft_message(MessageType::MsgHeartbeat, 99, target, term);
        assert_eq!(send(batch(99, group, &[hb]), "/raft/batch").await, 403);
        let hb = raft_message(MessageType::MsgHeartbeat, target, target, term);
        assert_eq!(send(batch(target, group, &[hb]), "/raft/batch").await, 403);

        // A message whose `from` is not the batch's sender: dropped by the transport.
        let mut spoofed = raft_message(MessageType::MsgAppend, third, target, term + 5);
        spoofed.index = last;
        spoofed.entries = vec![Entry {
            index: last + 1,
            term: term + 5,
            ..Default::default()
        }]
        .into();
        assert_eq!(
            send(batch(leader, group, &[spoofed]), "/raft/batch").await,
            200
        );

        // Each of these passes the transport and is refused by the replica; unchecked,
        // the first two would make raft-rs panic.
        let mut past_log = raft_message(MessageType::MsgHeartbeat, leader, target, term);
        past_log.commit = last + 1_000;
        let mut huge_term = raft_message(MessageType::MsgHeartbeat, leader, target, u64::MAX - 1);
        huge_term.commit = u64::MAX / 2;
        let mut conflicting = raft_message(MessageType::MsgAppend, leader, target, term + 1);
        conflicting.index = commit;
        conflicting.log_term = r.applied_term;
        conflicting.commit = commit;
        conflicting.entries = vec![Entry {
            index: 1,
            term: term + 1,
            data: b"forged".to_vec().into(),
            ..Default::default()
        }]
        .into();
        let mut proposal = raft_message(MessageType::MsgPropose, leader, target, 0);
        proposal.entries = vec![Entry {
            data: b"forged".to_vec().into(),
            ..Default::default()
        }]
        .into();
        let mut snapshot = raft_message(MessageType::MsgSnapshot, leader, target, term);
        let mut meta = SnapshotMetadata {
            index: last + 10,
            term,
            ..Default::default()
        };
        meta.set_conf_state(ConfState {
            voters: vec![leader, 77],
            ..Default::default()
        });
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = b"not a snapshot".to_vec().into();
        snapshot.set_snapshot(snap);
        let forged = [past_log, huge_term, conflicting, proposal];
        assert_eq!(
            send(batch(leader, group, &forged), "/raft/batch").await,
            200
        );
        // A snapshot on the batch route is dropped by the transport; on its own route it
        // reaches the replica, which refuses its configuration.
        assert_eq!(
            send(batch(leader, group, &[snapshot.clone()]), "/raft/batch").await,
            200
        );
        assert_eq!(
            send(batch(leader, group, &[snapshot]), "/raft/snapshot").await,
            200
        );
        *expected_refusals.entry(target).or_default() += forged.len() + 1;
    }

    // Every node stays up; the refusals were logged (the replica checked them, nothing
    // was stepped); terms did not jump; the groups keep their data and keep serving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );
    for (id, n) in &expected_refusals {
        let refused = count_in_log(&cluster, *id, "raft message refused") - refused_before[id];
        assert!(
            refused >= *n,
            "node {id}: {refused} refusals logged, expected {n}; log:\n{}",
            cluster.log_tails(20)
        );
    }
    for id in cluster.ids() {
        let status = cluster.status(id).await.expect("status");
        for r in &status.replicas {
            assert!(
                r.term < 1_000,
                "node {id} group {}: term {}",
                r.group,
                r.term
            );
        }
    }
    assert_eq!(client.count(&collection).await, 30);
    let more: Vec<String> = (30..40).map(|i| format!("r{i}")).collect();
    let more_embeddings: Vec<Vec<f32>> = (30..40).map(|i| vec![i as f32, 2.0]).collect();
    client
        .add_ok(
            &collection,
            &json!({"ids": more, "embeddings": more_embeddings}),
        )
        .await;
    assert_eq!(client.count(&collection).await, 40);
    cluster.wait_converged(LONG).await;
    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );
}

#[test]
fn processes_refuse_to_start_without_a_usable_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nname = \"s\"\ndata_dir = \"{}\"\nreplication_factor = 1\nshard_count = 1\n\n\
             [router]\nlisten = \"127.0.0.1:{}\"\n\n[[nodes]]\nid = 1\naddr = \"127.0.0.1:{}\"\n",
            data.display(),
            tests::cluster::free_port(),
            tests::cluster::free_port()
        ),
    )
    .expect("config");
    let secret = data.join("cluster-secret");
    let run = |binary: &str| {
        let mut command = std::process::Command::new(tests::cluster::binary(binary));
        command.arg("--config").arg(&config);
        if binary == "node" {
            command.args(["--id", "1"]);
        }
        let out = command.output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for binary in ["node", "router"] {
        let _ = std::fs::remove_file(&secret);
        let (code, stderr) = run(binary);
        assert_eq!(code, Some(1), "{binary} without a secret: {stderr}");
        assert!(stderr.contains("does not exist"), "{binary}: {stderr}");

        std::fs::write(&secret, "x".repeat(64)).expect("secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let (code, stderr) = run(binary);
        assert_eq!(
            code,
            Some(1),
            "{binary} with a world-readable secret: {stderr}"
        );
        assert!(stderr.contains("chmod 600"), "{binary}: {stderr}");

        std::fs::write(&secret, "short\n").expect("secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let (code, stderr) = run(binary);
        assert_eq!(code, Some(1), "{binary} with a short secret: {stderr}");
        assert!(stderr.contains("must hold one token"), "{binary}: {stderr}");
    }
}
