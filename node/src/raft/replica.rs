//! One replica of one Raft group: an actix actor, started on its own arbiter (thread), that
//! owns the group's `RawNode` over the WAL-backed [`RaftLogStorage`], its snapshot files
//! and (shared with readers) its state machine.
//!
//! Every handled message (peer messages, proposals, reads, ticks) only feeds the `RawNode`
//! and schedules one run of [`Replica::handle_ready`], so many messages handled together
//! make one `Ready`: one WAL append (one fsync) for all their entries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, Arbiter, ArbiterHandle, AsyncContext, Context, Handler};
use common::config::RaftSection;
use common::placement::GroupKind;
use common::wire::{InternalError, RaftRole};
use parking_lot::{Mutex, RwLock};
use raft::prelude::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use raft::{Config, ProgressState, RawNode, SnapshotStatus, StateRole, Storage};

use super::logger::raft_logger;
use super::messages::{Propose, ReadIndex, Report, RunReady, StepBatch, TransferLeader};
use super::pending::{PendingProposals, PendingReads};
use super::snapshot_files::SnapshotFiles;
use super::state_machine::{ReplicatedStateMachine, SharedStateMachine};
use crate::storage::{RaftLogStorage, StorageError, WalOptions};
use crate::transport::{SendReport, Transport};

/// Ready rounds run back to back before yielding to the mailbox.
const MAX_READY_ROUNDS: usize = 8;

/// Largest command a proposal may carry (the WAL takes records up to 256 MiB).
pub const MAX_PROPOSAL_BYTES: usize = 64 << 20;

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
    #[error("{0}")]
    Corrupt(String),
}

/// How to open a replica.
#[derive(Debug, Clone)]
pub struct ReplicaParams {
    pub node_id: u64,
    pub group: u64,
    pub kind: GroupKind,
    /// The group's directory: `{node data dir}/group-{group}` (holds `wal/` and `snap/`).
    pub dir: PathBuf,
    /// The group's voters from placement (used only to bootstrap an empty log).
    pub voters: Vec<u64>,
    /// The node that should lead the group when it is caught up.
    pub preferred_leader: Option<u64>,
    pub raft: RaftSection,
    pub wal: WalOptions,
    /// How often a leader that is not the preferred leader checks whether to hand over.
    pub transfer_check: Duration,
}

/// What a replica publishes after every ready round (read by the HTTP API without going
/// through the actor's mailbox).
#[derive(Debug, Clone)]
pub struct ReplicaProgress {
    pub role: RaftRole,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub applied_term: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub voters: Vec<u64>,
    /// Set when the replica stopped on a fatal (storage) error.
    pub failed: Option<String>,
}

/// A running replica, as the node's registry holds it.
pub struct ReplicaHandle {
    pub group: u64,
    pub kind: GroupKind,
    pub addr: Addr<Replica>,
    pub state_machine: SharedStateMachine,
    pub progress: Arc<Mutex<ReplicaProgress>>,
    pub arbiter: ArbiterHandle,
}

