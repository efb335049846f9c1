//! The interface between a replica's Raft runtime and what the group replicates.
//!
//! The shard state machine and the metadata (catalog) state machine implement
//! [`ReplicatedStateMachine`]; the node gets one per hosted group from a
//! [`StateMachineFactory`]. [`super::kv::KvStateMachine`] is a small real implementation
//! used by the runtime's own tests.
//!
//! # Plugging a state machine in
//! 1. Implement [`ReplicatedStateMachine`]: `apply` decodes the group's command (bincode,
//!    e.g. `common::command::Proposal` for shards) and returns its encoded outcome (e.g.
//!    `ApplyOutcome`); `read` decodes a read request and returns the encoded answer.
//! 2. Keep `applied()` equal to the (index, term) last passed to `apply`/`advance`, make
//!    `write_snapshot` capture it and `restore_snapshot` bring it back: on restart the
//!    replica restores the newest snapshot file and Raft replays the log from `applied()+1`.
//!    A snapshot is one file (the replica ships its bytes to lagging peers).
//! 3. `apply` must be deterministic (same log → same state → same `digest`) and must not
//!    fail: a command it rejects still returns an encoded outcome saying so.
//! 4. Give the node a [`StateMachineFactory`] choosing by [`GroupKind`], in
//!    `node/src/bin/node.rs` (today `server::kv_state_machines()`):
//!    `NodeOptions::new(config, id, Arc::new(|group, kind| match kind { .. }))`.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use common::placement::GroupKind;

/// A deterministic state machine fed with a Raft group's committed log.
///
/// The replica calls `apply`/`advance` in log order under the write lock, and `read`,
/// `digest` and `write_snapshot` under the read lock (possibly from other threads).
pub trait ReplicatedStateMachine: Send + Sync + 'static {
    /// Applies the data of one committed normal entry at (index, term); returns the encoded
    /// reply for the proposer (bincode of the group's outcome type).
    fn apply(&mut self, index: u64, term: u64, data: &[u8]) -> Vec<u8>;
    /// A committed entry with no command (a new leader's empty entry, a conf change).
    fn advance(&mut self, index: u64, term: u64);
    /// (index, term) of the last applied entry; (0, 0) for a fresh state machine.
    fn applied(&self) -> (u64, u64);
    /// Answers a read (bincode request in, bincode reply out); called only after ReadIndex
    /// confirmed and applied >= read index.
    fn read(&self, request: &[u8]) -> Vec<u8>;
    /// One step of a read: the encoded answer, or `None` after recording in
    /// `cursor` how far it got, to be called again (under a fresh read lock,
    /// see [`read_in_steps`]) so that applies can run in between. A state
    /// machine whose reads are short answers in one step, the default.
    fn read_step(&self, request: &[u8], cursor: &mut ReadCursor) -> Option<Vec<u8>> {
        let _ = cursor;
        Some(self.read(request))
    }
    /// Writes the whole state (including `applied()`) to one file at `path`. The replica
    /// then fsyncs the file and renames it into place.
    fn write_snapshot(&self, path: &Path) -> Result<(), String>;
    /// Replaces the whole state with the snapshot file at `path` (written by
    /// `write_snapshot` on this or another replica); `applied()` is then the snapshot's.
    fn restore_snapshot(&mut self, path: &Path) -> Result<(), String>;
    /// Digest of the replicated content: equal on replicas that applied the same log.
    fn digest(&self) -> u64;
    /// Number of records held, if the state machine counts records (admin status only).
    fn record_count(&self) -> Option<u64> {
        None
    }
    /// How to read the request id out of one of the group's encoded commands, if they
    /// carry one. The replica asks once, when it opens (its actor never takes the state
    /// machine's lock), and attaches a retried proposal to the pending entry of the same
    /// request.
    fn request_id_reader(&self) -> Option<RequestIdReader> {
        None
    }
}

/// Where a read answered in steps stands between them; each state machine
/// keeps its own type in it (empty before the first step).
#[derive(Default)]
pub struct ReadCursor(pub Option<Box<dyn Any + Send>>);

/// Answers `request` on `sm` in steps ([`ReplicatedStateMachine::read_step`]),
/// taking the read lock for each step only; `under_lock` runs under every
/// hold first and ends the read with its error.
///
/// Between steps the lock is free, and the apply thread gets it even while
/// other reads keep coming: `parking_lot`'s `RwLock` is writer-fair (a writer
/// that waits takes the writer bit at once, and new readers queue behind it
/// instead of overtaking it), so an apply waits at most one step of each
/// read in progress.
pub fn read_in_steps<E>(
    sm: &SharedStateMachine,
    request: &[u8],
    mut under_lock: impl FnMut() -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let mut cursor = ReadCursor::default();
    loop {
        let guard = sm.read();
        under_lock()?;
        if let Some(reply) = guard.read_step(request, &mut cursor) {
            return Ok(reply);
        }
    }
}

/// Reads the request id of an encoded command (`None` when it cannot be read).
pub type RequestIdReader = fn(&[u8]) -> Option<u128>;

/// A replica's state machine, shared between its actor (which applies) and the HTTP
/// handlers (which read after ReadIndex).
pub type SharedStateMachine = Arc<parking_lot::RwLock<Box<dyn ReplicatedStateMachine>>>;

/// Makes the (empty) state machine of a hosted group: `(group id, kind)`.
pub type StateMachineFactory =
    Arc<dyn Fn(u64, GroupKind) -> Box<dyn ReplicatedStateMachine> + Send + Sync>;
