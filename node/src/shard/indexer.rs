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
//! Only the leader searches for each point's neighbours, the bulk of an
//! insert. Its jobs report where the graph linked every point of the chunk
//! ([`PointLinks`]), and the leader proposes them to the group's log
//! (`ShardCommand::LinkHints`); a follower links each point to the same points
//! without a search (an eighth of the work) as soon as the hint of the head of
//! its tail has arrived, and waits for it otherwise. It stops waiting, and
//! searches as the leader does, when the hint cannot come or the wait costs
//! too much: a later point has one, no hint came for [`HINT_PATIENCE`], its
//! lag passed one and a half times the lag limit, or its tail is too short to
//! be worth hints ([`HINT_MIN_POINTS`]). Hints only choose edges: a follower
//! with none, or with wrong ones, holds the same records and finds every point
//! (the tail and the tombstones work as before); it only builds its graph the
//! slow way.
//!
//! Lock order: state machine, then `linking`, then the graph, then `hints`;
//! the indexer never holds the state machine's lock while it runs a job.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::command::{IndexConfig, PointLinks};
use parking_lot::{MappedRwLockReadGuard, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::index::{PointId, Staged, Vector, VectorIndex};
use crate::raft::state_machine::BackgroundRole;

/// Points the indexer inserts per job: the watermark moves, and tombstones
/// are applied, once per chunk (about 30 ms for 256 points of 128 dimensions
/// on this machine; batches of 256 or more are inserted in parallel).
pub const INDEX_CHUNK: usize = 256;

/// Chunks smaller than this carry no hints, and a follower with fewer points than
/// this in its tail indexes them without waiting: a trickle of small writes is cheap
/// to search for on every replica, and a hint entry per small write would double the
/// group's log entries (and its fsyncs).
pub const HINT_MIN_POINTS: usize = 64;

/// How long a follower waits without any hint from its leader before it indexes
/// its tail by search (a leader that is gone, or does not send hints). While a
/// bulk load runs, hints arrive every chunk the leader indexes (tens of ms).
pub const HINT_PATIENCE: Duration = Duration::from_secs(2);

/// Hints a replica holds for points it has not indexed yet, per collection; later
/// ones are dropped (those points are indexed by search). About 300 bytes each.
pub const HINTS_HELD_MAX: usize = 65_536;

/// The leader's links for points this replica has not indexed yet.
struct Hints {
    by_point: BTreeMap<PointId, PointLinks>,
    /// When hints last arrived, or the cell was made: a fresh follower waits for
    /// its first hints as long as for any.
    last_arrival: Instant,
}

impl Default for Hints {
    fn default() -> Self {
        Hints {
            by_point: BTreeMap::new(),
            last_arrival: Instant::now(),
        }
    }
}

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
    hints: Mutex<Hints>,
    /// Points linked from their hints, without a search, since the cell was made.
    linked_from_hints: AtomicU64,
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
    /// The leader's links of each point, where they arrived (followers).
    hints: Vec<Option<PointLinks>>,
    /// Report where the graph linked the points (a leader with followers).
    report: bool,
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
            ..IndexCell::default()
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

    /// The leader's links of points it indexed (`ShardCommand::LinkHints`): held
    /// until this replica's indexer reaches them, unless it already passed them.
    pub fn add_hints(&self, links: &[PointLinks]) {
        let through = self.through();
        let mut hints = self.hints.lock();
        hints.last_arrival = Instant::now();
        if hints
            .by_point
            .first_key_value()
            .is_some_and(|(&p, _)| p < through)
        {
            hints.by_point = hints.by_point.split_off(&through);
        }
        for l in links.iter().filter(|l| l.point >= through) {
            if hints.by_point.len() >= HINTS_HELD_MAX {
                break;
            }
            hints.by_point.insert(l.point, l.clone());
        }
    }

    /// Points linked from the leader's hints, without a search, since the cell was made.
    pub fn linked_from_hints(&self) -> u64 {
        self.linked_from_hints.load(Ordering::Relaxed)
    }

    /// Points applied but not yet indexed (dead versions in the tail included).
    pub fn lag(&self, next_point: PointId) -> u64 {
        next_point.saturating_sub(self.through())
    }

    /// The next chunk of the tail: at most [`INDEX_CHUNK`] of the live points
    /// `tail` yields (the live points from the watermark on, ascending), or
    /// `None` when the graph is caught up and has no removal to apply, or when a
    /// follower waits for the hint of the head of its tail (see the module doc).
    pub fn next_job<'a>(
        self: &std::sync::Arc<Self>,
        dim: Option<usize>,
        config: &IndexConfig,
        next_point: PointId,
        tail: impl Iterator<Item = (PointId, &'a Vector)>,
        role: BackgroundRole,
    ) -> Option<IndexJob> {
        let dim = dim?;
        let mut points: Vec<(PointId, Vector)> = tail
            .take(INDEX_CHUNK)
            .map(|(p, v)| (p, v.clone()))
            .collect();
        let mut full = points.len() == INDEX_CHUNK;
        let mut hints = Vec::new();
        if !role.leading && !points.is_empty() {
            let mut held = self.hints.lock();
            let hinted = points
                .iter()
                .take_while(|(p, _)| held.by_point.contains_key(p))
                .count();
            if hinted > 0 {
                // The hinted run only: the points after it may still get theirs.
                full |= hinted < points.len();
                points.truncate(hinted);
            } else if !self.gave_up_waiting(&held, points[0].0, next_point, role) {
                return None;
            }
            hints = points
                .iter()
                .map(|(p, _)| held.by_point.remove(p))
                .collect();
        }
        // A full chunk ends after its last point; a short one reached the end of the tail.
        let through = match points.last() {
            Some(&(last, _)) if full => last + 1,
            _ => next_point,
        };
        if through <= self.through() && self.removed.lock().is_empty() {
            return None;
        }
        let report = role.leading && role.has_followers && points.len() >= HINT_MIN_POINTS;
        Some(IndexJob {
            cell: self.clone(),
            dim,
            config: config.clone(),
            points,
            hints,
            report,
            through,
        })
    }

    /// Whether a follower indexes `head` (which has no hint) by search: when its
    /// hint cannot come any more, or the wait costs too much (see the module doc).
    fn gave_up_waiting(
        &self,
        held: &Hints,
        head: PointId,
        next_point: PointId,
        role: BackgroundRole,
    ) -> bool {
        let lag = self.lag(next_point);
        let later_hinted = held.by_point.range(head..).next().is_some();
        let lag_low = lag < HINT_MIN_POINTS as u64;
        let lag_high = role.max_lag > 0 && lag > role.max_lag + role.max_lag / 2;
        later_hinted || lag_low || lag_high || held.last_arrival.elapsed() > HINT_PATIENCE
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
    ///
    /// Returns where the graph linked the chunk's points, when asked to report
    /// (a leader with followers), for the group's log.
    pub fn run(self) -> Vec<PointLinks> {
        let _linking = self.cell.linking.lock();
        let staged = self.stage();
        let links = self.link(staged);
        self.finish();
        links
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
    fn link(&self, staged: Staged) -> Vec<PointLinks> {
        let graph = self.cell.graph.read();
        let Some(index) = graph.index.as_ref() else {
            return Vec::new();
        };
        let linked = index.link_hinted(staged, &self.hints, self.report);
        self.cell
            .linked_from_hints
            .fetch_add(linked.from_hints as u64, Ordering::Relaxed);
        linked.links
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
        let _ = self.link(staged);
    }

    #[cfg(test)]
    pub(crate) fn finish_linked(self) {
        let _linking = self.cell.linking.lock();
        self.finish();
    }
}
