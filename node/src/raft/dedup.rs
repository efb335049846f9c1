//! Remembers the outcome of recently applied proposals by request id, so a
//! proposal the router retries after a leader change applies exactly once
//! and gets the reply of its first application. Every kind of group keeps one
//! (`StateMachine::apply` consults it).
//!
//! A request id is forgotten only when both hold:
//! - more than `capacity` ids are remembered (oldest first), and
//! - no copy of its request can still be proposed: the log's clock (the newest
//!   stamp a leader put on an applied entry) is past the request's deadline by
//!   twice the allowed clock skew (`common::clock`). Nodes refuse to propose a
//!   request after its deadline, and a later entry was proposed later, so an id
//!   dropped by this rule can never come back. Keeping only a count (as before)
//!   let a copy that waited in a node's queue apply again after a later
//!   acknowledged write to the same record once enough other requests had
//!   pushed its id out.
//!
//! Above `capacity * HARD_LIMIT_FACTOR` ids the oldest go regardless (a
//! bound on memory under a flood of requests with far deadlines); such
//! evictions are counted so status can show them.
//!
//! Everything here is a function of the applied log, so the window is
//! identical on all replicas and travels inside snapshots. Ordered containers
//! keep the snapshot bytes deterministic.

use std::collections::{BTreeMap, VecDeque};

use common::clock::MAX_CLOCK_SKEW_MS;
use common::wire::ProposalHeader;
use serde::{Deserialize, Serialize};

/// How many times `capacity` the window may grow while it waits for deadlines to pass.
pub const HARD_LIMIT_FACTOR: usize = 8;

/// The outcomes of recently applied request ids, generic over the group's
/// outcome type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDedup<O> {
    capacity: usize,
    /// Request ids in apply order, with their deadlines (Unix ms).
    order: VecDeque<(u128, u64)>,
    outcomes: BTreeMap<u128, O>,
    /// The newest leader stamp (Unix ms) of an applied entry.
    clock_ms: u64,
    /// Ids dropped at the hard limit while their deadline had not passed.
    forced_evictions: u64,
}

impl<O> RequestDedup<O> {
    pub fn with_capacity(capacity: usize) -> Self {
        RequestDedup {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            outcomes: BTreeMap::new(),
            clock_ms: 0,
            forced_evictions: 0,
        }
    }

    pub fn get(&self, request_id: u128) -> Option<&O> {
        self.outcomes.get(&request_id)
    }

    /// Advances the log's clock to the stamp of an applied entry (0 = unstamped).
    pub fn observe_stamp(&mut self, stamp_ms: u64) {
        self.clock_ms = self.clock_ms.max(stamp_ms);
    }

    pub fn remember(&mut self, header: ProposalHeader, outcome: O) {
        if self.outcomes.insert(header.request_id, outcome).is_some() {
            return;
        }
        self.order
            .push_back((header.request_id, header.deadline_ms));
        self.evict();
    }

    fn evict(&mut self) {
        let hard_limit = self.capacity.saturating_mul(HARD_LIMIT_FACTOR);
        while self.order.len() > self.capacity {
            let Some(&(id, deadline_ms)) = self.order.front() else {
                break;
            };
            let expired = deadline_ms.saturating_add(2 * MAX_CLOCK_SKEW_MS) < self.clock_ms;
            if !expired {
                if self.order.len() <= hard_limit {
                    break;
                }
                self.forced_evictions += 1;
            }
            self.order.pop_front();
            self.outcomes.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Ids dropped at the hard limit before their deadline passed.
    pub fn forced_evictions(&self) -> u64 {
        self.forced_evictions
    }

    /// True when the order list and the outcome map describe the same ids
    /// within the hard limit (checked on snapshot restore).
    pub fn is_consistent(&self) -> bool {
        self.order.len() == self.outcomes.len()
            && self.capacity >= 1
            && self.order.len() <= self.capacity.saturating_mul(HARD_LIMIT_FACTOR)
            && self
                .order
                .iter()
                .all(|(id, _)| self.outcomes.contains_key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(request_id: u128, deadline_ms: u64) -> ProposalHeader {
        ProposalHeader {
            request_id,
            deadline_ms,
        }
    }

    #[test]
    fn evicts_oldest_first_once_deadlines_have_passed() {
        let mut d = RequestDedup::with_capacity(2);
        d.observe_stamp(10_000);
        d.remember(header(1, 0), "a");
        d.remember(header(2, 0), "b");
        d.remember(header(1, 0), "again");
        d.remember(header(3, 0), "c");
        assert!(d.get(1).is_none());
        assert_eq!(d.get(2), Some(&"b"));
        assert_eq!(d.len(), 2);
        assert!(d.is_consistent());
    }

    #[test]
    fn keeps_an_id_whose_request_may_still_be_proposed_beyond_capacity() {
        let mut d = RequestDedup::with_capacity(2);
        d.observe_stamp(10_000);
        d.remember(header(1, 10_500), "live");
        for id in 2..10 {
            d.remember(header(id, 0), "old");
        }
        // Id 1's deadline (plus twice the skew) is ahead of the log's clock: it stays,
        // and so does everything after it.
        assert_eq!(d.get(1), Some(&"live"));
        assert_eq!(d.len(), 9);
        // Once the log's clock is past it, the window shrinks back to capacity.
        d.observe_stamp(10_500 + 2 * MAX_CLOCK_SKEW_MS + 1);
        d.remember(header(10, 0), "new");
        assert!(d.get(1).is_none());
        assert_eq!(d.len(), 2);
        assert_eq!(d.forced_evictions(), 0);
        assert!(d.is_consistent());
    }

    #[test]
    fn the_hard_limit_bounds_the_window_and_counts_what_it_forced_out() {
        let mut d = RequestDedup::with_capacity(1);
        for id in 0..(HARD_LIMIT_FACTOR as u128 + 3) {
            d.remember(header(id, u64::MAX), ());
        }
        assert_eq!(d.len(), HARD_LIMIT_FACTOR);
        assert_eq!(d.forced_evictions(), 3);
        assert!(d.is_consistent());
    }
}
