//! A collection's vector index, kept behind the applied records by the
//! replica's background indexer (`raft::indexer`), off the acknowledgement path.
//!
//! Every record version gets a fresh, increasing [`PointId`] when it is applied.
//! The graph holds the live versions below a watermark (`through`); the live
//! versions at or above it are the *tail*, which queries scan exactly
//! (`read.rs`), so a write is visible the moment it is applied. The indexer
//! takes a chunk of the tail under the state machine's read lock
//! ([`IndexCell::next_job`]) and inserts it without that lock, in three steps
//! ([`IndexJob::run`]): it stages the chunk into the index's store under the
//! graph's write lock (a copy of the vectors), links it into the graph under
//! the *read* lock (the long part: hnsw_rs inserts under per-point locks, so
//! queries of the collection keep running), then moves the watermark under the
//! write lock. A query reads the graph and the watermark under one hold of the
//! read lock and takes from the graph only points below the watermark (a
//! chunk being linked is above it), so it sees each point exactly once: in
//! the graph or in the tail. Before, the whole insert held the write lock and
//! a query waited for it: 158 ms p50 while a bulk load ran, against Chroma's
//! 2.8 ms (`scripts/bench-router --query-during-load`, 20k records).
//!
//! Applying a delete or an update never touches the graph (it would wait for a
//! chunk being inserted): the replaced point is queued in `removed` and the
//! indexer tombstones it with its next chunk. Until then queries drop graph
//! hits that are not a record's current version (see [`IndexView`]).
//!
//! Lock order: state machine, then `linking`, then the graph; the indexer
//! never holds the state machine's lock while it runs a job.

use std::sync::atomic::{AtomicU64, Ordering};

use common::command::IndexConfig;
use parking_lot::{MappedRwLockReadGuard, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::index::{PointId, Staged, Vector, VectorIndex};

/// Points the indexer inserts per job: the watermark moves, and tombstones
/// are applied, once per chunk (about 30 ms for 256 points of 128 dimensions
/// on this machine; batches of 256 or more are inserted in parallel).
pub const INDEX_CHUNK: usize = 256;

#[derive(Default)]
pub struct IndexCell {
    graph: RwLock<Graph>,
    /// Every live point below this is in the graph (written under the graph's
    /// write lock; an atomic so that applies read the lag without that lock).
    through: AtomicU64,
    /// Held by a job from staging its chunk to moving the watermark, and by
    /// [`IndexCell::read`]: a snapshot never saves a graph with a chunk half linked.
    linking: Mutex<()>,
    /// Points replaced or deleted since the indexer last ran, possibly live in the graph.
    removed: Mutex<Vec<PointId>>,
}

#[derive(Default)]
struct Graph {
    index: Option<VectorIndex>,
    /// The collection's `ef_search`, for a graph created after a modify.
    ef_search: Option<usize>,
}

/// A consistent view for one query: the graph and the watermark of one hold
/// of the read lock.
pub struct IndexView<'a> {
    graph: RwLockReadGuard<'a, Graph>,
    /// The tail starts here. The graph may also hold points at or above it (a
    /// chunk being linked): a query takes from the graph only the points below.
    pub through: PointId,
    /// Some graph point may be a replaced or deleted version not yet tombstoned.
    pub stale_possible: bool,
}

impl IndexView<'_> {
    pub fn index(&self) -> Option<&VectorIndex> {
        self.graph.index.as_ref()
    }
}

/// A chunk of the tail, taken under the state machine's read lock and indexed without it.
pub struct IndexJob {
    cell: std::sync::Arc<IndexCell>,
    dim: usize,
    config: IndexConfig,
    points: Vec<(PointId, Vector)>,
    /// The watermark once the chunk is in.
    through: PointId,
}

impl IndexCell {
    /// A cell whose graph already holds every live point below `through`.
    pub fn with_index(index: Option<VectorIndex>, through: PointId) -> Self {
        IndexCell {
            graph: RwLock::new(Graph {
                index,
                ef_search: None,
            }),
            through: AtomicU64::new(through),
            linking: Mutex::new(()),
            removed: Mutex::new(Vec::new()),
        }
    }

    pub fn through(&self) -> PointId {
        self.through.load(Ordering::Acquire)
    }