pub struct Replica {
    node_id: u64,
    group: u64,
    raw: RawNode<RaftLogStorage>,
    storage: RaftLogStorage,
    files: SnapshotFiles,
    sm: SharedStateMachine,
    transport: Arc<Transport>,
    progress: Arc<Mutex<ReplicaProgress>>,
    proposals: PendingProposals,
    reads: PendingReads,
    /// (index, term) of the last entry applied to the state machine.
    applied: (u64, u64),
    /// Index of the latest snapshot file.
    last_snapshot: u64,
    snapshot_interval: u64,
    tick: Duration,
    election_timeout: Duration,
    preferred_leader: Option<u64>,
    transfer_every_ticks: u64,
    ticks: u64,
    role: StateRole,
    ready_scheduled: bool,
    failed: bool,
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
    /// Opens the replica's log and snapshot files, bootstraps an empty log with the voters
    /// from placement, restores the state machine from the newest usable snapshot file and
    /// creates the `RawNode` (applied index = the state machine's).
    pub fn open(
        params: ReplicaParams,
        mut sm: Box<dyn ReplicatedStateMachine>,
        transport: Arc<Transport>,
    ) -> Result<Replica, ReplicaError> {
        let ReplicaParams {
            node_id,
            group,
            dir,
            voters,
            preferred_leader,
            raft: rc,
            wal,
            transfer_check,
            ..
        } = params;
        let storage = RaftLogStorage::open(&dir.join("wal"), wal)?;
        let files = SnapshotFiles::open(&dir.join("snap"))
            .map_err(|e| ReplicaError::Snapshot(format!("{}: {e}", dir.display())))?;

        let snap = storage.latest_snapshot_metadata();
        let fresh =
            snap.index == 0 && storage.last_index()? == 0 && storage.conf_state().voters.is_empty();
        if fresh {
            let cs = ConfState {
                voters: voters.clone(),
                ..Default::default()
            };
            storage.set_conf_state(&cs)?;
            tracing::info!(group, ?voters, "bootstrapped an empty replica");
        }

        // A snapshot file at or above the log's snapshot index (a crash may have left a
        // newer one whose compaction did not happen) and at or below the commit index.
        let commit = storage.hard_state().commit.max(snap.index);
        let chosen = files.newest_within(snap.index, commit);
        match chosen {
            Some(index) => {
                sm.restore_snapshot(&files.path(index))
                    .map_err(ReplicaError::Snapshot)?;
                if sm.applied().0 != index {
                    return Err(ReplicaError::Snapshot(format!(
                        "snapshot file {index} restored a state machine applied to {}",
                        sm.applied().0
                    )));
                }
            }
            None if snap.index > 0 => {
                return Err(ReplicaError::Snapshot(format!(
                    "the log starts after index {} but no snapshot file covers it in {}",
                    snap.index,
                    files.dir().display()
                )))
            }
            None => {}
        }
        files.retain_only(chosen.unwrap_or(0));
        let applied = sm.applied();

        let source_files = files.clone();
        storage.set_snapshot_source(Arc::new(move |meta: &SnapshotMetadata| {
            source_files.read(meta.index)
        }));

        let cfg = Config {
            id: node_id,
            election_tick: rc.election_ticks,
            heartbeat_tick: rc.heartbeat_ticks,
            applied: applied.0,
            max_size_per_msg: rc.max_size_per_msg,
            max_inflight_msgs: rc.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        cfg.validate()?;
        let raw = RawNode::new(&cfg, storage.clone(), &raft_logger(node_id, group))?;
        let tick = Duration::from_millis(rc.tick_ms);
        let progress = ReplicaProgress {
            role: RaftRole::Follower,
            term: raw.raft.term,
            leader: None,
            commit: raw.raft.raft_log.committed,
            applied: applied.0,
            applied_term: applied.1,
            last_index: raw.raft.raft_log.last_index(),
            snapshot_index: snap.index,
            voters: storage.conf_state().voters,
            failed: None,
        };
        tracing::info!(
            group,
            applied = applied.0,
            snapshot = chosen.unwrap_or(0),
            last_index = progress.last_index,
            "replica opened"
        );
        Ok(Replica {
            node_id,
            group,
            raw,
            storage,
            files,
            sm: Arc::new(RwLock::new(sm)),
            transport,
            progress: Arc::new(Mutex::new(progress)),
            proposals: PendingProposals::default(),
            reads: PendingReads::default(),
            applied,
            last_snapshot: chosen.unwrap_or(0),
            snapshot_interval: rc.snapshot_interval_entries,
            tick,
            election_timeout: tick * rc.election_ticks as u32,
            preferred_leader,
            transfer_every_ticks: (transfer_check.as_millis() as u64 / rc.tick_ms.max(1)).max(1),
            ticks: 0,
            role: StateRole::Follower,
            ready_scheduled: false,
            failed: false,
        })
    }

    /// Starts the actor on a new arbiter of its own.
    pub fn start(self, kind: GroupKind) -> ReplicaHandle {
        let group = self.group;
        let state_machine = self.sm.clone();
        let progress = self.progress.clone();
        let arbiter = Arbiter::new().handle();
        let addr = Replica::start_in_arbiter(&arbiter, move |_| self);
        ReplicaHandle {
            group,
            kind,
            addr,
            state_machine,
            progress,
            arbiter,
        }
    }

    fn schedule_ready(&mut self, ctx: &mut Context<Self>) {
        if !self.ready_scheduled && !self.failed {
            self.ready_scheduled = true;
            ctx.notify(RunReady);
        }
    }

    fn leader_hint(&self) -> Option<u64> {
        let l = self.raw.raft.leader_id;
        (l != raft::INVALID_ID).then_some(l)
    }

    /// What a caller whose deadline passed is told: `NoQuorum` when no leader is known.
    fn expiry_error(&self) -> InternalError {
        if self.leader_hint().is_none() {
            InternalError::NoQuorum
        } else {
            InternalError::Timeout
        }
    }

    /// Runs ready rounds until there is nothing to do (or yields after a few rounds).
    fn run_ready(&mut self, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        self.submit_reads();
        for _ in 0..MAX_READY_ROUNDS {
            if !self.raw.has_ready() {
                break;
            }
            if let Err(e) = self.handle_ready() {
                self.fail(ctx, e);
                return;
            }
        }
        self.publish_progress();
        if self.submit_reads() || self.raw.has_ready() {
            self.schedule_ready(ctx);
        }
    }

    /// Reads queued since the last round share one ReadIndex request. raft-rs ignores
    /// ReadIndex on a leader that has not committed an entry of its term yet, so they wait
    /// in the queue until it has. Returns whether a request was made.
    fn submit_reads(&mut self) -> bool {
        if self.raw.raft.state != StateRole::Leader || !self.raw.raft.commit_to_current_term() {
            return false;
        }
        match self.reads.submit_queued(Instant::now()) {
            Some(rctx) => {
                self.raw.read_index(rctx);
                true
            }
            None => false,
        }
    }

    /// One round of the ready loop, in raft-rs's canonical order (`five_mem_node`).
    fn handle_ready(&mut self) -> Result<(), ReplicaError> {
        let mut rd = self.raw.ready();

        if let Some(ss) = rd.ss() {
            self.on_role(ss.raft_state);
        }

        // 1. A snapshot from the leader: restore the state machine, install in the log.
        if !rd.snapshot().is_empty() {
            self.apply_snapshot(rd.snapshot())?;
        }

        // 2. Messages that may go before the entries are durable (a leader's appends).
        self.transport.send(self.group, rd.take_messages());

        // 3. Entries and hard state: one WAL append, one fsync (group commit).
        self.persist(rd.entries(), rd.hs())?;

        // 4. Messages that needed the entries durable (votes, append responses).
        self.transport
            .send(self.group, rd.take_persisted_messages());

        // 5. Confirmed read indexes.
        for rs in rd.take_read_states() {
            self.reads.on_read_state(&rs.request_ctx, rs.index);
        }

        // 6. Apply committed entries.
        self.apply_committed(rd.take_committed_entries())?;

        // 7. Advance.
        let mut light = self.raw.advance(rd);

        // 8. The light ready. Its commit index is not persisted on its own: Raft does not
        //    need a durable commit index, and a restart applies from a snapshot file chosen
        //    at or below the persisted one (which the next hard state carries).
        self.transport.send(self.group, light.take_messages());
        self.apply_committed(light.take_committed_entries())?;

        // 9. Tell raft what is applied.
        self.raw.advance_apply_to(self.applied.0);

        self.reads.resolve(self.applied.0);
        self.maybe_snapshot()?;
        Ok(())
    }

    /// Appends entries and hard state with one WAL append; only a ready whose entries
    /// exceed [`MAX_APPEND_BYTES`] is split (in order, hard state with the last part), so no
    /// WAL record outgrows the WAL's limit.
    fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), ReplicaError> {
        let mut start = 0;
        let mut size = 0;
        for (i, e) in entries.iter().enumerate() {
            let len = e.data.len() + e.context.len() + 32;
            if size > 0 && size + len > MAX_APPEND_BYTES {
                self.storage.append(&entries[start..i], None)?;
                start = i;
                size = 0;
            }
            size += len;
        }
        self.storage.append(&entries[start..], hs)?;
        Ok(())
    }

