//! When this node last heard from each peer node, over any route of the transport. A
//! node-level keepalive (an empty batch on a lane that sent nothing for
//! [`super::TransportOptions::keepalive`]) keeps it fresh while every group between two
//! nodes is quiet, so a hibernating follower notices that its leader's node went away
//! (killed, partitioned) at the cost of one small request per node pair, not one
//! heartbeat per group.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug)]
pub struct PeerLiveness {
    heard: Mutex<HashMap<u64, Instant>>,
    /// A peer never heard from counts as silent since this node started.
    started: Instant,
}

impl Default for PeerLiveness {
    fn default() -> Self {
        PeerLiveness {
            heard: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }
}

impl PeerLiveness {
    /// A batch (possibly empty) from `node` arrived.
    pub fn heard_from(&self, node: u64) {
        self.heard.lock().insert(node, Instant::now());
    }

    /// How long nothing arrived from `node`.
    pub fn silent_for(&self, node: u64) -> Duration {
        let since = self.heard.lock().get(&node).copied();
        since.unwrap_or(self.started).elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_counts_from_the_last_batch_or_the_start() {
        let l = PeerLiveness::default();
        std::thread::sleep(Duration::from_millis(20));
        assert!(l.silent_for(2) >= Duration::from_millis(20));
        l.heard_from(2);
        assert!(l.silent_for(2) < Duration::from_millis(20));
        assert!(l.silent_for(3) >= Duration::from_millis(20));
    }
}
