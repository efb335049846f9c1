//! A thin owner of one hnsw_rs graph, whatever its space.
//!
//! Points are keyed in the graph by their slot in the segment's
//! [`VectorStore`](super::store::VectorStore) (hnsw_rs's `DataId`), not by
//! `PointId`, so filters can test liveness with an array lookup.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use common::Space;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;
use parking_lot::Mutex;
use rayon::prelude::*;

use super::distance::{GraphCosine, GraphIp, GraphL2};
use super::error::IndexError;
use super::Vector;

/// Number of layers; hnsw_rs's dump refuses any other value than its maximum.
const LAYERS: usize = 16;

/// Batches at least this large are inserted with hnsw_rs's rayon insert.
const PARALLEL_INSERT_MIN: usize = 256;

/// hnsw_rs preallocates per-layer tables from the capacity hint; cap it so a
/// wild hint cannot reserve gigabytes up front (tables still grow as needed).
const CAPACITY_HINT_MAX: usize = 1 << 20;

/// A point's level and, per layer up to it, the slots of its neighbours.
pub(crate) type SlotLinks = (u8, Vec<Vec<usize>>);

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
            ef_construction: ef_construction.clamp(1, *common::limits::HNSW_EF_CONSTRUCTION.end()),
        }
    }
}

pub(crate) struct Graph {
    /// Declared first so that it is dropped first: its points may borrow `borrowed`.
    hnsw: Spaced,
    /// The vectors the graph's points borrow instead of copying
    /// ([`Graph::insert`]): held here so that they outlive every point.
    borrowed: Mutex<Vec<Vector>>,
}

