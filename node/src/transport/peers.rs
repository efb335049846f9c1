//! The node's address book: every other node it exchanges Raft traffic with, by id. Filled
//! from the config at start and updated at run time (a node that joined, or moved), so the
//! sending side ([`super::Transport`]) and the receiving side (the accepted senders of
//! [`super::server::Inbound`]) always agree on who the peers are.

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::RwLock;

#[derive(Debug, Default)]
pub struct PeerBook {
    addrs: RwLock<BTreeMap<u64, String>>,
}

impl PeerBook {
    /// The book of `peers` (`(node id, host:port)`), leaving out `me`.
    pub fn new(me: u64, peers: &[(u64, String)]) -> Self {
        PeerBook {
            addrs: RwLock::new(peers.iter().filter(|(id, _)| *id != me).cloned().collect()),
        }
    }

    /// Records `addr` for node `id`; whether anything changed.
    pub fn set(&self, id: u64, addr: &str) -> bool {
        let mut addrs = self.addrs.write();
        if addrs.get(&id).map(String::as_str) == Some(addr) {
            return false;
        }
        addrs.insert(id, addr.to_owned());
        true
    }

    pub fn addr(&self, id: u64) -> Option<String> {
        self.addrs.read().get(&id).cloned()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.addrs.read().contains_key(&id)
    }

    pub fn ids(&self) -> BTreeSet<u64> {
        self.addrs.read().keys().copied().collect()
    }

    pub fn all(&self) -> Vec<(u64, String)> {
        self.addrs
            .read()
            .iter()
            .map(|(id, a)| (*id, a.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_leaves_out_this_node_and_takes_new_addresses() {
        let book = PeerBook::new(1, &[(1, "a:1".into()), (2, "b:2".into())]);
        assert_eq!(book.ids(), [2].into());
        assert!(!book.set(2, "b:2"));
        assert!(book.set(3, "c:3"));
        assert!(book.set(2, "b:22"));
        assert_eq!(book.addr(2).as_deref(), Some("b:22"));
        assert!(book.contains(3) && !book.contains(1));
    }
}
