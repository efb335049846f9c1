//! The client of the nodes' internal API (used by the router, and by nodes to reach the
//! metadata group): propose a command to a Raft group or read from it, on the group's
//! leader, within a deadline.
//!
//! Where groups live starts from the config's placement and then follows the cluster map
//! kept by the metadata group ([`crate::registry`]): nodes that joined and replicas that
//! moved are found through it ([`ClusterClient::follow_map`]).
//!
//! The leader of each group is cached; a "not leader" answer with a hint
//! moves to the hinted node at once, one without a hint (or a node that does
//! not answer) moves to the next replica after a jittered, bounded backoff.
//! A proposal retried after a timeout or a leader change carries the same
//! request id, so the state machine applies it once (architecture.md,
//! promise 3). Nothing waits past the deadline: the last attempt gets only
//! the time that is left, and then the group is reported unavailable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::catalog::{
    CatalogCommand, CatalogOutcome, CatalogProposal, CatalogRead, CatalogReadReply,
    CatalogReadValue,
};
use crate::config::ClusterConfig;
use crate::placement::{self, METADATA_GROUP};
use crate::registry::ClusterMap;
use crate::secret::{ClusterSecret, SecretError, CLUSTER_SECRET_HEADER};
use crate::wire::{
    self, InternalError, InternalReply, NodeStatus, BINCODE_CONTENT_TYPE, TIMEOUT_HEADER,
};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

tokio::task_local! {
    /// The id of the client request a task serves (set by the router's trace
    /// middleware): sent to the nodes with every call made in that task
    /// ([`crate::logging::REQUEST_ID_HEADER`]), so their log lines of the request carry it.
    pub static REQUEST_ID: String;
}

/// Why a call to a group produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClusterError {
    /// No leader with a quorum answered before the deadline. For a proposal
    /// the outcome is unknown (it may still commit; a retry with the same
    /// request id is safe).
    #[error("Raft group {group} is unavailable: {reason}")]
    Unavailable { group: u64, reason: String },
    /// The group refused the request itself, or a reply could not be
    /// decoded: retrying will not help.
    #[error("Raft group {group} failed the request: {reason}")]
    Failed { group: u64, reason: String },
    /// The encoded request is larger than a node takes; nothing was
    /// proposed. Callers measure their parts first, so this is a backstop.
    #[error("Raft group {group} refused a request of {size} bytes, over the limit of {limit} bytes (MAX_PROPOSAL_BYTES)")]
    TooLarge { group: u64, size: u64, limit: u64 },
}

/// Why the client cannot be built.
#[derive(Debug, Error)]
pub enum ClientInitError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Why a node's admin status could not be read ([`ClusterClient::node_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatusError {
    #[error("node {node} is not in the cluster map")]
    UnknownNode { node: u64 },
    #[error("node {node} unreachable: {reason}")]
    Unreachable { node: u64, reason: String },
    #[error("node {node} answered {status}")]
    Refused { node: u64, status: u16 },
    #[error("node {node} sent an undecodable status: {reason}")]
    Undecodable { node: u64, reason: String },
}

/// Which internal endpoint a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Propose,
    Read,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Propose => "propose",
            Op::Read => "read",
        }
    }
}

/// What one attempt on one node gave.
enum Attempt {
    Answer(Vec<u8>),
    /// Try `Some(node)` next, or the next replica after a backoff.
    Elsewhere(Option<u64>, String),
    /// Retrying cannot help.
    Fatal(String),
    /// The node refused the body's size; retrying cannot help.
    TooLarge {
        size: u64,
        limit: u64,
    },
}

const BACKOFF_START: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(400);
/// Extra time given to the HTTP exchange beyond the node's own budget, so the
/// node's answer (e.g. "timed out") arrives before the client gives up.
const HTTP_SLACK: Duration = Duration::from_millis(300);

/// Where the client looks for groups.
#[derive(Debug, Default)]
struct Topology {
    /// Node id → `http://host:port`.
    nodes: HashMap<u64, String>,
    /// Group → node ids of its replicas, preferred leader first when from placement.
    replicas: HashMap<u64, Vec<u64>>,
    /// The version of the cluster map last followed.
    map_version: u64,
    /// The config's shard groups (`1..=shard_count`), which the map may not list yet.
    initial_shards: Vec<u64>,
    /// Shard groups new collections may use ([`ClusterMap::shard_pool`]).
    shard_pool: Vec<u64>,
    /// Every shard group, ready or not.
    all_shards: Vec<u64>,
}

