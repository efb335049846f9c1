//! Property test: random insert / remove / replace / search sequences on small
//! indexes (the exact path) agree with a brute-force oracle, across rebuilds
//! and save / load round trips.

use std::collections::BTreeMap;

use common::Space;
use proptest::prelude::*;

use super::{brute_force, config};
use crate::shard::index::{PointId, VectorIndex};

const DIM: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<Vec<f32>>),
    Remove(usize),
    /// Remove a live point and insert a new version under a fresh id.
    Replace(usize, Vec<f32>),
    /// Insert a live id again (replaces its vector in place).
    Reinsert(usize, Vec<f32>),
    /// k, and an optional filter `id % m == r`.
    Search(Vec<f32>, usize, Option<(u64, u64)>),
    /// k and candidates (indexes into every id ever used, plus an unknown one).
    Exact(Vec<f32>, usize, Vec<usize>),
    SaveLoad,
    StartRebuild,
    Maintain,
    FinishRebuild,
}

/// Small integer coordinates, so that equal distances (ties) are common.
fn vector() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-2i8..=2).prop_map(f32::from), DIM)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(vector(), 1..6).prop_map(Op::Insert),
        2 => any::<usize>().prop_map(Op::Remove),
        2 => (any::<usize>(), vector()).prop_map(|(i, v)| Op::Replace(i, v)),
        1 => (any::<usize>(), vector()).prop_map(|(i, v)| Op::Reinsert(i, v)),
        4 => (vector(), 0usize..12, prop::option::of((1u64..4).prop_flat_map(|m| (Just(m), 0..m))))
            .prop_map(|(q, k, f)| Op::Search(q, k, f)),
        1 => (vector(), 0usize..8, prop::collection::vec(any::<usize>(), 0..10))
            .prop_map(|(q, k, c)| Op::Exact(q, k, c)),
        1 => Just(Op::SaveLoad),
        1 => Just(Op::StartRebuild),
        1 => Just(Op::Maintain),
        1 => Just(Op::FinishRebuild),
    ]
}

fn space() -> impl Strategy<Value = Space> {
    prop_oneof![Just(Space::L2), Just(Space::Cosine), Just(Space::Ip)]
}

fn nth_live(live: &BTreeMap<PointId, Vec<f32>>, i: usize) -> Option<PointId> {
    (!live.is_empty()).then(|| *live.keys().nth(i % live.len()).unwrap_or(&0))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn index_matches_brute_force_oracle(space in space(), ops in prop::collection::vec(op(), 1..40)) {
        let cfg = config(space);
        let mut index = VectorIndex::new(DIM, &cfg, 0);
        let mut live: BTreeMap<PointId, Vec<f32>> = BTreeMap::new();
        let mut next_id: PointId = 1;
        let dir = tempfile::tempdir().unwrap();
        for op in ops {
            match op {
                Op::Insert(vs) => {
                    let batch: Vec<(PointId, Vec<f32>)> =
                        vs.into_iter().map(|v| { next_id += 1; (next_id, v) }).collect();
                    let refs: Vec<(PointId, &[f32])> = batch.iter().map(|(id, v)| (*id, v.as_slice())).collect();
                    index.insert_batch(&refs);
                    live.extend(batch);
                }
                Op::Remove(i) => {
                    if let Some(id) = nth_live(&live, i) {
                        index.remove(id);
                        live.remove(&id);
                    }
                    // Removing an unknown or already removed id is a no-op.
                    index.remove(next_id + 1000);
                }
                Op::Replace(i, v) => {
                    if let Some(id) = nth_live(&live, i) {
                        index.remove(id);
                        live.remove(&id);
                        next_id += 1;
                        index.insert_batch(&[(next_id, &v)]);
                        live.insert(next_id, v);
                    }
                }
                Op::Reinsert(i, v) => {
                    if let Some(id) = nth_live(&live, i) {
                        index.insert_batch(&[(id, &v)]);
                        live.insert(id, v);
                    }
                }
                Op::Search(q, k, filter) => {
                    let pass = move |id: PointId| filter.is_none_or(|(m, r)| id % m == r);
                    let got = match filter {
                        None => index.search(&q, k, None),
                        Some(_) => index.search(&q, k, Some(&pass)),
                    };
                    let want = brute_force(
                        space,
                        live.iter().filter(|(id, _)| pass(**id)).map(|(id, v)| (*id, v.as_slice())),
                        &q,
                        k,
                    );
                    prop_assert_eq!(got, want);
                }
                Op::Exact(q, k, picks) => {
                    let mut candidates: Vec<PointId> = picks.iter().map(|p| (*p as PointId) % (next_id + 1)).collect();
                    candidates.push(next_id + 77);
                    let mut kept: Vec<PointId> = candidates.iter().copied().filter(|id| live.contains_key(id)).collect();
                    kept.sort_unstable();
                    kept.dedup();
                    let want = brute_force(space, kept.iter().map(|id| (*id, live[id].as_slice())), &q, k);
                    prop_assert_eq!(index.exact_search(&q, k, &candidates), want);
                }
                Op::SaveLoad => {
                    index.save(dir.path()).unwrap();
                    index = VectorIndex::load(dir.path(), &cfg).unwrap();
                }
                Op::StartRebuild => {
                    index.start_rebuild();
                }
                Op::Maintain => index.maintain(),
                Op::FinishRebuild => {
                    // A running rebuild must install (not fail its check and be dropped).
                    let running = index.rebuild_in_progress();
                    prop_assert_eq!(index.finish_rebuild(), running);
                    prop_assert!(!index.rebuild_in_progress());
                }
            }
            prop_assert_eq!(index.len_live(), live.len());
            for id in live.keys() {
                prop_assert!(index.contains(*id));
            }
        }
        let running = index.rebuild_in_progress();
        prop_assert_eq!(index.finish_rebuild(), running);
        prop_assert_eq!(index.len_live(), live.len());
        let q = vec![0.5; DIM];
        let want = brute_force(space, live.iter().map(|(id, v)| (*id, v.as_slice())), &q, live.len());
        prop_assert_eq!(index.search(&q, live.len() + 1, None), want);
    }
}
