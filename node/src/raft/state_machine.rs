//! The interface between a replica's Raft runtime and what the group replicates.
//!
//! A group's state machine implements the typed [`StateMachine`]: commands, outcomes,
//! reads and their replies are its own types. The runtime holds every group's state
//! machine behind one object-safe trait, [`EncodedStateMachine`], which works on the
//! bytes of the log and of the internal API; [`Encoded`] is the one adapter between the
//! two (decode or reject, apply, encode), and [`StateMachine::apply`] the one
//! exactly-once rule (a request id seen before gets its first outcome again).
//!
//! # Plugging a state machine in
//! 1. Implement [`StateMachine`]. Every proposal is a `common::wire::Proposal` of the
//!    group's `Command`: the runtime reads its request id, the state machine only
//!    executes the command.
//! 2. Keep `applied()` equal to the position last passed to `advance`, make
//!    `write_snapshot` capture it (and the dedup window) and `read_snapshot` bring them
//!    back: on restart the replica restores the newest snapshot file and Raft replays the
//!    log from `applied()+1`. A snapshot is one file (the replica ships its bytes to
//!    lagging peers).
//! 3. `execute` must be deterministic (same log → same state → same `digest`) and must
//!    not fail: a command it refuses returns an outcome saying so.
//! 4. Give the node a [`StateMachineFactory`] choosing by [`GroupKind`]
//!    (`server::cluster_state_machines()`): `Box::new(Encoded(MyStateMachine::new()))`.

use std::any::Any;
use std::collections::BTreeMap;
use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::backup::{BackupItem, CollectionCount};
use common::placement::GroupKind;
use common::wire::{Proposal, ProposalHeader};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::dedup::RequestDedup;

/// The log position up to which commands have been applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPosition {
    pub index: u64,
    pub term: u64,
}

/// A state machine's snapshot file could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot write the snapshot {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: Box<dyn Error + Send + Sync>,
    },
    #[error("cannot restore the snapshot {}: {source}", path.display())]
    Restore {
        path: PathBuf,
        source: Box<dyn Error + Send + Sync>,
    },
}

