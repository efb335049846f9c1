//! The distances the HNSW graph is built with.
//!
//! hnsw_rs asserts that every distance is `>= 0` and panics on NaN, but `ip`
//! (`1 - a·b`) is negative for unnormalised vectors and `cosine` can round to
//! slightly below zero. The graph therefore orders points by `g(d)`, where `d`
//! is the space's distance (common's kernels) and `g` is strictly increasing
//! with values in `[0, inf)`. HNSW only ever compares distances to the same
//! query, so a monotone map leaves its behaviour unchanged. Distances returned
//! to callers are recomputed exactly with `Space::distance`, never inverted.
//!
//! The type names end up in hnsw_rs dump files and are checked on reload:
//! renaming a type makes old dumps fail to load (with an error, then a rebuild).

use anndists::dist::distances::Distance;
use common::Space;

/// Maps a space's distance to the non-negative value the graph compares.
#[inline]
pub(crate) fn graph_distance(space: Space, d: f32) -> f32 {
    if d.is_nan() {
        // Only non-finite input vectors get here; hnsw_rs panics on NaN.
        return f32::MAX;
    }
    match space {
        // A sum of squares: never negative, so the identity keeps full precision.
        Space::L2 => d.max(0.0),
        Space::Cosine | Space::Ip => {
            if d >= 0.0 {
                1.0 + d
            } else {
                1.0 / (1.0 - d)
            }
        }
    }
}

macro_rules! graph_dist {
    ($(#[$doc:meta])* $name:ident, $space:expr) => {
        $(#[$doc])*
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $name;

        impl Distance<f32> for $name {
            #[inline]
            fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
                graph_distance($space, $space.distance(va, vb))
            }
        }
    };
}

graph_dist!(
    /// Squared Euclidean distance as the graph sees it.
    GraphL2,
    Space::L2
);
graph_dist!(
    /// `g(1 - cos)` as the graph sees it.
    GraphCosine,
    Space::Cosine
);
graph_dist!(
    /// `g(1 - a·b)` as the graph sees it.
    GraphIp,
    Space::Ip
);

/// The short type name hnsw_rs records for the distance of `space`.
pub(crate) fn dist_type_name(space: Space) -> &'static str {
    fn short<T>() -> &'static str {
        let full = std::any::type_name::<T>();
        full.rsplit("::").next().unwrap_or(full)
    }
    match space {
        Space::L2 => short::<GraphL2>(),
        Space::Cosine => short::<GraphCosine>(),
        Space::Ip => short::<GraphIp>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_distance_is_monotone_and_non_negative() {
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -5.0,
            -1.0,
            -1e-7,
            0.0,
            1e-7,
            0.5,
            1.0,
            2.0,
            1e30,
            f32::INFINITY,
        ];
        for space in [Space::Cosine, Space::Ip] {
            let ys: Vec<f32> = xs.iter().map(|&x| graph_distance(space, x)).collect();
            assert!(ys.iter().all(|&y| y >= 0.0));
            assert!(ys.windows(2).all(|w| w[0] <= w[1]), "{ys:?}");
            assert!(graph_distance(space, -1.0) < graph_distance(space, -0.5));
            assert!(graph_distance(space, -1e-3) < graph_distance(space, 0.0));
        }
        assert_eq!(graph_distance(Space::L2, 3.5), 3.5);
        assert_eq!(graph_distance(Space::Ip, f32::NAN), f32::MAX);
    }

    #[test]
    fn dist_names_are_distinct() {
        assert_eq!(dist_type_name(Space::L2), "GraphL2");
        assert_eq!(dist_type_name(Space::Cosine), "GraphCosine");
        assert_eq!(dist_type_name(Space::Ip), "GraphIp");
    }
}
