//! What the catalogue holds about tenants, databases and collections. The
//! serde derives give the bincode form used between processes; the router
//! renders Chroma's JSON shapes of them (`router/src/api/models.rs`).

use serde::{Deserialize, Serialize};

use crate::command::IndexConfig;
use crate::record::Metadata;

use super::configuration::CollectionConfiguration;

/// Identifies a shard's Raft group.
pub type ShardGroupId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantModel {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseModel {
    /// UUID, hyphenated lower case.
    pub id: String,
    pub name: String,
    pub tenant: String,
}

/// One collection as the catalogue holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionModel {
    /// UUID, hyphenated lower case; chosen by the router at creation.
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub database: String,
    /// `None` or a non-empty map (Chroma refuses empty collection metadata).
    pub metadata: Option<Metadata>,
    /// The configuration as created and modified.
    pub configuration: CollectionConfiguration,
    /// The space and HNSW parameters the shards index with: the
    /// configuration's `hnsw` ones, except that a SPANN `ef_search` update
    /// sets `ef_search` too.
    pub index_config: IndexConfig,
    /// Fixed by the first write; `None` until then.
    pub dimension: Option<u32>,
    /// Starts at 0; bumped by every change to this collection.
    pub version: u64,
    /// The Raft groups holding the collection's shards, in shard order.
    pub shards: Vec<ShardGroupId>,
}
