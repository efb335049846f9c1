//! A thin owner of one hnsw_rs graph, whatever its space.
//!
//! Points are keyed in the graph by their slot in the segment's
//! [`VectorStore`](super::store::VectorStore) (hnsw_rs's `DataId`), not by
//! `PointId`, so filters can test liveness with an array lookup.

use common::Space;
use hnsw_rs::hnsw::Hnsw;

use super::distance::{GraphCosine, GraphIp, GraphL2};

/// Number of layers; hnsw_rs's dump refuses any other value than its maximum.
const LAYERS: usize = 16;

/// Batches at least this large are inserted with hnsw_rs's rayon insert.
const PARALLEL_INSERT_MIN: usize = 256;

/// hnsw_rs preallocates per-layer tables from the capacity hint; cap it so a
/// wild hint cannot reserve gigabytes up front (tables still grow as needed).
const CAPACITY_HINT_MAX: usize = 1 << 20;

/// Graph parameters, already clamped to what hnsw_rs accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GraphParams {
    pub space: Space,
    /// `M`: links per point on upper layers (`2M` on layer 0). In `2..=255`:
    /// hnsw_rs exits the process above 256 and stores it as a `u8`.
    pub max_neighbors: usize,
    pub ef_construction: usize,
}

impl GraphParams {
    pub fn new(space: Space, max_neighbors: usize, ef_construction: usize) -> Self {
        GraphParams {
            space,
            max_neighbors: max_neighbors.clamp(2, 255),
            ef_construction: ef_construction.max(1),
        }
    }
}

pub(crate) enum Graph {
    L2(Hnsw<'static, f32, GraphL2>),
    Cosine(Hnsw<'static, f32, GraphCosine>),
    Ip(Hnsw<'static, f32, GraphIp>),
}

/// Runs `$body` with `$h` bound to the inner `Hnsw`, whatever its distance type.
macro_rules! with_hnsw {
    ($graph:expr, $h:ident => $body:expr) => {
        match $graph {
            Graph::L2($h) => $body,
            Graph::Cosine($h) => $body,
            Graph::Ip($h) => $body,
        }
    };
}

impl Graph {
    pub fn new(params: GraphParams, capacity_hint: usize) -> Self {
        let (m, cap, ef) = (
            params.max_neighbors,
            capacity_hint.min(CAPACITY_HINT_MAX),
            params.ef_construction,
        );
        match params.space {
            Space::L2 => Graph::L2(Hnsw::new(m, cap, LAYERS, ef, GraphL2)),
            Space::Cosine => Graph::Cosine(Hnsw::new(m, cap, LAYERS, ef, GraphCosine)),
            Space::Ip => Graph::Ip(Hnsw::new(m, cap, LAYERS, ef, GraphIp)),
        }
    }

    /// Inserts `(vector, slot)` pairs; large batches in parallel.
    pub fn insert(&self, items: &[(&[f32], usize)]) {
        if items.len() >= PARALLEL_INSERT_MIN {
            let items = items.to_vec();
            with_hnsw!(self, h => h.parallel_insert_slice(&items));
        } else {
            for &item in items {
                with_hnsw!(self, h => h.insert_slice(item));
            }
        }
    }

    /// Slots of up to `k` approximate nearest neighbours, nearest first.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<usize> {
        let found = with_hnsw!(self, h => h.search_filter(query, k, ef, None));
        found.into_iter().map(|n| n.d_id).collect()
    }
}
