//! The chaos fault filter: a set of nodes this node exchanges no Raft traffic with. The
//! transport checks it when sending and when receiving, so blocking a node on both sides
//! of a link cuts it in both directions. Client (router) traffic is not affected.

use std::collections::BTreeSet;

use parking_lot::RwLock;

#[derive(Debug, Default)]
pub struct FaultFilter {
    blocked: RwLock<BTreeSet<u64>>,
}

impl FaultFilter {
    /// Replaces the blocked set.
    pub fn set(&self, nodes: impl IntoIterator<Item = u64>) {
        *self.blocked.write() = nodes.into_iter().collect();
    }

    pub fn heal(&self) {
        self.blocked.write().clear();
    }

    pub fn is_blocked(&self, node: u64) -> bool {
        self.blocked.read().contains(&node)
    }

    pub fn blocked(&self) -> Vec<u64> {
        self.blocked.read().iter().copied().collect()
    }
}
