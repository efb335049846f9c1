//! Opening a replica: its log and snapshot files, bootstrap of an empty log, the state
//! machine restored from the newest usable snapshot file, the `RawNode`; then the actor
//! and its apply thread.

use actix::{Actor, Addr, Arbiter, AsyncContext};
use parking_lot::RwLock;
use raft::prelude::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, EntryType, HardState, SnapshotMetadata,
};
use raft::{Config, Storage};

use super::*;
use crate::raft::apply::ApplyWorker;
use crate::raft::logger::raft_logger;
use crate::raft::messages::ProposeBackground;
use crate::raft::state_machine::EncodedStateMachine;

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
            joined_at,
            raft: rc,
            logs,
            transfer_check,
            kind,
        } = params;
        let storage = logs.open_group(group, &dir)?;
        storage.set_entry_cache_bytes(rc.entry_cache_bytes);
        let files = SnapshotFiles::open(&dir.join("snap"))
            .map_err(|e| ReplicaError::Snapshot(format!("{}: {e}", dir.display())))?;

        let snap = storage.latest_snapshot_metadata();
        let fresh =
            snap.index == 0 && storage.last_index()? == 0 && storage.conf_state().voters.is_empty();
        if fresh && !voters.is_empty() {
            bootstrap(&storage, &voters)?;
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
        // raft-rs starts from the configuration at the applied index and is handed the
        // committed entries after it again, conf changes among them.
        storage.rewind_conf_state(applied.0);

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
        let vote_guard = vote_guard_span(tick, rc.election_ticks);
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
            dir,
            was_member: storage.conf_index() >= joined_at
                && crate::raft::inbound::is_member(&storage.conf_state(), node_id),
            removed: false,
            joined_at,
            raw,
            storage,
            files,
            sm: Arc::new(RwLock::new(sm)),
            transport,
            progress: Arc::new(Mutex::new(progress)),
            proposals: PendingProposals::default(),
            reads: PendingReads::default(),
            lease: LeaderLease::new(rc.lease_reads.then_some(vote_guard)),
            vote_guard: VoteGuard::new(vote_guard),
            applied,
            opened_snapshot: chosen.unwrap_or(0),
            max_index_lag: rc.max_index_lag,
            snapshot_policy: SnapshotPolicy {
                every_entries: rc.snapshot_interval_entries,
                min_bytes: rc.snapshot_interval_bytes,
            },
            apply: None,
            indexer: None,
            tick,
            election_timeout: tick * rc.election_ticks as u32,
            preferred_leader,
            transfer_every_ticks: (transfer_check.as_millis() as u64 / rc.tick_ms.max(1)).max(1),
            ticks: 0,
            hibernate_after_ticks: rc.hibernate_after_ticks,
            idle_ticks: 0,
            quiet: false,
            tick_timer: None,
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
        let proposer = addr.clone();
        let indexer = IndexerLink::new(
            self.sm.clone(),
            self.max_index_lag,
            Box::new(move |data| proposer.do_send(ProposeBackground { data })),
        );
        self.indexer = Some(indexer.clone());
        self.tell_indexer_role();
        let worker = ApplyWorker::new(
            self.group,
            self.sm.clone(),
            self.files.clone(),
            self.snapshot_policy,
            self.opened_snapshot,
            move |report| addr.do_send(report),
        )
        .with_stop_flag(self.stopped.clone())
        .with_indexer(indexer);
        match worker.spawn(rx) {
            Ok(()) => self.apply = Some(tx),
            Err(e) => {
                tracing::error!(group = self.group, error = %e, "cannot start the apply thread")
            }
        }
    }
}

/// Writes the group's first entries, the same on every bootstrapping replica: one conf
/// change per voter (a configuration grows by one voter per simple change), committed at
/// term 1. The membership is then in the log like every later change, so a replica added
/// at run time that receives the log from index 1 (not a snapshot) builds the same
/// configuration, and a restart applies it from the log like any other entry.
fn bootstrap(storage: &RaftLogStorage, voters: &[u64]) -> Result<(), ReplicaError> {
    let mut entries = Vec::with_capacity(voters.len());
    for (i, &id) in voters.iter().enumerate() {
        let mut cc = ConfChangeV2::default();
        cc.set_changes(
            vec![ConfChangeSingle {
                change_type: ConfChangeType::AddNode,
                node_id: id,
                ..Default::default()
            }]
            .into(),
        );
        let data = protobuf::Message::write_to_bytes(&cc)
            .map_err(|e| ReplicaError::Corrupt(format!("bootstrap conf change: {e}")))?;
        let mut e = Entry {
            index: i as u64 + 1,
            term: 1,
            data: data.into(),
            ..Default::default()
        };
        e.set_entry_type(EntryType::EntryConfChangeV2);
        entries.push(e);
    }
    let hs = HardState {
        term: 1,
        commit: entries.len() as u64,
        ..Default::default()
    };
    storage.append(&entries, Some(&hs))?;
    Ok(())
}
