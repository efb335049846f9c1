//! get / count / query across a collection's shards.
//!
//! Each read goes to the groups `crate::routing` names and the answers are
//! joined by `crate::merge` (get pages in id order, query's top k by
//! distance, counts summed). Reads are linearizable: each shard answers on
//! its leader after a ReadIndex.

use common::read::{
    GetRequest, Include, QueryHit, QueryRequest, RecordView, ShardRead, ShardReadValue,
};
use common::Filter;

use super::Selection;
use crate::error::ApiError;
use crate::merge;
use crate::routing::Placement;
use crate::shards::{Catalogue, CollectionShards, ShardClient};

fn unexpected(value: &ShardReadValue) -> ApiError {
    ApiError::Internal(format!("unexpected shard answer {value:?}"))
}

/// The records matching `ids` and `filter`, in id order, after `offset`,
/// at most `limit`.
pub async fn get<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
    selection: Selection,
    offset: usize,
    include: Include,
) -> Result<Vec<RecordView>, ApiError> {
    let Selection { ids, filter, limit } = selection;
    if limit == Some(0) {
        return Ok(Vec::new());
    }
    let reads = Placement::of(&shards.collection)
        .targets(ids.as_deref())
        .into_iter()
        .map(|(g, ids)| {
            let get = GetRequest {
                collection: shards.id().to_owned(),
                ids,
                filter: filter.clone(),
                offset: 0,
                limit: merge::per_shard_limit(offset, limit),
                include,
            };
            (g, ShardRead::Get(get))
        })
        .collect();
    let mut parts = Vec::new();
    for value in shards.read_all(reads).await? {
        match value {
            ShardReadValue::Records(r) => parts.push(r),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(merge::page(parts, offset, limit))
}

/// The ids of the records selected, in id order (delete with a limit).
pub async fn matching_ids<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
    selection: Selection,
) -> Result<Vec<String>, ApiError> {
    let records = get(shards, selection, 0, Include::default()).await?;
    Ok(records.into_iter().map(|r| r.id).collect())
}

/// Records in the collection, summed over its shards.
pub async fn count<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
) -> Result<u64, ApiError> {
    let reads = Placement::of(&shards.collection)
        .groups()
        .iter()
        .map(|g| {
            let req = GetRequest {
                collection: shards.id().to_owned(),
                ids: None,
                filter: Filter::default(),
                offset: 0,
                limit: None,
                include: Include::default(),
            };
            (*g, ShardRead::Count(req))
        })
        .collect();
    let mut total = 0;
    for value in shards.read_all(reads).await? {
        match value {
            ShardReadValue::Count(n) => total += n,
            other => return Err(unexpected(&other)),
        }
    }
    Ok(total)
}

/// A validated nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub embeddings: Vec<Vec<f32>>,
    /// The dimension every embedding has (`None`: no embeddings).
    pub dimension: Option<u32>,
    pub n_results: usize,
    pub ids: Option<Vec<String>>,
    pub filter: Filter,
    pub include: Include,
}

/// The `n_results` nearest records to each query embedding. Checks the
/// dimension against the collection's first (re-reading the catalogue when
/// the cached collection has none: it may have been set through another
/// router); a collection never written to has no results.
pub async fn query<S: ShardClient, K: Catalogue>(
    shards: &mut CollectionShards<'_, S, K>,
    query: Query,
) -> Result<Vec<Vec<QueryHit>>, ApiError> {
    if shards.collection.dimension.is_none() {
        shards.collection = shards
            .catalog
            .refresh(&shards.collection.id, shards.deadline)
            .await?;
    }
    match (shards.collection.dimension, query.dimension) {
        (Some(expected), Some(got)) if expected != got => {
            Err(common::catalog::CatalogError::dimension_mismatch(expected, got).into())
        }
        (None, _) => Ok(vec![Vec::new(); query.embeddings.len()]),
        _ => nearest(shards, query).await,
    }
}

async fn nearest<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
    query: Query,
) -> Result<Vec<Vec<QueryHit>>, ApiError> {
    let queries = query.embeddings.len();
    if queries == 0 || query.n_results == 0 {
        return Ok(vec![Vec::new(); queries]);
    }
    let reads = Placement::of(&shards.collection)
        .targets(query.ids.as_deref())
        .into_iter()
        .map(|(g, ids)| {
            let q = QueryRequest {
                collection: shards.id().to_owned(),
                embeddings: query.embeddings.clone(),
                n_results: query.n_results,
                ids,
                filter: query.filter.clone(),
                include: query.include,
            };
            (g, ShardRead::Query(q))
        })
        .collect();
    let mut parts = Vec::new();
    for value in shards.read_all(reads).await? {
        match value {
            ShardReadValue::Hits(per_query) if per_query.len() == queries => parts.push(per_query),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(merge::top_k(queries, parts, query.n_results))
}
