//! The entries of one Raft log since its snapshot, newest in memory, older ones on disk.
//!
//! A replica keeps its log until a snapshot compacts it, and the snapshot policy lets
//! that be a quarter of the last snapshot file (~80 MB per shard replica at 1M records):
//! memory that nothing reads once the entries are applied, except a leader catching up
//! a slow follower. So, as TiKV's entry cache does over its raft engine, applied entries
//! past a byte budget keep only their term and where their WAL frame starts ("cold");
//! [`crate::storage::RaftLogStorage`] reads them back from the WAL when asked for them.
//! Unapplied entries always stay in memory (raft-rs reads them to apply them).

use std::collections::VecDeque;

use raft::prelude::Entry;

use super::wal::FramePos;

/// Memory an entry is counted for beyond its payload (the `Entry` itself, its position).
const ENTRY_OVERHEAD: u64 = 96;

/// An entry whose payload is only in the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ColdEntry {
    pub term: u64,
    /// The start of the frame (a `Record::Entries`) that holds it.
    pub at: FramePos,
    /// What it was counted for in memory (see `cost`), kept for [`LogEntries::bytes`].
    pub bytes: u32,
}

/// A contiguous run of entries: a cold prefix, then the entries in memory. Positions
/// are offsets from the first entry (the caller maps log indexes to them).
#[derive(Default)]
pub(super) struct LogEntries {
    cold: VecDeque<ColdEntry>,
    hot: VecDeque<Entry>,
    /// Where each of `hot` is in the WAL (parallel to it).
    hot_at: VecDeque<FramePos>,
    hot_bytes: u64,
    /// The sum of `cold`'s `bytes`.
    cold_bytes: u64,
}

fn cost(e: &Entry) -> u64 {
    (e.data.len() + e.context.len()) as u64 + ENTRY_OVERHEAD
}

