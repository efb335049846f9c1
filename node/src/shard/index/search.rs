//! Search over a segment: exact scans, HNSW with tombstones and filters, and
//! the choice between them.

use std::cmp::Ordering;

use common::Space;

use super::segment::Segment;
use super::PointId;

/// A caller's filter on point ids.
pub type Allow<'a> = Option<&'a (dyn Fn(PointId) -> bool + Sync)>;

/// Below this many live points a segment is always searched exactly.
pub const EXACT_BELOW_LIVE: usize = 1000;

/// Graph searches (each asking for 4x more candidates) before an exact scan.
const HNSW_ATTEMPTS: usize = 3;

/// Result order: distance ascending (NaN last), then point id.
pub(crate) fn cmp_hits(a: &(PointId, f32), b: &(PointId, f32)) -> Ordering {
    let by_distance = match (a.1.is_nan(), b.1.is_nan()) {
        (false, false) => a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    };
    by_distance.then(a.0.cmp(&b.0))
}

/// The first `k` hits in result order.
pub(crate) fn top_k(mut hits: Vec<(PointId, f32)>, k: usize) -> Vec<(PointId, f32)> {
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, cmp_hits);
        hits.truncate(k);
    }
    hits.sort_unstable_by(cmp_hits);
    hits
}

fn allowed(allow: Allow<'_>, id: PointId) -> bool {
    allow.is_none_or(|f| f(id))
}

/// Exact top-k over the given slots (each must be live and distinct).
pub(crate) fn exact_slots(
    seg: &Segment,
    space: Space,
    query: &[f32],
    k: usize,
    slots: impl Iterator<Item = usize>,
) -> Vec<(PointId, f32)> {
    let store = &seg.store;
    let hits = slots
        .map(|s| (store.id(s), space.distance(query, store.vector(s))))
        .collect();
    top_k(hits, k)
}

/// Exact top-k over all live points passing `allow`.
pub(crate) fn exact_live(
    seg: &Segment,
    space: Space,
    query: &[f32],
    k: usize,
    allow: Allow<'_>,
) -> Vec<(PointId, f32)> {
    let store = &seg.store;
    let slots = store.live_slots().filter(|&s| allowed(allow, store.id(s)));
    exact_slots(seg, space, query, k, slots)
}

/// Top-k live points passing `allow`: exact on small segments, otherwise HNSW
/// with tombstones and `allow` applied to its candidates, widened while too
/// few candidates pass, and an exact scan when that still falls short.
///
/// Each graph search asks for at least `ef` candidates, which costs no more
/// than asking for `k` (hnsw_rs's beam holds `ef` points either way). When
/// fewer than `k` pass, the search is repeated with 4x more candidates if the
/// pass rate observed so far says that can succeed, and otherwise the live
/// points are scanned exactly.
///
/// hnsw_rs's own filtered search is deliberately not used: it never stops
/// early, so with a selective filter it walks most of the graph (about 60 ms
/// at 100k points with a 1% filter, against 8 ms for a full exact scan).
pub(crate) fn search(
    seg: &Segment,
    space: Space,
    ef_search: usize,
    query: &[f32],
    k: usize,
    allow: Allow<'_>,
) -> Vec<(PointId, f32)> {
    let store = &seg.store;
    let live = store.live_count();
    if k == 0 || live == 0 {
        return Vec::new();
    }
    // A graph search that must return half the points is no cheaper than a scan.
    if live < EXACT_BELOW_LIVE || k.saturating_mul(2) >= live {
        return exact_live(seg, space, query, k, allow);
    }
    let limit = (store.slots() / 4).max(k);
    // Enough candidates that k live ones remain after dropping tombstones.
    let tombstones = store.tombstones();
    let base = if tombstones > 0 {
        k + k * tombstones / live + 8
    } else {
        k
    };
    let mut want = base.max(ef_search).min(limit);
    for _ in 0..HNSW_ATTEMPTS {
        let hits = graph_hits(seg, space, ef_search, query, want, allow);
        if hits.len() >= k {
            return top_k(hits, k);
        }
        let next = want.saturating_mul(4).min(limit);
        // Expect the pass rate seen so far: scan if even that falls short.
        if want >= limit || hits.len().saturating_mul(next) < k.saturating_mul(want) {
            break;
        }
        want = next;
    }
    exact_live(seg, space, query, k, allow)
}

/// Live hits passing `allow` among `want` graph candidates, with exact distances.
fn graph_hits(
    seg: &Segment,
    space: Space,
    ef_search: usize,
    query: &[f32],
    want: usize,
    allow: Allow<'_>,
) -> Vec<(PointId, f32)> {
    let store = &seg.store;
    let found = seg.graph.search(query, want, ef_search.max(want));
    found
        .into_iter()
        .filter(|&s| store.is_live(s) && allowed(allow, store.id(s)))
        .map(|s| (store.id(s), space.distance(query, store.vector(s))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_distance_then_id_with_nan_last() {
        let hits = vec![
            (5, 1.0),
            (3, f32::NAN),
            (2, 1.0),
            (9, 0.5),
            (1, -f32::NAN),
            (4, 2.0),
        ];
        let got = top_k(hits.clone(), 4);
        let ids: Vec<PointId> = got.iter().map(|h| h.0).collect();
        assert_eq!(ids, vec![9, 2, 5, 4]);
        let all: Vec<PointId> = top_k(hits, 10).iter().map(|h| h.0).collect();
        assert_eq!(all, vec![9, 2, 5, 4, 1, 3]);
        assert!(top_k(vec![(1, 0.0)], 0).is_empty());
    }
}
