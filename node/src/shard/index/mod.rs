//! The vector index of one collection on one shard replica.
//!
//! An HNSW graph (hnsw_rs) over the record versions the state machine gives
//! it, each under a fresh [`PointId`]. hnsw_rs cannot delete, so removed
//! points are tombstoned and filtered out of every result; once tombstones
//! pass a threshold, [`VectorIndex::maintain`] rebuilds the graph in the
//! background and swaps it in, replaying the writes made meanwhile.
//!
//! - `distance`: the monotone map that makes every space's distance
//!   acceptable to hnsw_rs.
//! - `graph`: owner of one hnsw_rs graph (insert, search, dump, reload).
//! - `store`: vectors by slot, ids, tombstones.
//! - `segment`: a graph and its store, the unit a rebuild replaces.
//! - `search`: exact scans, HNSW search with tombstones and filters.
//! - `rebuild`: the background rebuild and its write log.
//! - `persist`: dump plus manifest, validated reload.

mod distance;
mod error;
mod graph;
mod persist;
mod rebuild;
mod search;
mod segment;
mod store;
mod vector;

#[cfg(test)]
mod tests;

use std::path::Path;

use common::command::{IndexConfig, PointLinks};
use common::Space;

pub use error::IndexError;
pub use search::{Allow, EXACT_BELOW_LIVE};

use graph::GraphParams;
use rebuild::{BuildHook, Rebuild};
use segment::Segment;

/// Identifies one record version in the index; the state machine assigns a
/// fresh one to every version it writes.
pub type PointId = u64;

pub use vector::Vector;

/// What an insert takes as a point's vector: a shared [`Vector`] (kept, no
/// copy), or a slice (copied once into a new one).
pub trait IntoVector {
    fn dim(&self) -> usize;
    fn to_vector(&self) -> Vector;
}

impl IntoVector for Vector {
    fn dim(&self) -> usize {
        self.len()
    }
    fn to_vector(&self) -> Vector {
        Vector::clone(self)
    }
}

impl<S: AsRef<[f32]> + ?Sized> IntoVector for &S {
    fn dim(&self) -> usize {
        (*self).as_ref().len()
    }
    fn to_vector(&self) -> Vector {
        Vector::from((*self).as_ref())
    }
}

/// Points in the index's store, not yet in its graph ([`VectorIndex::try_stage_batch`]).
#[must_use = "staged points are in no graph until linked"]
pub struct Staged {
    slots: std::ops::Range<usize>,
}

/// When [`VectorIndex::maintain`] starts a background rebuild.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildPolicy {
    /// At least this many tombstones...
    pub min_tombstones: usize,
    /// ...and more than this fraction of all points in the graph.
    pub min_fraction: f64,
}

impl Default for RebuildPolicy {
    fn default() -> Self {
        RebuildPolicy {
            min_tombstones: 1024,
            min_fraction: 0.25,
        }
    }
}

/// What [`VectorIndex::link_hinted`] did.
#[derive(Debug, Default)]
pub struct Linked {
    /// Points linked from their hints, without a search.
    pub from_hints: usize,
    /// Where the graph linked each point (when asked to report).
    pub links: Vec<PointLinks>,
}

pub struct VectorIndex {
    dim: usize,
    space: Space,
    ef_search: usize,
    active: Segment,
    rebuild: Option<Rebuild>,
    policy: RebuildPolicy,
    /// After a failed rebuild, do not retry before tombstones reach this.
    retry_at_tombstones: usize,
}

impl VectorIndex {
    /// An empty index. Out-of-range settings are clamped to what hnsw_rs
    /// accepts: `max_neighbors` to `2..=255`, `ef_construction` and
    /// `ef_search` to their ranges in `common::limits`.
    pub fn new(dim: usize, config: &IndexConfig, capacity_hint: usize) -> Self {
        let params = graph_params(config);
        VectorIndex::from_segment(dim, config, Segment::new(dim, params, capacity_hint))
    }

