//! Synthetic clustered vector data and a brute-force oracle, shared by the
//! recall tests and the benchmarks so both measure on the same kind of data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::Space;

/// `n` vectors of `dim` dimensions drawn around `clusters` random centres
/// (uniform in [-1, 1]) with Gaussian-ish noise of scale `spread`.
pub fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..centres.len())];
            // Sum of three uniforms: cheap and close enough to a normal for clustering.
            c.iter()
                .map(|x| {
                    x + spread
                        * (rng.gen_range(-1.0f32..1.0)
                            + rng.gen_range(-1.0..1.0)
                            + rng.gen_range(-1.0..1.0))
                })
                .collect()
        })
        .collect()
}

/// Exact top-k indices of `data` for `query`, by (distance, index).
pub fn brute_force_top_k(data: &[Vec<f32>], query: &[f32], k: usize, space: Space) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (space.distance(query, v), i))
        .collect();
    let cmp = |a: &(f32, usize), b: &(f32, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if scored.len() > k && k > 0 {
        scored.select_nth_unstable_by(k - 1, cmp);
        scored.truncate(k);
    }
    scored.sort_by(cmp);
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Fraction of `truth` found in `got`.
pub fn recall<T: PartialEq>(got: &[T], truth: &[T]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    truth.iter().filter(|t| got.contains(t)).count() as f64 / truth.len() as f64
}
