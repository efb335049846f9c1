//! Tests of the vector index against brute force.

mod bench;
mod persist;
mod props;
mod rebuild;
mod recall;

use common::command::IndexConfig;
use common::Space;
pub(super) use tests::vectors::Mixture;

use super::{PointId, VectorIndex};

pub(super) const SPACES: [Space; 3] = [Space::L2, Space::Cosine, Space::Ip];

pub(super) fn config(space: Space) -> IndexConfig {
    IndexConfig {
        space,
        ..IndexConfig::default()
    }
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
