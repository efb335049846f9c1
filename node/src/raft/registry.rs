//! The node's replicas by group: where the transport delivers messages and where the
//! HTTP API finds a group's actor and state machine. Also the replicas that do not run
//! (failed, or waiting for the amnesia check), so status shows them and requests to them
//! get a clear "unavailable" answer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::placement::GroupKind;
use common::wire::ReplicaState;
use parking_lot::RwLock;
use raft::prelude::Message;

use super::messages::{Report, StepBatch};
use super::replica::ReplicaHandle;
use crate::identity::PeersSeen;
use crate::transport::{Mailboxes, SendReport};

/// A hosted replica that is not running, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedReplica {
    pub group: u64,
    pub kind: GroupKind,
    pub state: ReplicaState,
    pub reason: String,
}

#[derive(Default)]
pub struct Replicas {
    by_group: RwLock<BTreeMap<u64, Arc<ReplicaHandle>>>,
    stopped: RwLock<BTreeMap<u64, StoppedReplica>>,
    /// Peers that ever sent this node a Raft message (set by the node at start).
    seen: RwLock<Option<Arc<PeersSeen>>>,
}

impl Replicas {
    pub fn insert(&self, handle: ReplicaHandle) {
        self.stopped.write().remove(&handle.group);
        self.by_group.write().insert(handle.group, Arc::new(handle));
    }

    /// Records a replica that does not run (replacing a running one's entry).
    pub fn set_stopped(&self, stopped: StoppedReplica) {
        self.by_group.write().remove(&stopped.group);
        self.stopped.write().insert(stopped.group, stopped);
    }

    /// The replica of `group`, unless there is none or it was removed from its group.
    pub fn get(&self, group: u64) -> Option<Arc<ReplicaHandle>> {
        self.by_group
            .read()
            .get(&group)
            .filter(|h| !h.is_removed())
            .cloned()
    }

    /// Every running (or since failed) replica, by ascending group; removed ones are
    /// forgotten here.
    pub fn all(&self) -> Vec<Arc<ReplicaHandle>> {
        self.by_group.write().retain(|_, h| !h.is_removed());
        self.by_group.read().values().cloned().collect()
    }

    /// Whether this node has a replica of `group` (running, failed or waiting).
    pub fn hosts(&self, group: u64) -> bool {
        self.get(group).is_some() || self.stopped.read().contains_key(&group)
    }

    /// The entry of `group`'s replica if it does not run.
    pub fn stopped(&self, group: u64) -> Option<StoppedReplica> {
        self.stopped.read().get(&group).cloned()
    }

    /// Forgets this node's replica of `group`, running or not (its actor, if any, is
    /// failed and idle; the caller deletes its data).
    pub fn forget(&self, group: u64) {
        self.by_group.write().remove(&group);
        self.stopped.write().remove(&group);
    }

    /// Every replica that never started, by ascending group.
    pub fn all_stopped(&self) -> Vec<StoppedReplica> {
        self.stopped.read().values().cloned().collect()
    }

    /// Why this node's replica of `group` serves nothing, if it does not: it never
    /// started, or it stopped on a failure.
    pub fn unavailable(&self, group: u64) -> Option<String> {
        if let Some(s) = self.stopped.read().get(&group) {
            return Some(s.reason.clone());
        }
        self.get(group).and_then(|h| h.failure())
    }

    pub fn set_peers_seen(&self, seen: Arc<PeersSeen>) {
        *self.seen.write() = Some(seen);
    }

    pub fn peers_seen(&self) -> Option<Arc<PeersSeen>> {
        self.seen.read().clone()
    }

    /// Records every sender of `messages` as seen, durably, before they are delivered.
    fn note_senders(&self, messages: &[Message]) -> bool {
        let Some(seen) = self.peers_seen() else {
            return true;
        };
        let senders: BTreeSet<u64> = messages.iter().map(|m| m.from).collect();
        for from in senders {
            if let Err(e) = seen.note(from) {
                tracing::error!(peer = from, error = %e, "cannot record the peer as seen; its raft messages are dropped");
                return false;
            }
        }
        true
    }
}

impl Mailboxes for Replicas {
    fn deliver(&self, group: u64, messages: Vec<Message>) -> bool {
        if self.stopped.read().contains_key(&group) {
            // Hosted, but not running: nothing steps, nothing votes.
            return true;
        }
        let Some(h) = self.get(group) else {
            return false;
        };
        if h.failure().is_some() || !self.note_senders(&messages) {
            return true;
        }
        h.addr.do_send(StepBatch(messages));
        true
    }

    fn report(&self, group: u64, to: u64, report: SendReport) {
        if let Some(h) = self.get(group) {
            h.addr.do_send(Report { to, report });
        }
    }
}
