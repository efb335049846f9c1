//! The KV test state machine (`node --kv-state-machines`): cluster options
//! that run it on every group, and its client calls.

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use common::wire::{self, InternalError, InternalReply};
// The one place that names where the KV state machine lives; tests import it from here.
pub use node::kv::{KvCommand, KvOutcome, KvRead, KvReadReply};

use super::{Cluster, ClusterOptions};

/// [`super::options`] with every group running the KV state machine.
pub fn options() -> ClusterOptions {
    let mut opts = super::options();
    opts.node_program.args.push("--kv-state-machines".into());
    opts
}

/// Calls of the KV state machine on a [`Cluster`] started with [`options`]
/// (an extension trait: the cluster itself is the workspace's).
pub trait KvClient: Borrow<Cluster> {
    /// One propose on node `id`.
    async fn propose(
        &self,
        id: u64,
        group: u64,
        cmd: &KvCommand,
        budget: Duration,
    ) -> InternalReply {
        // Every proposal travels in the envelope with a fresh request id.
        let body = wire::encode(&node::kv::proposal(cmd, budget)).expect("encode");
        self.borrow()
            .post_internal(id, &format!("/internal/{group}/propose"), body, budget)
            .await
    }

    /// One linearizable read on node `id`.
    async fn read(
        &self,
        id: u64,
        group: u64,
        req: &KvRead,
        budget: Duration,
    ) -> Result<KvReadReply, InternalError> {
        let body = wire::encode(req).expect("encode");
        let bytes = self
            .borrow()
            .post_internal(id, &format!("/internal/{group}/read"), body, budget)
            .await?;
        wire::decode(&bytes).map_err(|e| InternalError::Internal(e.to_string()))
    }

    /// Puts `key` in `group` through whichever running node leads it, retrying
    /// (like the router) on not-leader and unavailability until `timeout`.
    async fn put(
        &self,
        group: u64,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<(), InternalError> {
        let cluster: &Cluster = self.borrow();
        let cmd = KvCommand::Put {
            key: key.into(),
            value: value.into(),
        };
        let deadline = Instant::now() + timeout;
        let mut target = cluster.find_leader(group, &cluster.running()).await;
        let mut last = InternalError::NoQuorum;
        while Instant::now() < deadline {
            let Some(id) = target.filter(|id| cluster.running().contains(id)) else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                target = cluster.find_leader(group, &cluster.running()).await;
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
                    target = cluster.find_leader(group, &cluster.running()).await;
                }
            }
        }
        Err(last)
    }

    /// Linearizable get through the group's leader, with retries.
    async fn get(
        &self,
        group: u64,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<String>, InternalError> {
        let cluster: &Cluster = self.borrow();
        let deadline = Instant::now() + timeout;
        let mut last = InternalError::NoQuorum;
        while Instant::now() < deadline {
            if let Some(id) = cluster.find_leader(group, &cluster.running()).await {
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
}

impl KvClient for Cluster {}
