//! Keeps the shard's B-tree maps packed as they grow.
//!
//! `std`'s `BTreeMap` splits a full node (11 keys) so that keys inserted in ascending
//! order, as record ids and point ids of a bulk load are, leave every node behind them
//! 6/11 full: the records map and the point map of a 1M-record node held ~140 bytes per
//! record of empty slots. A map built from a sorted sequence is packed full, so a map
//! that grew by half since it was last packed is rebuilt that way. Each rebuild moves
//! every entry once (tens of milliseconds at 300k, under the state machine's write lock,
//! as any apply); the sizes grow geometrically, so that is at most three moves per
//! entry over a load. A map restored from a snapshot starts packed.

use std::collections::BTreeMap;

/// Maps smaller than this are not worth the rebuild.
const MIN_ENTRIES: usize = 4096;

/// When to repack, from the size of the map the last time it was packed.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Packing {
    packed_len: usize,
}

impl Packing {
    /// A map of `len` entries that is packed now.
    pub fn packed(len: usize) -> Self {
        Packing { packed_len: len }
    }

    /// Whether a map grown to `len` entries should be repacked; if so, records that it
    /// will be.
    pub fn due(&mut self, len: usize) -> bool {
        if len < MIN_ENTRIES || len < self.packed_len + self.packed_len / 2 {
            return false;
        }
        self.packed_len = len;
        true
    }
}

/// Rebuilds `map` from its own sorted entries (full nodes).
pub(super) fn repack<K: Ord, V>(map: &mut BTreeMap<K, V>) {
    *map = std::mem::take(map).into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_repacked_each_time_it_grew_by_half() {
        let mut p = Packing::default();
        let due: Vec<usize> = (1..=20_000).filter(|&n| p.due(n)).collect();
        assert_eq!(due, vec![4096, 6144, 9216, 13_824]);
        let mut p = Packing::packed(10_000);
        assert!(!p.due(14_999));
        assert!(p.due(15_000));
    }

    #[test]
    fn repacking_keeps_every_entry_in_order() {
        let mut m: BTreeMap<String, u64> =
            (0..10_000u64).map(|i| (format!("id{i:06}"), i)).collect();
        m.remove("id000500");
        let before: Vec<_> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        repack(&mut m);
        let after: Vec<_> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(before, after);
    }
}
