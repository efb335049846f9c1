//! The workspace's one process cluster for tests: `node` processes and zero or
//! more `router` processes on free loopback ports, with a cluster config, the
//! cluster secret and data in a temp dir. Both test tiers use it: the
//! end-to-end tests here (`tests/tests/`) and node's multi-process tests
//! (`node/tests/`, which add their KV test state machine's calls on top).
//! Everything is killed on drop (set `KEEP_CLUSTER=1` to keep the dir, logs
//! included, after a failure).
//!
//! - [`config`]: the cluster config the processes run on;
//! - [`nodes`]: node processes (spawn, kill -9, SIGSTOP/SIGCONT, logs);
//! - [`routers`]: router processes and their HTTP clients;
//! - [`status`]: what the nodes report (leaders, convergence, records);
//! - [`admin`]: requests that change a running node (partitions, leadership)
//!   and the internal API;
//! - [`membership`]: replicas created and removed, groups' conf changes;
//! - [`ports`]: loopback ports claimed for the processes.
//!
//! The binaries are the workspace's own, found next to the test executable's
//! profile dir (`target/debug/deps/<test>` -> `target/debug/{node,router}`):
//! Cargo gives `CARGO_BIN_EXE_*` only for the test's own package, so
//! `scripts/test` builds every binary (`cargo build --workspace --bins`)
//! first. A test of the node package passes its own `node` in
//! [`NodeProgram`].

mod admin;
mod config;
mod membership;
mod nodes;
mod ports;
mod routers;
mod scrape;
mod status;

pub use ports::free_port;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use common::config::ClusterConfig;
use common::placement;
use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use parking_lot::Mutex;

use crate::faults::netns::{Member, NetLab};
use crate::faults::NetFaults;

pub use admin::proposal_deadline;
pub use routers::RouterOptions;
pub use scrape::Scrape;

/// Raft timing of test clusters: a 500 ms election timeout keeps failover
/// tests short.
pub const TICK_MS: u64 = 50;
pub const ELECTION_TICKS: u64 = 10;

/// Election timeout of a test cluster (raft-rs randomises it in [1x, 2x)).
pub fn election_timeout() -> Duration {
    Duration::from_millis(TICK_MS * ELECTION_TICKS)
}

/// How long a cluster may take to elect every group and bring its routers up
/// (generous: two cores shared by parallel test processes).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The program every node process runs.
#[derive(Debug, Clone)]
pub struct NodeProgram {
    /// `None`: the workspace's `node` binary next to the test binary.
    pub path: Option<PathBuf>,
    /// Arguments before `--config` and `--id` (e.g. `--kv-state-machines`).
    pub args: Vec<String>,
    /// The nodes' `RUST_LOG`.
    pub log_filter: String,
    /// More environment for every node (e.g. `NODE_FAULT_STORAGE`; see
    /// [`crate::faults::power`]).
    pub env: Vec<(String, String)>,
}

impl Default for NodeProgram {
    fn default() -> Self {
        NodeProgram {
            path: None,
            args: Vec::new(),
            // raft-rs's own info lines (every election) only at warn.
            log_filter: "info,raft=warn".into(),
            env: Vec::new(),
        }
    }
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
    /// `raft.wal_segment_bytes`; `None` keeps the default (small values give
    /// many WAL segments).
    pub wal_segment_bytes: Option<u64>,
    /// `raft.entry_cache_bytes`; `None` keeps the default (8 MiB). 0 keeps no
    /// applied entry in memory: a leader reads every one it sends back from its WAL.
    pub entry_cache_bytes: Option<u64>,
    /// `raft.log` (`"group"` or `"node"`); by default `TEST_RAFT_LOG` if set (so a
    /// whole test tier can run on the node-wide log), else the config's default.
    pub raft_log: Option<String>,
    pub node_program: NodeProgram,
    /// Started once every group has a leader; none for a nodes-only cluster.
    pub routers: Vec<RouterOptions>,
    /// Every node and router in its own network namespace on a private
    /// bridge ([`crate::faults::netns`]), so [`Cluster::net`] can cut real
    /// traffic. Needs root, iproute2 and nftables: check
    /// [`crate::faults::netns::available`] first and skip without them.
    pub netns: bool,
    /// The placement driver's settings; `None` turns it off (the default here:
    /// most tests drive membership themselves and expect it to stay put).
    pub placement: Option<common::config::PlacementSection>,
    /// Nodes in the config with `join = true` (ids after the others), not
    /// started with the cluster: a test starts them with [`Cluster::spawn_node`].
    pub join_nodes: usize,
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
            wal_segment_bytes: None,
            entry_cache_bytes: None,
            raft_log: std::env::var("TEST_RAFT_LOG")
                .ok()
                .filter(|s| !s.is_empty()),
            node_program: NodeProgram::default(),
            routers: vec![RouterOptions::default()],
            netns: false,
            placement: None,
            join_nodes: 0,
        }
    }
}

/// One node process the harness started.
struct NodeProc {
    child: Child,
    paused: bool,
}

pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    pub config_path: PathBuf,
    pub config: ClusterConfig,
    node_program: NodeProgram,
    nodes: Mutex<BTreeMap<u64, NodeProc>>,
    routers: Mutex<Vec<Child>>,
    router_urls: Vec<String>,
    /// Client of the node endpoints (admin and internal API), with the secret.
    admin: reqwest::Client,
    secret: ClusterSecret,
    /// The private network with `ClusterOptions::netns` (dropped after the
    /// processes: `Drop` kills them first).
    net: Option<NetFaults>,
    /// Groups the placement driver rebuilt on other nodes than the config's
    /// placement (see [`Cluster::record_replicas`]).
    moved: Mutex<BTreeMap<u64, Vec<u64>>>,
}

/// Path of a workspace binary built in the same profile as this test (or
/// as the running binary: the chaos driver in `target/<profile>/`).
/// `NODE_BIN` / `ROUTER_BIN` name another one (e.g. a release build).
pub fn binary(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase());
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary> or target/<profile>/<binary>
    // -> target/<profile>/<name>
    let dir = exe.parent().expect("executable in a directory");
    let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("target/<profile>/deps")
    } else {
        dir
    };
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
    /// Writes the config and the cluster secret, starts every node, waits
    /// until every Raft group has a leader, then starts the routers and waits
    /// for their healthcheck.
    pub async fn start(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let net = opts.netns.then(|| {
            let ids: Vec<u64> = (1..=opts.nodes as u64).collect();
            let lab = NetLab::create(&ids, opts.routers.len())
                .and_then(NetFaults::new)
                .unwrap_or_else(|e| panic!("ClusterOptions::netns: {e}"));
            lab
        });
        let text = config::text(
            &opts,
            &dir.path().join("data"),
            net.as_ref().map(|n| n.lab()),
        );
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
            .pool_idle_timeout(common::wire::NODE_CLIENT_POOL_IDLE)
            .timeout(Duration::from_secs(2))
            .default_headers(headers)
            .build()
            .expect("http client");
        let mut cluster = Cluster {
            dir: Some(dir),
            config_path,
            config,
            node_program: opts.node_program.clone(),
            nodes: Mutex::new(BTreeMap::new()),
            routers: Mutex::new(Vec::new()),
            router_urls: Vec::new(),
            admin,
            secret,
            net,
            moved: Mutex::new(BTreeMap::new()),
        };
        for id in cluster.initial_ids() {
            cluster.spawn_node(id);
        }
        cluster.wait_all_leaders(START_TIMEOUT).await;
        cluster.wait_registered(START_TIMEOUT).await;
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

    /// The nodes started with the cluster (not `join`).
    pub fn initial_ids(&self) -> Vec<u64> {
        self.config.initial_nodes().map(|n| n.id).collect()
    }

    /// Every Raft group: the catalogue (0) and the shard groups.
    pub fn groups(&self) -> Vec<u64> {
        placement::groups(&self.config).collect()
    }

    /// Shard groups (`1..=shard_count`; group 0 is the catalogue).
    pub fn shard_groups(&self) -> Vec<u64> {
        placement::shard_groups(&self.config).collect()
    }

    /// Nodes hosting a replica of `group`: the config's placement, or where
    /// the placement driver last rebuilt it.
    pub fn replicas_of(&self, group: u64) -> Vec<u64> {
        match self.moved.lock().get(&group) {
            Some(replicas) => replicas.clone(),
            None => placement::replicas(&self.config, group),
        }
    }

    /// The placement driver rebuilt `group`'s lost replicas on `replicas`
    /// (with more nodes than the replication factor it may pick another node
    /// than the one that lost its data): later checks expect them there.
    pub fn record_replicas(&self, group: u64, mut replicas: Vec<u64>) {
        replicas.sort_unstable();
        let mut placed = placement::replicas(&self.config, group);
        placed.sort_unstable();
        let mut moved = self.moved.lock();
        if replicas == placed {
            moved.remove(&group);
        } else {
            moved.insert(group, replicas);
        }
    }

    fn addr(&self, id: u64) -> String {
        self.config.node(id).expect("node in config").addr.clone()
    }

    /// `http://host:port` of node `id` (its Raft, internal and admin endpoints).
    pub fn node_url(&self, id: u64) -> String {
        format!("http://{}", self.addr(id))
    }

    /// The network faults of a cluster started with `ClusterOptions::netns`.
    pub fn net(&self) -> &NetFaults {
        self.net
            .as_ref()
            .expect("Cluster::net needs a cluster started with ClusterOptions::netns")
    }

    /// The command that runs `program` as `member`: in its namespace with
    /// `ClusterOptions::netns`, directly otherwise.
    fn command(&self, member: Member, program: &Path) -> std::process::Command {
        match &self.net {
            Some(net) => net.lab().command(member, program),
            None => std::process::Command::new(program),
        }
    }

    /// What every node process runs.
    pub fn node_program(&self) -> &NodeProgram {
        &self.node_program
    }

    /// The cluster secret every node endpoint requires.
    pub fn cluster_secret(&self) -> &ClusterSecret {
        &self.secret
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

/// The last `lines` lines of a log file (empty if unreadable).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An append-mode log file for a child process's stdout and stderr.
fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file")
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
