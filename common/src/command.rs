//! Commands a shard's Raft log carries. Every replica applies the same
//! commands in the same order, so everything here must be deterministic data:
//! no clocks, no randomness, no references to local state.

use serde::{Deserialize, Serialize};

use crate::distance::Space;
use crate::filter::Filter;
use crate::record::{Metadata, MetadataValue};

/// Identifies a collection across the cluster (a UUID in text form).
pub type CollectionId = String;

/// HNSW and space settings of a collection, from its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    pub space: Space,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub max_neighbors: usize,
}

impl Default for IndexConfig {
    /// Chroma's defaults.
    fn default() -> Self {
        IndexConfig {
            space: Space::L2,
            ef_construction: 100,
            ef_search: 100,
            max_neighbors: 16,
        }
    }
}

/// What `add` does with an id that already exists in the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddMode {
    /// The whole command fails and nothing is written (the seed's rule).
    RejectExisting,
    /// Existing ids are skipped silently (Chroma 1.x behaviour).
    SkipExisting,
}

/// A full record to write (add / upsert of a new id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordWrite {
    pub id: String,
    pub embedding: Option<Vec<f32>>,
    pub metadata: Option<MetadataPatch>,
    pub document: Option<String>,
    pub uri: Option<String>,
}

/// Metadata changes: `Some(v)` sets a key, `None` removes it. On add (and on
/// upsert of a new id) removals are simply ignored.
pub type MetadataPatch = std::collections::BTreeMap<String, Option<MetadataValue>>;

/// Applies `patch` to `base` (Chroma merges metadata on update and upsert).
/// An empty result becomes `None`.
pub fn apply_metadata_patch(base: Option<Metadata>, patch: &MetadataPatch) -> Option<Metadata> {
    let mut m = base.unwrap_or_default();
    for (k, v) in patch {
        match v {
            Some(v) => {
                m.insert(k.clone(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    (!m.is_empty()).then_some(m)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// Creates the collection's part on this shard (idempotent).
    CreateCollection {
        collection: CollectionId,
        config: IndexConfig,
    },
    /// Drops the collection's part on this shard and all its records.
    DropCollection { collection: CollectionId },
    /// Changes search-time settings of a collection (ef_search).
    ModifyCollection {
        collection: CollectionId,
        config: IndexConfig,
    },
    /// Adds new records; every record has an embedding.
    Add {
        collection: CollectionId,
        records: Vec<RecordWrite>,
        mode: AddMode,
    },
    /// Creates or merges records; a new id must carry an embedding.
    Upsert {
        collection: CollectionId,
        records: Vec<RecordWrite>,
    },
    /// Merges into existing records; missing ids are ignored.
    Update {
        collection: CollectionId,
        records: Vec<RecordWrite>,
    },
    /// Deletes records selected by ids (if given) intersected with the filter.
    Delete {
        collection: CollectionId,
        ids: Option<Vec<String>>,
        filter: Filter,
        limit: Option<usize>,
    },
    /// Removes every collection on the shard (POST /reset).
    Reset,
}

/// A command as proposed, with the id that makes a retried proposal apply once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Unique per logical request (the router picks it, random 128 bits).
    pub request_id: u128,
    pub command: ShardCommand,
}

/// What applying a command produced; remembered per request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Done,
    Deleted(u64),
    /// `add` in reject mode found ids that exist; nothing was written.
    IdsAlreadyExist(Vec<String>),
    /// The command was valid JSON-wise but the shard refused it; nothing written.
    Rejected(String),
    /// The collection has no part on this shard (never created there, or
    /// dropped); nothing written. The router checks the catalogue and
    /// creates the part if the collection exists.
    NoSuchCollection,
}
