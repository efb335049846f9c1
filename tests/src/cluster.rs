//! A real cluster for end-to-end tests: `node` processes and one or more
//! `router` processes on free loopback ports, with a cluster config and data
//! in a temp dir. Everything is killed on drop (set `KEEP_CLUSTER=1` to keep
//! the dir, logs included, after a failure).
//!
//! The binaries are the workspace's own, found next to the test executable's
//! profile dir (`target/debug/deps/<test>` -> `target/debug/{node,router}`):
//! Cargo gives `CARGO_BIN_EXE_*` only for the test's own package, so
//! `scripts/test` builds every binary (`cargo build --workspace --bins`) first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::config::ClusterConfig;
use common::placement;
use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use common::wire::{NodeStatus, PartitionRequest, RaftRole, ReplicaStatus};
use parking_lot::Mutex;

use crate::http::Client;

/// Raft timing of test clusters: a 500 ms election timeout keeps failover
/// tests short, the same as the node tests use.
pub const TICK_MS: u64 = 50;
pub const ELECTION_TICKS: u64 = 10;

/// How long a cluster may take to elect every group and bring its routers up
/// (generous: two cores shared by parallel test processes).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Router variables an outer environment must not leak into a test router.
const ROUTER_ENV: [&str; 8] = [
    "CHROMA_SERVER_AUTHN_PROVIDER",
    "CHROMA_SERVER_AUTHN_CREDENTIALS",
    "CHROMA_SERVER_AUTHN_CREDENTIALS_FILE",
    "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER",
    "ROUTER_MAX_BODY_BYTES",
    "ROUTER_MAX_IN_FLIGHT",
    "ROUTER_TLS_CERT_FILE",
    "ROUTER_TLS_KEY_FILE",
];

/// One router process to start.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// `ROUTER_ADD_EXISTING` (`reject` or `skip`); unset = the TOML's value.
    pub add_existing: Option<&'static str>,
    /// `ROUTER_ALLOW_RESET`; unset = the TOML's value (false).
    pub allow_reset: Option<bool>,
    /// More environment for the router: Chroma's auth variables
    /// (`CHROMA_SERVER_AUTHN_*`, `CHROMA_AUTH_TOKEN_TRANSPORT_HEADER`),
    /// `ROUTER_MAX_BODY_BYTES`, `ROUTER_MAX_IN_FLIGHT`.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub replication_factor: usize,
    pub shard_count: usize,
    /// `router.request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// `router.max_batch_size`; `None` keeps the default (5461).
    pub max_batch_size: Option<usize>,
    /// `raft.snapshot_interval_entries`; `None` keeps the default (10000).
    /// Chaos tests lower it so snapshots, log compaction and snapshot
    /// installs on a restarted node happen within a short run.
    pub snapshot_interval_entries: Option<u64>,
    pub routers: Vec<RouterOptions>,
}

impl RouterOptions {
    /// A router with `ROUTER_ADD_EXISTING=skip` (Chroma 1.x's add).
    pub fn skip_existing() -> RouterOptions {
        RouterOptions {
            add_existing: Some("skip"),
            ..RouterOptions::default()
        }
    }

    /// A router with `ROUTER_ALLOW_RESET=true`.
    pub fn reset_allowed() -> RouterOptions {
        RouterOptions {
            allow_reset: Some(true),
            ..RouterOptions::default()
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            replication_factor: 3,
            shard_count: 3,
            request_timeout_ms: 10_000,
            max_batch_size: None,
            snapshot_interval_entries: None,
            routers: vec![RouterOptions::default()],
        }
    }
}

struct Proc {
    child: Child,
    paused: bool,
}

pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    pub config_path: PathBuf,
    pub config: ClusterConfig,
    nodes: Mutex<BTreeMap<u64, Proc>>,
    routers: Mutex<Vec<Child>>,
    router_urls: Vec<String>,
    admin: reqwest::Client,
    secret: ClusterSecret,
}

/// A free loopback port (bound then released; the process that gets it binds
/// it a moment later, which is the usual race every such harness accepts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Path of a workspace binary built in the same profile as this test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary under target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "binary {} not found; build it first with `cargo build --workspace --bins` \
         (scripts/test does) in the same profile and target dir as the tests",
        path.display()
    );
    path
}

