//! Cluster configuration (`cluster-config/*.toml`): nodes and their
//! addresses, data directory, replication factor, shard count, Raft timing
//! and router options. Every process of a cluster reads the same file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid cluster config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub cluster: ClusterSection,
    #[serde(default)]
    pub raft: RaftSection,
    #[serde(default)]
    pub router: RouterSection,
    #[serde(default)]
    pub security: SecuritySection,
    #[serde(default)]
    pub placement: PlacementSection,
    pub nodes: Vec<NodeEntry>,
}

/// The placement driver (runs on the metadata group's leader; see the node's
/// `placement` module).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementSection {
    /// Whether the driver acts (it always reports). Default true.
    pub enabled: bool,
    /// How often it looks at the cluster. Default 1000 ms.
    pub tick_ms: u64,
    /// A node that has not answered for this long is down: its replicas are rebuilt on
    /// other nodes. Default 60 s.
    pub down_after_secs: u64,
    /// Least time between the starts of two replica moves (new replicas being built),
    /// so rebuilding does not crowd out foreground traffic. Default 2000 ms.
    pub move_interval_ms: u64,
}

impl Default for PlacementSection {
    fn default() -> Self {
        PlacementSection {
            enabled: true,
            tick_ms: 1000,
            down_after_secs: 60,
            move_interval_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub name: String,
    /// Root of every node's data; a relative path is taken from the working
    /// directory (scripts/cluster runs from the repository root).
    pub data_dir: PathBuf,
    pub replication_factor: usize,
    /// Number of shard Raft groups; every collection is spread over all of them.
    pub shard_count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    pub tick_ms: u64,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// A replica snapshots its state machine after this many applied entries...
    pub snapshot_interval_entries: u64,
    /// ...or after this many bytes of applied commands (or a quarter of its last snapshot
    /// file's size, if larger), whichever comes first; 0 turns the byte trigger off.
    /// Bounds the log a restart replays when entries are few but large (bulk adds).
    pub snapshot_interval_bytes: u64,
    pub max_inflight_msgs: usize,
    pub max_size_per_msg: u64,
    /// A replica's WAL starts a new segment file past this size (default 64 MiB).
    pub wal_segment_bytes: u64,
    /// Bytes of applied Raft entries a replica keeps in memory (default 8 MiB); older
    /// applied entries, until a snapshot compacts them, are read back from the WAL when
    /// a leader catches up a slow follower. Unapplied entries always stay in memory.
    pub entry_cache_bytes: u64,
    /// A shard replica acknowledges a write once it is applied to the records and
    /// indexes it in the background; queries scan the not yet indexed record versions
    /// exactly. Past this many of them the replica waits before applying more writes
    /// (writes slow to the indexer's pace; 0: no limit). Default 20,000: a query's scan
    /// of that many 128-d vectors is about 2 ms.
    pub max_index_lag: u64,
    /// A group whose leader has had nothing to do for this many ticks (every entry
    /// committed, applied and on every replica; no request, read, transfer or conf
    /// change) hibernates: it stops ticking and heartbeating until a request or a
    /// message wakes it, and its followers wake by themselves when the leader's node
    /// goes silent for an election timeout (node-level keepalives). Default 20 (2 s);
    /// 0: never.
    pub hibernate_after_ticks: u64,
    /// A leader answers linearizable reads on a lease (no heartbeat round per read)
    /// for 90% of `(election_ticks - 1) * tick_ms` after a quorum confirmed it; every
    /// replica refuses votes for `(election_ticks - 1) * tick_ms` after hearing from
    /// its leader or opening, whatever this says (`node/src/raft/lease.rs`). Default
    /// true; false: every read takes a ReadIndex round.
    pub lease_reads: bool,
    /// Where a node's replicas keep their Raft logs: `"group"` (default), a WAL per
    /// replica in its group directory, each fsyncing on its own; `"node"`, one log for
    /// all of them (`<node data dir>/raft-log/`, 4 lanes that fsync in parallel): the
    /// ready rounds of replicas of a lane persisting at the same time share one write
    /// and one fsync, which pays with hundreds of groups writing at once (README, "The
    /// node-wide log"). A data directory keeps the layout it was created with: a node
    /// refuses to start on one of the other.
    pub log: RaftLogLayout,
}

/// See [`RaftSection::log`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RaftLogLayout {
    #[default]
    Group,
    Node,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_interval_entries: 10_000,
            snapshot_interval_bytes: 4 << 20,
            max_inflight_msgs: 256,
            max_size_per_msg: 1 << 20,
            wal_segment_bytes: 64 << 20,
            entry_cache_bytes: 8 << 20,
            max_index_lag: 20_000,
            hibernate_after_ticks: 20,
            lease_reads: true,
            log: RaftLogLayout::Group,
        }
    }
}

