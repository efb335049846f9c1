//! Remembers the outcome of recently applied proposals by request id, so a
//! proposal the router retries after a leader change applies exactly once
//! and gets the reply of its first application. Every kind of group keeps one
//! (`StateMachine::apply` consults it).
//!
//! Eviction is by count in apply order, which every replica shares, so the
//! window is identical on all replicas and travels inside snapshots. Ordered
//! containers keep the snapshot bytes deterministic.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The outcomes of the last `capacity` request ids, generic over the
/// group's outcome type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDedup<O> {
    capacity: usize,
    order: VecDeque<u128>,
    outcomes: BTreeMap<u128, O>,
}

impl<O> RequestDedup<O> {
    pub fn with_capacity(capacity: usize) -> Self {
        RequestDedup {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            outcomes: BTreeMap::new(),
        }
    }

    pub fn get(&self, request_id: u128) -> Option<&O> {
        self.outcomes.get(&request_id)
    }

    pub fn remember(&mut self, request_id: u128, outcome: O) {
        if self.outcomes.insert(request_id, outcome).is_some() {
            return;
        }
        self.order.push_back(request_id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.outcomes.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// True when the order list and the outcome map describe the same ids
    /// within capacity (checked on snapshot restore).
    pub fn is_consistent(&self) -> bool {
        self.order.len() == self.outcomes.len()
            && self.order.len() <= self.capacity
            && self.capacity >= 1
            && self.order.iter().all(|id| self.outcomes.contains_key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_first() {
        let mut d = RequestDedup::with_capacity(2);
        d.remember(1, "a");
        d.remember(2, "b");
        d.remember(1, "again");
        d.remember(3, "c");
        assert!(d.get(1).is_none());
        assert_eq!(d.get(2), Some(&"b"));
        assert_eq!(d.len(), 2);
        assert!(d.is_consistent());
    }
}