enum Spaced {
    L2(Hnsw<'static, f32, GraphL2>),
    Cosine(Hnsw<'static, f32, GraphCosine>),
    Ip(Hnsw<'static, f32, GraphIp>),
}

/// Runs `$body` with `$h` bound to the graph's `Hnsw`, whatever its distance type.
macro_rules! with_hnsw {
    ($graph:expr, $h:ident => $body:expr) => {
        match $graph {
            Spaced::L2($h) => $body,
            Spaced::Cosine($h) => $body,
            Spaced::Ip($h) => $body,
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
        let hnsw = match params.space {
            Space::L2 => Spaced::L2(Hnsw::new(m, cap, LAYERS, ef, GraphL2)),
            Space::Cosine => Spaced::Cosine(Hnsw::new(m, cap, LAYERS, ef, GraphCosine)),
            Space::Ip => Spaced::Ip(Hnsw::new(m, cap, LAYERS, ef, GraphIp)),
        };
        Graph::owning(hnsw)
    }

    fn owning(hnsw: Spaced) -> Self {
        Graph {
            hnsw,
            borrowed: Mutex::new(Vec::new()),
        }
    }

    /// Number of points in the graph (live and tombstoned).
    pub fn len(&self) -> usize {
        with_hnsw!(&self.hnsw, h => h.get_nb_point())
    }

    /// Inserts `(vector, slot)` pairs; large batches in parallel. The points
    /// borrow the vectors (kept alive by the graph) rather than copy them.
    pub fn insert(&self, items: &[(Vector, usize)]) {
        let items: Vec<(&Vector, usize, Option<&SlotLinks>)> =
            items.iter().map(|(v, slot)| (v, *slot, None)).collect();
        self.insert_linked(&items);
    }

    /// Inserts `(vector, slot, links)` like [`insert`](Self::insert), except that a
    /// point with links (another replica's graph's choices, as slots of this one) is
    /// linked to them without a search where this graph holds enough of them
    /// (`Hnsw::insert_linked_borrowed`); the others are inserted by search. Returns
    /// how many were linked from their links.
    pub fn insert_linked(&self, items: &[(&Vector, usize, Option<&SlotLinks>)]) -> usize {
        self.borrowed
            .lock()
            .extend(items.iter().map(|(v, _, _)| Vector::clone(v)));
        let one = |&(v, slot, links): &(&Vector, usize, Option<&SlotLinks>)| -> usize {
            // SAFETY: the slice is the contents of a `Vector` that `self.borrowed`
            // now holds until the graph is dropped; an Arc's contents never move,
            // and `hnsw` (whose points hold the slice) is dropped before
            // `borrowed`. hnsw_rs only reads the slice.
            let data: &'static [f32] = unsafe { std::slice::from_raw_parts(v.as_ptr(), v.len()) };
            let linked = links.is_some_and(|(level, layers)| {
                with_hnsw!(&self.hnsw, h => h.insert_linked_borrowed(data, slot, *level, layers))
            });
            if !linked {
                with_hnsw!(&self.hnsw, h => h.insert_borrowed((data, slot)));
            }
            usize::from(linked)
        };
        if items.len() >= PARALLEL_INSERT_MIN {
            items.par_iter().map(one).sum()
        } else {
            items.iter().map(one).sum()
        }
    }

    /// The level of the point at `slot` and its neighbours' slots per layer up to
    /// it, nearest first; `None` if the graph has no such point.
    pub fn links_of(&self, slot: usize) -> Option<SlotLinks> {
        with_hnsw!(&self.hnsw, h => h.links_by_origin(slot))
    }

    /// Slots of up to `k` approximate nearest neighbours, nearest first.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<usize> {
        let found = with_hnsw!(&self.hnsw, h => h.search_filter(query, k, ef, None));
        found.into_iter().map(|n| n.d_id).collect()
    }

    /// Calls `f(slot, vector)` for every point of the graph.
    pub fn for_each_point(&self, mut f: impl FnMut(usize, &[f32])) {
        with_hnsw!(&self.hnsw, h => {
            let points = h.get_point_indexation();
            for layer in 0..LAYERS {
                // get_layer_nb_point is 0 for a layer that does not exist, which
                // get_layer_iterator would index out of bounds.
                if points.get_layer_nb_point(layer) == 0 {
                    continue;
                }
                for p in points.get_layer_iterator(layer) {
                    f(p.get_origin_id(), p.get_v());
                }
            }
        })
    }

    /// Writes `<basename>.hnsw.graph` and `<basename>.hnsw.data` into `dir`
    /// and returns the basename hnsw_rs actually used (it picks another one
    /// rather than overwrite the files of a graph it reloaded).
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String, IndexError> {
        let res = catch_unwind(AssertUnwindSafe(
            || with_hnsw!(&self.hnsw, h => h.file_dump(dir, basename)),
        ));
        match res {
            Ok(Ok(used)) => Ok(used),
            Ok(Err(e)) => Err(IndexError::Hnsw(format!("dump failed: {e}"))),
            Err(_) => Err(IndexError::Hnsw("hnsw_rs panicked while dumping".into())),
        }
    }

    /// Loads a dump written by [`Graph::dump`]. The caller must have verified
    /// the files (hnsw_rs asserts, and even exits the process, on bad input);
    /// panics are still caught here as a last line of defence.
    ///
    /// `share[slot]`, when given and equal to the slot's dumped vector, is the
    /// vector the point borrows (kept alive by the graph, as [`Graph::insert`]
    /// keeps its vectors) instead of a copy of its own: the caller's records
    /// already hold them. A point that borrowed yields that very vector (same
    /// address) from [`Graph::for_each_point`].
    pub fn load(
        dir: &Path,
        basename: &str,
        space: Space,
        share: &[Option<Vector>],
    ) -> Result<Self, IndexError> {
        // hnsw_rs ties a reloaded graph's lifetime to the HnswIo that loaded it,
        // because with mmap enabled the points would borrow the mapped file. We
        // never enable mmap, so the graph owns all of its data and only the type
        // needs the borrow to outlive it: leak the HnswIo (a path, a name and an
        // options struct, no open files or mappings, a few hundred bytes per
        // load) to get a 'static borrow. Loads happen once per collection at
        // start-up or snapshot install, so the leak stays small.
        let io = Box::new(HnswIo::new(dir, basename));
        let res = catch_unwind(AssertUnwindSafe(move || load_leaking(io, space, share)));
        let mut graph = match res {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(IndexError::Hnsw(format!("load failed: {e}"))),
            Err(_) => return Err(IndexError::Hnsw("hnsw_rs panicked while loading".into())),
        };
        // A reloaded hnsw_rs graph extends candidate lists on insert, a fresh
        // one does not; keep later inserts behaving as in a fresh graph.
        with_hnsw!(&mut graph.hnsw, h => h.set_extend_candidates(false));
        Ok(graph)
    }
}

/// Loads through `io`, leaking it (see [`Graph::load`]).
fn load_leaking(io: Box<HnswIo>, space: Space, share: &[Option<Vector>]) -> Result<Graph, String> {
    let io: &'static mut HnswIo = Box::leak(io);
    let borrow = |slot: usize, dumped: &[f32]| -> Option<&'static [f32]> {
        let v = share.get(slot)?.as_ref()?;
        // SAFETY: as in `Graph::insert`: every vector offered here is held by
        // the graph's `borrowed` (below) until the graph, points first, is
        // dropped, and an Arc's contents never move.
        (**v == *dumped).then(|| unsafe { std::slice::from_raw_parts(v.as_ptr(), v.len()) })
    };
    let res = match space {
        Space::L2 => io
            .load_hnsw_borrowing::<f32, GraphL2>(&borrow)
            .map(Spaced::L2),
        Space::Cosine => io
            .load_hnsw_borrowing::<f32, GraphCosine>(&borrow)
            .map(Spaced::Cosine),
        Space::Ip => io
            .load_hnsw_borrowing::<f32, GraphIp>(&borrow)
            .map(Spaced::Ip),
    };
    res.map(|hnsw| Graph {
        hnsw,
        borrowed: Mutex::new(share.iter().flatten().cloned().collect()),
    })
    .map_err(|e| e.to_string())
}