/// What `add` does with ids that already exist.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AddExisting {
    /// 409 IDAlreadyExists, nothing written (the seed's rule).
    #[default]
    Reject,
    /// Skip existing ids silently (Chroma 1.x).
    Skip,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSection {
    pub listen: String,
    pub add_existing: AddExisting,
    pub allow_reset: bool,
    pub request_timeout_ms: u64,
    pub max_batch_size: usize,
    /// Chroma's `chroma_server_authn_provider`: the only one supported is
    /// `chromadb.auth.token_authn.TokenAuthenticationServerProvider`; unset =
    /// the API is open (as Chroma's is). `CHROMA_SERVER_AUTHN_PROVIDER` overrides.
    pub authn_provider: Option<String>,
    /// One token (`CHROMA_SERVER_AUTHN_CREDENTIALS`).
    pub authn_credentials: Option<String>,
    /// Chroma's users file (`CHROMA_SERVER_AUTHN_CREDENTIALS_FILE`).
    pub authn_credentials_file: Option<PathBuf>,
    /// `Authorization` (`Bearer <token>`, the default) or `X-Chroma-Token`
    /// (`CHROMA_AUTH_TOKEN_TRANSPORT_HEADER`).
    pub auth_token_transport_header: Option<String>,
    /// Largest request body read; larger ones get 413 (`ROUTER_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Requests served at once; more get 429 with `Retry-After`
    /// (`ROUTER_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// PEM certificate chain; with `tls_key_file` the router serves HTTPS only
    /// (`ROUTER_TLS_CERT_FILE`). Both or neither.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file` (`ROUTER_TLS_KEY_FILE`).
    pub tls_key_file: Option<PathBuf>,
}

impl Default for RouterSection {
    fn default() -> Self {
        RouterSection {
            listen: "127.0.0.1:8000".into(),
            add_existing: AddExisting::Reject,
            allow_reset: false,
            request_timeout_ms: 10_000,
            max_batch_size: 5461,
            authn_provider: None,
            authn_credentials: None,
            authn_credentials_file: None,
            auth_token_transport_header: None,
            max_body_bytes: 32 << 20,
            max_in_flight: 64,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// The cluster secret and the limits of a node's endpoints (README "Security").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// File holding the cluster secret (see [`crate::secret`]); unset =
    /// `{data_dir}/cluster-secret`, which `scripts/cluster start` generates.
    pub secret_file: Option<PathBuf>,
    /// Largest `POST /raft/batch` body a node accepts (Raft traffic without snapshots). A
    /// sender's batch stops growing at 16 MiB, but one append may carry an entry of up to
    /// 64 MiB (the largest proposal), so the default leaves room for both.
    pub max_raft_batch_bytes: usize,
    /// Largest `POST /raft/snapshot` body: one snapshot message carries a whole shard
    /// replica's snapshot file (records and HNSW graphs), so this bounds the data one
    /// shard may hold. A sender does not send a snapshot above it (it logs an error
    /// naming this setting; the lagging replica stays behind until it is raised).
    pub max_raft_snapshot_bytes: usize,
    /// Raft transport requests a node serves at once (each peer sends at most two at a
    /// time: one batch, one snapshot); more get 503 with `Retry-After`.
    pub max_raft_requests_in_flight: usize,
    /// Internal and admin requests a node serves at once; more get 503 with `Retry-After`.
    pub max_requests_in_flight: usize,
    /// Sum of the declared body sizes (`Content-Length`) of internal and admin requests
    /// in flight; a request that would pass it gets 503 with `Retry-After`. Bounds the
    /// memory buffered request bodies take.
    pub max_request_bytes_in_flight: usize,
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection {
            secret_file: None,
            max_raft_batch_bytes: 128 << 20,
            max_raft_snapshot_bytes: 1 << 30,
            max_raft_requests_in_flight: 64,
            max_requests_in_flight: 256,
            max_request_bytes_in_flight: 1 << 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Raft node id; 1-based, unique.
    pub id: u64,
    /// host:port of the node's HTTP listener (Raft transport and internal API).
    pub addr: String,
    /// A node added after the cluster's first start (`scripts/cluster add-node`): it
    /// bootstraps no group; the placement driver gives it replicas. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
    /// Drained and removed from the cluster (`scripts/cluster remove-node`): not started
    /// again. It keeps its place in the first placement. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl ClusterConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: ClusterConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: "<text>".into(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.nodes.is_empty() {
            return invalid("no nodes".into());
        }
        let ids: BTreeSet<u64> = self.nodes.iter().map(|n| n.id).collect();
        if ids.len() != self.nodes.len() || ids.contains(&0) {
            return invalid("node ids must be unique and non-zero".into());
        }
        let rf = self.cluster.replication_factor;
        let initial = self.initial_nodes().count();
        if rf == 0 || rf > initial {
            return invalid(format!(
                "replication_factor {rf} must be between 1 and the count of nodes that \
                 started the cluster {initial}"
            ));
        }
        let p = &self.placement;
        if p.tick_ms == 0 || p.down_after_secs == 0 {
            return invalid("placement: tick_ms and down_after_secs must be at least 1".into());
        }
        if self.cluster.shard_count == 0 {
            return invalid("shard_count must be at least 1".into());
        }
        let r = &self.raft;
        if r.tick_ms == 0 || r.heartbeat_ticks == 0 || r.election_ticks <= r.heartbeat_ticks {
            return invalid(
                "raft: tick_ms > 0 and election_ticks > heartbeat_ticks > 0 required".into(),
            );
        }
        let s = &self.security;
        if s.max_raft_batch_bytes < 1 << 20
            || s.max_raft_snapshot_bytes < 1 << 20
            || s.max_raft_requests_in_flight == 0
            || s.max_requests_in_flight == 0
            || s.max_request_bytes_in_flight < 1 << 20
        {
            return invalid(
                "security: body limits must be at least 1 MiB and request limits at least 1".into(),
            );
        }
        Ok(())
    }

    /// The cluster secret's file: `security.secret_file`, or `{data_dir}/cluster-secret`.
    pub fn secret_file(&self) -> PathBuf {
        self.security
            .secret_file
            .clone()
            .unwrap_or_else(|| self.cluster.data_dir.join("cluster-secret"))
    }

    pub fn node(&self, id: u64) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The nodes that started the cluster (not `join`), in config order: the first
    /// placement of groups is computed over them.
    pub fn initial_nodes(&self) -> impl Iterator<Item = &NodeEntry> + '_ {
        self.nodes.iter().filter(|n| !n.join)
    }