impl LogEntries {
    pub fn len(&self) -> usize {
        self.cold.len() + self.hot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many leading entries are on disk only.
    pub fn cold_len(&self) -> usize {
        self.cold.len()
    }

    /// Bytes of the entries in memory (payloads plus a fixed overhead each).
    pub fn hot_bytes(&self) -> u64 {
        self.hot_bytes
    }

    /// Bytes of all the entries, in memory or not (what rewriting them writes, about).
    pub fn bytes(&self) -> u64 {
        self.hot_bytes + self.cold_bytes
    }

    pub fn term(&self, offset: usize) -> Option<u64> {
        match offset.checked_sub(self.cold.len()) {
            None => self.cold.get(offset).map(|c| c.term),
            Some(i) => self.hot.get(i).map(|e| e.term),
        }
    }

    /// The entry at `offset` if it is in memory.
    #[cfg(test)]
    pub fn hot(&self, offset: usize) -> Option<&Entry> {
        self.hot.get(offset.checked_sub(self.cold.len())?)
    }

    /// The entries in memory within `lo..hi` (clamped to them).
    pub fn hot_range(&self, lo: usize, hi: usize) -> impl Iterator<Item = &Entry> {
        let c = self.cold.len();
        let lo = lo.saturating_sub(c).min(self.hot.len());
        let hi = hi.saturating_sub(c).clamp(lo, self.hot.len());
        self.hot.range(lo..hi)
    }

    /// The cold entries within `lo..hi` (clamped to them).
    pub fn cold_range(&self, lo: usize, hi: usize) -> impl Iterator<Item = &ColdEntry> {
        let lo = lo.min(self.cold.len());
        let hi = hi.clamp(lo, self.cold.len());
        self.cold.range(lo..hi)
    }

    /// The entries in memory, oldest first (all of them while a log is replayed).
    pub fn hot_iter(&self) -> impl Iterator<Item = &Entry> {
        self.hot.iter()
    }

    /// Keeps the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        if len <= self.cold.len() {
            // Raft never overwrites applied entries; kept correct regardless.
            self.cold.truncate(len);
            self.cold_bytes = self.cold.iter().map(|c| u64::from(c.bytes)).sum();
            self.clear_hot();
            return;
        }
        let keep = len - self.cold.len();
        for e in self.hot.range(keep.min(self.hot.len())..) {
            self.hot_bytes -= cost(e);
        }
        self.hot.truncate(keep);
        self.hot_at.truncate(keep);
    }

    /// Appends entries written in the WAL frame at `at`.
    pub fn extend(&mut self, ents: impl IntoIterator<Item = Entry>, at: FramePos) {
        for e in ents {
            self.hot_bytes += cost(&e);
            self.hot.push_back(e);
            self.hot_at.push_back(at);
        }
    }

    /// Forgets the first `n` entries (clamped to all).
    pub fn drain_front(&mut self, n: usize) {
        let from_cold = n.min(self.cold.len());
        for c in self.cold.drain(..from_cold) {
            self.cold_bytes -= u64::from(c.bytes);
        }
        let from_hot = (n - from_cold).min(self.hot.len());
        for e in self.hot.range(..from_hot) {
            self.hot_bytes -= cost(e);
        }
        self.hot.drain(..from_hot);
        self.hot_at.drain(..from_hot);
    }

    pub fn clear(&mut self) {
        self.cold.clear();
        self.cold_bytes = 0;
        self.clear_hot();
    }

    fn clear_hot(&mut self) {
        self.hot.clear();
        self.hot_at.clear();
        self.hot_bytes = 0;
    }

    /// Drops from memory the oldest entries at offsets below `limit` while more than
    /// `budget` bytes are held. Returns how many were dropped.
    pub fn evict(&mut self, limit: usize, budget: u64) -> usize {
        let mut n = 0;
        while self.hot_bytes > budget && self.cold.len() < limit {
            let (Some(e), Some(at)) = (self.hot.pop_front(), self.hot_at.pop_front()) else {
                break;
            };
            let bytes = cost(&e);
            self.hot_bytes -= bytes;
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            self.cold_bytes += u64::from(bytes);
            self.cold.push_back(ColdEntry {
                term: e.term,
                at,
                bytes,
            });
            n += 1;
        }
        if n > 0 && self.hot.capacity() > 4 * self.hot.len().max(16) {
            self.hot.shrink_to_fit();
            self.hot_at.shrink_to_fit();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, bytes: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![7u8; bytes].into(),
            ..Default::default()
        }
    }

    fn at(offset: u64) -> FramePos {
        FramePos { segment: 1, offset }
    }

    #[test]
    fn eviction_keeps_terms_positions_and_the_unevictable_tail() {
        let mut l = LogEntries::default();
        l.extend((1..=4).map(|i| entry(i, 1, 1000)), at(8));
        l.extend((5..=8).map(|i| entry(i, 2, 1000)), at(5000));
        assert_eq!(l.hot_bytes(), 8 * (1000 + ENTRY_OVERHEAD));
        // Only the first 6 may go (applied); the budget asks for more.
        assert_eq!(l.evict(6, 0), 6);
        assert_eq!((l.cold_len(), l.len()), (6, 8));
        assert_eq!(l.hot_bytes(), 2 * (1000 + ENTRY_OVERHEAD));
        assert_eq!(
            l.bytes(),
            8 * (1000 + ENTRY_OVERHEAD),
            "cold ones count too"
        );
        assert_eq!(l.term(3), Some(1));
        assert_eq!(l.term(5), Some(2));
        assert!(l.hot(5).is_none());
        assert_eq!(l.hot(6).map(|e| e.index), Some(7));
        let cold: Vec<_> = l.cold_range(2, 100).map(|c| c.at.offset).collect();
        assert_eq!(cold, vec![8, 8, 5000, 5000]);
        let hot: Vec<_> = l.hot_range(0, 7).map(|e| e.index).collect();
        assert_eq!(hot, vec![7]);
        // Within budget: nothing more is evicted.
        assert_eq!(l.evict(8, 1 << 20), 0);
    }

    #[test]
    fn truncate_and_drain_across_the_cold_boundary_keep_the_byte_count() {
        let mut l = LogEntries::default();
        l.extend((1..=6).map(|i| entry(i, 1, 100)), at(8));
        l.evict(3, 0);
        l.truncate(4);
        assert_eq!((l.cold_len(), l.len()), (3, 4));
        assert_eq!(l.hot_bytes(), 100 + ENTRY_OVERHEAD);
        assert_eq!(l.bytes(), 4 * (100 + ENTRY_OVERHEAD));
        l.drain_front(2);
        assert_eq!((l.cold_len(), l.len()), (1, 2));
        assert_eq!(l.bytes(), 2 * (100 + ENTRY_OVERHEAD));
        l.drain_front(10);
        assert!(l.is_empty());
        assert_eq!((l.hot_bytes(), l.bytes()), (0, 0));
        l.extend([entry(9, 3, 10)], at(99));
        l.evict(1, 0);
        l.truncate(0);
        assert!(l.is_empty());
    }
}
