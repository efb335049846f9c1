//! The node's multi-raft runtime: one actor per hosted replica, each on its own arbiter.
//!
//! - [`state_machine`]: the [`ReplicatedStateMachine`] trait groups plug in through.
//! - [`replica`]: the replica actor and its ready loop (persist → send → hand committed
//!   entries to apply → advance), log compaction, leader spreading.
//! - [`apply`]: the replica's apply thread: committed entries into the state machine,
//!   outcomes back to the actor, snapshot files.
//! - [`inbound`]: checks on a peer's message before it is stepped (what raft-rs would
//!   panic on, senders that are not voters).
//! - [`pending`]: callers waiting on proposals and ReadIndex.
//! - [`snapshot_files`]: state-machine snapshot files on disk.
//! - [`registry`]: the node's replicas by group (the transport's mailboxes).
//! - [`kv`]: a small string-map state machine used by tests and, until the shard and catalog
//!   state machines are plugged in, by the node binary.

pub mod apply;
pub mod inbound;
pub mod kv;
pub mod logger;
pub mod messages;
pub mod pending;
pub mod registry;
pub mod replica;
pub mod snapshot_files;
pub mod state_machine;

pub use registry::Replicas;
pub use replica::{Replica, ReplicaError, ReplicaHandle, ReplicaParams, ReplicaProgress};
pub use state_machine::{
    read_in_steps, ReadCursor, ReplicatedStateMachine, RequestIdReader, SharedStateMachine,
    StateMachineFactory,
};