    /// The data directory of node `id`, under the cluster's data dir.
    pub fn node_data_dir(&self, id: u64) -> PathBuf {
        self.cluster.data_dir.join(format!("node-{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[cluster]
name = "t"
data_dir = "data/t"
replication_factor = 3
shard_count = 4

[raft]
tick_ms = 50

[[nodes]]
id = 1
addr = "127.0.0.1:9101"
[[nodes]]
id = 2
addr = "127.0.0.1:9102"
[[nodes]]
id = 3
addr = "127.0.0.1:9103"
"#;

    #[test]
    fn parses_with_defaults() {
        let c = ClusterConfig::parse(SAMPLE).unwrap();
        assert_eq!(c.raft.tick_ms, 50);
        assert_eq!(c.raft.election_ticks, 10);
        assert_eq!(c.router.listen, "127.0.0.1:8000");
        assert_eq!(c.node_data_dir(2), PathBuf::from("data/t/node-2"));
        assert_eq!(c.secret_file(), PathBuf::from("data/t/cluster-secret"));
        assert_eq!(c.security, SecuritySection::default());
        let named = ClusterConfig::parse(&format!(
            "{SAMPLE}\n[security]\nsecret_file = \"/etc/vdb/secret\"\n"
        ))
        .unwrap();
        assert_eq!(named.secret_file(), PathBuf::from("/etc/vdb/secret"));
        assert!(ClusterConfig::parse(&format!(
            "{SAMPLE}\n[security]\nmax_requests_in_flight = 0\n"
        ))
        .is_err());
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(ClusterConfig::parse(
            &SAMPLE.replace("replication_factor = 3", "replication_factor = 4")
        )
        .is_err());
        assert!(
            ClusterConfig::parse(&SAMPLE.replace("shard_count = 4", "shard_count = 0")).is_err()
        );
        assert!(ClusterConfig::parse(&SAMPLE.replace("id = 2", "id = 1")).is_err());
        assert!(
            ClusterConfig::parse(&SAMPLE.replace("tick_ms = 50", "tick_ms = 50\nbogus = 1"))
                .is_err()
        );
    }

    #[test]
    fn shipped_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster-config");
        for (file, nodes) in [("local-3.toml", 3), ("local-5.toml", 5)] {
            let c = ClusterConfig::load(&dir.join(file)).unwrap();
            assert_eq!(c.nodes.len(), nodes, "{file}");
            assert_eq!(c.cluster.replication_factor, 3, "{file}");
        }
    }
}
