//! A segment: one HNSW graph and the store of the points it was given.
//!
//! Every slot of the store is a point of the graph (same count, slot = hnsw_rs
//! `DataId`); tombstones live only in the store. The index has one active
//! segment; a rebuild produces a new, compacted one.

use super::graph::{Graph, GraphParams};
use super::store::VectorStore;
use super::PointId;

pub(crate) struct Segment {
    pub store: VectorStore,
    pub graph: Graph,
    pub params: GraphParams,
}

impl Segment {
    pub fn new(dim: usize, params: GraphParams, capacity_hint: usize) -> Self {
        Segment {
            store: VectorStore::with_capacity(dim, capacity_hint.min(1 << 20)),
            graph: Graph::new(params, capacity_hint),
            params,
        }
    }

    /// Builds the graph of an existing store (used by rebuilds), checking
    /// `cancelled` between chunks; `None` when cancelled.
    pub fn build(
        store: VectorStore,
        params: GraphParams,
        cancelled: impl Fn() -> bool,
    ) -> Option<Self> {
        const CHUNK: usize = 4096;
        let graph = Graph::new(params, store.slots());
        let mut start = 0;
        while start < store.slots() {
            if cancelled() {
                return None;
            }
            let end = (start + CHUNK).min(store.slots());
            let items: Vec<(&[f32], usize)> = (start..end).map(|s| (store.vector(s), s)).collect();
            graph.insert(&items);
            start = end;
        }
        Some(Segment {
            store,
            graph,
            params,
        })
    }

    /// Inserts the points (dimensions already checked). An id that is already
    /// live is replaced.
    pub fn insert_batch(&mut self, points: &[(PointId, &[f32])]) {
        let first = self.store.slots();
        for &(id, v) in points {
            self.store.push(id, v);
        }
        let store = &self.store;
        let items: Vec<(&[f32], usize)> = (first..store.slots())
            .map(|s| (store.vector(s), s))
            .collect();
        self.graph.insert(&items);
    }

    /// Tombstones `id`; false if it was not live.
    pub fn remove(&mut self, id: PointId) -> bool {
        self.store.kill(id).is_some()
    }
}