/// A deterministic state machine fed with a Raft group's committed log, in its own types.
///
/// The replica applies in log order under the write lock, and reads, digests and writes
/// snapshots under the read lock (possibly from other threads).
pub trait StateMachine: Send + Sync + Sized + 'static {
    /// What the group's log carries (inside a [`Proposal`]).
    type Command: Serialize + DeserializeOwned;
    /// The reply to a command, remembered per request id.
    type Outcome: Serialize + Clone;
    /// A read request.
    type Read: DeserializeOwned;
    /// A read being answered, between its steps.
    type ReadInProgress: Send + 'static;
    type ReadReply: Serialize;
    type SnapshotError: Error + Send + Sync + 'static;

    /// What the group holds, named in the rejection of bytes that do not decode
    /// (`"shard"`: "undecodable shard command: ...").
    const NAME: &'static str;

    /// Executes a command not applied before (the caller checked the request id).
    fn execute(&mut self, command: &Self::Command) -> Self::Outcome;
    /// The last position passed to `advance`; the default for a fresh state machine.
    fn applied(&self) -> AppliedPosition;
    /// The applied position and the request ids of the last commands with their outcomes,
    /// kept by [`Self::apply`] and [`Self::advance`] (both are part of the snapshot).
    fn applied_mut(&mut self) -> (&mut AppliedPosition, &mut RequestDedup<Self::Outcome>);
    /// The outcome of a command that was refused before it ran (it did not decode).
    fn rejected(reason: String) -> Self::Outcome;

    /// Checks a decoded read; a refused read is answered at once.
    fn start_read(read: Self::Read) -> Result<Self::ReadInProgress, Self::ReadReply>;
    /// The reply to a read that did not decode.
    fn rejected_read(reason: String) -> Self::ReadReply;
    /// One step of a read: the reply, or `None` after recording in `read` how far it got,
    /// to be called again (under a fresh read lock, see [`read_in_steps`]) so that applies
    /// can run in between. A state machine whose reads are short answers in one step.
    fn read_step(&self, read: &mut Self::ReadInProgress) -> Option<Self::ReadReply>;

    /// Writes the whole state (including `applied()` and the dedup window) to one file at
    /// `path`. The replica then fsyncs the file and renames it into place.
    fn write_snapshot(&self, path: &Path) -> Result<(), Self::SnapshotError>;
    /// Captures the state for a snapshot file at `path` under the read lock, and returns
    /// what writes the file later, without any lock of the state machine, while applies
    /// go on (the apply thread hands it to a thread of its own). What it writes is the
    /// state at the capture. The default writes the file at once, under the lock: right
    /// for a small state machine.
    fn capture_snapshot(
        &self,
        path: &Path,
    ) -> Result<SnapshotWrite<Self::SnapshotError>, Self::SnapshotError> {
        self.write_snapshot(path)?;
        Ok(Box::new(|| Ok(())))
    }
    /// The state machine of a snapshot file written by `write_snapshot` on this or another
    /// replica.
    fn read_snapshot(path: &Path) -> Result<Self, Self::SnapshotError>;
    /// Digest of the replicated content: equal on replicas that applied the same log.
    fn digest(&self) -> u64;
    /// Number of records held, if the state machine counts records (admin status only).
    fn record_count(&self) -> Option<u64> {
        None
    }

    /// The next piece of work the state machine does behind its applied position,
    /// taken under the read lock and run by the replica's background thread without
    /// any lock of the replica (`raft::indexer`; the shard's vector indexer), for a
    /// replica in `role`. `None`: caught up, or nothing to do yet.
    fn background_job(&self, role: BackgroundRole) -> Option<BackgroundJob<Self::Command>> {
        let _ = role;
        None
    }
    /// How far that work is behind (the shard: record versions not yet indexed). The
    /// apply thread waits while it is above `[raft] max_index_lag`.
    fn background_lag(&self) -> u64 {
        0
    }
    /// How much of that work was spared by the leader's answers (the shard: points
    /// linked from its leader's link hints, without a search), since the state
    /// machine was opened or restored.
    fn background_hinted(&self) -> u64 {
        0
    }

    /// The content for a backup (`common::backup`): every item after the header, in a
    /// deterministic order, handed to `out` one at a time (a bounded batch of records
    /// each, never the whole group), with records only if `include_records`. Returns the
    /// per-collection counts for the summary. Called under the read lock, so the content
    /// is the state at one applied position. A state machine without backups refuses.
    fn export(
        &self,
        include_records: bool,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<BTreeMap<String, CollectionCount>> {
        let _ = (include_records, out);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("a {} group cannot be backed up", Self::NAME),
        ))
    }

    /// Applies the proposal committed at `at`, exactly once per request id: a request id
    /// seen before (a proposal the router retried after a leader change) gets the outcome
    /// of its first application and changes nothing but the applied position.
    /// `stamp_ms` is the proposing leader's clock (0 when the entry has none); it moves
    /// the dedup window's clock (see [`RequestDedup`]).
    fn apply(
        &mut self,
        at: AppliedPosition,
        stamp_ms: u64,
        proposal: &Proposal<Self::Command>,
    ) -> Self::Outcome {
        let (applied, dedup) = self.applied_mut();
        *applied = at;
        dedup.observe_stamp(stamp_ms);
        if let Some(outcome) = dedup.get(proposal.request_id) {
            return outcome.clone();
        }
        let outcome = self.execute(&proposal.command);
        self.applied_mut()
            .1
            .remember(proposal.header(), outcome.clone());
        outcome
    }

    /// Records that the log entry at `at` was applied without a command (a new leader's
    /// empty entry, a conf change, bytes that did not decode).
    fn advance(&mut self, at: AppliedPosition) {
        *self.applied_mut().0 = at;
    }
}

