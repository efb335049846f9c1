//! A collection's vector index, kept behind the applied records by the
//! replica's background indexer (`raft::indexer`), off the acknowledgement path.
//!
//! Every record version gets a fresh, increasing [`PointId`] when it is applied.
//! The graph holds the live versions below a watermark (`through`); the live
//! versions at or above it are the *tail*, which queries scan exactly
//! (`read.rs`), so a write is visible the moment it is applied. The indexer
//! takes a chunk of the tail under the state machine's read lock
//! ([`IndexCell::next_job`]), inserts it without that lock, and moves the
//! watermark in the same hold of the graph's write lock, so a query, which
//! reads the graph and the watermark under one hold of the read lock, sees each
//! point exactly once: in the graph or in the tail.
//!
//! Applying a delete or an update never touches the graph (it would wait for a
//! chunk being inserted): the replaced point is queued in `removed` and the
//! indexer tombstones it with its next chunk. Until then queries drop graph
//! hits that are not a record's current version (see [`IndexView`]).
//!
//! Lock order: state machine, then the graph; the indexer never holds both.

use std::sync::atomic::{AtomicU64, Ordering};

use common::command::IndexConfig;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use super::index::{PointId, VectorIndex};

/// Points the indexer inserts per hold of a graph's write lock: queries of the
/// collection wait at most that long (about 30 ms for 256 points of 128
/// dimensions on this machine; batches of 256 or more are inserted in
/// parallel).
pub const INDEX_CHUNK: usize = 256;

#[derive(Default)]
pub struct IndexCell {
    graph: RwLock<Graph>,
    /// Every live point below this is in the graph (written under the graph's
    /// write lock; an atomic so that applies read the lag without that lock).
    through: AtomicU64,
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
    /// The tail starts here.
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
    points: Vec<(PointId, Vec<f32>)>,
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

    /// The graph, for snapshots and tests: with the watermark read under the same hold.
    pub fn read(
        &self,
    ) -> (
        Option<impl std::ops::Deref<Target = VectorIndex> + '_>,
        PointId,
    ) {
        let graph = self.graph.read();
        let through = self.through();
        let index = RwLockReadGuard::try_map(graph, |g| g.index.as_ref()).ok();
        (index, through)
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
        tail: impl Iterator<Item = (PointId, &'a [f32])>,
    ) -> Option<IndexJob> {
        let dim = dim?;
        let points: Vec<(PointId, Vec<f32>)> = tail
            .take(INDEX_CHUNK)
            .map(|(p, v)| (p, v.to_vec()))
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

impl IndexJob {
    /// Inserts the chunk, tombstones the queued removals and moves the
    /// watermark, under one hold of the graph's write lock. Points replaced
    /// while the chunk was on its way are in `removed` by now (their apply
    /// queued them), so they are tombstoned right after their insert.
    pub fn run(self) {
        let IndexJob {
            cell,
            dim,
            config,
            points,
            through,
        } = self;
        let mut graph = cell.graph.write();
        let Graph { index, ef_search } = &mut *graph;
        let index = index.get_or_insert_with(|| {
            let mut index = VectorIndex::new(dim, &config, points.len());
            if let Some(ef) = *ef_search {
                index.set_ef_search(ef);
            }
            index
        });
        let batch: Vec<(PointId, &[f32])> =
            points.iter().map(|(p, v)| (*p, v.as_slice())).collect();
        // The state machine validated every dimension: a mismatch is a bug, and
        // the panic stops this replica's indexer (`raft::indexer`), not the node.
        index.insert_batch(&batch);
        for p in std::mem::take(&mut *cell.removed.lock()) {
            index.remove(p);
        }
        cell.through.fetch_max(through, Ordering::AcqRel);
        index.maintain();
    }
}
