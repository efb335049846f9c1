//! A multi-process test cluster: writes a cluster config with free loopback ports and
//! short Raft timeouts into a temp dir, runs real `node` processes on it, kills and
//! restarts them, and talks to them over HTTP (internal API with the KV test state machine,
//! admin status, fault filter).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::placement;
use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use common::wire::{
    self, GroupInfo, InternalError, InternalReply, NodeStatus, PartitionRequest, RaftRole,
    ReplicaStatus, TransferLeaderRequest, BINCODE_CONTENT_TYPE, TIMEOUT_HEADER,
};
use node::kv::{KvCommand, KvOutcome, KvRead, KvReadReply};

pub const TICK_MS: u64 = 50;
pub const ELECTION_TICKS: u64 = 10;

/// Election timeout (raft-rs randomises it in [1x, 2x)).
pub fn election_timeout() -> Duration {
    Duration::from_millis(TICK_MS * ELECTION_TICKS)
}

/// Tests share two cores: run one cluster at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: common::config::ClusterConfig,
    kv: bool,
    children: parking_lot::Mutex<BTreeMap<u64, Child>>,
    paused: parking_lot::Mutex<std::collections::BTreeSet<u64>>,
    client: reqwest::Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct Options {
    pub nodes: usize,
    pub shard_count: usize,
    pub snapshot_interval: u64,
    /// Run the key/value test state machine instead of the catalogue and shards.
    pub kv: bool,
    /// `raft.wal_segment_bytes`, when set (small values give many WAL segments).
    pub wal_segment_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            shard_count: 2,
            snapshot_interval: 10_000,
            kv: true,
            wal_segment_bytes: None,
        }
    }
}

/// Generates the cluster secret into the config's secret file (the data dir's
/// `cluster-secret`, mode 0600), as `scripts/cluster start` does.
pub fn new_cluster_secret(config: &common::config::ClusterConfig) -> ClusterSecret {
    std::fs::create_dir_all(&config.cluster.data_dir).expect("data dir");
    ClusterSecret::generate(&config.secret_file()).expect("cluster secret")
}

/// Default headers carrying `secret`, for a client of node endpoints.
pub fn secret_header(secret: &ClusterSecret) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        CLUSTER_SECRET_HEADER,
        secret.header_value().parse().expect("header value"),
    );
    headers
}

