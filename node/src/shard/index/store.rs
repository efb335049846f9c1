//! The vectors of one segment, by slot, with their ids and tombstones.
//!
//! A slot is the position of a point version in insertion order and is the
//! key hnsw_rs knows the point by. Slots are never reused: removing a point
//! only tombstones its slot, and a rebuild compacts the live slots into a new
//! store.

use std::collections::HashMap;

use super::{PointId, Vector};

pub(crate) struct VectorStore {
    dim: usize,
    /// The vector of each slot: shared with the record it belongs to and with
    /// the graph's point, so the index holds no copy of its own.
    data: Vec<Vector>,
    /// Slot to point id (also for tombstoned slots).
    ids: Vec<PointId>,
    /// Slot to liveness.
    live: Vec<bool>,
    /// Live point id to its slot.
    slot_of: HashMap<PointId, usize>,
}

impl VectorStore {
    pub fn with_capacity(dim: usize, capacity: usize) -> Self {
        VectorStore {
            dim,
            data: Vec::with_capacity(capacity),
            ids: Vec::with_capacity(capacity),
            live: Vec::with_capacity(capacity),
            slot_of: HashMap::with_capacity(capacity),
        }
    }

    /// Rebuilds a store from persisted parts; `dead` lists tombstoned slots.
    pub fn from_parts(
        dim: usize,
        data: Vec<Vector>,
        ids: Vec<PointId>,
        dead: &[u64],
    ) -> Result<Self, String> {
        if data.len() != ids.len() {
            return Err(format!("{} vectors for {} points", data.len(), ids.len()));
        }
        if let Some(v) = data.iter().find(|v| v.len() != dim) {
            return Err(format!(
                "a vector of dimension {} in a store of {dim}",
                v.len()
            ));
        }
        let mut live = vec![true; ids.len()];
        for &s in dead {
            let s = usize::try_from(s).map_err(|_| format!("dead slot {s} out of range"))?;
            match live.get_mut(s) {
                Some(l) if *l => *l = false,
                Some(_) => return Err(format!("dead slot {s} listed twice")),
                None => return Err(format!("dead slot {s} out of range")),
            }
        }
        let mut slot_of = HashMap::with_capacity(ids.len() - dead.len());
        for (s, &id) in ids.iter().enumerate() {
            if live[s] && slot_of.insert(id, s).is_some() {
                return Err(format!("point id {id} is live in two slots"));
            }
        }
        Ok(VectorStore {
            dim,
            data,
            ids,
            live,
            slot_of,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of slots, live and tombstoned.
    pub fn slots(&self) -> usize {
        self.ids.len()
    }

    pub fn live_count(&self) -> usize {
        self.slot_of.len()
    }

    pub fn tombstones(&self) -> usize {
        self.slots() - self.live_count()
    }

    /// Appends a live point and returns its slot. An id that is already live
    /// is replaced: its old slot is tombstoned.
    pub fn push(&mut self, id: PointId, vector: Vector) -> usize {
        debug_assert_eq!(vector.len(), self.dim);
        let slot = self.ids.len();
        if let Some(old) = self.slot_of.insert(id, slot) {
            self.live[old] = false;
        }
        self.data.push(vector);
        self.ids.push(id);
        self.live.push(true);
        slot
    }

    /// Tombstones a live point; returns its slot, or `None` if it is not live.
    pub fn kill(&mut self, id: PointId) -> Option<usize> {
        let slot = self.slot_of.remove(&id)?;
        self.live[slot] = false;
        Some(slot)
    }

    pub fn slot_of(&self, id: PointId) -> Option<usize> {
        self.slot_of.get(&id).copied()
    }

    #[inline]
    pub fn vector(&self, slot: usize) -> &[f32] {
        &self.data[slot]
    }

    /// The shared vector of `slot` (for a graph that borrows it).
    #[inline]
    pub fn shared(&self, slot: usize) -> &Vector {
        &self.data[slot]
    }

    #[inline]
    pub fn id(&self, slot: usize) -> PointId {
        self.ids[slot]
    }

    /// Whether `slot` holds a live point (false for unknown slots).
    #[inline]
    pub fn is_live(&self, slot: usize) -> bool {
        self.live.get(slot).copied().unwrap_or(false)
    }

    pub fn live_slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.live
            .iter()
            .enumerate()
            .filter(|(_, l)| **l)
            .map(|(s, _)| s)
    }

    pub fn ids(&self) -> &[PointId] {
        &self.ids
    }

    /// Tombstoned slots, ascending.
    pub fn dead_slots(&self) -> Vec<u64> {
        self.live
            .iter()
            .enumerate()
            .filter(|(_, l)| !**l)
            .map(|(s, _)| s as u64)
            .collect()
    }

    /// A copy holding only the live points, in slot order, in slots `0..live`.
    pub fn compacted(&self) -> VectorStore {
        let mut out = VectorStore::with_capacity(self.dim, self.live_count());
        for s in self.live_slots() {
            out.push(self.ids[s], self.data[s].clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_replace_kill_compact() {
        let mut s = VectorStore::with_capacity(2, 0);
        assert_eq!(s.push(7, Vector::from([1.0, 2.0])), 0);
        assert_eq!(s.push(8, Vector::from([3.0, 4.0])), 1);
        assert_eq!(s.push(7, Vector::from([5.0, 6.0])), 2); // replaces slot 0
        assert_eq!((s.slots(), s.live_count(), s.tombstones()), (3, 2, 1));
        assert!(!s.is_live(0) && s.is_live(2) && !s.is_live(99));
        assert_eq!(s.kill(8), Some(1));
        assert_eq!(s.kill(8), None);
        assert_eq!(s.dead_slots(), vec![0, 1]);
        let c = s.compacted();
        assert_eq!((c.slots(), c.live_count()), (1, 1));
        assert_eq!(c.vector(0), &[5.0, 6.0]);
        assert_eq!(c.id(0), 7);
    }

    #[test]
    fn from_parts_rejects_inconsistencies() {
        let two = || vec![Vector::from([0.0]), Vector::from([1.0])];
        let ok = VectorStore::from_parts(1, two(), vec![1, 1], &[0]).map(|s| s.live_count());
        assert_eq!(ok, Ok(1));
        assert!(VectorStore::from_parts(1, two(), vec![1, 1], &[]).is_err());
        assert!(VectorStore::from_parts(1, vec![Vector::from([0.0])], vec![1, 2], &[]).is_err());
        assert!(VectorStore::from_parts(2, two(), vec![1, 2], &[]).is_err());
        assert!(VectorStore::from_parts(1, two(), vec![1, 2], &[2]).is_err());
        assert!(VectorStore::from_parts(1, two(), vec![1, 2], &[0, 0]).is_err());
    }
}
