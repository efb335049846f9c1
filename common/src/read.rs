//! Read requests a shard answers and what it returns. The router splits a
//! client's `get` / `query` into one of these per shard and merges the replies.

use serde::{Deserialize, Serialize};

use crate::command::CollectionId;
use crate::error::CommonError;
use crate::filter::Filter;
use crate::limits;
use crate::record::Metadata;

/// Which record fields a reply carries (ids always come back; distances
/// always come back from a shard because the router merges by them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Include {
    pub embeddings: bool,
    pub documents: bool,
    pub metadatas: bool,
    pub uris: bool,
}

impl Include {
    pub const ALL: Include = Include {
        embeddings: true,
        documents: true,
        metadatas: true,
        uris: true,
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetRequest {
    pub collection: CollectionId,
    /// Restrict to these ids (intersected with the filter).
    pub ids: Option<Vec<String>>,
    pub filter: Filter,
    /// Records are returned in ascending id order, after skipping `offset`.
    pub offset: usize,
    pub limit: Option<usize>,
    pub include: Include,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRequest {
    pub collection: CollectionId,
    pub embeddings: Vec<Vec<f32>>,
    pub n_results: usize,
    /// Restrict the search to these ids (intersected with the filter).
    pub ids: Option<Vec<String>>,
    pub filter: Filter,
    pub include: Include,
}

/// One record as a reply carries it; fields not included are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub id: String,
    pub embedding: Option<Vec<f32>>,
    pub metadata: Option<Metadata>,
    pub document: Option<String>,
    pub uri: Option<String>,
}

/// One hit of a query: the record and its distance to the query embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryHit {
    pub record: RecordView,
    pub distance: f32,
}

/// Orders hits by ascending distance, ties by id, so that every merge of
/// per-shard results is deterministic.
pub fn hit_order(a: &QueryHit, b: &QueryHit) -> std::cmp::Ordering {
    a.distance
        .total_cmp(&b.distance)
        .then_with(|| a.record.id.cmp(&b.record.id))
}

/// A read a shard group answers (the body of `/internal/{group}/read`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardRead {
    Get(GetRequest),
    Count(GetRequest),
    Query(QueryRequest),
}

impl ShardRead {
    /// The request within the limits of [`crate::limits`] (its filter
    /// checked itself when it was decoded). A shard refuses a read that
    /// fails this; the router checks the same limits first.
    pub fn check_limits(&self) -> Result<(), CommonError> {
        let (ids, request) = match self {
            ShardRead::Get(r) | ShardRead::Count(r) => (&r.ids, None),
            ShardRead::Query(q) => (&q.ids, Some(q)),
        };
        if let Some(ids) = ids {
            limits::check_select_ids(ids)?;
        }
        if let Some(q) = request {
            limits::check_query(q.embeddings.len(), q.n_results)?;
            q.embeddings
                .iter()
                .try_for_each(|e| limits::check_embedding_dimension(e.len()))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardReadValue {
    Records(Vec<RecordView>),
    Count(u64),
    Hits(Vec<Vec<QueryHit>>),
}

/// Why a shard could not answer a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ShardReadError {
    /// The collection has no part on this shard.
    #[error("the collection does not exist on this shard")]
    NoSuchCollection,
    #[error("Collection expecting embedding with dimension of {expected}, got {got}")]
    DimensionMismatch { expected: u32, got: u32 },
    /// An undecodable or otherwise unusable request.
    #[error("{0}")]
    Invalid(String),
}

/// A shard's answer to a read.
pub type ShardReadReply = Result<ShardReadValue, ShardReadError>;
