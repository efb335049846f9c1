//! The vector index of one collection on one shard replica.
//!
//! An HNSW graph (hnsw_rs) over the record versions the state machine gives
//! it, each under a fresh [`PointId`]. hnsw_rs cannot delete, so removed
//! points are tombstoned and filtered out of every result.
//!
//! - `distance`: the monotone map that makes every space's distance
//!   acceptable to hnsw_rs.
//! - `graph`: owner of one hnsw_rs graph (insert, search).
//! - `store`: vectors by slot, ids, tombstones.
//! - `segment`: a graph and its store.
//! - `search`: exact scans, HNSW search with tombstones and filters.

mod distance;
mod error;
mod graph;
mod search;
mod segment;
mod store;

#[cfg(test)]
mod tests;

use common::command::IndexConfig;
use common::Space;

pub use error::IndexError;
pub use search::{Allow, EXACT_BELOW_LIVE};

use graph::GraphParams;
use segment::Segment;

/// Identifies one record version in the index; the state machine assigns a
/// fresh one to every version it writes.
pub type PointId = u64;

pub struct VectorIndex {
    dim: usize,
    space: Space,
    ef_search: usize,
    active: Segment,
}

impl VectorIndex {
    /// An empty index. Out-of-range settings are clamped to what hnsw_rs
    /// accepts: `max_neighbors` to `2..=255`, `ef_construction` and
    /// `ef_search` to at least 1.
    pub fn new(dim: usize, config: &IndexConfig, capacity_hint: usize) -> Self {
        let params = graph_params(config);
        VectorIndex::from_segment(dim, config, Segment::new(dim, params, capacity_hint))
    }

    fn from_segment(dim: usize, config: &IndexConfig, active: Segment) -> Self {
        VectorIndex {
            dim,
            space: config.space,
            ef_search: config.ef_search.max(1),
            active,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn space(&self) -> Space {
        self.space
    }

    pub fn ef_search(&self) -> usize {
        self.ef_search
    }

    /// Inserts the points; batches of 256 or more are inserted in parallel.
    /// Inserting an id that is live replaces its vector.
    ///
    /// # Panics
    /// If a vector's length is not [`dim`](Self::dim); the state machine
    /// validates dimensions before applying. [`try_insert_batch`](Self::try_insert_batch)
    /// returns an error instead.
    pub fn insert_batch(&mut self, points: &[(PointId, &[f32])]) {
        if let Err(e) = self.try_insert_batch(points) {
            panic!("VectorIndex::insert_batch: {e}");
        }
    }

    /// Like [`insert_batch`](Self::insert_batch), but inserts nothing and
    /// returns an error if any vector has the wrong dimension.
    pub fn try_insert_batch(&mut self, points: &[(PointId, &[f32])]) -> Result<(), IndexError> {
        if let Some((_, v)) = points.iter().find(|(_, v)| v.len() != self.dim) {
            return Err(IndexError::Dimension {
                expected: self.dim,
                got: v.len(),
            });
        }
        if points.is_empty() {
            return Ok(());
        }
        self.active.insert_batch(points);
        Ok(())
    }

    /// Tombstones `id`: no search returns it again. Unknown ids are ignored.
    pub fn remove(&mut self, id: PointId) {
        self.active.remove(id);
    }

    /// Whether `id` is a live point.
    pub fn contains(&self, id: PointId) -> bool {
        self.active.store.slot_of(id).is_some()
    }

    pub fn len_live(&self) -> usize {
        self.active.store.live_count()
    }

    pub fn tombstones(&self) -> usize {
        self.active.store.tombstones()
    }

    pub fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.max(1);
    }

    /// Top-k live points passing `allow`, sorted by (distance in the space,
    /// PointId) ascending; distances are exact (recomputed with
    /// `space.distance` on the stored vectors).
    ///
    /// Indexes with fewer than [`EXACT_BELOW_LIVE`] live points are scanned
    /// exactly. Otherwise HNSW (`ef = max(ef_search, k)`) is asked for more
    /// candidates while tombstones or `allow` leave fewer than `k`, and an
    /// exact scan of the live points finishes the job if that still falls
    /// short: the result has `min(k, matching live points)` entries. Whether a
    /// selective filter should rather use [`exact_search`](Self::exact_search)
    /// is the caller's decision. A query of the wrong dimension finds nothing.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allow: Option<&(dyn Fn(PointId) -> bool + Sync)>,
    ) -> Vec<(PointId, f32)> {
        if query.len() != self.dim {
            return Vec::new();
        }
        search::search(&self.active, self.space, self.ef_search, query, k, allow)
    }

    /// Exact top-k among `candidates` (unknown, removed and repeated ids are
    /// skipped), in the same order and with the same distances as
    /// [`search`](Self::search).
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        candidates: &[PointId],
    ) -> Vec<(PointId, f32)> {
        if query.len() != self.dim {
            return Vec::new();
        }
        let store = &self.active.store;
        let mut slots: Vec<usize> = candidates
            .iter()
            .filter_map(|&id| store.slot_of(id))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        search::exact_slots(&self.active, self.space, query, k, slots.into_iter())
    }
}

fn graph_params(config: &IndexConfig) -> GraphParams {
    GraphParams::new(config.space, config.max_neighbors, config.ef_construction)
}