pub struct ClusterClient {
    http: reqwest::Client,
    topology: RwLock<Topology>,
    /// Group → the node that last answered as its leader.
    leaders: Mutex<HashMap<u64, u64>>,
    /// The most one attempt may wait on one node. A partitioned old leader
    /// holds a request until check-quorum makes it step down (about an
    /// election timeout), so an attempt gets a few election timeouts and then
    /// the next replica is asked.
    attempt_budget: Duration,
    /// Sent with every call (nodes refuse requests without it).
    secret: ClusterSecret,
}

impl ClusterClient {
    /// A client of the nodes in `config`; reads the cluster secret from the config's
    /// `security.secret_file` (a router without it could not talk to any node).
    pub fn new(config: &ClusterConfig) -> Result<Self, ClientInitError> {
        let secret = ClusterSecret::load(&config.secret_file())?;
        let nodes = config
            .nodes
            .iter()
            .map(|n| (n.id, format!("http://{}", n.addr)))
            .collect();
        let replicas = placement::groups(config)
            .map(|g| (g, placement::replicas(config, g)))
            .collect();
        let election =
            Duration::from_millis(config.raft.tick_ms * config.raft.election_ticks as u64);
        let http = reqwest::Client::builder()
            .pool_idle_timeout(crate::wire::NODE_CLIENT_POOL_IDLE)
            .tcp_nodelay(true)
            .build()?;
        let initial_shards: Vec<u64> = placement::shard_groups(config).collect();
        Ok(ClusterClient {
            http,
            topology: RwLock::new(Topology {
                nodes,
                replicas,
                map_version: 0,
                shard_pool: initial_shards.clone(),
                all_shards: initial_shards.clone(),
                initial_shards,
            }),
            leaders: Mutex::new(HashMap::new()),
            attempt_budget: (election * 3).max(Duration::from_secs(1)),
            secret,
        })
    }

    /// Takes node addresses and group replicas from `map` if it is newer than the one
    /// followed so far; whether it was.
    pub fn follow_map(&self, map: &ClusterMap) -> bool {
        let mut t = self.topology.write();
        if map.version <= t.map_version {
            return false;
        }
        for (id, addr) in map.addresses() {
            t.nodes.insert(id, format!("http://{addr}"));
        }
        for (&group, replicas) in &map.groups {
            t.replicas.insert(group, replicas.clone());
        }
        t.shard_pool = map.shard_pool(t.initial_shards.iter().copied());
        t.all_shards = map.all_shard_groups(t.initial_shards.iter().copied());
        t.map_version = map.version;
        true
    }

    /// The shard groups new collections may be spread over, as of the map last followed.
    pub fn shard_pool(&self) -> Vec<u64> {
        self.topology.read().shard_pool.clone()
    }

    /// Every shard group of the cluster (a reset clears them all), as of the map last
    /// followed.
    pub fn all_shard_groups(&self) -> Vec<u64> {
        self.topology.read().all_shards.clone()
    }

    /// The cluster map, read from the metadata group.
    pub async fn cluster_map(&self, deadline: Instant) -> Result<ClusterMap, ClusterError> {
        let reply: CatalogReadReply = self
            .read(METADATA_GROUP, &CatalogRead::ClusterMap, deadline)
            .await?;
        match reply {
            Ok(CatalogReadValue::ClusterMap(map)) => Ok(*map),
            other => Err(ClusterError::Failed {
                group: METADATA_GROUP,
                reason: format!("unexpected answer to a cluster-map read: {other:?}"),
            }),
        }
    }

    /// The shard groups some collection uses, read from the metadata group.
    pub async fn shard_groups_in_use(&self, deadline: Instant) -> Result<Vec<u64>, ClusterError> {
        let reply: CatalogReadReply = self
            .read(METADATA_GROUP, &CatalogRead::ShardGroupsInUse, deadline)
            .await?;
        match reply {
            Ok(CatalogReadValue::Groups(groups)) => Ok(groups),
            other => Err(ClusterError::Failed {
                group: METADATA_GROUP,
                reason: format!("unexpected answer to a groups-in-use read: {other:?}"),
            }),
        }
    }

    /// Proposes a catalogue command with a fresh request id (kept across the internal
    /// retries, so it applies once).
    pub async fn propose_catalog(
        &self,
        command: CatalogCommand,
        deadline: Instant,
    ) -> Result<CatalogOutcome, ClusterError> {
        let proposal = CatalogProposal {
            request_id: rand::random(),
            deadline_ms: crate::clock::wall_deadline(deadline),
            command,
        };
        self.propose(METADATA_GROUP, &proposal, deadline).await
    }

    /// Reads the cluster map and follows it; the map, or why not.
    pub async fn refresh_map(&self, deadline: Instant) -> Result<ClusterMap, ClusterError> {
        let map = self.cluster_map(deadline).await?;
        self.follow_map(&map);
        Ok(map)
    }

