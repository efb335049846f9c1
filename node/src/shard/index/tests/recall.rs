//! Recall against brute force, fresh and after churn; small indexes are exact.

use std::collections::{BTreeMap, HashSet};

use common::Space;
use rand::seq::SliceRandom;

use super::{assert_well_formed, brute_force, config, recall, Mixture, SPACES};
use crate::shard::index::{PointId, VectorIndex, EXACT_BELOW_LIVE};

const N: usize = 20_000;
const DIM: usize = 128;
const CLUSTERS: usize = 100;
const SPREAD: f32 = 0.5;
const QUERIES: usize = 200;
const K: usize = 10;

fn mean_recall(
    index: &VectorIndex,
    live: &BTreeMap<PointId, Vec<f32>>,
    removed: &HashSet<PointId>,
    queries: &[Vec<f32>],
) -> f64 {
    let space = index.space();
    let mut total = 0.0;
    for q in queries {
        let got = index.search(q, K, None);
        assert_eq!(got.len(), K);
        assert!(
            got.iter().all(|(id, _)| !removed.contains(id)),
            "removed id returned"
        );
        assert_well_formed(index, |id| live[&id].clone(), q, &got);
        let want = brute_force(space, live.iter().map(|(id, v)| (*id, v.as_slice())), q, K);
        total += recall(&got, &want);
    }
    total / queries.len() as f64
}

/// Builds 20k x 128 (100 clusters), measures recall@10, then replaces a random
/// 30% of the points (remove + insert under a new id) and measures again.
fn recall_fresh_and_after_churn(space: Space, seed: u64) {
    let mut mix = Mixture::new(DIM, CLUSTERS, SPREAD, seed);
    let mut live: BTreeMap<PointId, Vec<f32>> = mix
        .samples(N)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as PointId, v))
        .collect();
    let mut index = VectorIndex::new(DIM, &config(space), N);
    let points: Vec<(PointId, &[f32])> = live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    for batch in points.chunks(2000) {
        index.insert_batch(batch);
    }
    let queries = mix.samples(QUERIES);
    let fresh = mean_recall(&index, &live, &HashSet::new(), &queries);

    let mut victims: Vec<PointId> = live.keys().copied().collect();
    victims.shuffle(mix.rng());
    victims.truncate(N * 3 / 10);
    let mut removed = HashSet::new();
    let mut next_id = N as PointId;
    for batch in victims.chunks(500) {
        let fresh_vectors: Vec<(PointId, Vec<f32>)> = batch
            .iter()
            .map(|_| {
                next_id += 1;
                (next_id, mix.sample())
            })
            .collect();
        for id in batch {
            index.remove(*id);
            live.remove(id);
            removed.insert(*id);
        }
        let inserts: Vec<(PointId, &[f32])> = fresh_vectors
            .iter()
            .map(|(id, v)| (*id, v.as_slice()))
            .collect();
        index.insert_batch(&inserts);
        live.extend(fresh_vectors);
    }
    assert_eq!(index.len_live(), N);
    assert_eq!(index.tombstones(), victims.len());
    let churned = mean_recall(&index, &live, &removed, &queries);

    // Filtered searches never return removed or filtered-out ids either.
    let even = |id: PointId| id.is_multiple_of(2);
    for q in queries.iter().take(50) {
        let got = index.search(q, K, Some(&even));
        assert_eq!(got.len(), K);
        assert!(got.iter().all(|(id, _)| even(*id) && !removed.contains(id)));
        assert_well_formed(&index, |id| live[&id].clone(), q, &got);
    }
    println!("{space:?}: recall@{K} fresh {fresh:.4}, after replacing 30% {churned:.4}");
    assert!(fresh >= 0.95, "{space:?} fresh recall {fresh}");
    assert!(churned >= 0.95, "{space:?} recall after churn {churned}");
}

#[test]
fn recall_at_10_l2() {
    recall_fresh_and_after_churn(Space::L2, 11);
}

#[test]
fn recall_at_10_cosine() {
    recall_fresh_and_after_churn(Space::Cosine, 12);
}

#[test]
fn recall_at_10_ip() {
    recall_fresh_and_after_churn(Space::Ip, 13);
}

#[test]
fn small_index_is_exact() {
    for space in SPACES {
        let mut mix = Mixture::new(16, 5, 0.3, 21);
        let live: BTreeMap<PointId, Vec<f32>> = mix
            .samples(EXACT_BELOW_LIVE - 1)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as PointId * 3, v))
            .collect();
        let mut index = VectorIndex::new(16, &config(space), 0);
        let points: Vec<(PointId, &[f32])> =
            live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.insert_batch(&points);
        let odd = |id: PointId| id % 2 == 1;
        for _ in 0..20 {
            let q = mix.sample();
            for k in [1, 10, 100] {
                let want =
                    brute_force(space, live.iter().map(|(id, v)| (*id, v.as_slice())), &q, k);
                assert_eq!(index.search(&q, k, None), want);
                let want_odd = brute_force(
                    space,
                    live.iter()
                        .filter(|(id, _)| odd(**id))
                        .map(|(id, v)| (*id, v.as_slice())),
                    &q,
                    k,
                );
                assert_eq!(index.search(&q, k, Some(&odd)), want_odd);
            }
        }
    }
}

