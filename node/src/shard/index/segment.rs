//! A segment: one HNSW graph and the store of the points it was given.
//!
//! Every slot of the store is a point of the graph (same count, slot = hnsw_rs
//! `DataId`); tombstones live only in the store. The index has one active
//! segment; a rebuild produces a new, compacted one.

use std::ops::Range;

use common::command::PointLinks;

use super::graph::{Graph, GraphParams, SlotLinks};
use super::store::VectorStore;
use super::{PointId, Vector};

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
            let items: Vec<(Vector, usize)> =
                (start..end).map(|s| (store.shared(s).clone(), s)).collect();
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
    pub fn insert_batch(&mut self, points: &[(PointId, Vector)]) {
        let staged = self.stage(points);
        self.link(staged, &[]);
    }

    /// Appends the points to the store (live, replacing a live id), not yet in
    /// the graph; [`link`](Self::link) puts the returned slots there.
    pub fn stage(&mut self, points: &[(PointId, Vector)]) -> Range<usize> {
        let first = self.store.slots();
        for (id, v) in points {
            self.store.push(*id, v.clone());
        }
        first..self.store.slots()
    }

    /// Inserts staged slots into the graph. A shared borrow: hnsw_rs inserts
    /// under its own per-point locks, so searches may run meanwhile (and may
    /// meet the slots being linked). `hints[i]`, when given, is where another
    /// replica's graph linked the point of the `i`-th slot: it is linked to the
    /// same live points here without a search (see [`Graph::insert_linked`]).
    /// Returns how many points were linked from their hints.
    pub fn link(&self, slots: Range<usize>, hints: &[Option<PointLinks>]) -> usize {
        let store = &self.store;
        // A hint names live points by id; a point this replica no longer holds is skipped.
        let links: Vec<Option<SlotLinks>> = (0..slots.len())
            .map(|i| {
                let hint = hints.get(i)?.as_ref()?;
                let layers = hint
                    .layers
                    .iter()
                    .map(|l| l.iter().filter_map(|&p| store.slot_of(p)).collect())
                    .collect();
                Some((hint.level, layers))
            })
            .collect();
        let items: Vec<(&Vector, usize, Option<&SlotLinks>)> = slots
            .zip(&links)
            .map(|(s, l)| (store.shared(s), s, l.as_ref()))
            .collect();
        self.graph.insert_linked(&items)
    }

    /// Where the graph linked the points of `slots` (as point ids), for the other
    /// replicas' [`link`](Self::link).
    pub fn links(&self, slots: Range<usize>) -> Vec<PointLinks> {
        let store = &self.store;
        slots
            .filter_map(|s| {
                let (level, layers) = self.graph.links_of(s)?;
                let layers = layers
                    .into_iter()
                    .map(|l| {
                        l.into_iter()
                            .filter_map(|n| store.ids().get(n).copied())
                            .collect()
                    })
                    .collect();
                Some(PointLinks {
                    point: *store.ids().get(s)?,
                    level,
                    layers,
                })
            })
            .collect()
    }

    /// Tombstones `id`; false if it was not live.
    pub fn remove(&mut self, id: PointId) -> bool {
        self.store.kill(id).is_some()
    }
}