    pub fn view(&self) -> IndexView<'_> {
        let graph = self.graph.read();
        IndexView {
            through: self.through(),
            stale_possible: !self.removed.lock().is_empty(),
            graph,
        }
    }

    /// The graph, for snapshots and tests, between two indexer jobs (so it
    /// holds exactly the live points below the watermark, tombstones aside):
    /// with the watermark read under the same hold.
    pub fn read(&self) -> (Option<IndexRead<'_>>, PointId) {
        let linking = self.linking.lock();
        let graph = self.graph.read();
        let through = self.through();
        let index = RwLockReadGuard::try_map(graph, |g| g.index.as_ref()).ok();
        let read = index.map(|index| IndexRead {
            index,
            _linking: linking,
        });
        (read, through)
    }

    /// A record version left the state (replaced or deleted): the indexer tombstones it.
    pub fn removed(&self, point: PointId) {
        self.removed.lock().push(point);
    }

    pub fn set_ef_search(&self, ef: usize) {
        let mut graph = self.graph.write();
        graph.ef_search = Some(ef);
        if let Some(index) = graph.index.as_mut() {
            index.set_ef_search(ef);
        }
    }

    /// Points applied but not yet indexed (dead versions in the tail included).
    pub fn lag(&self, next_point: PointId) -> u64 {
        next_point.saturating_sub(self.through())
    }

    /// The next chunk of the tail: at most [`INDEX_CHUNK`] of the live points
    /// `tail` yields (the live points from the watermark on, ascending), or
    /// `None` when the graph is caught up and has no removal to apply.
    pub fn next_job<'a>(
        self: &std::sync::Arc<Self>,
        dim: Option<usize>,
        config: &IndexConfig,
        next_point: PointId,
        tail: impl Iterator<Item = (PointId, &'a Vector)>,
    ) -> Option<IndexJob> {
        let dim = dim?;
        let points: Vec<(PointId, Vector)> = tail
            .take(INDEX_CHUNK)
            .map(|(p, v)| (p, v.clone()))
            .collect();
        // A full chunk ends after its last point; a short one reached the end of the tail.
        let through = match points.last() {
            Some(&(last, _)) if points.len() == INDEX_CHUNK => last + 1,
            _ => next_point,
        };
        if through <= self.through() && self.removed.lock().is_empty() {
            return None;
        }
        Some(IndexJob {
            cell: self.clone(),
            dim,
            config: config.clone(),
            points,
            through,
        })
    }
}

/// The index between two indexer jobs, see [`IndexCell::read`].
pub struct IndexRead<'a> {
    index: MappedRwLockReadGuard<'a, VectorIndex>,
    _linking: MutexGuard<'a, ()>,
}

impl std::ops::Deref for IndexRead<'_> {
    type Target = VectorIndex;

    fn deref(&self) -> &VectorIndex {
        &self.index
    }
}

impl IndexJob {
    /// Inserts the chunk, tombstones the queued removals and moves the
    /// watermark. Only staging (a copy into the store) and the last step hold
    /// the graph's write lock; linking, the long part, holds the read lock,
    /// so queries run meanwhile (see the module doc). Points replaced while
    /// the chunk was on its way are in `removed` by now (their apply queued
    /// them), so they are tombstoned right after their insert.
    pub fn run(self) {
        let _linking = self.cell.linking.lock();
        let staged = self.stage();
        self.link(staged);
        self.finish();
    }

    /// Copies the chunk into the index's store (creating the index with the
    /// first chunk), under the graph's write lock.
    fn stage(&self) -> Staged {
        let mut graph = self.cell.graph.write();
        let Graph { index, ef_search } = &mut *graph;
        let index = index.get_or_insert_with(|| {
            let mut index = VectorIndex::new(self.dim, &self.config, self.points.len());
            if let Some(ef) = *ef_search {
                index.set_ef_search(ef);
            }
            index
        });
        // The state machine validated every dimension: a mismatch is a bug, and
        // the panic stops this replica's indexer (`raft::indexer`), not the node.
        match index.try_stage_batch(&self.points) {
            Ok(staged) => staged,
            Err(e) => panic!("indexer: {e}"),
        }
    }

    /// Links the staged chunk into the graph, under the read lock.
    fn link(&self, staged: Staged) {
        if let Some(index) = self.cell.graph.read().index.as_ref() {
            index.link(staged);
        }
    }

    /// Tombstones the queued removals and moves the watermark past the chunk.
    fn finish(&self) {
        let mut graph = self.cell.graph.write();
        let Some(index) = graph.index.as_mut() else {
            return; // `stage` created it, and nothing but a job removes it
        };
        for p in std::mem::take(&mut *self.cell.removed.lock()) {
            index.remove(p);
        }
        self.cell.through.fetch_max(self.through, Ordering::AcqRel);
        index.maintain();
    }

    /// Tests: the job up to the point where its chunk is in the graph but the
    /// watermark has not moved yet; [`finish_linked`](Self::finish_linked) ends it.
    #[cfg(test)]
    pub(crate) fn stage_and_link(&self) {
        let _linking = self.cell.linking.lock();
        let staged = self.stage();
        self.link(staged);
    }

    #[cfg(test)]
    pub(crate) fn finish_linked(self) {
        let _linking = self.cell.linking.lock();
        self.finish();
    }
}
