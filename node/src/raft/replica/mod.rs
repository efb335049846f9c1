//! One replica of one Raft group: an actix actor, started on its own arbiter (thread), that
//! owns the group's `RawNode` over the WAL-backed [`RaftLogStorage`], its snapshot files
//! and (shared with readers) its state machine.
//!
//! Every handled message (peer messages, proposals, reads, ticks) only feeds the `RawNode`
//! and schedules one run of [`Replica::handle_ready`], so many messages handled together
//! make one `Ready`: one WAL append (one fsync) for all their entries.
//!
//! Committed entries are not applied here: they go to the replica's apply thread
//! ([`super::apply`]), which reports back what it applied ([`ApplyReport`]); only then are
//! proposals answered, reads released and raft-rs told (`advance_apply_to`). The actor
//! itself only steps, ticks, persists and sends, so heartbeats keep their pace while the
//! state machine works through a large batch or writes a snapshot.
//!
//! Split by job, as TiKV splits a peer: [`open`] (open a replica from disk, restore its
//! state machine, start the actor and its apply thread), [`ready`] (the ready loop:
//! persist, send, hand committed entries and conf changes over, compaction),
//! [`leadership`] (ticks, leader spreading, published progress), [`membership`] (conf
//! change proposals, removal), [`handlers`] (the actor's mailbox), [`hibernation`] (idle
//! groups stop ticking).

mod handlers;
mod hibernation;
mod leadership;
mod membership;
mod open;
mod ready;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{ActorContext, Addr, ArbiterHandle, Context};
use common::config::RaftSection;
use common::placement::GroupKind;
use common::wire::{
    InternalError, InternalReply, ProposalHeader, RaftRole, ReplicaState, ReplicaStatus,
};
use parking_lot::Mutex;
use raft::prelude::Entry;
use raft::{RawNode, StateRole};

use super::apply::{ApplySender, SnapshotPolicy, StopFlag};
use super::indexer::IndexerLink;
use super::lease::{vote_guard_span, LeaderLease, VoteGuard};
use super::pending::{PendingProposals, PendingReads};
use super::snapshot_files::SnapshotFiles;
use super::state_machine::{ProposalReader, SharedStateMachine, SnapshotError};
use crate::storage::{RaftLogStorage, RaftLogs, StorageError};
use crate::transport::Transport;

pub use membership::{tombstone_path, MembershipError, PROMOTE_MAX_LAG};

/// Ready rounds run back to back before yielding to the mailbox.
const MAX_READY_ROUNDS: usize = 8;

/// Largest command a proposal may carry (the WAL takes records up to 256 MiB).
pub const MAX_PROPOSAL_BYTES: usize = common::limits::MAX_PROPOSAL_BYTES;

/// Entries of one ready are persisted in WAL records of about this size at most.
const MAX_APPEND_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error(transparent)]
    StateMachine(#[from] SnapshotError),
    #[error("{0}")]
    Corrupt(String),
    #[error("apply: {0}")]
    Apply(String),
}

fn parse_conf_change<M: protobuf::Message>(e: &Entry) -> Result<M, ReplicaError> {
    M::parse_from_bytes(&e.data)
        .map_err(|err| ReplicaError::Corrupt(format!("conf change at {}: {err}", e.index)))
}

/// How to open a replica.
#[derive(Debug, Clone)]
pub struct ReplicaParams {
    pub node_id: u64,
    pub group: u64,
    pub kind: GroupKind,
    /// The group's directory: `{node data dir}/group-{group}` (holds `wal/` and `snap/`).
    pub dir: PathBuf,
    /// The group's voters from placement (used only to bootstrap an empty log). Empty for
    /// a replica created at run time: it waits for the leader's log or snapshot.
    pub voters: Vec<u64>,
    /// The node that should lead the group when it is caught up.
    pub preferred_leader: Option<u64>,
    /// For a replica created at run time: the index of the conf change that added it.
    /// Configurations before it are the group's history (this node may have been in
    /// the group before, and removed, under the same id): they neither make this
    /// replica a member nor remove it. 0 for every other replica.
    pub joined_at: u64,
    pub raft: RaftSection,
    /// Where the node's replicas keep their Raft logs.
    pub logs: RaftLogs,
    /// How often a leader that is not the preferred leader checks whether to hand over.
    pub transfer_check: Duration,
}

/// A running replica, as the node's registry holds it.
pub struct ReplicaHandle {
    pub group: u64,
    pub kind: GroupKind,
    pub addr: Addr<Replica>,
    pub state_machine: SharedStateMachine,
    /// What the replica publishes after every ready round (read by the HTTP API without
    /// going through the actor's mailbox); the state machine's digest and record count
    /// are left for the reader to fill in.
    pub progress: Arc<Mutex<ReplicaStatus>>,
    pub arbiter: ArbiterHandle,
    /// Set once the replica stopped for good; then its state machine must not be read.
    pub stopped: StopFlag,
    proposal_reader: ProposalReader,
}

impl ReplicaHandle {
    /// Why the replica stopped, if it did. Check it *after* taking the state machine's
    /// lock: the apply thread sets it before releasing the lock on a failed apply.
    pub fn failure(&self) -> Option<String> {
        self.stopped.lock().clone()
    }

