//! Commands and reads on one collection's shards.
//!
//! A collection's part on a shard is created right after the catalogue
//! creates the collection; if that did not happen (the router died in
//! between, or the shard had no quorum then), the shard answers "no such
//! collection" and this module repairs it: it asks the metadata group
//! whether the collection exists (404 if not, e.g. deleted through another
//! router) and, if it does, creates the part and retries once. So the
//! catalogue is the truth and shards catch up lazily.

use std::time::Instant;

use common::catalog::CollectionModel;
use common::command::{ApplyOutcome, Proposal, ShardCommand};
use common::read::{ShardRead, ShardReadError, ShardReadReply, ShardReadValue};
use futures::future::join_all;

use crate::catalog::Catalog;
use crate::cluster::{ClusterClient, ClusterError};
use crate::error::ApiError;

/// A shard group's failure, worded for the client (503 names the shard).
pub fn shard_error(collection: &str, group: u64, e: ClusterError) -> ApiError {
    match e {
        ClusterError::Unavailable { reason, .. } => ApiError::Unavailable(format!(
            "Shard {group} (Raft group {group}) of collection {collection} is unavailable: {reason}"
        )),
        ClusterError::Failed { reason, .. } => ApiError::Internal(format!(
            "Shard {group} (Raft group {group}) of collection {collection} failed: {reason}"
        )),
    }
}

pub struct CollectionShards<'a> {
    pub cluster: &'a ClusterClient,
    pub catalog: Catalog<'a>,
    pub collection: CollectionModel,
    pub deadline: Instant,
}

impl<'a> CollectionShards<'a> {
    pub fn id(&self) -> &str {
        &self.collection.id
    }

    async fn propose_once(
        &self,
        group: u64,
        command: &ShardCommand,
    ) -> Result<ApplyOutcome, ApiError> {
        let proposal = Proposal {
            // One id per attempt at the logical write: the cluster client
            // keeps it across its retries, so the write applies once.
            request_id: rand::random(),
            command: command.clone(),
        };
        self.cluster
            .propose(group, &proposal, self.deadline)
            .await
            .map_err(|e| shard_error(self.id(), group, e))
    }

    /// Proposes `command` on `group`, creating the collection's part there
    /// first if it is missing.
    pub async fn propose(
        &self,
        group: u64,
        command: &ShardCommand,
    ) -> Result<ApplyOutcome, ApiError> {
        match self.propose_once(group, command).await? {
            ApplyOutcome::NoSuchCollection => {
                self.repair(group).await?;
                match self.propose_once(group, command).await? {
                    ApplyOutcome::NoSuchCollection => Err(self.vanished(group)),
                    outcome => Ok(outcome),
                }
            }
            outcome => Ok(outcome),
        }
    }

    async fn read_once(&self, group: u64, read: &ShardRead) -> Result<ShardReadReply, ApiError> {
        self.cluster
            .read(group, read, self.deadline)
            .await
            .map_err(|e| shard_error(self.id(), group, e))
    }

    /// Reads from `group`, creating the collection's part there first if it
    /// is missing (it is then empty).
    pub async fn read(&self, group: u64, read: &ShardRead) -> Result<ShardReadValue, ApiError> {
        let reply = match self.read_once(group, read).await? {
            Err(ShardReadError::NoSuchCollection) => {
                self.repair(group).await?;
                self.read_once(group, read).await?
            }
            reply => reply,
        };
        reply.map_err(|e| match e {
            ShardReadError::NoSuchCollection => self.vanished(group),
            ShardReadError::DimensionMismatch { .. } => ApiError::invalid(e.to_string()),
            ShardReadError::Invalid(m) => ApiError::Internal(format!(
                "Shard {group} of collection {} refused the read: {m}",
                self.id()
            )),
        })
    }

    /// Runs `read` on every group of `groups` in parallel; the first error wins.
    pub async fn read_all(
        &self,
        reads: Vec<(u64, ShardRead)>,
    ) -> Result<Vec<ShardReadValue>, ApiError> {
        join_all(reads.iter().map(|(g, r)| self.read(*g, r)))
            .await
            .into_iter()
            .collect()
    }

    /// The collection's part is missing on `group`: 404 if the collection is
    /// gone from the catalogue, else create the part.
    async fn repair(&self, group: u64) -> Result<(), ApiError> {
        let current = self.catalog.refresh(self.id(), self.deadline).await?;
        let create = ShardCommand::CreateCollection {
            collection: current.id.clone(),
            config: current.index_config.clone(),
        };
        match self.propose_once(group, &create).await? {
            ApplyOutcome::Done => Ok(()),
            other => Err(ApiError::Internal(format!(
                "creating collection {} on shard {group}: {other:?}",
                self.id()
            ))),
        }
    }

    /// The part disappeared again right after being created: the collection
    /// was deleted concurrently.
    fn vanished(&self, group: u64) -> ApiError {
        self.catalog.forget(self.id());
        ApiError::NotFound(format!(
            "Collection [{}] does not exist (its shard {group} dropped it)",
            self.id()
        ))
    }
}

/// Runs `command` on every group in parallel (creation, drops, reset),
/// without the repair step: these commands define the parts themselves.
/// Returns the groups that failed, with why.
pub async fn on_every_group(
    cluster: &ClusterClient,
    groups: &[u64],
    command: &ShardCommand,
    deadline: Instant,
) -> Vec<(u64, ClusterError)> {
    let proposals = groups.iter().map(|&g| async move {
        let proposal = Proposal {
            request_id: rand::random(),
            command: command.clone(),
        };
        let outcome: Result<ApplyOutcome, ClusterError> =
            cluster.propose(g, &proposal, deadline).await;
        (g, outcome)
    });
    join_all(proposals)
        .await
        .into_iter()
        .filter_map(|(g, r)| match r {
            Ok(ApplyOutcome::Done) => None,
            Ok(other) => Some((
                g,
                ClusterError::Failed {
                    group: g,
                    reason: format!("unexpected outcome {other:?}"),
                },
            )),
            Err(e) => Some((g, e)),
        })
        .collect()
}