    fn on_role(&mut self, new: StateRole) {
        if new == self.role {
            return;
        }
        tracing::info!(group = self.group, from = ?self.role, to = ?new, term = self.raw.raft.term, "role change");
        if self.role == StateRole::Leader {
            self.reads.fail_all(InternalError::NotLeader {
                leader: self.leader_hint(),
            });
        }
        self.role = new;
    }

    fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), ReplicaError> {
        let meta = snap.get_metadata().clone();
        // File durable first, then the log, then the state machine: a crash in between
        // restarts from this file (or, before the log install, from the previous one).
        let path = self
            .files
            .write_bytes(meta.index, &snap.data)
            .map_err(ReplicaError::Snapshot)?;
        self.storage.install_snapshot(&meta)?;
        self.sm
            .write()
            .restore_snapshot(&path)
            .map_err(ReplicaError::Snapshot)?;
        self.files.retain_only(meta.index);
        self.applied = (meta.index, meta.term);
        self.last_snapshot = meta.index;
        // Whether proposals covered by the snapshot were applied is unknown here.
        self.proposals
            .fail_through(meta.index, InternalError::Timeout);
        tracing::info!(
            group = self.group,
            index = meta.index,
            term = meta.term,
            bytes = snap.data.len(),
            "snapshot installed"
        );
        Ok(())
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) -> Result<(), ReplicaError> {
        if entries.is_empty() {
            return Ok(());
        }
        let sm = self.sm.clone();
        let mut sm = sm.write();
        for e in entries {
            if e.index <= self.applied.0 {
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => {
                    sm.advance(e.index, e.term);
                    self.proposals.on_applied(e.index, e.term, None);
                }
                EntryType::EntryNormal => {
                    let outcome = sm.apply(e.index, e.term, &e.data);
                    self.proposals.on_applied(e.index, e.term, Some(outcome));
                }
                EntryType::EntryConfChange => {
                    let cc: ConfChange =
                        protobuf::Message::parse_from_bytes(&e.data).map_err(|err| {
                            ReplicaError::Corrupt(format!("conf change at {}: {err}", e.index))
                        })?;
                    let cs = self.raw.apply_conf_change(&cc)?;
                    self.storage.set_conf_state(&cs)?;
                    sm.advance(e.index, e.term);
                    self.proposals.on_applied(e.index, e.term, None);
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 =
                        protobuf::Message::parse_from_bytes(&e.data).map_err(|err| {
                            ReplicaError::Corrupt(format!("conf change at {}: {err}", e.index))
                        })?;
                    let cs = self.raw.apply_conf_change(&cc)?;
                    self.storage.set_conf_state(&cs)?;
                    sm.advance(e.index, e.term);
                    self.proposals.on_applied(e.index, e.term, None);
                }
            }
            self.applied = (e.index, e.term);
        }
        Ok(())
    }

    /// Every `snapshot_interval_entries` applied entries: write the state machine to a
    /// snapshot file, then compact the log up to it.
    fn maybe_snapshot(&mut self) -> Result<(), ReplicaError> {
        let (index, term) = self.applied;
        if self.snapshot_interval == 0 || index < self.last_snapshot + self.snapshot_interval {
            return Ok(());
        }
        let started = Instant::now();
        {
            let sm = self.sm.read();
            self.files
                .write_from(index, &**sm)
                .map_err(ReplicaError::Snapshot)?;
        }
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.storage.conf_state());
        self.storage.compact(&meta)?;
        self.files.retain_only(index);
        self.last_snapshot = index;
        tracing::info!(
            group = self.group,
            index,
            term,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written, log compacted"
        );
        Ok(())
    }

    /// A leader that is not the group's preferred leader hands leadership to it once the
    /// preferred replica is active and has every entry.
    fn maybe_transfer_to_preferred(&mut self) {
        let Some(preferred) = self.preferred_leader else {
            return;
        };
        if preferred == self.node_id
            || self.role != StateRole::Leader
            || self.raw.raft.lead_transferee.is_some()
            || !self.ticks.is_multiple_of(self.transfer_every_ticks)
        {
            return;
        }
        let last = self.raw.raft.raft_log.last_index();
        // Replicate state means the peer acknowledged recently: a failed send (peer down,
        // partitioned, paused past the request timeout) puts it back in Probe. (Not
        // `recent_active`: check_quorum clears it every election timeout.)
        let caught_up = self
            .raw
            .raft
            .prs()
            .get(preferred)
            .is_some_and(|pr| pr.matched == last && pr.state == ProgressState::Replicate);
        if caught_up {
            tracing::info!(
                group = self.group,
                to = preferred,
                "transferring leadership to the preferred leader"
            );
            self.raw.transfer_leader(preferred);
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        self.ticks += 1;
        self.raw.tick();
        let now = Instant::now();
        let err = self.expiry_error();
        self.proposals.expire(now, || err.clone());
        self.reads.expire(now, || err.clone());
        if self.role == StateRole::Leader {
            // A lost heartbeat round would leave its reads waiting: ask again.
            self.reads.requeue_stale(now, self.election_timeout);
        }
        self.maybe_transfer_to_preferred();
        self.schedule_ready(ctx);
    }

    fn publish_progress(&self) {
        let raft = &self.raw.raft;
        let mut p = self.progress.lock();
        p.role = role(raft.state);
        p.term = raft.term;
        p.leader = self.leader_hint();
        p.commit = raft.raft_log.committed;
        p.applied = self.applied.0;
        p.applied_term = self.applied.1;
        p.last_index = raft.raft_log.last_index();
        p.snapshot_index = self.storage.latest_snapshot_metadata().index;
        p.voters = self.storage.conf_state().voters;
    }

    /// A storage failure: the replica can no longer promise durability, so it stops (its
    /// peers see it as down). Waiting callers get an internal error.
    fn fail(&mut self, ctx: &mut Context<Self>, e: ReplicaError) {
        tracing::error!(group = self.group, error = %e, "replica stopped");
        self.failed = true;
        self.progress.lock().failed = Some(e.to_string());
        let err = InternalError::Internal(format!("replica failed: {e}"));
        self.proposals.fail_all(err.clone());
        self.reads.fail_all(err);
        ctx.stop();
    }
}

