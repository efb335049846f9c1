//! Requests that change a running node: the fault filter (partitions,
//! delay), leadership transfer; and raw requests to the internal API.

use std::time::{Duration, Instant};

use common::wire::{
    self, DelayRequest, InternalError, InternalReply, PartitionRequest, TransferLeaderRequest,
    BINCODE_CONTENT_TYPE, TIMEOUT_HEADER,
};

use super::Cluster;

impl Cluster {
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

    /// Holds every Raft message node `id` sends for `ms` milliseconds (the
    /// transport filter's delay; [`Cluster::heal`] clears it).
    pub async fn delay(&self, id: u64, ms: u64) {
        self.admin_post(id, "delay", &DelayRequest { ms }).await;
    }

    /// Clears the fault filter on every running node.
    pub async fn heal(&self) {
        for id in self.running() {
            self.admin_post(id, "heal", &PartitionRequest::default())
                .await;
        }
    }

    /// Asks node `id` to hand the leadership of `group` to node `to`.
    pub async fn transfer_leader(&self, id: u64, group: u64, to: u64) {
        self.admin_post(id, "transfer-leader", &TransferLeaderRequest { group, to })
            .await;
    }

    /// `POST /admin/{what}` on node `id`; a failure says whether the node
    /// process is still alive, with its log tail, since a crashed node and a
    /// slow one look alike from here.
    async fn admin_post(&self, id: u64, what: &str, body: &impl serde::Serialize) {
        let started = Instant::now();
        let sent = self
            .admin
            .post(format!("{}/admin/{what}", self.node_url(id)))
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
                self.node_log_tail(id, 30)
            );
        }
    }

    /// One request (a bincode `body`) to node `id`'s internal API at `path`
    /// (e.g. `/internal/1/propose`) with the time `budget` the node gets;
    /// the reply decoded as an `InternalReply` (transport failures become
    /// `InternalError::Internal`).
    pub async fn post_internal(
        &self,
        id: u64,
        path: &str,
        body: Vec<u8>,
        budget: Duration,
    ) -> InternalReply {
        let resp = self
            .admin
            .post(format!("{}{path}", self.node_url(id)))
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
}

/// A deadline (Unix ms) a minute from now, for proposals a test sends to a node's internal
/// API by hand (a node refuses a proposal whose deadline has passed).
pub fn proposal_deadline() -> u64 {
    common::clock::wall_deadline(std::time::Instant::now() + std::time::Duration::from_secs(60))
}
