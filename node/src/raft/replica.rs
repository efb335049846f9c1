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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, Arbiter, ArbiterHandle, AsyncContext, Context, Handler};
use common::config::RaftSection;
use common::placement::GroupKind;
use common::wire::{
    InternalError, InternalReply, ProposalHeader, RaftRole, ReplicaState, ReplicaStatus,
};
use parking_lot::{Mutex, RwLock};
use raft::prelude::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use raft::{Config, ProgressState, RawNode, SnapshotStatus, StateRole, Storage};

use super::apply::{
    stamp_context, ApplyReport, ApplySender, ApplyTask, ApplyWorker, SnapshotPolicy, StopFlag,
};
use super::inbound;
use super::logger::raft_logger;
use super::messages::{Propose, ReadIndex, Report, RunReady, StepBatch, TransferLeader};
use super::pending::{PendingProposals, PendingReads};
use super::snapshot_files::SnapshotFiles;
use super::state_machine::{
    EncodedStateMachine, ProposalReader, SharedStateMachine, SnapshotError,
};
use crate::panic_guard;
use crate::storage::{RaftLogStorage, StorageError, WalOptions};
use crate::transport::{SendReport, Transport};

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
    /// The group's voters from placement (used only to bootstrap an empty log).
    pub voters: Vec<u64>,
    /// The node that should lead the group when it is caught up.
    pub preferred_leader: Option<u64>,
    pub raft: RaftSection,
    pub wal: WalOptions,
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
    raw: RawNode<RaftLogStorage>,
    storage: RaftLogStorage,
    files: SnapshotFiles,
    sm: SharedStateMachine,
    transport: Arc<Transport>,
    progress: Arc<Mutex<ReplicaStatus>>,
    proposals: PendingProposals,
    reads: PendingReads,
    /// (index, term) of the last entry the apply thread reported applied.
    applied: (u64, u64),
    /// Index of the snapshot file the state machine was opened from.
    opened_snapshot: u64,
    snapshot_policy: SnapshotPolicy,
    /// The apply thread's queue (set when the actor starts).
    apply: Option<ApplySender>,
    tick: Duration,
    election_timeout: Duration,
    preferred_leader: Option<u64>,
    transfer_every_ticks: u64,
    ticks: u64,
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
    /// Opens the replica's log and snapshot files, bootstraps an empty log with the voters
    /// from placement, restores the state machine from the newest usable snapshot file and
    /// creates the `RawNode` (applied index = the state machine's).
    pub fn open(
        params: ReplicaParams,
        mut sm: Box<dyn EncodedStateMachine>,
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
            kind,
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
                sm.restore_snapshot(&files.path(index))?;
                if sm.applied().index != index {
                    return Err(ReplicaError::Snapshot(format!(
                        "snapshot file {index} restored a state machine applied to {}",
                        sm.applied().index
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
        let applied = (applied.index, applied.term);

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
        let progress = ReplicaStatus {
            term: raw.raft.term,
            commit: raw.raft.raft_log.committed,
            applied: applied.0,
            applied_term: applied.1,
            last_index: raw.raft.raft_log.last_index(),
            snapshot_index: snap.index,
            voters: storage.conf_state().voters,
            ..ReplicaStatus::idle(group, kind, ReplicaState::Running, None)
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
            opened_snapshot: chosen.unwrap_or(0),
            snapshot_policy: SnapshotPolicy {
                every_entries: rc.snapshot_interval_entries,
                min_bytes: rc.snapshot_interval_bytes,
            },
            apply: None,
            tick,
            election_timeout: tick * rc.election_ticks as u32,
            preferred_leader,
            transfer_every_ticks: (transfer_check.as_millis() as u64 / rc.tick_ms.max(1)).max(1),
            ticks: 0,
            role: StateRole::Follower,
            ready_scheduled: false,
            failed: false,
            stopped: StopFlag::default(),
        })
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    /// Starts the actor on a new arbiter of its own.
    pub fn start(self, kind: GroupKind) -> ReplicaHandle {
        let group = self.group;
        let state_machine = self.sm.clone();
        let progress = self.progress.clone();
        let stopped = self.stopped.clone();
        let proposal_reader = self.sm.read().proposal_reader();
        let arbiter = Arbiter::new().handle();
        let addr = Replica::start_in_arbiter(&arbiter, move |ctx| {
            let mut replica = self;
            replica.start_apply_thread(ctx.address());
            replica
        });
        ReplicaHandle {
            group,
            kind,
            addr,
            state_machine,
            progress,
            arbiter,
            stopped,
            proposal_reader,
        }
    }

    /// Starts the apply thread, which reports to the actor at `addr`. Without it the
    /// replica cannot apply; it then fails on its first committed entry.
    fn start_apply_thread(&mut self, addr: Addr<Replica>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = ApplyWorker::new(
            self.group,
            self.sm.clone(),
            self.files.clone(),
            self.snapshot_policy,
            self.opened_snapshot,
            Box::new(move |report| addr.do_send(report)),
        )
        .with_stop_flag(self.stopped.clone());
        match worker.spawn(rx) {
            Ok(()) => self.apply = Some(tx),
            Err(e) => {
                tracing::error!(group = self.group, error = %e, "cannot start the apply thread")
            }
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
        if self.stop_if_apply_failed(ctx) {
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

        // 1. A snapshot from the leader: file durable, installed in the log, restore queued
        //    for the apply thread.
        let snapshot_index = if rd.snapshot().is_empty() {
            None
        } else {
            self.apply_snapshot(rd.snapshot())?;
            Some(rd.snapshot().get_metadata().index)
        };

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
        self.reads.resolve(self.applied.0);

        // 6. Hand committed entries to the apply thread.
        self.hand_over(rd.take_committed_entries())?;

        // 7. Advance (entries persisted; applying is reported later, see `on_applied`).
        let mut light = self.raw.advance_append(rd);
        if let Some(index) = snapshot_index {
            // The log now starts after the snapshot, so raft-rs must count it applied at
            // once: with its applied index behind the log's first index, an election
            // (which scans unapplied entries for conf changes) would ask the storage for
            // compacted entries. The restore itself is queued in order on the apply thread,
            // and `self.applied` (what reads and proposals wait on) moves only when it is
            // done.
            self.advance_raft_applied(index);
        }

        // 8. The light ready. Its commit index is not persisted on its own: Raft does not
        //    need a durable commit index, and a restart applies from a snapshot file chosen
        //    at or below the persisted one (which the next hard state carries).
        self.transport.send(self.group, light.take_messages());
        self.hand_over(light.take_committed_entries())?;
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
            // A deposed leader can no longer tell when (or whether) its proposals commit:
            // answer them now so the router retries on the new leader with the same request
            // id (the state machine's dedup applies it once) instead of waiting out its
            // budget; a retry attaching here later would otherwise wait on an entry a new
            // leader may have overwritten, which an idle group never resolves.
            let not_leader = InternalError::NotLeader {
                leader: self.leader_hint(),
            };
            self.proposals.fail_all(not_leader.clone());
            self.reads.fail_all(not_leader);
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
        self.files.retain_from(meta.index);
        self.send_to_apply(ApplyTask::Restore {
            index: meta.index,
            term: meta.term,
            path,
        })?;
        tracing::info!(
            group = self.group,
            index = meta.index,
            term = meta.term,
            bytes = snap.data.len(),
            "snapshot installed in the log"
        );
        Ok(())
    }

    fn send_to_apply(&self, task: ApplyTask) -> Result<(), ReplicaError> {
        let sent = self.apply.as_ref().map(|tx| tx.send(task).is_ok());
        match sent {
            Some(true) => Ok(()),
            _ => Err(ReplicaError::Apply("the apply thread is gone".into())),
        }
    }

    /// Hands committed entries to the apply thread. Conf changes take effect in Raft here,
    /// when they commit (the state machine does not hold membership); the apply thread
    /// only advances over them.
    fn hand_over(&mut self, entries: Vec<Entry>) -> Result<(), ReplicaError> {
        if entries.is_empty() {
            return Ok(());
        }
        for e in &entries {
            let cs = match e.get_entry_type() {
                EntryType::EntryNormal => continue,
                EntryType::EntryConfChange => {
                    let cc: ConfChange = parse_conf_change(e)?;
                    self.raw.apply_conf_change(&cc)?
                }
                EntryType::EntryConfChangeV2 => {
                    let cc: ConfChangeV2 = parse_conf_change(e)?;
                    self.raw.apply_conf_change(&cc)?
                }
            };
            self.storage.set_conf_state(&cs)?;
        }
        self.send_to_apply(ApplyTask::Entries(entries))
    }

    /// The apply thread applied through `applied`: answer the proposals of those entries,
    /// release reads, and let raft-rs know.
    fn on_applied(
        &mut self,
        applied: (u64, u64),
        entries: Vec<super::apply::AppliedEntry>,
        restored: Option<u64>,
    ) {
        if let Some(index) = restored {
            // Whether proposals covered by the snapshot were applied is unknown here.
            self.proposals.fail_through(index, InternalError::Timeout);
        }
        for e in entries {
            self.proposals.on_applied(e.index, e.term, e.outcome);
        }
        if applied.0 <= self.applied.0 {
            return;
        }
        self.applied = applied;
        self.advance_raft_applied(applied.0);
        self.reads.resolve(applied.0);
    }

    /// Tells raft-rs that entries through `index` are applied, if that moves it forward
    /// (a snapshot may have moved it past what the apply thread reports).
    fn advance_raft_applied(&mut self, index: u64) {
        let log = &self.raw.raft.raft_log;
        if index > log.applied && index <= log.committed.min(log.persisted) {
            self.raw.advance_apply_to(index);
        }
    }

    /// The apply thread made a snapshot file at (index, term): compact the log up to it
    /// (unless a newer snapshot from the leader was installed meanwhile).
    fn on_snapshot_written(&mut self, index: u64, term: u64) -> Result<(), ReplicaError> {
        // Never compact past what raft-rs counts applied (it reads unapplied entries).
        if index <= self.storage.latest_snapshot_metadata().index
            || index > self.raw.raft.raft_log.applied
        {
            return Ok(());
        }
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.storage.conf_state());
        self.storage.compact(&meta)?;
        self.files.retain_from(index);
        tracing::info!(group = self.group, index, term, "log compacted");
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

    /// Each message is checked against the Raft state first ([`inbound::check`]); one
    /// that still panics raft-rs stops this replica (its state is no longer trusted), not
    /// the node.
    fn handle(&mut self, msg: StepBatch, ctx: &mut Context<Self>) {
        if self.stop_if_apply_failed(ctx) {
            return;
        }
        let conf = self.storage.conf_state();
        for m in msg.0 {
            if let Err(why) = inbound::check(&self.raw.raft, &conf, &m) {
                tracing::warn!(
                    group = self.group,
                    from = m.from,
                    kind = ?m.get_msg_type(),
                    term = m.term,
                    "raft message refused: {why}"
                );
                continue;
            }
            let (from, kind) = (m.from, m.get_msg_type());
            match panic_guard::catch(|| self.raw.step(m)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(group = self.group, error = %e, "raft message not stepped")
                }
                Err(panic) => {
                    let e = ReplicaError::Corrupt(format!(
                        "raft-rs panicked stepping {kind:?} from node {from}: {panic}"
                    ));
                    self.fail(ctx, e);
                    return;
                }
            }
        }
        self.schedule_ready(ctx);
    }
}

impl Handler<Propose> for Replica {
    type Result = ();

    fn handle(&mut self, msg: Propose, ctx: &mut Context<Self>) {
        let Propose {
            header,
            data,
            waiter,
        } = msg;
        let request_id = header.request_id;
        if self.role != StateRole::Leader || self.raw.raft.state != StateRole::Leader {
            let _ = waiter.reply.send(Err(InternalError::NotLeader {
                leader: self.leader_hint(),
            }));
            return;
        }
        let waiter = match self
            .proposals
            .attach(request_id, self.raw.raft.term, waiter)
        {
            Ok(()) => return,
            Err(waiter) => waiter,
        };
        // The deadline is checked again here, after the actor's queue: a request that waited
        // past it is never proposed (the dedup window relies on that, see raft/dedup.rs).
        let now_ms = common::clock::unix_ms();
        if now_ms >= header.deadline_ms {
            let _ = waiter.reply.send(Err(InternalError::Timeout));
            return;
        }
        match self.raw.propose(stamp_context(now_ms), data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                let term = self.raw.raft.term;
                self.proposals.insert(index, term, request_id, waiter);
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

impl Handler<ApplyReport> for Replica {
    type Result = ();

    fn handle(&mut self, msg: ApplyReport, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        match msg {
            ApplyReport::Applied {
                applied,
                entries,
                restored,
            } => self.on_applied(applied, entries, restored),
            ApplyReport::SnapshotWritten { index, term } => {
                if let Err(e) = self.on_snapshot_written(index, term) {
                    self.fail(ctx, e);
                    return;
                }
            }
            ApplyReport::Failed(e) => {
                self.fail(ctx, ReplicaError::Apply(e));
                return;
            }
        }
        self.publish_progress();
        self.schedule_ready(ctx);
    }
}