impl Cluster {
    /// Writes the config, starts every node, waits until every Raft group has
    /// a leader, then starts the routers and waits for their healthcheck.
    pub async fn start(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text = format!(
            "[cluster]\nname = \"e2e\"\ndata_dir = \"{}\"\nreplication_factor = {}\nshard_count = {}\n\n\
             [raft]\ntick_ms = {TICK_MS}\nelection_ticks = {ELECTION_TICKS}\nheartbeat_ticks = 2\n\n\
             [router]\nlisten = \"127.0.0.1:{}\"\nrequest_timeout_ms = {}\n\n",
            dir.path().join("data").display(),
            opts.replication_factor,
            opts.shard_count,
            free_port(),
            opts.request_timeout_ms,
        );
        if let Some(max) = opts.max_batch_size {
            text = text.replace("[router]\n", &format!("[router]\nmax_batch_size = {max}\n"));
        }
        if let Some(n) = opts.snapshot_interval_entries {
            text = text.replace(
                "[raft]\n",
                &format!("[raft]\nsnapshot_interval_entries = {n}\n"),
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
        let config = ClusterConfig::parse(&text).expect("valid test config");
        // As `scripts/cluster start` does: a fresh secret in the data dir, mode 0600.
        std::fs::create_dir_all(&config.cluster.data_dir).expect("data dir");
        let secret = ClusterSecret::generate(&config.secret_file()).expect("cluster secret");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            CLUSTER_SECRET_HEADER,
            secret.header_value().parse().expect("header value"),
        );
        let admin = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .default_headers(headers)
            .build()
            .expect("http client");
        let mut cluster = Cluster {
            dir: Some(dir),
            config_path,
            config,
            nodes: Mutex::new(BTreeMap::new()),
            routers: Mutex::new(Vec::new()),
            router_urls: Vec::new(),
            admin,
            secret,
        };
        for id in cluster.ids() {
            cluster.spawn_node(id);
        }
        cluster.wait_all_leaders(START_TIMEOUT).await;
        for (i, r) in opts.routers.iter().enumerate() {
            let url = cluster.spawn_router(i, r);
            cluster.router_urls.push(url);
        }
        for i in 0..cluster.router_urls.len() {
            cluster.wait_router_ready(i, START_TIMEOUT).await;
        }
        cluster
    }

    fn dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .expect("cluster dir")
    }

    pub fn ids(&self) -> Vec<u64> {
        self.config.nodes.iter().map(|n| n.id).collect()
    }

    /// Shard groups (`1..=shard_count`; group 0 is the catalogue).
    pub fn shard_groups(&self) -> Vec<u64> {
        placement::shard_groups(&self.config).collect()
    }

    /// Nodes hosting a replica of `group`.
    pub fn replicas_of(&self, group: u64) -> Vec<u64> {
        placement::replicas(&self.config, group)
    }

    pub fn node_log(&self, id: u64) -> PathBuf {
        self.dir().join(format!("node-{id}.log"))
    }

    pub fn router_log(&self, i: usize) -> PathBuf {
        self.dir().join(format!("router-{i}.log"))
    }

