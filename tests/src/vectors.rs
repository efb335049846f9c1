//! Synthetic clustered vector data and a brute-force oracle, shared by node's
//! shard and index tests and by its `shard_bench` example, so recall tests and
//! benchmarks measure on the same kind of data. (The end-to-end tests'
//! records and their independent filter oracle are in [`crate::data`].)

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::Space;

/// Samples from a mixture of isotropic gaussians: centres drawn from
/// N(0, 1) per coordinate, points = centre + N(0, spread²) per coordinate.
pub struct Mixture {
    rng: StdRng,
    centres: Vec<Vec<f32>>,
    spread: f32,
}

impl Mixture {
    pub fn new(dim: usize, clusters: usize, spread: f32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres = (0..clusters.max(1))
            .map(|_| (0..dim).map(|_| normal(&mut rng)).collect())
            .collect();
        Mixture {
            rng,
            centres,
            spread,
        }
    }

    pub fn sample(&mut self) -> Vec<f32> {
        let c = self.rng.gen_range(0..self.centres.len());
        let spread = self.spread;
        let Mixture { rng, centres, .. } = self;
        centres[c]
            .iter()
            .map(|&x| x + spread * normal(rng))
            .collect()
    }

    pub fn samples(&mut self, n: usize) -> Vec<Vec<f32>> {
        (0..n).map(|_| self.sample()).collect()
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }
}

/// Standard normal by Box-Muller.
pub fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// `n` vectors of `dim` dimensions from a `clusters`-component mixture.
/// The same seed gives the same centres, so data and queries drawn with the
/// same seed but taken from different positions share clusters.
pub fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
    Mixture::new(dim, clusters, spread, seed).samples(n)
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