/// A state machine as the runtime sees every group's: bincode of the group's
/// [`Proposal`]s and reads in, bincode of outcomes and replies out. Implemented once, by
/// [`Encoded`].
pub trait EncodedStateMachine: Send + Sync + 'static {
    /// Applies the data of one committed normal entry at `at`, stamped `stamp_ms` by its
    /// leader; returns the encoded reply for the proposer. Data that does not decode is
    /// rejected the same way on every replica.
    fn apply(&mut self, at: AppliedPosition, stamp_ms: u64, data: &[u8]) -> Vec<u8>;
    /// A committed entry with no command (a new leader's empty entry, a conf change).
    fn advance(&mut self, at: AppliedPosition);
    fn applied(&self) -> AppliedPosition;
    /// One step of the read `request` (see [`StateMachine::read_step`]); `cursor` keeps
    /// the decoded read between steps.
    fn read_step(&self, request: &[u8], cursor: &mut ReadCursor) -> Option<Vec<u8>>;
    /// The whole read under one lock hold (tests and short reads).
    fn read(&self, request: &[u8]) -> Vec<u8> {
        let mut cursor = ReadCursor::default();
        loop {
            if let Some(reply) = self.read_step(request, &mut cursor) {
                return reply;
            }
        }
    }
    /// See [`StateMachine::capture_snapshot`].
    fn capture_snapshot(&self, path: &Path) -> Result<SnapshotWrite<SnapshotError>, SnapshotError>;
    /// Replaces the whole state with the snapshot file at `path`.
    fn restore_snapshot(&mut self, path: &Path) -> Result<(), SnapshotError>;
    fn digest(&self) -> u64;
    fn record_count(&self) -> Option<u64>;
    /// See [`StateMachine::background_job`]; a command the job answers comes encoded
    /// as a proposal of its own (a fresh request id).
    fn background_job(&self, role: BackgroundRole) -> Option<BackgroundJob<Vec<u8>>>;
    /// See [`StateMachine::background_lag`].
    fn background_lag(&self) -> u64;
    /// See [`StateMachine::background_hinted`].
    fn background_hinted(&self) -> u64 {
        0
    }
    /// See [`StateMachine::export`].
    fn export(
        &self,
        include_records: bool,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<BTreeMap<String, CollectionCount>>;
    /// How the node reads a proposal for this group before proposing it. The replica asks
    /// once, when it opens (its actor never takes the state machine's lock).
    fn proposal_reader(&self) -> ProposalReader;
}

/// The second half of a snapshot, see [`StateMachine::capture_snapshot`].
pub type SnapshotWrite<E> = Box<dyn FnOnce() -> Result<(), E> + Send>;

/// Work a state machine hands to its replica's background thread (see
/// [`StateMachine::background_job`]). It may answer with a command for the group's
/// log, which the replica proposes if it still leads: best effort, nothing waits for
/// it, and a command lost on the way may cost time, never correctness.
pub type BackgroundJob<C> = Box<dyn FnOnce() -> Option<C> + Send>;

/// What a replica's place in its group asks of its background work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackgroundRole {
    /// The replica leads its group (what its jobs answer is proposed).
    pub leading: bool,
    /// The group has other voters or learners (someone to tell).
    pub has_followers: bool,
    /// `[raft] max_index_lag` (0: no limit).
    pub max_lag: u64,
}

/// How long a background proposal may wait to be proposed (the dedup window keeps its
/// request id until then).
const BACKGROUND_PROPOSAL_TTL_MS: u64 = 10_000;

/// Decodes a proposal's bytes: its header, or the encoded outcome that refuses it (the
/// proposal is then answered without entering the log).
pub type ProposalReader = fn(&[u8]) -> Result<ProposalHeader, Vec<u8>>;

/// Where a read answered in steps stands between them: the state machine's
/// `ReadInProgress` (empty before the first step).
#[derive(Default)]
pub struct ReadCursor(Option<Box<dyn Any + Send>>);

/// The byte adapter: a [`StateMachine`] as an [`EncodedStateMachine`].
#[derive(Debug, Default)]
pub struct Encoded<S>(pub S);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail; an empty reply is
    // reported to the caller as undecodable rather than panicking here.
    bincode::serialize(value).unwrap_or_default()
}

fn decode_proposal<S: StateMachine>(data: &[u8]) -> Result<Proposal<S::Command>, S::Outcome> {
    bincode::deserialize(data)
        .map_err(|e| S::rejected(format!("undecodable {} command: {e}", S::NAME)))
}

fn read_proposal<S: StateMachine>(data: &[u8]) -> Result<ProposalHeader, Vec<u8>> {
    decode_proposal::<S>(data)
        .map(|p| p.header())
        .map_err(|rejected| encode(&rejected))
}

/// The error of a snapshot file at `path` that could not be written.
fn write_error<E: Error + Send + Sync + 'static>(path: &Path) -> impl FnOnce(E) -> SnapshotError {
    let path = path.to_owned();
    move |e| SnapshotError::Write {
        path,
        source: Box::new(e),
    }
}

