//! The node's multi-raft runtime: one actor per hosted replica, each on its own arbiter,
//! and the interface the groups' state machines plug in through.
//!
//! - [`state_machine`]: the typed [`StateMachine`] trait a group implements, the byte
//!   adapter [`Encoded`] the runtime holds it through ([`EncodedStateMachine`]), the
//!   applied position and typed snapshot errors.
//! - [`dedup`]: the request-id window that makes a retried proposal apply once.
//! - [`replica`]: the replica actor and its ready loop (persist → send → hand committed
//!   entries to apply → advance), log compaction, leader spreading; [`ReplicaHandle`]
//!   reads a proposal's envelope (`common::wire::Proposal`) before the actor proposes it.
//! - [`apply`]: the replica's apply thread: committed entries into the state machine,
//!   outcomes back to the actor, snapshot files.
//! - [`indexer`]: the replica's background thread (the shard's vector indexer behind the
//!   applied position) and the apply thread's wait when it lags too far.
//! - [`inbound`]: checks on a peer's message before it is stepped (what raft-rs would
//!   panic on, senders that are not voters).
//! - [`pending`]: callers waiting on proposals and ReadIndex.
//! - [`messages`]: what the replica actor accepts.
//! - [`snapshot_files`]: state-machine snapshot files on disk.
//! - [`registry`]: the node's replicas by group (the transport's mailboxes).
//! - [`logger`]: raft-rs's slog output into `tracing`.
//!
//! The shard and catalogue state machines live in `crate::shard` and `crate::catalog`;
//! the key/value one the replication tests run on in `crate::kv` (feature `test-kv`).

pub mod apply;
pub mod dedup;
pub mod inbound;
pub mod indexer;
pub mod lease;
pub mod logger;
pub mod messages;
pub mod pending;
pub mod registry;
pub mod replica;
pub mod snapshot_files;
pub mod state_machine;

pub use registry::Replicas;
pub use replica::{MembershipError, Replica, ReplicaError, ReplicaHandle, ReplicaParams};
pub use state_machine::{
    read_in_steps, AppliedPosition, Encoded, EncodedStateMachine, ReadCursor, SharedStateMachine,
    SnapshotError, StateMachine, StateMachineFactory,
};
