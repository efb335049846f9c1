//! Build and query figures at 100k x 128 (run in release, see the ignore note).
//! `INDEX_BENCH_N`, `INDEX_BENCH_SPREAD` and `INDEX_BENCH_SPACE` (l2, cosine,
//! ip) change the data set; `INDEX_BENCH_QUICK` stops after the unfiltered
//! searches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Space;
use rand::seq::SliceRandom;

use super::{brute_force, config, recall, Mixture};
use crate::shard::index::{PointId, VectorIndex};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Latencies(Vec<Duration>);

impl Latencies {
    fn report(mut self, what: &str) {
        self.0.sort();
        let n = self.0.len();
        let mean = self.0.iter().sum::<Duration>() / n as u32;
        println!(
            "  {what}: mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms ({n} queries, one thread)",
            mean.as_secs_f64() * 1e3,
            self.0[n / 2].as_secs_f64() * 1e3,
            self.0[n * 99 / 100].as_secs_f64() * 1e3
        );
    }
}

fn measure(
    index: &VectorIndex,
    live: &BTreeMap<PointId, Vec<f32>>,
    queries: &[Vec<f32>],
    allow: Option<&(dyn Fn(PointId) -> bool + Sync)>,
    what: &str,
) {
    let mut lat = Vec::with_capacity(queries.len());
    let mut total = 0.0;
    let mut hist = [0usize; 11];
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let got = index.search(q, 10, allow);
        lat.push(t.elapsed());
        if i < 200 {
            let points = live
                .iter()
                .filter(|(id, _)| allow.is_none_or(|f| f(**id)))
                .map(|(id, v)| (*id, v.as_slice()));
            let r = recall(&got, &brute_force(index.space(), points, q, 10));
            hist[(r * 10.0).round() as usize] += 1;
            total += r;
        }
    }
    Latencies(lat).report(what);
    println!(
        "  {what}: recall@10 {:.4} (200 queries), histogram {hist:?}",
        total / 200.0
    );
}

#[test]
#[ignore = "benchmark: cargo test --release -p node index::tests::bench -- --ignored --nocapture"]
fn bench_100k_x_128() {
    let n: usize = env_or("INDEX_BENCH_N", 100_000);
    let spread: f32 = env_or("INDEX_BENCH_SPREAD", 0.5);
    let space = Space::parse(&env_or("INDEX_BENCH_SPACE", "l2".to_string())).unwrap_or(Space::L2);
    let dim = 128;
    println!("{n} x {dim}, 100 clusters, spread {spread}, {space:?}, M 16, ef_construction 100, ef_search 100");
    let mut mix = Mixture::new(dim, 100, spread, 5);
    let mut live: BTreeMap<PointId, Vec<f32>> = mix
        .samples(n)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as PointId, v))
        .collect();
    let queries = mix.samples(1000);

    let mut index = VectorIndex::new(dim, &config(space), n);
    let points: Vec<(PointId, &[f32])> = live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    let t = Instant::now();
    for batch in points.chunks(10_000) {
        index.insert_batch(batch);
    }
    let build = t.elapsed();
    println!(
        "  build: {:.2} s ({:.0} points/s)",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64()
    );
    let t = Instant::now();
    for (id, v) in points
        .iter()
        .take(1000)
        .map(|(id, v)| (*id + n as PointId, v.to_vec()))
        .collect::<Vec<_>>()
    {
        index.insert_batch(&[(id, &v)]);
        live.insert(id, v);
    }
    println!(
        "  1000 single-point inserts: {:.3} ms each",
        t.elapsed().as_secs_f64() * 1e3 / 1000.0
    );
    measure(&index, &live, &queries, None, "search k=10");
    for ef in [200, 400] {
        index.set_ef_search(ef);
        measure(
            &index,
            &live,
            &queries,
            None,
            &format!("search k=10 ef {ef}"),
        );
    }
    index.set_ef_search(100);
    if std::env::var("INDEX_BENCH_QUICK").is_ok() {
        return;
    }
    let half = |id: PointId| id.is_multiple_of(2);
    measure(
        &index,
        &live,
        &queries,
        Some(&half),
        "search k=10, filter passing 50%",
    );
    let tenth = |id: PointId| id.is_multiple_of(10);
    measure(
        &index,
        &live,
        &queries,
        Some(&tenth),
        "search k=10, filter passing 10%",
    );
    let hundredth = |id: PointId| id.is_multiple_of(100);
    measure(
        &index,
        &live,
        &queries,
        Some(&hundredth),
        "search k=10, filter passing 1%",
    );
    for fraction in [100, 10, 1] {
        let candidates: Vec<PointId> = live
            .keys()
            .copied()
            .filter(|id| id % 100 < fraction)
            .collect();
        let t = Instant::now();
        for q in queries.iter().take(100) {
            index.exact_search(q, 10, &candidates);
        }
        println!(
            "  exact_search k=10 over {} candidates: {:.3} ms per query",
            candidates.len(),
            t.elapsed().as_secs_f64() * 1e3 / 100.0
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    index.save(dir.path()).unwrap();
    let save = t.elapsed();
    let t = Instant::now();
    let loaded = VectorIndex::load(dir.path(), &config(space)).unwrap();
    println!(
        "  save {:.2} s, load (verify + reload) {:.2} s, {} points",
        save.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        loaded.len_live()
    );
    drop(loaded);

    let mut victims: Vec<PointId> = live.keys().copied().collect();
    victims.shuffle(mix.rng());
    victims.truncate(live.len() * 3 / 10);
    for id in &victims {
        index.remove(*id);
        live.remove(id);
    }
    measure(
        &index,
        &live,
        &queries,
        None,
        "search k=10 with 30% tombstones",
    );
    let t = Instant::now();
    index.maintain();
    assert!(index.rebuild_in_progress());
    index.finish_rebuild();
    println!(
        "  rebuild of {} live points: {:.2} s",
        index.len_live(),
        t.elapsed().as_secs_f64()
    );
    measure(&index, &live, &queries, None, "search k=10 after rebuild");
}
