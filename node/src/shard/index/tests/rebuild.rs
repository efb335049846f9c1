//! Background rebuild: triggering, compaction, and writes made while it runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;

use common::Space;

use super::{assert_well_formed, brute_force, config, recall, Mixture};
use crate::shard::index::{PointId, RebuildPolicy, VectorIndex};

fn build(
    space: Space,
    n: usize,
    dim: usize,
    seed: u64,
) -> (VectorIndex, BTreeMap<PointId, Vec<f32>>, Mixture) {
    let mut mix = Mixture::new(dim, 20, 0.5, seed);
    let live: BTreeMap<PointId, Vec<f32>> = mix
        .samples(n)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as PointId, v))
        .collect();
    let mut index = VectorIndex::new(dim, &config(space), n);
    let points: Vec<(PointId, &[f32])> = live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    index.insert_batch(&points);
    (index, live, mix)
}

/// Every live point is found by its own vector, no removed id comes back, and
/// recall against brute force holds.
fn check_against(
    index: &VectorIndex,
    live: &BTreeMap<PointId, Vec<f32>>,
    removed: &HashSet<PointId>,
    mix: &mut Mixture,
) {
    assert_eq!(index.len_live(), live.len());
    for id in live.keys() {
        assert!(index.contains(*id), "{id} lost");
    }
    for id in removed {
        assert!(!index.contains(*id), "{id} resurrected");
    }
    let mut total = 0.0;
    for _ in 0..50 {
        let q = mix.sample();
        let got = index.search(&q, 10, None);
        assert!(got.iter().all(|(id, _)| !removed.contains(id)));
        assert_well_formed(index, |id| live[&id].clone(), &q, &got);
        total += recall(
            &got,
            &brute_force(
                index.space(),
                live.iter().map(|(id, v)| (*id, v.as_slice())),
                &q,
                10,
            ),
        );
    }
    assert!(total / 50.0 >= 0.95, "recall {}", total / 50.0);
    // Points written recently are found by their own vector (l2: distance 0).
    for (id, v) in live.iter().rev().take(20) {
        let got = index.search(v, 1, None);
        assert_eq!(got[0].1, 0.0, "{id} not found by its own vector");
    }
}

#[test]
fn maintain_triggers_rebuild_and_compacts() {
    let (mut index, mut live, mut mix) = build(Space::L2, 4000, 16, 51);
    let mut removed = HashSet::new();
    // 1000 tombstones: below the 1024 minimum, nothing starts.
    for id in 0..1000 {
        index.remove(id);
        live.remove(&id);
        removed.insert(id);
    }
    index.maintain();
    assert!(!index.rebuild_in_progress());
    // 1100 of 4000: past both thresholds.
    for id in 1000..1100 {
        index.remove(id);
        live.remove(&id);
        removed.insert(id);
    }
    index.maintain();
    assert!(index.rebuild_in_progress());
    assert!(!index.start_rebuild(), "a second rebuild must not start");
    while index.rebuild_in_progress() {
        std::thread::sleep(std::time::Duration::from_millis(5));
        index.maintain();
    }
    assert_eq!(index.tombstones(), 0);
    check_against(&index, &live, &removed, &mut mix);
}

#[test]
fn writes_during_rebuild_are_replayed() {
    let (mut index, mut live, mut mix) = build(Space::L2, 3000, 16, 61);
    let mut removed = HashSet::new();
    for id in 0..900 {
        index.remove(id);
        live.remove(&id);
        removed.insert(id);
    }
    // Hold the build back until the writes below are applied.
    let (go, wait) = mpsc::channel::<()>();
    assert!(index.start_rebuild_with(Some(Box::new(move || {
        let _ = wait.recv();
    }))));
    let mut next_id = 10_000;
    for round in 0..10 {
        // New points...
        let fresh: Vec<(PointId, Vec<f32>)> = (0..50)
            .map(|_| {
                next_id += 1;
                (next_id, mix.sample())
            })
            .collect();
        let batch: Vec<(PointId, &[f32])> =
            fresh.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.insert_batch(&batch);
        live.extend(fresh.iter().cloned());
        // ...removals of old points and of points inserted during the rebuild...
        for id in [1000 + round * 7, fresh[0].0, fresh[1].0] {
            index.remove(id);
            live.remove(&id);
            removed.insert(id);
        }
        // ...a point removed and inserted again under the same id...
        let back = fresh[1].0;
        let v = mix.sample();
        index.insert_batch(&[(back, &v)]);
        removed.remove(&back);
        live.insert(back, v);
        // ...and a live id replaced in place.
        let v = mix.sample();
        let replaced = 2000 + round;
        index.insert_batch(&[(replaced, &v)]);
        live.insert(replaced, v);
        index.maintain();
        assert!(
            index.rebuild_in_progress(),
            "the held build cannot have finished"
        );
    }
    // The old graph serves correct results meanwhile.
    check_against(&index, &live, &removed, &mut mix);
    go.send(()).unwrap();
    // More writes race with the build thread's catch-up: whichever of the
    // thread or the install applies them, they end up applied exactly once.
    for _ in 0..5 {
        next_id += 1;
        let v = mix.sample();
        index.insert_batch(&[(next_id, &v)]);
        live.insert(next_id, v);
        let gone = next_id - 3;
        index.remove(gone);
        live.remove(&gone);
        removed.insert(gone);
    }
    assert!(index.finish_rebuild());
    assert!(!index.rebuild_in_progress());
    // Only the removals and replacements logged during the build remain as tombstones.
    assert!(
        index.tombstones() > 0 && index.tombstones() < 100,
        "{}",
        index.tombstones()
    );
    check_against(&index, &live, &removed, &mut mix);
}

#[test]
fn maintain_installs_without_blocking_and_policy_is_adjustable() {
    let (mut index, mut live, mut mix) = build(Space::Cosine, 1500, 8, 71);
    index.set_rebuild_policy(RebuildPolicy {
        min_tombstones: 10,
        min_fraction: 0.1,
    });
    let mut removed = HashSet::new();
    for id in 0..200 {
        index.remove(id);
        live.remove(&id);
        removed.insert(id);
    }
    index.maintain();
    assert!(index.rebuild_in_progress());
    // Keep writing through maintain() calls until the build is installed.
    let mut next_id = 5000;
    while index.rebuild_in_progress() {
        next_id += 1;
        let v = mix.sample();
        index.insert_batch(&[(next_id, &v)]);
        live.insert(next_id, v);
        index.maintain();
    }
    assert!(index.tombstones() < 200);
    assert_eq!(index.len_live(), live.len());
    for id in &removed {
        assert!(!index.contains(*id));
    }
    for _ in 0..20 {
        let q = mix.sample();
        let got = index.search(&q, 10, None);
        assert!(got.iter().all(|(id, _)| !removed.contains(id)));
    }
}

#[test]
fn dropping_an_index_cancels_its_rebuild() {
    let (mut index, _, _) = build(Space::Ip, 2000, 8, 81);
    let (go, wait) = mpsc::channel::<()>();
    assert!(index.start_rebuild_with(Some(Box::new(move || {
        let _ = wait.recv();
    }))));
    drop(index);
    // The build thread wakes up, sees the cancel flag and exits.
    let _ = go.send(());
}
