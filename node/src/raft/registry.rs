//! The node's replicas by group: where the transport delivers messages and where the
//! HTTP API finds a group's actor and state machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use raft::prelude::Message;

use super::messages::{Report, StepBatch};
use super::replica::ReplicaHandle;
use crate::transport::{Mailboxes, SendReport};

#[derive(Default)]
pub struct Replicas {
    by_group: RwLock<BTreeMap<u64, Arc<ReplicaHandle>>>,
}

impl Replicas {
    pub fn insert(&self, handle: ReplicaHandle) {
        self.by_group.write().insert(handle.group, Arc::new(handle));
    }

    pub fn get(&self, group: u64) -> Option<Arc<ReplicaHandle>> {
        self.by_group.read().get(&group).cloned()
    }

    /// Every replica, by ascending group.
    pub fn all(&self) -> Vec<Arc<ReplicaHandle>> {
        self.by_group.read().values().cloned().collect()
    }
}

impl Mailboxes for Replicas {
    fn deliver(&self, group: u64, messages: Vec<Message>) -> bool {
        match self.get(group) {
            Some(h) => {
                h.addr.do_send(StepBatch(messages));
                true
            }
            None => false,
        }
    }

    fn report(&self, group: u64, to: u64, report: SendReport) {
        if let Some(h) = self.get(group) {
            h.addr.do_send(Report { to, report });
        }
    }
}