    /// Whether the replica was removed from its group (stopped, data deleted).
    pub fn is_removed(&self) -> bool {
        self.progress.lock().state == ReplicaState::Removed
    }

    /// Reads an encoded proposal before it goes to the actor (on the caller's thread: the
    /// actor keeps stepping while a large one decodes). `Ok`: its header. `Err`: the
    /// whole answer for a proposal that never enters the log, a refusal (empty, over the
    /// size limit, deadline passed) or the state machine's outcome for bytes that do not
    /// decode.
    pub fn admit(&self, data: &[u8]) -> Result<ProposalHeader, InternalReply> {
        if data.len() > MAX_PROPOSAL_BYTES {
            return Err(Err(InternalError::TooLarge {
                size: data.len() as u64,
                limit: MAX_PROPOSAL_BYTES as u64,
            }));
        }
        if data.is_empty() {
            return Err(Err(InternalError::Invalid(
                "a command must not be empty".to_owned(),
            )));
        }
        let header = (self.proposal_reader)(data).map_err(Ok)?;
        if header.deadline_ms <= common::clock::unix_ms() {
            return Err(Err(InternalError::Timeout));
        }
        Ok(header)
    }
}

pub struct Replica {
    node_id: u64,
    group: u64,
    /// The group's directory (`wal/`, `snap/`).
    dir: PathBuf,
    /// The replica is in the group's configuration (or was, until `removed`): a new
    /// replica is not until the leader's log or snapshot makes it one, and a group's
    /// bootstrap entries name its voters one by one.
    was_member: bool,
    /// A committed conf change removed this replica from the group.
    removed: bool,
    /// See [`ReplicaParams::joined_at`].
    joined_at: u64,
    raw: RawNode<RaftLogStorage>,
    storage: RaftLogStorage,
    files: SnapshotFiles,
    sm: SharedStateMachine,
    transport: Arc<Transport>,
    progress: Arc<Mutex<ReplicaStatus>>,
    proposals: PendingProposals,
    reads: PendingReads,
    /// Reads without a heartbeat round while leading ([`crate::raft::lease`]).
    lease: LeaderLease,
    /// The votes this replica refuses after hearing from its leader.
    vote_guard: VoteGuard,
    /// (index, term) of the last entry the apply thread reported applied.
    applied: (u64, u64),
    /// Index of the snapshot file the state machine was opened from.
    opened_snapshot: u64,
    snapshot_policy: SnapshotPolicy,
    /// `[raft] max_index_lag`, for the apply thread.
    max_index_lag: u64,
    /// The apply thread's queue (set when the actor starts).
    apply: Option<ApplySender>,
    /// The background indexer beside the apply thread (set when the actor starts): told
    /// this replica's role, and proposes through [`ProposeBackground`].
    indexer: Option<Arc<IndexerLink>>,
    tick: Duration,
    election_timeout: Duration,
    preferred_leader: Option<u64>,
    transfer_every_ticks: u64,
    ticks: u64,
    /// `raft.hibernate_after_ticks` (0: never hibernate).
    hibernate_after_ticks: u64,
    /// Consecutive ticks a leader had nothing to do.
    idle_ticks: u64,
    /// Hibernating: not ticking ([`hibernation`]).
    quiet: bool,
    /// The timer that runs `on_tick` (slower while quiet).
    tick_timer: Option<actix::SpawnHandle>,
    role: StateRole,
    ready_scheduled: bool,
    failed: bool,
    stopped: StopFlag,
}

fn role(r: StateRole) -> RaftRole {
    match r {
        StateRole::Follower => RaftRole::Follower,
        StateRole::Candidate => RaftRole::Candidate,
        StateRole::PreCandidate => RaftRole::PreCandidate,
        StateRole::Leader => RaftRole::Leader,
    }
}

impl Replica {
    /// Whether the replica is stopped; stops it first if the apply thread has given up on
    /// the state machine (its report may still be queued), so it does not step or vote in
    /// between.
    fn stop_if_apply_failed(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.failed {
            return true;
        }
        let reason = self.stopped.lock().clone();
        match reason {
            Some(reason) => {
                self.fail(ctx, ReplicaError::Apply(reason));
                true
            }
            None => false,
        }
    }

    /// A storage failure, or a state machine that failed or panicked while applying: the
    /// replica can no longer promise durability or a known state, so it stops for good
    /// (its peers see it as down; the node and its other groups go on). Waiting callers,
    /// and every later request, get `ReplicaFailed` and go to another replica.
    fn fail(&mut self, ctx: &mut Context<Self>, e: ReplicaError) {
        // The apply thread may have recorded the precise cause (the entry that panicked).
        let reason = self
            .stopped
            .lock()
            .get_or_insert_with(|| e.to_string())
            .clone();
        tracing::error!(group = self.group, %reason, "replica stopped: not stepping, voting or serving any more");
        self.failed = true;
        {
            let mut p = self.progress.lock();
            p.state = ReplicaState::Failed;
            p.error = Some(reason.clone());
            p.role = RaftRole::Follower;
            p.leader = None;
        }
        let err = InternalError::ReplicaFailed(reason);
        self.proposals.fail_all(err.clone());
        self.reads.fail_all(err);
        // Dropping the queue ends the apply thread.
        self.apply = None;
        ctx.stop();
    }
}