    fn from_segment(dim: usize, config: &IndexConfig, active: Segment) -> Self {
        VectorIndex {
            dim,
            space: config.space,
            ef_search: clamp_ef_search(config.ef_search),
            active,
            rebuild: None,
            policy: RebuildPolicy::default(),
            retry_at_tombstones: 0,
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
    pub fn insert_batch<V: IntoVector>(&mut self, points: &[(PointId, V)]) {
        if let Err(e) = self.try_insert_batch(points) {
            panic!("VectorIndex::insert_batch: {e}");
        }
    }

    /// Like [`insert_batch`](Self::insert_batch), but inserts nothing and
    /// returns an error if any vector has the wrong dimension.
    pub fn try_insert_batch<V: IntoVector>(
        &mut self,
        points: &[(PointId, V)],
    ) -> Result<(), IndexError> {
        let staged = self.try_stage_batch(points)?;
        self.link(staged);
        Ok(())
    }

    /// The first half of an insert that lets searches run while the graph
    /// grows: the points join the store, live (an exact scan of the index
    /// finds them), but not the graph; [`link`](Self::link) puts them there
    /// under a shared borrow. Until it returns, searches may or may not meet
    /// them in the graph: a caller that must see each point once filters them
    /// out (the indexer's watermark does). Nothing is staged on an error.
    pub fn try_stage_batch<V: IntoVector>(
        &mut self,
        points: &[(PointId, V)],
    ) -> Result<Staged, IndexError> {
        if let Some((_, v)) = points.iter().find(|(_, v)| v.dim() != self.dim) {
            return Err(IndexError::Dimension {
                expected: self.dim,
                got: v.dim(),
            });
        }
        let points: Vec<(PointId, Vector)> =
            points.iter().map(|(p, v)| (*p, v.to_vector())).collect();
        let slots = self.active.stage(&points);
        if let Some(rb) = &mut self.rebuild {
            rb.record_inserts(&points);
        }
        Ok(Staged { slots })
    }

    /// Links staged points into the graph. Call it before anything else
    /// changes the index: a rebuild installed in between (by
    /// [`maintain`](Self::maintain)) would own other slots.
    pub fn link(&self, staged: Staged) {
        self.link_hinted(staged, &[], false);
    }

    /// [`link`](Self::link), where `hints[i]` (if any) is where the leader's graph
    /// linked the `i`-th staged point: linked to the same points here without a
    /// search. With `report`, answers where this graph linked each staged point,
    /// for the other replicas.
    pub fn link_hinted(
        &self,
        staged: Staged,
        hints: &[Option<PointLinks>],
        report: bool,
    ) -> Linked {
        if staged.slots.is_empty() {
            return Linked::default();
        }
        let from_hints = self.active.link(staged.slots.clone(), hints);
        let links = if report {
            self.active.links(staged.slots)
        } else {
            Vec::new()
        };
        Linked { from_hints, links }
    }

    /// Tombstones `id`: no search returns it again. Unknown ids are ignored.
    pub fn remove(&mut self, id: PointId) {
        if self.active.remove(id) {
            if let Some(rb) = &mut self.rebuild {
                rb.record_remove(id);
            }
        }
    }

    /// Whether `id` is a live point.
    pub fn contains(&self, id: PointId) -> bool {
        self.active.store.slot_of(id).is_some()
    }

    /// Every live point id, in slot order.
    pub fn live_points(&self) -> Vec<PointId> {
        let store = &self.active.store;
        store.live_slots().map(|s| store.id(s)).collect()
    }

    pub fn len_live(&self) -> usize {
        self.active.store.live_count()
    }

    /// Whether live point `id`'s vector is `v` itself (not a copy) in both the
    /// index store and the graph.
    #[cfg(test)]
    pub fn shares_vector(&self, id: PointId, v: &Vector) -> bool {
        let store = &self.active.store;
        let Some(slot) = store.slot_of(id) else {
            return false;
        };
        let mut in_graph = false;
        self.active.graph.for_each_point(|s, data| {
            in_graph |= s == slot && std::ptr::eq(data.as_ptr(), v.as_ptr());
        });
        Vector::ptr_eq(store.shared(slot), v) && in_graph
    }

    pub fn tombstones(&self) -> usize {
        self.active.store.tombstones()
    }

    pub fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = clamp_ef_search(ef);
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

    /// Called by the state machine after applying a batch: installs a finished
    /// background rebuild, or starts one when tombstones pass the policy's
    /// threshold. Writes made while a rebuild runs are replayed onto the new
    /// graph before the swap, so no point is lost or resurrected.
    pub fn maintain(&mut self) {
        if let Some(rb) = &self.rebuild {
            if rb.is_finished() {
                self.install_rebuild();
            }
            return;
        }
        if self.needs_rebuild() {
            self.start_rebuild_with(None);
        }
    }

    fn needs_rebuild(&self) -> bool {
        let store = &self.active.store;
        let tombstones = store.tombstones();
        tombstones >= self.policy.min_tombstones
            && tombstones as f64 > self.policy.min_fraction * store.slots() as f64
            && tombstones >= self.retry_at_tombstones
    }

    pub fn rebuild_policy(&self) -> RebuildPolicy {
        self.policy
    }

    pub fn set_rebuild_policy(&mut self, policy: RebuildPolicy) {
        self.policy = policy;
    }

    pub fn rebuild_in_progress(&self) -> bool {
        self.rebuild.is_some()
    }

    /// Starts a background rebuild now, whatever the tombstone count (an
    /// explicit compaction). False if one is already running or the thread
    /// could not be spawned.
    pub fn start_rebuild(&mut self) -> bool {
        self.start_rebuild_with(None)
    }

    fn start_rebuild_with(&mut self, hook: Option<BuildHook>) -> bool {
        if self.rebuild.is_some() {
            return false;
        }
        match Rebuild::start(&self.active, hook) {
            Ok(rb) => {
                tracing::info!(
                    live = self.len_live(),
                    tombstones = self.tombstones(),
                    "index rebuild started"
                );
                self.rebuild = Some(rb);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start index rebuild");
                false
            }
        }
    }

    /// Waits for a running rebuild and installs it; true if a new graph was
    /// installed.
    pub fn finish_rebuild(&mut self) -> bool {
        self.rebuild.is_some() && self.install_rebuild()
    }

    fn install_rebuild(&mut self) -> bool {
        let Some(rb) = self.rebuild.take() else {
            return false;
        };
        match rb.finish(&self.active) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.active, fresh);
                drop_in_background(old);
                self.retry_at_tombstones = 0;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "index rebuild failed; keeping the current graph");
                self.retry_at_tombstones = self.tombstones().saturating_mul(2).max(1);
                false
            }
        }
    }

    /// Writes the index into `dir` (dump + manifest, fsynced, atomically
    /// replacing any index saved there). A running rebuild is not waited for:
    /// the current graph, tombstones included, is saved.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        persist::save(&self.active, dir)
    }

    /// Loads an index saved by [`save`](Self::save), validating everything
    /// first; never panics. `config` must have the space, `max_neighbors` and
    /// `ef_construction` the index was built with (`ef_search` is taken from
    /// it). On any error the caller rebuilds the index from its records.
    pub fn load(dir: &Path, config: &IndexConfig) -> Result<Self, IndexError> {
        Self::load_sharing(dir, config, &|_| None)
    }

    /// [`load`](Self::load), with the points' vectors taken from `share` where
    /// it offers an equal one (a restoring shard offers its records' vectors,
    /// so the index holds no copy of its own; see `persist::load`).
    pub fn load_sharing(
        dir: &Path,
        config: &IndexConfig,
        share: &dyn Fn(PointId) -> Option<Vector>,
    ) -> Result<Self, IndexError> {
        let active = persist::load(dir, graph_params(config), share)?;
        Ok(VectorIndex::from_segment(
            active.store.dim(),
            config,
            active,
        ))
    }
}

/// hnsw_rs preallocates its search beam from `ef`: never more than the range allows.
fn clamp_ef_search(ef: usize) -> usize {
    ef.clamp(1, *common::limits::HNSW_EF_SEARCH.end())
}

fn graph_params(config: &IndexConfig) -> GraphParams {
    GraphParams::new(config.space, config.max_neighbors, config.ef_construction)
}

/// Freeing a large hnsw_rs graph walks every point; keep that off the apply path.
fn drop_in_background(old: Segment) {
    if old.store.slots() < 10_000 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("index-drop".into())
        .spawn(move || drop(old));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "dropping the old index graph inline");
    }
}