    fn log_file(path: &PathBuf) -> std::fs::File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("log file")
    }

    /// Starts node `id` (again, after a kill).
    pub fn spawn_node(&self, id: u64) {
        let mut nodes = self.nodes.lock();
        assert!(!nodes.contains_key(&id), "node {id} already running");
        let log = Self::log_file(&self.node_log(id));
        let child = Command::new(binary("node"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(id.to_string())
            .env("RUST_LOG", "info,raft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        nodes.insert(
            id,
            Proc {
                child,
                paused: false,
            },
        );
    }

    fn spawn_router(&self, i: usize, opts: &RouterOptions) -> String {
        let port = free_port();
        let log = Self::log_file(&self.router_log(i));
        let mut command = Command::new(binary("router"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            // The harness decides; an outer environment must not leak in.
            .env_remove("ROUTER_ADD_EXISTING")
            .env_remove("ROUTER_ALLOW_RESET");
        for var in ROUTER_ENV {
            command.env_remove(var);
        }
        command.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(mode) = opts.add_existing {
            command.env("ROUTER_ADD_EXISTING", mode);
        }
        if let Some(allow) = opts.allow_reset {
            command.env("ROUTER_ALLOW_RESET", allow.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn router");
        self.routers.lock().push(child);
        format!("http://127.0.0.1:{port}")
    }

    async fn wait_router_ready(&self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/api/v2/healthcheck", self.router_urls[i]);
        loop {
            if let Ok(r) = self.admin.get(&url).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            let exited = self.routers.lock()[i].try_wait().ok().flatten();
            if let Some(status) = exited {
                panic!(
                    "router {i} exited ({status}) before it was ready; log:\n{}",
                    tail(&self.router_log(i), 30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "router {i} not healthy after {timeout:?}; log:\n{}",
                tail(&self.router_log(i), 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn router_count(&self) -> usize {
        self.router_urls.len()
    }

    /// Client of router `i`, with a 30 s per-request timeout (a hang fails).
    pub fn client(&self, i: usize) -> Client {
        self.client_with_timeout(i, Duration::from_secs(30))
    }

    /// Client of router `i` sending `headers` (a token) with every request.
    pub fn client_with_headers(&self, i: usize, headers: &[(&str, &str)]) -> Client {
        Client::with_headers(
            self.router_urls[i].clone(),
            Duration::from_secs(30),
            headers,
        )
    }

    /// `host:port` of router `i`, for raw socket tests.
    pub fn router_addr(&self, i: usize) -> String {
        self.router_urls[i].trim_start_matches("http://").to_owned()
    }

    pub fn client_with_timeout(&self, i: usize, timeout: Duration) -> Client {
        Client::new(self.router_urls[i].clone(), timeout)
    }

    fn addr(&self, id: u64) -> String {
        self.config.node(id).expect("node in config").addr.clone()
    }

    /// `http://host:port` of node `id` (its Raft, internal and admin endpoints).
    pub fn node_url(&self, id: u64) -> String {
        format!("http://{}", self.addr(id))
    }

    /// The cluster secret every node endpoint requires.
    pub fn cluster_secret(&self) -> &ClusterSecret {
        &self.secret
    }

    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let resp = self
            .admin
            .get(format!("http://{}/admin/status", self.addr(id)))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Node `id`'s status of its replica of `group` (`None`: no answer).
    pub async fn replica(&self, id: u64, group: u64) -> Option<ReplicaStatus> {
        let status = self.status(id).await?;
        status.replicas.into_iter().find(|r| r.group == group)
    }

    /// Waits until every replica of every group has applied up to the
    /// highest commit index any of them reports, then asserts that they
    /// report the same digest (architecture.md promise 5); returns group ->
    /// (applied, digest). Call it on a quiet, healed cluster with every node
    /// running. Equal applied indexes with different digests are checked
    /// again a few times before failing, since a status reads the applied
    /// index and the digest one after the other.
    pub async fn wait_converged(&self, timeout: Duration) -> BTreeMap<u64, (u64, String)> {
        let deadline = Instant::now() + timeout;
        let mut out = BTreeMap::new();
        for g in placement::groups(&self.config) {
            let mut mismatches = 0;
            loop {
                let mut seen = Vec::new();
                for id in self.replicas_of(g) {
                    seen.push((id, self.replica(id, g).await));
                }
                let commit = seen
                    .iter()
                    .filter_map(|(_, r)| r.as_ref())
                    .map(|r| r.commit)
                    .max();
                let caught_up = seen.iter().all(|(_, r)| {
                    r.as_ref()
                        .is_some_and(|r| Some(r.applied) == commit && r.commit == r.applied)
                });
                let summary = || {
                    seen.iter()
                        .map(|(id, r)| match r {
                            Some(r) => format!(
                                "node {id}: {:?} term {} commit {} applied {} digest {} records {:?}",
                                r.role, r.term, r.commit, r.applied, r.digest, r.records
                            ),
                            None => format!("node {id}: no status"),
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                if caught_up {
                    let first = seen[0].1.as_ref().map(|r| r.digest.clone());
                    if seen
                        .iter()
                        .all(|(_, r)| r.as_ref().map(|r| r.digest.clone()) == first)
                    {
                        out.insert(g, (commit.unwrap_or(0), first.unwrap_or_default()));
                        break;
                    }
                    mismatches += 1;
                    assert!(
                        mismatches < 5,
                        "group {g}: replicas applied the same index but hold different \
                         records (digests differ): {}",
                        summary()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "group {g}: replicas not caught up after {timeout:?}: {}",
                    summary()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        out
    }

    /// Waits until node `id` answers its admin status: a restarted node opens
    /// its replicas (log replay, snapshot load) before it listens, while the
    /// other nodes may already have leaders for every group, so
    /// [`Cluster::wait_all_leaders`] alone does not mean it is reachable.
    pub async fn wait_node_up(&self, id: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.status(id).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "node {id} does not answer after {timeout:?}; log:\n{}",
                tail(&self.node_log(id), 20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Nodes running and not paused.
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .lock()
            .iter()
            .filter(|(_, p)| !p.paused)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The node among `among` that reports itself leader of `group` with
    /// the highest term.
    pub async fn find_leader(&self, group: u64, among: &[u64]) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for &id in among {
            let Some(status) = self.status(id).await else {
                continue;
            };
            for r in status.replicas.into_iter().filter(|r| r.group == group) {
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
                "group {group}: no leader among {among:?} after {timeout:?}; node log tails:\n{}",
                among
                    .iter()
                    .map(|id| format!("node {id}:\n{}", tail(&self.node_log(*id), 10)))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every group (catalogue and shards) that has a quorum of
    /// running nodes has a leader among them; returns group -> leader.
    pub async fn wait_all_leaders(&self, timeout: Duration) -> BTreeMap<u64, u64> {
        let deadline = Instant::now() + timeout;
        let running = self.running();
        let mut leaders = BTreeMap::new();
        for g in placement::groups(&self.config) {
            let replicas = self.replicas_of(g);
            let up: Vec<u64> = replicas
                .iter()
                .copied()
                .filter(|id| running.contains(id))
                .collect();
            if up.len() * 2 <= replicas.len() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            leaders.insert(g, self.wait_leader(g, &up, left).await);
        }
        leaders
    }

    /// SIGKILL of node `id`.
    pub fn kill_node(&self, id: u64) {
        let proc = self.nodes.lock().remove(&id);
        if let Some(mut p) = proc {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// SIGSTOP (`stop`) or SIGCONT of node `id`.
    pub fn pause_node(&self, id: u64, stop: bool) {
        let mut nodes = self.nodes.lock();
        let proc = nodes.get_mut(&id).expect("running node");
        let status = Command::new("kill")
            .arg(if stop { "-STOP" } else { "-CONT" })
            .arg(proc.child.id().to_string())
            .status()
            .expect("kill command");
        assert!(status.success(), "kill -STOP/-CONT of node {id}");
        proc.paused = stop;
    }

    /// Cuts `side` off from the other nodes (each node's transport fault
    /// filter: Raft traffic only; routers still reach every node).
    pub async fn partition(&self, side: &[u64]) {
        let others: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|i| !side.contains(i))
            .collect();
        for id in self.running() {
            let blocked = if side.contains(&id) {
                others.clone()
            } else {
                side.to_vec()
            };
            self.admin_post(id, "partition", &PartitionRequest { blocked })
                .await;
        }
    }

    /// Clears the fault filter on every running node.
    pub async fn heal(&self) {
        for id in self.running() {
            self.admin_post(id, "heal", &PartitionRequest::default())
                .await;
        }
    }

    /// `POST /admin/{what}` on node `id`; a failure says whether the node
    /// process is still alive, with its log tail, since a crashed node and a
    /// slow one look alike from here.
    async fn admin_post(&self, id: u64, what: &str, body: &PartitionRequest) {
        let started = Instant::now();
        let sent = self
            .admin
            .post(format!("http://{}/admin/{what}", self.addr(id)))
            .json(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        if let Err(e) = sent {
            let alive = match self.exited().into_iter().find(|(n, _)| *n == id) {
                Some((_, status)) => format!("the process exited: {status}"),
                None => "the process is still running".to_string(),
            };
            panic!(
                "{what} on node {id}: {e:?} after {:?}; {alive}; log:\n{}",
                started.elapsed(),
                tail(&self.node_log(id), 30)
            );
        }
    }

    /// Node processes the harness started that have exited on their own
    /// (crashed), with their exit status.
    pub fn exited(&self) -> Vec<(u64, std::process::ExitStatus)> {
        self.nodes
            .lock()
            .iter_mut()
            .filter_map(|(id, p)| p.child.try_wait().ok().flatten().map(|s| (*id, s)))
            .collect()
    }

    /// Records per shard group as the group's leader reports them (admin
    /// status; every collection counted). Tests use it on a quiet cluster.
    pub async fn shard_records(&self) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        for g in self.shard_groups() {
            for id in self.replicas_of(g) {
                let Some(status) = self.status(id).await else {
                    continue;
                };
                let leading = status
                    .replicas
                    .iter()
                    .find(|r| r.group == g && r.role == RaftRole::Leader);
                if let Some(n) = leading.and_then(|r| r.records) {
                    out.insert(g, n);
                }
            }
        }
        out
    }

    /// Last lines of every log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for id in self.ids() {
            out += &format!("--- node {id}\n{}\n", tail(&self.node_log(id), lines));
        }
        for i in 0..self.router_urls.len() {
            out += &format!("--- router {i}\n{}\n", tail(&self.router_log(i), lines));
        }
        out
    }
}

fn tail(path: &PathBuf, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in self.routers.lock().iter_mut() {
            let _ = r.kill();
            let _ = r.wait();
        }
        let ids: BTreeSet<u64> = self.nodes.lock().keys().copied().collect();
        for id in ids {
            // SIGKILL also ends a stopped process.
            self.kill_node(id);
        }
        if std::thread::panicking() && std::env::var_os("KEEP_CLUSTER").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("cluster kept in {}", dir.keep().display());
            }
        }
    }
}
