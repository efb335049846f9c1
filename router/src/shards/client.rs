//! What the record path needs from a shard group and from the catalogue,
//! as traits, so the layer above never asks where a shard lives (Qdrant's
//! `ShardOperation`, `lib/collection/src/shards/shard_trait.rs`). The HTTP
//! implementations (`http.rs`) reach the nodes' leaders; the in-memory ones
//! (`memory.rs`) let the routing, fan-out and merge be unit-tested.

use std::future::Future;
use std::time::Instant;

use common::catalog::CollectionModel;
use common::command::{ApplyOutcome, ShardCommand};
use common::read::{ShardRead, ShardReadReply};

use crate::cluster::ClusterError;
use crate::error::ApiError;

/// One shard group's commands and linearizable reads. Leader hints,
/// retries and request ids are the implementation's business: a call
/// answers with the state machine's outcome, or says why no group answered
/// before `deadline`.
pub trait ShardClient {
    /// Applies `command` on `group` once, even if the implementation retries.
    fn propose(
        &self,
        group: u64,
        command: &ShardCommand,
        deadline: Instant,
    ) -> impl Future<Output = Result<ApplyOutcome, ClusterError>>;

    /// Reads `group`'s state as of now (it sees every write acknowledged
    /// before the call).
    fn read(
        &self,
        group: u64,
        read: &ShardRead,
        deadline: Instant,
    ) -> impl Future<Output = Result<ShardReadReply, ClusterError>>;
}

/// What the record path asks of the catalogue: the collection again when a
/// shard does not know it (see `shards/mod.rs`), and its dimension fixed by
/// the first write.
pub trait Catalogue {
    /// The collection as the metadata group has it now; 404 when it is gone.
    fn refresh(
        &self,
        id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<CollectionModel, ApiError>>;

    /// Drops what is cached about the collection (it turned out to be gone).
    fn forget(&self, id: &str);

    /// Fixes `collection`'s dimension at `dimension` if it is unset (a
    /// compare-and-set on the metadata group); 400 naming both when it is
    /// set to another. The collection as it is after.
    fn ensure_dimension(
        &self,
        collection: &CollectionModel,
        dimension: u32,
        deadline: Instant,
    ) -> impl Future<Output = Result<CollectionModel, ApiError>>;
}

/// A borrowed catalogue is one too (tests keep theirs to look at it after).
impl<K: Catalogue> Catalogue for &K {
    fn refresh(
        &self,
        id: &str,
        deadline: Instant,
    ) -> impl Future<Output = Result<CollectionModel, ApiError>> {
        (**self).refresh(id, deadline)
    }

    fn forget(&self, id: &str) {
        (**self).forget(id)
    }

    fn ensure_dimension(
        &self,
        collection: &CollectionModel,
        dimension: u32,
        deadline: Instant,
    ) -> impl Future<Output = Result<CollectionModel, ApiError>> {
        (**self).ensure_dimension(collection, dimension, deadline)
    }
}
