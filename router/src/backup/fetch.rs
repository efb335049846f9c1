//! The backup CLI's client of `POST /internal/{group}/backup`: finds the group's leader
//! (following "not leader" hints, trying the next replica after a pause otherwise) and
//! streams the answer into a sink chunk by chunk.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::backup::BackupRequest;
use common::config::ClusterConfig;
use common::group_client::ClusterClient;
use common::placement::{self, METADATA_GROUP};
use common::registry::ClusterMap;
use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use common::wire::{self, InternalError, InternalReply, BINCODE_CONTENT_TYPE, TIMEOUT_HEADER};

use super::BackupError;

/// Pause before asking the next replica.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The node's budget for its ReadIndex, per attempt.
const ATTEMPT_BUDGET: Duration = Duration::from_secs(10);

pub struct GroupFetcher {
    http: reqwest::Client,
    /// Node id → `http://host:port`.
    nodes: HashMap<u64, String>,
    /// Group → node ids of its replicas: the config's first placement until
    /// [`GroupFetcher::follow`] takes the cluster map's.
    replicas: HashMap<u64, Vec<u64>>,
    secret: ClusterSecret,
}

impl GroupFetcher {
    pub fn new(config: &ClusterConfig) -> Result<Self, BackupError> {
        let secret = ClusterSecret::load(&config.secret_file())
            .map_err(|e| BackupError::Setup(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(common::wire::NODE_CLIENT_POOL_IDLE)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BackupError::Setup(format!("HTTP client: {e}")))?;
        Ok(GroupFetcher {
            http,
            nodes: config
                .nodes
                .iter()
                .map(|n| (n.id, format!("http://{}", n.addr)))
                .collect(),
            replicas: placement::groups(config)
                .map(|g| (g, placement::replicas(config, g)))
                .collect(),
            secret,
        })
    }

    /// Reads the cluster map through `cluster` and takes node addresses and group
    /// replicas from it (replicas move, nodes join, groups are created at run time);
    /// the map.
    pub async fn follow(
        &mut self,
        cluster: &ClusterClient,
        deadline: Instant,
    ) -> Result<ClusterMap, BackupError> {
        let map = cluster
            .refresh_map(deadline)
            .await
            .map_err(|e| BackupError::Node {
                group: METADATA_GROUP,
                reason: format!("reading the cluster map: {e}"),
            })?;
        for (id, addr) in cluster.node_addrs() {
            self.nodes.insert(id, format!("http://{addr}"));
        }
        self.replicas.extend(cluster.group_replicas());
        Ok(map)
    }

    /// Streams `group`'s backup into `sink`; returns the bytes streamed. An error after
    /// the first chunk leaves `sink` with part of a stream (the caller discards it).
    pub async fn fetch(
        &self,
        group: u64,
        include_records: bool,
        deadline: Instant,
        sink: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64, BackupError> {
        let replicas = self.replicas.get(&group).cloned().unwrap_or_default();
        if replicas.is_empty() {
            return Err(BackupError::Node {
                group,
                reason: "no such group in the cluster".into(),
            });
        }
        let body = wire::encode(&BackupRequest { include_records })
            .map_err(|e| BackupError::Setup(e.to_string()))?;
        let mut target = replicas[0];
        let mut last = String::from("no attempt finished");
        while Instant::now() < deadline {
            let url = match self.nodes.get(&target) {
                Some(base) => format!("{base}/internal/{group}/backup"),
                None => break,
            };
            let sent = self
                .http
                .post(url)
                .header(TIMEOUT_HEADER, ATTEMPT_BUDGET.as_millis().to_string())
                .header(reqwest::header::CONTENT_TYPE, BINCODE_CONTENT_TYPE)
                .header(CLUSTER_SECRET_HEADER, self.secret.header_value())
                .body(body.clone())
                .send()
                .await;
            let mut resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    last = format!("node {target}: {e}");
                    target = next(&replicas, target);
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            if resp.status().is_success() {
                let mut bytes = 0u64;
                while let Some(chunk) = resp.chunk().await.map_err(|e| BackupError::Node {
                    group,
                    reason: format!("node {target}: the stream broke: {e}"),
                })? {
                    sink(&chunk).map_err(|e| BackupError::Setup(format!("writing: {e}")))?;
                    bytes += chunk.len() as u64;
                }
                return Ok(bytes);
            }
            let status = resp.status();
            // An error answer is a small bincode InternalReply.
            let answer = resp.bytes().await.ok();
            let error = answer
                .as_deref()
                .and_then(|b| wire::decode::<InternalReply>(b).ok())
                .and_then(|r| r.err());
            match error {
                Some(InternalError::NotLeader { leader: Some(l) })
                    if l != target && replicas.contains(&l) =>
                {
                    last = format!("node {target}: not leader");
                    target = l;
                }
                Some(
                    e @ (InternalError::UnknownGroup(_)
                    | InternalError::Invalid(_)
                    | InternalError::Unauthorized
                    | InternalError::TooLarge { .. }),
                ) => {
                    return Err(BackupError::Node {
                        group,
                        reason: format!("node {target}: {e}"),
                    })
                }
                other => {
                    last = match other {
                        Some(e) => format!("node {target}: {e}"),
                        None => format!("node {target}: HTTP {status}"),
                    };
                    target = next(&replicas, target);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        Err(BackupError::Node {
            group,
            reason: format!("no leader answered before the deadline ({last})"),
        })
    }
}

fn next(replicas: &[u64], current: u64) -> u64 {
    let i = replicas.iter().position(|&r| r == current).unwrap_or(0);
    replicas[(i + 1) % replicas.len()]
}