impl Actor for Replica {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.tick, |act, ctx| act.on_tick(ctx));
        self.schedule_ready(ctx);
    }
}

impl Handler<RunReady> for Replica {
    type Result = ();

    fn handle(&mut self, _: RunReady, ctx: &mut Context<Self>) {
        self.ready_scheduled = false;
        self.run_ready(ctx);
    }
}

impl Handler<StepBatch> for Replica {
    type Result = ();

    fn handle(&mut self, msg: StepBatch, ctx: &mut Context<Self>) {
        for m in msg.0 {
            if let Err(e) = self.raw.step(m) {
                tracing::debug!(group = self.group, error = %e, "raft message not stepped");
            }
        }
        self.schedule_ready(ctx);
    }
}

impl Handler<Propose> for Replica {
    type Result = ();

    fn handle(&mut self, msg: Propose, ctx: &mut Context<Self>) {
        let Propose { data, waiter } = msg;
        if data.is_empty() || data.len() > MAX_PROPOSAL_BYTES {
            let _ = waiter.reply.send(Err(InternalError::Invalid(format!(
                "a command must have 1 to {MAX_PROPOSAL_BYTES} bytes, not {}",
                data.len()
            ))));
            return;
        }
        if self.role != StateRole::Leader || self.raw.raft.state != StateRole::Leader {
            let _ = waiter.reply.send(Err(InternalError::NotLeader {
                leader: self.leader_hint(),
            }));
            return;
        }
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                let term = self.raw.raft.term;
                self.proposals.insert(index, term, waiter);
                self.schedule_ready(ctx);
            }
            Err(raft::Error::ProposalDropped) => {
                let err = match self.raw.raft.lead_transferee {
                    Some(to) => InternalError::NotLeader { leader: Some(to) },
                    None => InternalError::Dropped,
                };
                let _ = waiter.reply.send(Err(err));
            }
            Err(e) => {
                let _ = waiter
                    .reply
                    .send(Err(InternalError::Internal(e.to_string())));
            }
        }
    }
}

