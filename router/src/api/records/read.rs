//! get / count / query across a collection's shards.
//!
//! Every shard returns its records in ascending id order, so `get` asks each
//! shard for its first `offset + limit` and merges: the global order is the
//! id order, and pages concatenate without gaps or repeats. `query` asks
//! each shard for its top `n_results` per query embedding and merges by
//! distance (ties by id, `common::read::hit_order`). Reads are linearizable:
//! each shard answers on its leader after a ReadIndex.

use common::read::{
    GetRequest, Include, QueryHit, QueryRequest, RecordView, ShardRead, ShardReadValue,
};
use common::Filter;

use super::parse::Selection;
use super::write::ids_by_group;
use crate::error::ApiError;
use crate::shards::CollectionShards;

/// The groups to ask and the ids each holds (`None`: all of its records).
fn targets(
    shards: &CollectionShards<'_>,
    ids: Option<&[String]>,
) -> Vec<(u64, Option<Vec<String>>)> {
    match ids {
        Some(ids) => ids_by_group(shards, ids)
            .into_iter()
            .map(|(g, ids)| (g, Some(ids)))
            .collect(),
        None => shards
            .collection
            .shards
            .iter()
            .map(|g| (*g, None))
            .collect(),
    }
}

fn unexpected(value: &ShardReadValue) -> ApiError {
    ApiError::Internal(format!("unexpected shard answer {value:?}"))
}

/// The records matching `ids` and `filter`, in id order, after `offset`,
/// at most `limit`.
pub async fn get(
    shards: &CollectionShards<'_>,
    selection: Selection,
    offset: usize,
    include: Include,
) -> Result<Vec<RecordView>, ApiError> {
    let Selection { ids, filter, limit } = selection;
    if limit == Some(0) {
        return Ok(Vec::new());
    }
    let per_shard_limit = limit.map(|l| l.saturating_add(offset));
    let reads = targets(shards, ids.as_deref())
        .into_iter()
        .map(|(g, ids)| {
            let get = GetRequest {
                collection: shards.id().to_owned(),
                ids,
                filter: filter.clone(),
                offset: 0,
                limit: per_shard_limit,
                include,
            };
            (g, ShardRead::Get(get))
        })
        .collect();
    let mut records = Vec::new();
    for value in shards.read_all(reads).await? {
        match value {
            ShardReadValue::Records(r) => records.extend(r),
            other => return Err(unexpected(&other)),
        }
    }
    records.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(records
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect())
}

/// The ids of the records selected, in id order (delete with a limit).
pub async fn matching_ids(
    shards: &CollectionShards<'_>,
    selection: Selection,
) -> Result<Vec<String>, ApiError> {
    let records = get(shards, selection, 0, Include::default()).await?;
    Ok(records.into_iter().map(|r| r.id).collect())
}

/// Records in the collection, summed over its shards.
pub async fn count(shards: &CollectionShards<'_>) -> Result<u64, ApiError> {
    let reads = targets(shards, None)
        .into_iter()
        .map(|(g, _)| {
            let req = GetRequest {
                collection: shards.id().to_owned(),
                ids: None,
                filter: Filter::default(),
                offset: 0,
                limit: None,
                include: Include::default(),
            };
            (g, ShardRead::Count(req))
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

/// The `n_results` nearest records to each query embedding.
pub async fn query(
    shards: &CollectionShards<'_>,
    embeddings: Vec<Vec<f32>>,
    n_results: usize,
    ids: Option<Vec<String>>,
    filter: Filter,
    include: Include,
) -> Result<Vec<Vec<QueryHit>>, ApiError> {
    let queries = embeddings.len();
    if queries == 0 || n_results == 0 {
        return Ok(vec![Vec::new(); queries]);
    }
    let reads = targets(shards, ids.as_deref())
        .into_iter()
        .map(|(g, ids)| {
            let q = QueryRequest {
                collection: shards.id().to_owned(),
                embeddings: embeddings.clone(),
                n_results,
                ids,
                filter: filter.clone(),
                include,
            };
            (g, ShardRead::Query(q))
        })
        .collect();
    let mut merged: Vec<Vec<QueryHit>> = vec![Vec::new(); queries];
    for value in shards.read_all(reads).await? {
        match value {
            ShardReadValue::Hits(per_query) if per_query.len() == queries => {
                for (all, hits) in merged.iter_mut().zip(per_query) {
                    all.extend(hits);
                }
            }
            other => return Err(unexpected(&other)),
        }
    }
    for hits in &mut merged {
        hits.sort_by(common::read::hit_order);
        hits.truncate(n_results);
    }
    Ok(merged)
}
