//! The chaos fault filter: a set of nodes this node exchanges no Raft traffic with, and a
//! delay on every Raft message it sends. The transport checks the set when sending and
//! when receiving, so blocking a node on both sides of a link cuts it in both directions.
//! The delay is the fallback for `tc netem` delay on kernels without the `netem` qdisc:
//! each message leaves no earlier than its queueing time plus the delay, in order.
//! Client (router) traffic is not affected.

use std::collections::BTreeSet;
use std::time::Duration;

use parking_lot::RwLock;

#[derive(Debug, Default)]
pub struct FaultFilter {
    blocked: RwLock<BTreeSet<u64>>,
    delay: RwLock<Duration>,
}

impl FaultFilter {
    /// Replaces the blocked set.
    pub fn set(&self, nodes: impl IntoIterator<Item = u64>) {
        *self.blocked.write() = nodes.into_iter().collect();
    }

    /// Delays every Raft message this node sends from now on (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        *self.delay.write() = delay;
    }

    /// Clears the blocked set and the delay.
    pub fn heal(&self) {
        self.blocked.write().clear();
        *self.delay.write() = Duration::ZERO;
    }

    pub fn is_blocked(&self, node: u64) -> bool {
        self.blocked.read().contains(&node)
    }

    pub fn blocked(&self) -> Vec<u64> {
        self.blocked.read().iter().copied().collect()
    }

    pub fn delay(&self) -> Duration {
        *self.delay.read()
    }
}
