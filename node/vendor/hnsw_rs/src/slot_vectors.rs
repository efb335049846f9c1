//! PATCH (vdb): the address of every point's vector, indexed by the point's slot.
//!
//! A search computes the distance to each neighbour it has not visited. Reaching the
//! neighbour's vector through its `Point` cost one cache miss on the point (for the
//! vector's address) before the miss on the vector itself; at 300k points a quarter
//! of `search_layer`'s samples waited on that first load (perf, `shard_bench --n
//! 300000`). The edge already carries the slot, and this table (8 bytes per point,
//! 2.4 MB at 300k, dense and mostly cache-resident) answers with the vector's
//! address, as hnswlib's flat array of points does.
//!
//! The table grows in segments that never move: segment `k` holds `FIRST << k`
//! entries, so slot `s` lives in segment `log2(s / FIRST + 1)` and a graph of a few
//! points allocates 8 KiB, not a table sized for the largest graph.
//!
//! Writes come from one thread at a time (the caller assigns slots under the lock of
//! `points_by_layer`) and happen before the point is linked into any list; a reader
//! learns a slot only from an edge or the entry point, both published under the
//! graph's locks, so it sees the entry written. Entries are atomics all the same, so
//! a reader racing a writer on a slot it could not have learned reads null, never a
//! torn pointer. A null entry (or a vector of another length than the first one
//! recorded) sends the caller back to the point.
//!
//! Tested through the node (this crate's own tests are left out, see `PATCHED.md`):
//! its recall tests build 20,000-point graphs, whose slots span five segments, and
//! reload and grow them; a slot answered with another point's vector fails them.
//!
//! The same table keyed by origin id (the caller's `DataId`) finds a point by the
//! id its caller knows it by (`Hnsw::insert_linked_borrowed`, `Hnsw::links_by_origin`).

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Entries in the first segment.
const FIRST: usize = 1024;
/// Segments: enough for every `u32` slot (`FIRST << 22` is past 2^32).
const SEGMENTS: usize = 23;

/// Addresses of `E`s by a dense `u32` key, in segments that never move. Written by one
/// thread at a time, read by any (see the module comment).
pub(crate) struct SlotTable<E> {
    segments: [AtomicPtr<AtomicPtr<E>>; SEGMENTS],
}

impl<E> Default for SlotTable<E> {
    fn default() -> Self {
        SlotTable {
            segments: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }
}

/// Segment and index within it of `slot`.
fn locate(slot: u32) -> (usize, usize) {
    let s = slot as usize + FIRST;
    let k = (usize::BITS - 1 - s.leading_zeros()) as usize - FIRST.trailing_zeros() as usize;
    (k, s - (FIRST << k))
}

impl<E> SlotTable<E> {
    /// Records `address` at `slot`. Called by one thread at a time.
    pub(crate) fn record(&self, slot: u32, address: *const E) {
        let (k, _) = locate(slot);
        if self.segments[k].load(Ordering::Acquire).is_null() {
            let fresh: Box<[AtomicPtr<E>]> = (0..FIRST << k)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect();
            let fresh = Box::into_raw(fresh) as *mut AtomicPtr<E>;
            self.segments[k].store(fresh, Ordering::Release);
        }
        if let Some(entry) = self.entry(slot) {
            entry.store(address as *mut E, Ordering::Release);
        }
    }

    /// The entry of `slot`, if its segment is allocated.
    #[inline]
    fn entry(&self, slot: u32) -> Option<&AtomicPtr<E>> {
        let (k, i) = locate(slot);
        let segment = self.segments[k].load(Ordering::Acquire);
        // SAFETY: segment `k` was allocated with `FIRST << k` entries and `i` is below
        // that (`locate`); segments are freed only on drop.
        (!segment.is_null()).then(|| unsafe { &*segment.add(i) })
    }

    /// The address recorded at `slot`, null if none was.
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> *const E {
        self.entry(slot)
            .map_or(std::ptr::null(), |e| e.load(Ordering::Acquire))
    }

    /// Where the entry of `slot` lives, for a prefetch; null if its segment is not
    /// allocated.
    #[inline]
    pub(crate) fn entry_address(&self, slot: u32) -> *const u8 {
        self.entry(slot)
            .map_or(std::ptr::null(), |e| e as *const AtomicPtr<E> as *const u8)
    }
}

impl<E> Drop for SlotTable<E> {
    fn drop(&mut self) {
        for (k, segment) in self.segments.iter_mut().enumerate() {
            let p = *segment.get_mut();
            if !p.is_null() {
                // SAFETY: allocated in `record` as a boxed slice of `FIRST << k`
                // entries and not freed before.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, FIRST << k)) });
            }
        }
    }
}

// SAFETY: the table holds addresses only; what they point to is owned by the points of
// the same graph (or borrowed for its lifetime) and only read through shared references.
unsafe impl<E: Sync> Send for SlotTable<E> {}
unsafe impl<E: Sync> Sync for SlotTable<E> {}

/// Each point's vector by the point's slot.
pub(crate) struct SlotVectors<T> {
    table: SlotTable<T>,
    /// The length of every vector recorded (the first one's); 0 until then.
    dim: AtomicUsize,
}

impl<T> Default for SlotVectors<T> {
    fn default() -> Self {
        SlotVectors {
            table: SlotTable::default(),
            dim: AtomicUsize::new(0),
        }
    }
}

impl<T> SlotVectors<T> {
    /// Records the vector of the point at `slot`. Called by one thread at a time (see
    /// the module comment). A vector whose length differs from the first one recorded
    /// is not recorded: its point answers for it.
    pub(crate) fn record(&self, slot: u32, v: &[T]) {
        let dim = match self.dim.load(Ordering::Relaxed) {
            0 if !v.is_empty() => {
                self.dim.store(v.len(), Ordering::Relaxed);
                v.len()
            }
            d => d,
        };
        if v.len() == dim {
            self.table.record(slot, v.as_ptr());
        }
    }

    /// Address of the vector at `slot`, null if none was recorded. Its length is
    /// [`dim`](Self::dim).
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> *const T {
        self.table.get(slot)
    }

    /// Where the entry of `slot` lives, for a prefetch.
    #[inline]
    pub(crate) fn entry_address(&self, slot: u32) -> *const u8 {
        self.table.entry_address(slot)
    }

    #[inline]
    pub(crate) fn dim(&self) -> usize {
        self.dim.load(Ordering::Relaxed)
    }
}
