//! The ready loop, in raft-rs's canonical order (`five_mem_node`), and what follows it:
//! committed entries and conf changes handed over in log order, applied positions back
//! from the apply thread, log compaction after a snapshot file.

use std::time::Instant;

use actix::{AsyncContext, Context};
use raft::prelude::{ConfChange, ConfChangeV2, EntryType, HardState, Snapshot, SnapshotMetadata};

use super::*;
use crate::raft::apply::{AppliedEntry, ApplyTask};
use crate::raft::messages::RunReady;

impl Replica {
    pub(super) fn schedule_ready(&mut self, ctx: &mut Context<Self>) {
        if !self.ready_scheduled && !self.failed {
            self.ready_scheduled = true;
            ctx.notify(RunReady);
        }
    }

    pub(super) fn leader_hint(&self) -> Option<u64> {
        let l = self.raw.raft.leader_id;
        (l != raft::INVALID_ID).then_some(l)
    }

    /// What a caller whose deadline passed is told: `NoQuorum` when no leader is known.
    pub(super) fn expiry_error(&self) -> InternalError {
        if self.leader_hint().is_none() {
            InternalError::NoQuorum
        } else {
            InternalError::Timeout
        }
    }

    /// Runs ready rounds until there is nothing to do (or yields after a few rounds).
    pub(super) fn run_ready(&mut self, ctx: &mut Context<Self>) {
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
            if self.removed {
                self.destroy(ctx);
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
    pub(super) fn submit_reads(&mut self) -> bool {
        if self.raw.raft.state != StateRole::Leader || !self.raw.raft.commit_to_current_term() {
            return false;
        }
        // Once the leader applied an entry of its term, its applied index covers
        // every acknowledged write (see `PendingReads::submit_queued`).
        let term = self.raw.raft.term;
        let applied = (self.applied.1 == term).then_some(self.applied.0);
        match self.reads.submit_queued(Instant::now(), term, applied) {
            Some(rctx) => {
                self.raw.read_index(rctx);
                true
            }
            None => false,
        }
    }

    /// One round of the ready loop, in raft-rs's canonical order (`five_mem_node`).
    pub(super) fn handle_ready(&mut self) -> Result<(), ReplicaError> {
        let mut rd = self.raw.ready();

        if let Some(ss) = rd.ss() {
            crate::metrics::get().leader_seen(self.group, ss.leader_id);
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
        let messages = rd.take_messages();
        self.note_transfers(&messages);
        self.transport.send(self.group, messages);

        // 3. Entries and hard state: one WAL append, one fsync (group commit).
        self.persist(rd.entries(), rd.hs())?;

        // 4. Messages that needed the entries durable (votes, append responses).
        self.transport
            .send(self.group, rd.take_persisted_messages());

        // 5. Confirmed read indexes.
        for rs in rd.take_read_states() {
            if let Some((term, submitted)) = self.reads.on_read_state(&rs.request_ctx, rs.index) {
                self.lease.confirmed(term, submitted);
            }
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
        let messages = light.take_messages();
        self.note_transfers(&messages);
        self.transport.send(self.group, messages);
        self.hand_over(light.take_committed_entries())?;
        Ok(())
    }

    /// Appends entries and hard state with one WAL append; only a ready whose entries
    /// exceed [`MAX_APPEND_BYTES`] is split (in order, hard state with the last part), so no
    /// WAL record outgrows the WAL's limit.
    pub(super) fn persist(
        &self,
        entries: &[Entry],
        hs: Option<&HardState>,
    ) -> Result<(), ReplicaError> {
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

    pub(super) fn on_role(&mut self, new: StateRole) {
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
        self.tell_indexer_role();
    }

    /// Tells the background indexer whether this replica leads a group with other
    /// members (then its jobs' link hints are worth proposing) or follows (then it
    /// waits for them).
    pub(super) fn tell_indexer_role(&self) {
        if let Some(indexer) = &self.indexer {
            let cs = self.storage.conf_state();
            let members = cs.voters.len() + cs.learners.len();
            indexer.set_role(self.role == StateRole::Leader, members > 1);
        }
    }

    pub(super) fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), ReplicaError> {
        let meta = snap.get_metadata().clone();
        // File durable first, then the log, then the state machine: a crash in between
        // restarts from this file (or, before the log install, from the previous one).
        let path = self
            .files
            .write_bytes(meta.index, &snap.data)
            .map_err(ReplicaError::Snapshot)?;
        self.storage.install_snapshot(&meta)?;
        self.note_conf_state(meta.index, meta.get_conf_state());
        // Older files are deleted by the apply thread once this one is restored: a restore
        // of an older snapshot may still be queued, or under way (long-tier run s20, seed
        // 1027: a file deleted here while the apply thread was opening it failed the
        // replica).
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

    pub(super) fn send_to_apply(&self, task: ApplyTask) -> Result<(), ReplicaError> {
        let sent = self.apply.as_ref().map(|tx| tx.send(task).is_ok());
        match sent {
            Some(true) => Ok(()),
            _ => Err(ReplicaError::Apply("the apply thread is gone".into())),
        }
    }

    /// Hands committed entries to the apply thread. Conf changes take effect in Raft here,
    /// when they commit (the state machine does not hold membership); the apply thread
    /// only advances over them.
    pub(super) fn hand_over(&mut self, entries: Vec<Entry>) -> Result<(), ReplicaError> {
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
            self.storage.set_conf_state_at(e.index, &cs)?;
            self.note_conf_state(e.index, &cs);
            // A quorum of the old configuration vouched for the lease, not one of the new.
            self.lease.expire();
        }
        self.send_to_apply(ApplyTask::Entries(entries))
    }

    /// The apply thread applied through `applied`: answer the proposals of those entries,
    /// release reads, and let raft-rs know.
    pub(super) fn on_applied(
        &mut self,
        applied: (u64, u64),
        entries: Vec<AppliedEntry>,
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
        self.storage.evict_applied(self.raw.raft.raft_log.applied);
        self.reads.resolve(applied.0);
    }

    /// Tells raft-rs that entries through `index` are applied, if that moves it forward
    /// (a snapshot may have moved it past what the apply thread reports).
    pub(super) fn advance_raft_applied(&mut self, index: u64) {
        let log = &self.raw.raft.raft_log;
        if index > log.applied && index <= log.committed.min(log.persisted) {
            self.raw.advance_apply_to(index);
        }
    }

    /// The apply thread made a snapshot file at (index, term): compact the log up to it
    /// (unless a newer snapshot from the leader was installed meanwhile).
    pub(super) fn on_snapshot_written(
        &mut self,
        index: u64,
        term: u64,
    ) -> Result<(), ReplicaError> {
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
        // The configuration at the snapshot's index, not the newest: a conf change after
        // it is still in the log and is applied again by whoever starts from the snapshot.
        meta.set_conf_state(self.storage.conf_state_at(index));
        self.storage.compact(&meta)?;
        self.files.retain_from(index);
        tracing::info!(group = self.group, index, term, "log compacted");
        Ok(())
    }
}
