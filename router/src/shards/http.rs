//! The shard client and catalogue of a running cluster: the nodes' internal
//! HTTP API through [`ClusterClient`] (leader following, retries with one
//! request id, deadlines) and the metadata group through [`Catalog`].
//!
//! Proposals are built here and nowhere else: one request id per logical
//! write, kept by the cluster client across its retries, so the write
//! applies once (architecture.md, promise 3).

use std::time::Instant;

use common::catalog::CollectionModel;
use common::clock;
use common::command::{ApplyOutcome, ShardCommand};
use common::read::{ShardRead, ShardReadReply};
use common::wire::{self, Proposal};

use super::client::{Catalogue, ShardClient};
use crate::catalog::Catalog;
use crate::cluster::{ClusterClient, ClusterError};
use crate::error::ApiError;

/// The envelope a node's Raft log carries for `command`, with a fresh
/// request id.
fn proposal(command: &ShardCommand, deadline: Instant) -> Proposal<&ShardCommand> {
    // Borrowed: it encodes exactly as an owned `Proposal<ShardCommand>`, without copying
    // the batch.
    Proposal {
        request_id: rand::random(),
        deadline_ms: clock::wall_deadline(deadline),
        command,
    }
}

/// Bytes of the encoded [`Proposal`] carrying `command`: its header, then the command.
pub fn proposal_size(command: &ShardCommand) -> Result<u64, wire::WireError> {
    Ok(wire::PROPOSAL_HEADER_BYTES + wire::encoded_size(command)?)
}

impl ShardClient for ClusterClient {
    async fn propose(
        &self,
        group: u64,
        command: &ShardCommand,
        deadline: Instant,
    ) -> Result<ApplyOutcome, ClusterError> {
        ClusterClient::propose(self, group, &proposal(command, deadline), deadline).await
    }

    async fn read(
        &self,
        group: u64,
        read: &ShardRead,
        deadline: Instant,
    ) -> Result<ShardReadReply, ClusterError> {
        ClusterClient::read(self, group, read, deadline).await
    }
}

impl Catalogue for Catalog<'_> {
    async fn refresh(&self, id: &str, deadline: Instant) -> Result<CollectionModel, ApiError> {
        Catalog::refresh(self, id, deadline).await
    }

    fn forget(&self, id: &str) {
        Catalog::forget(self, id)
    }

    async fn ensure_dimension(
        &self,
        collection: &CollectionModel,
        dimension: u32,
        deadline: Instant,
    ) -> Result<CollectionModel, ApiError> {
        Catalog::ensure_dimension(self, collection, dimension, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::command::{AddMode, RecordWrite};

    #[test]
    fn proposal_size_is_the_encoded_size() {
        let command = ShardCommand::Add {
            collection: "c".into(),
            records: (0..3)
                .map(|i| RecordWrite {
                    id: i.to_string(),
                    embedding: Some(vec![0.5; 4]),
                    metadata: None,
                    document: Some("d".repeat(10)),
                    uri: None,
                })
                .collect(),
            mode: AddMode::SkipExisting,
        };
        let mut proposal = proposal(&command, Instant::now());
        // The widest request id and deadline: the size must not depend on their values.
        proposal.request_id = u128::MAX;
        proposal.deadline_ms = u64::MAX;
        let bytes = wire::encode(&proposal).unwrap();
        assert_eq!(proposal_size(&command).unwrap(), bytes.len() as u64);
        // What the node decodes: the owned envelope, the same command.
        let owned: Proposal<ShardCommand> = wire::decode(&bytes).unwrap();
        assert_eq!(owned.header().request_id, u128::MAX);
        assert_eq!(owned.deadline_ms, u64::MAX);
        assert_eq!(owned.command, command);
    }
}