/// [`EncodedStateMachine::apply`] on a typed state machine: the encoded outcome of the
/// encoded proposal `data`.
pub fn apply_bytes<S: StateMachine>(
    sm: &mut S,
    at: AppliedPosition,
    stamp_ms: u64,
    data: &[u8],
) -> Vec<u8> {
    let outcome = match decode_proposal::<S>(data) {
        Ok(proposal) => sm.apply(at, stamp_ms, &proposal),
        Err(rejected) => {
            // Deterministic on every replica: the same bytes fail the same way.
            sm.advance(at);
            rejected
        }
    };
    encode(&outcome)
}

/// [`EncodedStateMachine::read_step`] on a typed state machine. The request is decoded
/// and checked once, on the first step, and kept in the cursor with its progress.
pub fn read_step_bytes<S: StateMachine>(
    sm: &S,
    request: &[u8],
    cursor: &mut ReadCursor,
) -> Option<Vec<u8>> {
    let read = match cursor
        .0
        .as_mut()
        .and_then(|c| c.downcast_mut::<S::ReadInProgress>())
    {
        Some(read) => read,
        None => {
            let started = bincode::deserialize::<S::Read>(request)
                .map_err(|e| S::rejected_read(format!("undecodable {} read: {e}", S::NAME)))
                .and_then(S::start_read);
            match started {
                Ok(read) => cursor
                    .0
                    .insert(Box::new(read))
                    .downcast_mut::<S::ReadInProgress>()?,
                Err(reply) => return Some(encode(&reply)),
            }
        }
    };
    sm.read_step(read).map(|reply| encode(&reply))
}

impl<S: StateMachine> EncodedStateMachine for Encoded<S> {
    fn apply(&mut self, at: AppliedPosition, stamp_ms: u64, data: &[u8]) -> Vec<u8> {
        apply_bytes(&mut self.0, at, stamp_ms, data)
    }

    fn advance(&mut self, at: AppliedPosition) {
        self.0.advance(at);
    }

    fn applied(&self) -> AppliedPosition {
        self.0.applied()
    }

    fn read_step(&self, request: &[u8], cursor: &mut ReadCursor) -> Option<Vec<u8>> {
        read_step_bytes(&self.0, request, cursor)
    }

    fn capture_snapshot(&self, path: &Path) -> Result<SnapshotWrite<SnapshotError>, SnapshotError> {
        let write = self.0.capture_snapshot(path).map_err(write_error(path))?;
        let on_error = write_error(path);
        Ok(Box::new(move || write().map_err(on_error)))
    }

    fn restore_snapshot(&mut self, path: &Path) -> Result<(), SnapshotError> {
        self.0 = S::read_snapshot(path).map_err(|e| SnapshotError::Restore {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        Ok(())
    }

    fn digest(&self) -> u64 {
        self.0.digest()
    }

    fn record_count(&self) -> Option<u64> {
        self.0.record_count()
    }

    fn background_job(&self, role: BackgroundRole) -> Option<BackgroundJob<Vec<u8>>> {
        let job = self.0.background_job(role)?;
        Some(Box::new(move || {
            let command = job()?;
            Some(encode(&Proposal {
                request_id: rand::random(),
                deadline_ms: common::clock::unix_ms() + BACKGROUND_PROPOSAL_TTL_MS,
                command,
            }))
        }))
    }

    fn background_lag(&self) -> u64 {
        self.0.background_lag()
    }

    fn background_hinted(&self) -> u64 {
        self.0.background_hinted()
    }

    fn export(
        &self,
        include_records: bool,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<BTreeMap<String, CollectionCount>> {
        self.0.export(include_records, out)
    }

    fn proposal_reader(&self) -> ProposalReader {
        read_proposal::<S>
    }
}

/// Answers `request` on `sm` in steps ([`EncodedStateMachine::read_step`]),
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

/// A replica's state machine, shared between its actor (which applies) and the HTTP
/// handlers (which read after ReadIndex).
pub type SharedStateMachine = Arc<parking_lot::RwLock<Box<dyn EncodedStateMachine>>>;

/// Makes the (empty) state machine of a hosted group: `(group id, kind)`.
pub type StateMachineFactory =
    Arc<dyn Fn(u64, GroupKind) -> Box<dyn EncodedStateMachine> + Send + Sync>;
