//! Merging per-shard answers into the one a client sees; pure functions.
//!
//! Every shard returns its records in ascending id order, so `get` asks each
//! shard for its first `offset + limit` ([`per_shard_limit`]) and [`page`]
//! cuts the page from their union: the global order is the id order, and
//! pages concatenate without gaps or repeats however the ids spread. `query`
//! asks each shard for its top `n_results` per query embedding and [`top_k`]
//! keeps the nearest (ties by id, `common::read::hit_order`, so the answer
//! does not depend on which shard answered first). When shards fail,
//! [`split`] reports them all in one error.

use common::read::{QueryHit, RecordView};

use crate::error::ApiError;

/// How many records each shard must return for the page at `offset` of at
/// most `limit` records to be complete after the merge.
pub fn per_shard_limit(offset: usize, limit: Option<usize>) -> Option<usize> {
    limit.map(|l| l.saturating_add(offset))
}

/// The page at `offset` of at most `limit` records, in id order, of the
/// records the shards returned (each shard's part in id order, ids unique
/// across shards).
pub fn page(parts: Vec<Vec<RecordView>>, offset: usize, limit: Option<usize>) -> Vec<RecordView> {
    let mut records: Vec<RecordView> = parts.into_iter().flatten().collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

/// The `n` nearest hits per query of the shards' per-query hit lists (the
/// caller checked that every shard answered all `queries` queries).
pub fn top_k(queries: usize, parts: Vec<Vec<Vec<QueryHit>>>, n: usize) -> Vec<Vec<QueryHit>> {
    let mut merged: Vec<Vec<QueryHit>> = vec![Vec::new(); queries];
    for per_query in parts {
        for (all, hits) in merged.iter_mut().zip(per_query) {
            all.extend(hits);
        }
    }
    for hits in &mut merged {
        hits.sort_by(common::read::hit_order);
        hits.truncate(n);
    }
    merged
}

/// Every `Ok`, or one error combining every `Err`.
pub fn split<T>(results: Vec<Result<T, ApiError>>) -> Result<Vec<T>, ApiError> {
    let mut values = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e),
        }
    }
    match combine(errors) {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

/// One error for several failed shards: the first error's kind, every message.
fn combine(mut errors: Vec<ApiError>) -> Option<ApiError> {
    if errors.len() <= 1 {
        return errors.pop();
    }
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let joined = messages.join("; ");
    Some(match errors.swap_remove(0) {
        ApiError::Unavailable(_) => ApiError::Unavailable(joined),
        ApiError::NotFound(m) => ApiError::NotFound(m),
        _ => ApiError::Internal(joined),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> RecordView {
        RecordView {
            id: id.to_owned(),
            embedding: None,
            metadata: None,
            document: None,
            uri: None,
        }
    }

    fn hit(id: &str, distance: f32) -> QueryHit {
        QueryHit {
            record: record(id),
            distance,
        }
    }

    fn ids(records: &[RecordView]) -> Vec<&str> {
        records.iter().map(|r| r.id.as_str()).collect()
    }

    fn hit_ids(hits: &[QueryHit]) -> Vec<&str> {
        hits.iter().map(|h| h.record.id.as_str()).collect()
    }

    #[test]
    fn pages_interleave_shards_in_id_order() {
        let parts = || {
            vec![
                vec![record("a"), record("d"), record("e")],
                vec![record("b"), record("f")],
                vec![record("c")],
            ]
        };
        assert_eq!(ids(&page(parts(), 0, None)), ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(ids(&page(parts(), 2, Some(3))), ["c", "d", "e"]);
        assert_eq!(ids(&page(parts(), 5, Some(3))), ["f"]);
        assert!(page(parts(), 6, Some(3)).is_empty());
        assert!(page(parts(), 0, Some(0)).is_empty());
        assert_eq!(per_shard_limit(2, Some(3)), Some(5));
        assert_eq!(per_shard_limit(usize::MAX, Some(3)), Some(usize::MAX));
        assert_eq!(per_shard_limit(7, None), None);
    }

    #[test]
    fn top_k_breaks_distance_ties_by_id_whatever_the_shard_order() {
        let a = vec![vec![hit("b", 0.5), hit("x", 0.9)], vec![hit("q", 0.1)]];
        let b = vec![vec![hit("a", 0.5), hit("c", 0.5)], vec![hit("p", 0.1)]];
        let forward = top_k(2, vec![a.clone(), b.clone()], 3);
        let backward = top_k(2, vec![b, a], 3);
        assert_eq!(forward, backward);
        assert_eq!(hit_ids(&forward[0]), ["a", "b", "c"]);
        assert_eq!(hit_ids(&forward[1]), ["p", "q"]);
        assert_eq!(top_k(2, Vec::new(), 3), vec![Vec::new(), Vec::new()]);
    }

    #[test]
    fn one_failed_shard_is_its_own_error_and_several_are_joined() {
        let ok: Vec<Result<u8, ApiError>> = vec![Ok(1), Ok(2)];
        assert_eq!(split(ok), Ok(vec![1, 2]));
        let one = vec![Ok(1), Err(ApiError::Unavailable("shard 2".into()))];
        assert_eq!(split(one), Err(ApiError::Unavailable("shard 2".into())));
        let two: Vec<Result<u8, ApiError>> = vec![
            Err(ApiError::Unavailable("shard 1".into())),
            Ok(2),
            Err(ApiError::Internal("shard 3".into())),
        ];
        assert_eq!(
            split(two),
            Err(ApiError::Unavailable("shard 1; shard 3".into()))
        );
        let not_found: Vec<Result<u8, ApiError>> = vec![
            Err(ApiError::NotFound("gone".into())),
            Err(ApiError::Unavailable("shard 3".into())),
        ];
        assert_eq!(split(not_found), Err(ApiError::NotFound("gone".into())));
        let mixed: Vec<Result<u8, ApiError>> = vec![
            Err(ApiError::Internal("shard 1".into())),
            Err(ApiError::Unavailable("shard 3".into())),
        ];
        assert_eq!(
            split(mixed),
            Err(ApiError::Internal("shard 1; shard 3".into()))
        );
    }
}
