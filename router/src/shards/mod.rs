//! Commands and reads on one collection's shards, through a shard client:
//! `client.rs` the [`ShardClient`] and [`Catalogue`] traits, `http.rs` their
//! implementations over the cluster (and the one place proposals are
//! built), `memory.rs` in-memory ones for unit tests. [`CollectionShards`]
//! runs one command or read per group with the repair below; the record
//! operations above it are in `crate::records`.
//!
//! A collection's part on a shard is created right after the catalogue
//! creates the collection; if that did not happen (the router died in
//! between, or the shard had no quorum then), the shard answers "no such
//! collection" and this module repairs it: it asks the metadata group
//! whether the collection exists (404 if not, e.g. deleted through another
//! router) and, if it does, creates the part and retries once. So the
//! catalogue is the truth and shards catch up lazily. A shard never creates
//! again a part it dropped (it keeps the dropped ids), so a repair racing
//! with a delete through another router ends in 404, not in an orphan part.

mod client;
mod http;
#[cfg(test)]
pub mod memory;

use std::time::Instant;

use common::catalog::CollectionModel;
use common::command::{ApplyOutcome, ShardCommand};
use common::read::{ShardRead, ShardReadError, ShardReadReply, ShardReadValue};
use futures::future::join_all;

pub use self::client::{Catalogue, ShardClient};
use self::http::proposal_size;
use crate::catalog::Catalog;
use crate::cluster::{ClusterClient, ClusterError};
use crate::error::ApiError;
use crate::merge::split;

/// A shard group's failure, worded for the client (503 names the shard).
pub fn shard_error(collection: &str, group: u64, e: ClusterError) -> ApiError {
    match e {
        ClusterError::Unavailable { reason, .. } => ApiError::Unavailable(format!(
            "Shard {group} (Raft group {group}) of collection {collection} is unavailable: {reason}"
        )),
        ClusterError::Failed { reason, .. } => ApiError::Internal(format!(
            "Shard {group} (Raft group {group}) of collection {collection} failed: {reason}"
        )),
        ClusterError::TooLarge { size, limit, .. } => ApiError::BatchSizeExceeded(format!(
            "The part of this request for shard {group} of collection {collection} is {size} bytes encoded, over the limit of {limit} (MAX_PROPOSAL_BYTES); send fewer or smaller records per request"
        )),
    }
}

/// Refuses a write whose encoded part for some shard is over what a node
/// takes, before any part is proposed: a write over the limit writes nothing
/// anywhere (413 `BatchSizeExceededError` naming the shard), instead of
/// committing the parts that fit.
pub fn check_part_sizes(collection: &str, parts: &[(u64, ShardCommand)]) -> Result<(), ApiError> {
    let limit = common::limits::MAX_PROPOSAL_BYTES as u64;
    for (group, command) in parts {
        let size = proposal_size(command)
            .map_err(|e| ApiError::Internal(format!("measuring a shard command: {e}")))?;
        if size > limit {
            return Err(shard_error(
                collection,
                *group,
                ClusterError::TooLarge {
                    group: *group,
                    size,
                    limit,
                },
            ));
        }
    }
    Ok(())
}

/// One collection's shards as the record path uses them: a shard client
/// (the cluster's, or an in-memory one in unit tests) and the catalogue
/// that repairs missing parts.
pub struct CollectionShards<'a, S = ClusterClient, K = Catalog<'a>> {
    /// The shard client (named for the cluster it usually is).
    pub cluster: &'a S,
    pub catalog: K,
    pub collection: CollectionModel,
    pub deadline: Instant,
}

impl<S: ShardClient, K: Catalogue> CollectionShards<'_, S, K> {
    pub fn id(&self) -> &str {
        &self.collection.id
    }

    async fn propose_once(
        &self,
        group: u64,
        command: &ShardCommand,
    ) -> Result<ApplyOutcome, ApiError> {
        // One request id per attempt at the logical write (the client
        // keeps it across its own retries), so the write applies once.
        self.cluster
            .propose(group, command, self.deadline)
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

    /// Runs reads on several groups in parallel: every answer, or one error
    /// naming every group that failed.
    pub async fn read_all(
        &self,
        reads: Vec<(u64, ShardRead)>,
    ) -> Result<Vec<ShardReadValue>, ApiError> {
        split(join_all(reads.iter().map(|(g, r)| self.read(*g, r))).await)
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
            // A delete through another router dropped the part after our catalogue read.
            ApplyOutcome::CollectionDropped => Err(self.vanished(group)),
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
pub async fn on_every_group<S: ShardClient>(
    cluster: &S,
    groups: &[u64],
    command: &ShardCommand,
    deadline: Instant,
) -> Vec<(u64, ClusterError)> {
    let proposals = groups
        .iter()
        .map(|&g| async move { (g, cluster.propose(g, command, deadline).await) });
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

#[cfg(test)]
mod tests {
    use super::*;
    use common::command::{AddMode, RecordWrite};

    fn add(records: usize, document_bytes: usize) -> ShardCommand {
        ShardCommand::Add {
            collection: "c".into(),
            records: (0..records)
                .map(|i| RecordWrite {
                    id: i.to_string(),
                    embedding: Some(vec![0.5; 4]),
                    metadata: None,
                    document: Some("d".repeat(document_bytes)),
                    uri: None,
                })
                .collect(),
            mode: AddMode::SkipExisting,
        }
    }

    #[test]
    fn one_part_over_the_limit_refuses_the_whole_write() {
        let small = (1, add(2, 10));
        // Two documents of 33 MiB: 66 MiB in one part.
        let big = (2, add(2, 33 << 20));
        assert!(check_part_sizes("c", std::slice::from_ref(&small)).is_ok());
        match check_part_sizes("c", &[small, big]) {
            Err(ApiError::BatchSizeExceeded(m)) => {
                assert!(
                    m.contains("shard 2") && m.contains("MAX_PROPOSAL_BYTES"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
