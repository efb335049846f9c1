//! Node-to-node Raft transport over HTTP.
//!
//! - [`client`]: one sender task per destination node with a bounded queue; everything
//!   queued goes out as one `POST /raft/batch` ([`common::wire::RaftBatch`], bincode).
//! - [`server`]: the `/raft/batch` route; decodes a batch and delivers each group's
//!   messages to its replica through [`Mailboxes`].
//! - [`peers`]: the address book, updatable at run time (nodes join).
//! - [`filter`]: the fault filter behind `POST /admin/partition` and `/admin/heal`.
//! - [`liveness`]: when each peer node was last heard from (node-level keepalives).
//!
//! The transport only delivers: it never interprets Raft messages beyond reporting failed
//! sends back to the sending replica (Raft retransmits whatever is lost).

pub mod client;
pub mod filter;
pub mod liveness;
pub mod peers;
pub mod server;

use raft::prelude::Message;

pub use client::{Transport, TransportOptions};
pub use filter::FaultFilter;
pub use liveness::PeerLiveness;
pub use peers::PeerBook;

/// What the transport tells a replica about messages it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendReport {
    /// A batch carrying messages from the group to `to` failed (or was dropped).
    Unreachable,
    /// A snapshot message was delivered to the destination node.
    SnapshotFinished,
    /// A snapshot message could not be delivered.
    SnapshotFailed,
}

/// Where the transport delivers what it receives and reports what it sent: the node's
/// replica registry.
pub trait Mailboxes: Send + Sync + 'static {
    /// Hands messages (all for `group`, in order) to the local replica of `group`; false if
    /// this node hosts no replica of it.
    fn deliver(&self, group: u64, messages: Vec<Message>) -> bool;
    /// Reports the fate of messages the local replica of `group` sent to node `to`.
    fn report(&self, group: u64, to: u64, report: SendReport);
}