impl Cluster {
    /// Writes the config and starts every node.
    pub fn start(opts: Options) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text = format!(
            "[cluster]\nname = \"test\"\ndata_dir = \"{}\"\nreplication_factor = 3\nshard_count = {}\n\n\
             [raft]\ntick_ms = {TICK_MS}\nelection_ticks = {ELECTION_TICKS}\nheartbeat_ticks = 2\n\
             snapshot_interval_entries = {}\nmax_inflight_msgs = 256\nmax_size_per_msg = 1048576\n\n\
             [router]\nrequest_timeout_ms = 3000\n\n",
            dir.path().join("data").display(),
            opts.shard_count,
            opts.snapshot_interval
        );
        if let Some(bytes) = opts.wal_segment_bytes {
            text = text.replace(
                "[raft]\n",
                &format!("[raft]\nwal_segment_bytes = {bytes}\n"),
            );
        }
        for id in 1..=opts.nodes {
            text += &format!(
                "[[nodes]]\nid = {id}\naddr = \"127.0.0.1:{}\"\n\n",
                free_port()
            );
        }
        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, &text).expect("write config");
        let config = common::config::ClusterConfig::parse(&text).expect("valid config");
        let secret = new_cluster_secret(&config);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .default_headers(secret_header(&secret))
            .build()
            .expect("http client");
        let cluster = Cluster {
            dir,
            config_path,
            config,
            kv: opts.kv,
            children: parking_lot::Mutex::new(BTreeMap::new()),
            paused: parking_lot::Mutex::new(Default::default()),
            client,
        };
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        cluster
    }

    pub fn ids(&self) -> Vec<u64> {
        self.config.nodes.iter().map(|n| n.id).collect()
    }

    pub fn groups(&self) -> Vec<u64> {
        placement::groups(&self.config).collect()
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}.log"))
    }

    pub fn spawn(&self, id: u64) {
        assert!(!self.is_running(id), "node {id} already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_node"));
        if self.kv {
            command.arg("--kv-state-machines");
        }
        let child = command
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(id.to_string())
            .env("RUST_LOG", "info,raft=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        self.children.lock().insert(id, child);
    }

    /// SIGKILL.
    pub fn kill(&self, id: u64) {
        self.paused.lock().remove(&id);
        let child = self.children.lock().remove(&id);
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.children.lock().contains_key(&id)
    }

    /// SIGSTOP (`stop = true`) or SIGCONT.
    pub fn pause(&self, id: u64, stop: bool) {
        let pid = self
            .children
            .lock()
            .get(&id)
            .map(|c| c.id())
            .expect("running node");
        let status = Command::new("kill")
            .arg(if stop { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()
            .expect("kill command");
        assert!(status.success());
        if stop {
            self.paused.lock().insert(id);
        } else {
            self.paused.lock().remove(&id);
        }
    }

    fn addr(&self, id: u64) -> String {
        self.config.node(id).expect("node in config").addr.clone()
    }

    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let resp = self
            .client
            .get(format!("http://{}/admin/status", self.addr(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    pub async fn replica(&self, id: u64, group: u64) -> Option<ReplicaStatus> {
        self.status(id)
            .await?
            .replicas
            .into_iter()
            .find(|r| r.group == group)
    }

    /// The node (among `among`) that reports itself leader of `group`, with the highest term.
    pub async fn find_leader(&self, group: u64, among: &[u64]) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for &id in among {
            if let Some(r) = self.replica(id, group).await {
                if r.role == RaftRole::Leader && best.is_none_or(|(t, _)| r.term > t) {
                    best = Some((r.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits until `group` has a leader among `among`.
    pub async fn wait_leader(&self, group: u64, among: &[u64], timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.find_leader(group, among).await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "group {group}: no leader among {among:?} after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The nodes hosting `group` (placement).
    pub fn replicas_of(&self, group: u64) -> Vec<u64> {
        placement::replicas(&self.config, group)
    }

    /// Waits until every group has a leader among the running nodes.
    pub async fn wait_all_leaders(&self, timeout: Duration) -> BTreeMap<u64, u64> {
        let running = self.running();
        let mut leaders = BTreeMap::new();
        for g in self.groups() {
            leaders.insert(g, self.wait_leader(g, &running, timeout).await);
        }
        leaders
    }

    /// One request to node `id`'s internal API, decoded as an `InternalReply`.
    pub async fn post(
        &self,
        id: u64,
        path: &str,
        body: Vec<u8>,
        budget: Duration,
    ) -> InternalReply {
        let resp = self
            .client
            .post(format!("http://{}{path}", self.addr(id)))
            .header(TIMEOUT_HEADER, budget.as_millis().to_string())
            .header(reqwest::header::CONTENT_TYPE, BINCODE_CONTENT_TYPE)
            .timeout(budget + Duration::from_secs(2))
            .body(body)
            .send()
            .await
            .map_err(|e| InternalError::Internal(format!("http: {e}")))?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| InternalError::Internal(format!("http body: {e}")))?;
        wire::decode::<InternalReply>(&bytes).map_err(|e| InternalError::Internal(e.to_string()))?
    }

    /// One propose on node `id`.
    pub async fn propose(
        &self,
        id: u64,
        group: u64,
        cmd: &KvCommand,
        budget: Duration,
    ) -> InternalReply {
        let body = wire::encode(&node::kv::proposal(cmd)).expect("encode");
        self.post(id, &format!("/internal/{group}/propose"), body, budget)
            .await
    }

    /// One linearizable read on node `id`.
    pub async fn read(
        &self,
        id: u64,
        group: u64,
        req: &KvRead,
        budget: Duration,
    ) -> Result<KvReadReply, InternalError> {
        let body = wire::encode(req).expect("encode");
        let bytes = self
            .post(id, &format!("/internal/{group}/read"), body, budget)
            .await?;
        wire::decode(&bytes).map_err(|e| InternalError::Internal(e.to_string()))
    }

    /// Puts `key` in `group` through whichever running node leads it, retrying (like the
    /// router) on not-leader and unavailability until `timeout`.
    pub async fn put(
        &self,
        group: u64,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<(), InternalError> {
        let cmd = KvCommand::Put {
            key: key.into(),
            value: value.into(),
        };
        let deadline = Instant::now() + timeout;
        let mut target = self.find_leader(group, &self.running()).await;
        let mut last = InternalError::NoQuorum;
        while Instant::now() < deadline {
            let Some(id) = target.filter(|id| self.running().contains(id)) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                target = self.find_leader(group, &self.running()).await;
                continue;
            };
            match self.propose(id, group, &cmd, Duration::from_secs(2)).await {
                Ok(bytes) => {
                    let outcome: KvOutcome =
                        wire::decode(&bytes).map_err(|e| InternalError::Internal(e.to_string()))?;
                    return match outcome {
                        KvOutcome::Done { .. } => Ok(()),
                        KvOutcome::Rejected(r) => Err(InternalError::Invalid(r)),
                    };
                }
                Err(InternalError::NotLeader { leader: Some(l) }) if l != id => {
                    target = Some(l);
                    last = InternalError::NotLeader { leader: Some(l) };
                }
                Err(e) => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    target = self.find_leader(group, &self.running()).await;
                }
            }
        }
        Err(last)
    }

    /// Linearizable get through the group's leader, with retries.
    pub async fn get(
        &self,
        group: u64,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<String>, InternalError> {
        let deadline = Instant::now() + timeout;
        let mut last = InternalError::NoQuorum;
        while Instant::now() < deadline {
            if let Some(id) = self.find_leader(group, &self.running()).await {
                match self
                    .read(
                        id,
                        group,
                        &KvRead::Get { key: key.into() },
                        Duration::from_secs(2),
                    )
                    .await
                {
                    Ok(KvReadReply::Value(v)) => return Ok(v),
                    Ok(other) => {
                        return Err(InternalError::Internal(format!(
                            "unexpected reply {other:?}"
                        )))
                    }
                    Err(e) => last = e,
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last)
    }

    /// Nodes running and not paused.
    pub fn running(&self) -> Vec<u64> {
        let paused = self.paused.lock().clone();
        self.children
            .lock()
            .keys()
            .copied()
            .filter(|id| !paused.contains(id))
            .collect()
    }

    /// Waits until every replica of `group` on `nodes` has applied the same index and
    /// reports the same digest; returns (applied, digest).
    pub async fn wait_converged(
        &self,
        group: u64,
        nodes: &[u64],
        timeout: Duration,
    ) -> (u64, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for &id in nodes {
                seen.push(self.replica(id, group).await.map(|r| (r.applied, r.digest)));
            }
            if let Some(Some(first)) = seen.first() {
                if seen.iter().all(|s| s.as_ref() == Some(first)) {
                    return first.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "group {group} did not converge on {nodes:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /internal/groups` on node `id`.
    pub async fn group_infos(&self, id: u64) -> Vec<GroupInfo> {
        let bytes = self
            .client
            .get(format!("http://{}/internal/groups", self.addr(id)))
            .send()
            .await
            .expect("groups request")
            .bytes()
            .await
            .expect("groups body");
        wire::decode(&bytes).expect("Vec<GroupInfo>")
    }

    /// `POST /admin/transfer-leader` on node `id`.
    pub async fn transfer_leader(&self, id: u64, group: u64, to: u64) {
        self.client
            .post(format!("http://{}/admin/transfer-leader", self.addr(id)))
            .json(&TransferLeaderRequest { group, to })
            .send()
            .await
            .expect("transfer request")
            .error_for_status()
            .expect("transfer accepted");
    }

    /// Cuts `side` off from the other nodes (fault filter on every node).
    pub async fn partition(&self, side: &[u64]) {
        let others: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|i| !side.contains(i))
            .collect();
        for id in self.ids() {
            let blocked = if side.contains(&id) {
                others.clone()
            } else {
                side.to_vec()
            };
            self.client
                .post(format!("http://{}/admin/partition", self.addr(id)))
                .json(&PartitionRequest { blocked })
                .send()
                .await
                .expect("partition request")
                .error_for_status()
                .expect("partition accepted");
        }
    }

    pub async fn heal(&self) {
        for id in self.ids() {
            self.client
                .post(format!("http://{}/admin/heal", self.addr(id)))
                .json(&PartitionRequest::default())
                .send()
                .await
                .expect("heal request")
                .error_for_status()
                .expect("heal accepted");
        }
    }

    /// The last lines of a node's log (for failure messages).
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let all: Vec<u64> = self.children.lock().keys().copied().collect();
        for id in all {
            self.kill(id);
        }
        if std::thread::panicking() && std::env::var_os("KEEP_CLUSTER").is_some() {
            let path =
                std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("cluster kept in {}", path.display());
        }
    }
}
