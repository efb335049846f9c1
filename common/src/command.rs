//! Commands a shard's Raft log carries. Every replica applies the same
//! commands in the same order, so everything here must be deterministic data:
//! no clocks, no randomness, no references to local state.

use serde::{Deserialize, Serialize};

use crate::distance::Space;
use crate::error::CommonError;
use crate::filter::Filter;
use crate::limits;
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

impl IndexConfig {
    /// This configuration with every HNSW parameter above its range in
    /// [`crate::limits`] lowered to the top of the range.
    ///
    /// Where a command is applied (and where state is restored), parameters
    /// are capped rather than refused: values above these ranges were accepted
    /// before the ranges existed and may sit in logs and snapshots, and
    /// capping treats an old entry and a new one alike, so every replica ends
    /// with the same configuration whether it replays the entry or restores a
    /// snapshot taken after it. The router refuses such values (400) before
    /// anything is proposed ([`crate::catalog::validate_index_config`]).
    pub fn capped(&self) -> IndexConfig {
        IndexConfig {
            space: self.space,
            ef_construction: self
                .ef_construction
                .min(*limits::HNSW_EF_CONSTRUCTION.end()),
            ef_search: self.ef_search.min(*limits::HNSW_EF_SEARCH.end()),
            max_neighbors: self.max_neighbors.min(*limits::HNSW_MAX_NEIGHBORS.end()),
        }
    }
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

impl RecordWrite {
    /// The record within the size limits of [`crate::limits`].
    pub fn check_limits(&self) -> Result<(), CommonError> {
        limits::check_id(&self.id)?;
        if let Some(e) = &self.embedding {
            limits::check_embedding_dimension(e.len())?;
        }
        if let Some(m) = &self.metadata {
            limits::check_metadata(m.iter().map(|(k, v)| (k, v.as_ref())))?;
        }
        if let Some(d) = &self.document {
            limits::check_document(d)?;
        }
        if let Some(u) = &self.uri {
            limits::check_uri(u)?;
        }
        Ok(())
    }
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
    m.shrink_to_fit();
    (!m.is_empty()).then_some(m)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// Creates the collection's part on this shard (idempotent).
    CreateCollection {
        collection: CollectionId,
        config: IndexConfig,
    },
    /// Drops the collection's part on this shard and all its records. The shard keeps the
    /// id: `CreateCollection` never brings the part back.
    DropCollection { collection: CollectionId },
    /// Creates the collection's part even if this shard dropped it before: only `restore`
    /// sends it, bringing back a collection under its id on the operator's order (a
    /// router's repair sends `CreateCollection`, which a drop wins against).
    RestoreCollection {
        collection: CollectionId,
        config: IndexConfig,
    },
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
    /// Where a shard leader's indexer linked record versions into its graph
    /// ([`PointLinks`]), so that the followers link the same versions without
    /// searching for their neighbours (the search is most of an insert). The
    /// leader's own indexer proposes it, never a router. It changes no record: a
    /// replica that ignores it, or gets it late, holds the same records and answers
    /// the same queries, only builds its graph the slow way.
    LinkHints {
        collection: CollectionId,
        links: Vec<PointLinks>,
    },
}

/// One record version as the leader's graph holds it: its level and, for every layer
/// up to it, the versions it links to (nearest first). Point ids are assigned in log
/// order, so they name the same version on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointLinks {
    pub point: u64,
    pub level: u8,
    pub layers: Vec<Vec<u64>>,
}

impl PointLinks {
    /// A level below the graph's layer count, one list per layer up to it, each within
    /// the largest bound a list can have (`2M` on the bottom layer).
    fn check_limits(&self) -> Result<(), CommonError> {
        let max_list = 2 * limits::HNSW_MAX_NEIGHBORS.end();
        let fits = usize::from(self.level) < limits::HNSW_LAYERS
            && self.layers.len() == usize::from(self.level) + 1
            && self.layers.iter().all(|l| l.len() <= max_list);
        if fits {
            Ok(())
        } else {
            Err(CommonError::InvalidArgument(format!(
                "link hints of point {}: level {} with {} layers is out of bounds",
                self.point,
                self.level,
                self.layers.len()
            )))
        }
    }
}

impl ShardCommand {
    /// Every record of a write within the size limits, and every id of a
    /// delete within the id size limit (filters check themselves when they
    /// are decoded). The state machine refuses a command that fails this, the
    /// same way on every replica; the router checks the same limits first.
    pub fn check_limits(&self) -> Result<(), CommonError> {
        match self {
            ShardCommand::Add { records, .. }
            | ShardCommand::Upsert { records, .. }
            | ShardCommand::Update { records, .. } => {
                records.iter().try_for_each(RecordWrite::check_limits)
            }
            ShardCommand::Delete { ids: Some(ids), .. } => {
                ids.iter().try_for_each(|id| limits::check_id(id))
            }
            ShardCommand::LinkHints { links, .. } => {
                if links.len() > limits::MAX_LINK_HINTS {
                    return Err(CommonError::InvalidArgument(format!(
                        "{} link hints in one command, at most {}",
                        links.len(),
                        limits::MAX_LINK_HINTS
                    )));
                }
                links.iter().try_for_each(PointLinks::check_limits)
            }
            _ => Ok(()),
        }
    }
}

/// A shard command as proposed, with the id that makes a retried proposal apply once.
pub type Proposal = crate::wire::Proposal<ShardCommand>;

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
    /// The collection was dropped on this shard; its part is never created again (a
    /// router's late repair lost the race with a delete). The collection is gone.
    CollectionDropped,
}