    /// Follows the cluster map every `every` for as long as the process runs (call inside
    /// a tokio runtime).
    pub fn follow_map_every(self: std::sync::Arc<Self>, every: Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // A failed read is retried on the next round; calls meanwhile use what
                // is known.
                let _ = self.refresh_map(Instant::now() + every).await;
            }
        });
    }

    /// Node id → `host:port` of every node known.
    pub fn node_addrs(&self) -> Vec<(u64, String)> {
        let t = self.topology.read();
        let mut all: Vec<(u64, String)> = t
            .nodes
            .iter()
            .map(|(&id, url)| (id, url.trim_start_matches("http://").to_owned()))
            .collect();
        all.sort();
        all
    }

    /// Group → node ids of its replicas, as last followed, by group.
    pub fn group_replicas(&self) -> Vec<(u64, Vec<u64>)> {
        let t = self.topology.read();
        let mut all: Vec<(u64, Vec<u64>)> =
            t.replicas.iter().map(|(&g, r)| (g, r.clone())).collect();
        all.sort();
        all
    }

    /// `GET /admin/status` of `node` (with each replica's digest if `digests`: hashing
    /// costs time in the size of the data), within `timeout`.
    pub async fn node_status(
        &self,
        node: u64,
        digests: bool,
        timeout: Duration,
    ) -> Result<NodeStatus, StatusError> {
        let base = self.topology.read().nodes.get(&node).cloned();
        let base = base.ok_or(StatusError::UnknownNode { node })?;
        // reqwest's own text names the URL and little else; the kind is what an
        // operator needs.
        let unreachable = |e: reqwest::Error| StatusError::Unreachable {
            node,
            reason: if e.is_timeout() {
                format!("no answer within {timeout:?}")
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.to_string()
            },
        };
        let response = self
            .http
            .get(format!("{base}/admin/status?digest={digests}"))
            .header(CLUSTER_SECRET_HEADER, self.secret.header_value())
            .timeout(timeout)
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(StatusError::Refused {
                node,
                status: response.status().as_u16(),
            });
        }
        let body = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&body).map_err(|e| StatusError::Undecodable {
            node,
            reason: e.to_string(),
        })
    }

    /// Proposes `command` (bincode) to `group`; decodes the state machine's outcome.
    pub async fn propose<C: Serialize, R: DeserializeOwned>(
        &self,
        group: u64,
        command: &C,
        deadline: Instant,
    ) -> Result<R, ClusterError> {
        self.typed(group, command, Op::Propose, deadline).await
    }

    /// A linearizable read of `group`; decodes the state machine's answer.
    pub async fn read<Q: Serialize, R: DeserializeOwned>(
        &self,
        group: u64,
        request: &Q,
        deadline: Instant,
    ) -> Result<R, ClusterError> {
        self.typed(group, request, Op::Read, deadline).await
    }

    async fn typed<Q: Serialize, R: DeserializeOwned>(
        &self,
        group: u64,
        request: &Q,
        op: Op,
        deadline: Instant,
    ) -> Result<R, ClusterError> {
        let failed = |reason: String| ClusterError::Failed { group, reason };
        let body = wire::encode(request).map_err(|e| failed(e.to_string()))?;
        let bytes = self.call(group, op, body, deadline).await?;
        wire::decode(&bytes).map_err(|e| failed(format!("undecodable answer: {e}")))
    }

    /// Sends `body` to `group`'s leader, following leader changes until an
    /// answer or the deadline.
    pub async fn call(
        &self,
        group: u64,
        op: Op,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<Vec<u8>, ClusterError> {
        let replicas = self
            .topology
            .read()
            .replicas
            .get(&group)
            .filter(|r| !r.is_empty())
            .cloned()
            .ok_or_else(|| ClusterError::Failed {
                group,
                reason: "no such group in the cluster config".into(),
            })?;
        let replicas = &replicas[..];
        let mut target = self
            .leaders
            .lock()
            .get(&group)
            .copied()
            .unwrap_or(replicas[0]);
        let mut backoff = BACKOFF_START;
        let mut last = String::from("no attempt finished");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClusterError::Unavailable {
                    group,
                    reason: format!(
                        "no leader with a quorum answered before the deadline ({last})"
                    ),
                });
            }
            // The node gets the budget less the HTTP slack, so its own
            // "timed out" answer, or the client's timeout, lands by the deadline.
            let remaining = deadline - now;
            let budget = remaining
                .saturating_sub(HTTP_SLACK)
                .min(self.attempt_budget);
            if budget.is_zero() {
                tokio::time::sleep(remaining).await;
                continue;
            }
            match self.attempt(target, group, op, &body, budget).await {
                Attempt::Answer(bytes) => {
                    self.leaders.lock().insert(group, target);
                    return Ok(bytes);
                }
                Attempt::Fatal(reason) => return Err(ClusterError::Failed { group, reason }),
                Attempt::TooLarge { size, limit } => {
                    return Err(ClusterError::TooLarge { group, size, limit })
                }
                Attempt::Elsewhere(Some(hint), why) if hint != target && self.knows(hint) => {
                    // A fresh hint is worth following at once; the backoff
                    // still grows so two nodes naming each other cannot spin.
                    last = why;
                    target = hint;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Attempt::Elsewhere(_, why) => {
                    last = why;
                    self.leaders.lock().remove(&group);
                    target = next_replica(replicas, target);
                    let pause =
                        jitter(backoff).min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn knows(&self, node: u64) -> bool {
        self.topology.read().nodes.contains_key(&node)
    }

    async fn attempt(
        &self,
        node: u64,
        group: u64,
        op: Op,
        body: &[u8],
        budget: Duration,
    ) -> Attempt {
        let base = self.topology.read().nodes.get(&node).cloned();
        let Some(base) = base else {
            return Attempt::Elsewhere(None, format!("node {node} is not in the config"));
        };
        let url = format!("{base}/internal/{group}/{}", op.path());
        let mut request = self.http.post(&url);
        if let Ok(id) = REQUEST_ID.try_with(Clone::clone) {
            request = request.header(crate::logging::REQUEST_ID_HEADER, id);
        }
        let sent = request
            .header(TIMEOUT_HEADER, budget.as_millis().to_string())
            .header(reqwest::header::CONTENT_TYPE, BINCODE_CONTENT_TYPE)
            .header(CLUSTER_SECRET_HEADER, self.secret.header_value())
            .timeout(budget + HTTP_SLACK)
            .body(body.to_vec())
            .send()
            .await;
        let bytes = match sent {
            Ok(response) => match response.bytes().await {
                Ok(b) => b,
                Err(e) => return Attempt::Elsewhere(None, format!("node {node}: {e}")),
            },
            Err(e) => return Attempt::Elsewhere(None, format!("node {node} unreachable: {e}")),
        };
        let reply: InternalReply = match wire::decode(&bytes) {
            Ok(r) => r,
            Err(e) => return Attempt::Elsewhere(None, format!("node {node}: bad reply: {e}")),
        };
        match reply {
            Ok(answer) => Attempt::Answer(answer),
            Err(InternalError::NotLeader { leader }) => {
                Attempt::Elsewhere(leader, format!("node {node} is not the leader"))
            }
            Err(InternalError::Timeout) => {
                Attempt::Elsewhere(None, format!("node {node} timed out"))
            }
            Err(InternalError::NoQuorum) => {
                Attempt::Elsewhere(None, format!("node {node} knows no leader with a quorum"))
            }
            Err(InternalError::Dropped) => {
                Attempt::Elsewhere(None, format!("node {node} dropped the proposal"))
            }
            Err(InternalError::UnknownGroup(_)) => {
                Attempt::Elsewhere(None, format!("node {node} hosts no replica of the group"))
            }
            Err(InternalError::Invalid(m)) => Attempt::Fatal(m),
            Err(InternalError::Unauthorized) => Attempt::Fatal(format!(
                "node {node} refused the cluster secret (is security.secret_file the same \
                 file for every process?)"
            )),
            Err(InternalError::Overloaded) => {
                Attempt::Elsewhere(None, format!("node {node} is overloaded"))
            }
            Err(InternalError::TooLarge { size, limit }) => Attempt::TooLarge { size, limit },
            Err(InternalError::Internal(m)) => {
                Attempt::Elsewhere(None, format!("node {node}: {m}"))
            }
            Err(InternalError::ReplicaFailed(m)) => {
                Attempt::Elsewhere(None, format!("node {node}'s replica is unavailable: {m}"))
            }
        }
    }
}

fn next_replica(replicas: &[u64], current: u64) -> u64 {
    let i = replicas
        .iter()
        .position(|r| *r == current)
        .map_or(0, |i| i + 1);
    replicas[i % replicas.len()]
}

/// Somewhere in [d/2, d], so routers retrying together spread out.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_replica_wraps_and_starts_over_for_strangers() {
        assert_eq!(next_replica(&[1, 2, 3], 1), 2);
        assert_eq!(next_replica(&[1, 2, 3], 3), 1);
        assert_eq!(next_replica(&[1, 2, 3], 9), 1);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j <= Duration::from_millis(100));
        }
    }
}