impl Handler<ReadIndex> for Replica {
    type Result = ();

    fn handle(&mut self, msg: ReadIndex, ctx: &mut Context<Self>) {
        if self.role != StateRole::Leader || self.raw.raft.state != StateRole::Leader {
            let _ = msg.waiter.reply.send(Err(InternalError::NotLeader {
                leader: self.leader_hint(),
            }));
            return;
        }
        self.reads.push(msg.waiter);
        self.schedule_ready(ctx);
    }
}

impl Handler<TransferLeader> for Replica {
    type Result = ();

    fn handle(&mut self, msg: TransferLeader, ctx: &mut Context<Self>) {
        if self.raw.raft.state == StateRole::Leader && msg.to != self.node_id {
            tracing::info!(
                group = self.group,
                to = msg.to,
                "leadership transfer requested"
            );
            self.raw.transfer_leader(msg.to);
            self.schedule_ready(ctx);
        }
    }
}

impl Handler<Report> for Replica {
    type Result = ();

    fn handle(&mut self, msg: Report, ctx: &mut Context<Self>) {
        match msg.report {
            SendReport::Unreachable => self.raw.report_unreachable(msg.to),
            SendReport::SnapshotFinished => {
                self.raw.report_snapshot(msg.to, SnapshotStatus::Finish)
            }
            SendReport::SnapshotFailed => self.raw.report_snapshot(msg.to, SnapshotStatus::Failure),
        }
        self.schedule_ready(ctx);
    }
}
