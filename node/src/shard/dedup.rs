//! Remembers the outcome of recently applied proposals by request id, so a
//! proposal the router retries after a leader change applies exactly once.
//!
//! Eviction is by count in apply order, which every replica shares, so the
//! window is identical on all replicas and travels inside snapshots.

use std::collections::{HashMap, VecDeque};

use common::command::ApplyOutcome;
use serde::{Deserialize, Serialize};

/// How many request ids a shard remembers. A retry arrives within seconds;
/// this many writes is far more than a shard applies in that time.
pub const DEFAULT_DEDUP_WINDOW: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestDedup {
    capacity: usize,
    order: VecDeque<u128>,
    outcomes: HashMap<u128, ApplyOutcome>,
}

impl Default for RequestDedup {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_DEDUP_WINDOW)
    }
}

impl RequestDedup {
    pub fn with_capacity(capacity: usize) -> Self {
        RequestDedup {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            outcomes: HashMap::new(),
        }
    }

    pub fn get(&self, request_id: u128) -> Option<&ApplyOutcome> {
        self.outcomes.get(&request_id)
    }

    pub fn remember(&mut self, request_id: u128, outcome: ApplyOutcome) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_first() {
        let mut d = RequestDedup::with_capacity(2);
        d.remember(1, ApplyOutcome::Done);
        d.remember(2, ApplyOutcome::Deleted(3));
        d.remember(3, ApplyOutcome::Done);
        assert!(d.get(1).is_none());
        assert_eq!(d.get(2), Some(&ApplyOutcome::Deleted(3)));
        assert_eq!(d.len(), 2);
    }
}
