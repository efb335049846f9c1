//! Tests of the vector index against brute force.

mod bench;
mod persist;
mod props;
mod rebuild;
mod recall;

use common::command::IndexConfig;
use common::Space;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{PointId, VectorIndex};

pub(super) const SPACES: [Space; 3] = [Space::L2, Space::Cosine, Space::Ip];

pub(super) fn config(space: Space) -> IndexConfig {
    IndexConfig {
        space,
        ..IndexConfig::default()
    }
}

/// Samples from a mixture of isotropic gaussians: centres drawn from
/// N(0, 1) per coordinate, points = centre + N(0, spread²) per coordinate.
pub(super) struct Mixture {
    rng: StdRng,
    centres: Vec<Vec<f32>>,
    spread: f32,
}

impl Mixture {
    pub fn new(dim: usize, clusters: usize, spread: f32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres = (0..clusters)
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
pub(super) fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Exact top-k by (distance, id), the order the index promises.
pub(super) fn brute_force<'a>(
    space: Space,
    points: impl IntoIterator<Item = (PointId, &'a [f32])>,
    query: &[f32],
    k: usize,
) -> Vec<(PointId, f32)> {
    let mut all: Vec<(PointId, f32)> = points
        .into_iter()
        .map(|(id, v)| (id, space.distance(query, v)))
        .collect();
    all.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .expect("finite distances")
            .then(a.0.cmp(&b.0))
    });
    all.truncate(k);
    all
}

/// Fraction of `want`'s ids found in `got`.
pub(super) fn recall(got: &[(PointId, f32)], want: &[(PointId, f32)]) -> f64 {
    if want.is_empty() {
        return 1.0;
    }
    let hit = want
        .iter()
        .filter(|w| got.iter().any(|g| g.0 == w.0))
        .count();
    hit as f64 / want.len() as f64
}

/// Results are sorted by (distance, id), distinct, and carry exact distances.
pub(super) fn assert_well_formed(
    index: &VectorIndex,
    vector_of: impl Fn(PointId) -> Vec<f32>,
    query: &[f32],
    got: &[(PointId, f32)],
) {
    for w in got.windows(2) {
        assert!(
            w[0].1 < w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0),
            "results out of order: {w:?}"
        );
    }
    for &(id, d) in got {
        assert_eq!(
            d.to_bits(),
            index.space().distance(query, &vector_of(id)).to_bits(),
            "distance of {id}"
        );
    }
}

#[test]
fn index_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<VectorIndex>();
}