#[test]
fn filtered_search_is_never_short() {
    let space = Space::L2;
    let mut mix = Mixture::new(32, 20, 0.5, 31);
    let live: BTreeMap<PointId, Vec<f32>> = mix
        .samples(5000)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as PointId, v))
        .collect();
    let mut index = VectorIndex::new(32, &config(space), 5000);
    let points: Vec<(PointId, &[f32])> = live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    index.insert_batch(&points);
    let tenth = |id: PointId| id % 10 == 3;
    let five = |id: PointId| id < 5;
    let mut total = 0.0;
    for _ in 0..50 {
        let q = mix.sample();
        let got = index.search(&q, 10, Some(&tenth));
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|(id, _)| tenth(*id)));
        let want = brute_force(
            space,
            live.iter()
                .filter(|(id, _)| tenth(**id))
                .map(|(id, v)| (*id, v.as_slice())),
            &q,
            10,
        );
        total += recall(&got, &want);
        // Only five points pass: all of them come back, exactly ordered.
        let want_five = brute_force(
            space,
            live.iter()
                .filter(|(id, _)| five(**id))
                .map(|(id, v)| (*id, v.as_slice())),
            &q,
            10,
        );
        assert_eq!(index.search(&q, 10, Some(&five)), want_five);
        // Asking for more than exist returns every live point.
        assert_eq!(index.search(&q, 6000, None).len(), 5000);
    }
    assert!(total / 50.0 >= 0.95, "filtered recall {}", total / 50.0);
}

#[test]
fn exact_search_over_candidates() {
    let space = Space::Cosine;
    let mut mix = Mixture::new(8, 4, 0.5, 41);
    let vectors = mix.samples(3000);
    let mut index = VectorIndex::new(8, &config(space), 0);
    let points: Vec<(PointId, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as PointId, v.as_slice()))
        .collect();
    index.insert_batch(&points);
    index.remove(7);
    let q = mix.sample();
    // Unknown (99_999), removed (7) and repeated (5) candidates are skipped.
    let candidates = [5, 7, 5, 11, 99_999, 2000, 1234];
    let kept = [5u64, 11, 2000, 1234];
    let want = brute_force(
        space,
        kept.iter().map(|&id| (id, vectors[id as usize].as_slice())),
        &q,
        3,
    );
    assert_eq!(index.exact_search(&q, 3, &candidates), want);
    assert_eq!(index.exact_search(&q, 10, &candidates).len(), 4);
    assert!(index.exact_search(&q, 0, &candidates).is_empty());
    assert!(index.exact_search(&[1.0], 3, &candidates).is_empty());
    assert!(index.search(&[1.0], 3, None).is_empty());
}

#[test]
fn wrong_dimension_is_rejected_without_side_effects() {
    let mut index = VectorIndex::new(3, &config(Space::L2), 0);
    let err = index.try_insert_batch(&[(1, &[1.0, 2.0, 3.0][..]), (2, &[1.0][..])]);
    assert!(err.is_err());
    assert_eq!(index.len_live(), 0);
    index.insert_batch(&[(1, &[1.0, 2.0, 3.0][..])]);
    assert!(index.contains(1));
}

#[test]
fn reinserting_a_live_id_replaces_it() {
    let mut index = VectorIndex::new(2, &config(Space::L2), 0);
    index.insert_batch(&[(1, &[0.0, 0.0][..]), (2, &[5.0, 5.0][..])]);
    index.insert_batch(&[(1, &[10.0, 10.0][..])]);
    assert_eq!((index.len_live(), index.tombstones()), (2, 1));
    assert_eq!(
        index.search(&[0.0, 0.0], 2, None),
        vec![(2, 50.0), (1, 200.0)]
    );
}

/// A graph reloaded from its files and then grown keeps its recall: the points it
/// loads and the points inserted after take distinct slots (the visited marks of the
/// graph search, `node/vendor/hnsw_rs/PATCHED.md` change 7), so no search skips a point
/// as seen that it never saw.
#[test]
fn a_reloaded_graph_grown_further_keeps_its_recall() {
    const HALF: usize = 5_000;
    let space = Space::L2;
    let mut mix = Mixture::new(DIM, CLUSTERS, SPREAD, 31);
    let live: BTreeMap<PointId, Vec<f32>> = mix
        .samples(2 * HALF)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as PointId, v))
        .collect();
    let points: Vec<(PointId, &[f32])> = live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    let (first, second) = points.split_at(HALF);
    let mut index = VectorIndex::new(DIM, &config(space), HALF);
    index.insert_batch(first);
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    let mut loaded = VectorIndex::load(dir.path(), &config(space)).unwrap();
    for batch in second.chunks(1000) {
        index.insert_batch(batch);
        loaded.insert_batch(batch);
    }
    assert_eq!(loaded.len_live(), 2 * HALF);
    // Queries near the points inserted after the reload, so they are the answers.
    let queries: Vec<Vec<f32>> = second.iter().step_by(50).map(|(_, v)| v.to_vec()).collect();
    let grown = mean_recall(&loaded, &live, &HashSet::new(), &queries);
    let built = mean_recall(&index, &live, &HashSet::new(), &queries);
    println!("recall@{K}: grown after a reload {grown:.4}, built in one go {built:.4}");
    assert!(
        grown >= 0.95,
        "recall of a graph grown after a reload: {grown}"
    );
    assert!(grown >= built - 0.02, "reloaded {grown} vs built {built}");
}
