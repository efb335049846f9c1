//! Ticks, leadership spreading (the preferred leader) and the progress published for
//! `/admin/status`.

use std::time::Instant;

use actix::Context;
use raft::eraftpb::{Message, MessageType};
use raft::ProgressState;

use super::*;
use crate::raft::apply::ApplyTask;

impl Replica {
    /// Whether this leader may answer a read now without a heartbeat round: its lease
    /// holds, no transfer is under way, and it applied an entry of its term (so its
    /// applied index covers every acknowledged write; see `crate::raft::lease`).
    pub(super) fn lease_holds(&mut self, now: Instant) -> bool {
        let term = self.raw.raft.term;
        if self.raw.raft.lead_transferee.is_some() {
            self.lease.suspend(term);
            return false;
        }
        self.applied.1 == term && self.lease.valid(term, now)
    }

    /// A leadership transfer (or a `TimeoutNow` among `messages`, about to go out)
    /// ends this leader's lease for its term.
    pub(super) fn note_transfers(&mut self, messages: &[Message]) {
        let timeout_now = messages
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgTimeoutNow);
        if timeout_now || self.raw.raft.lead_transferee.is_some() {
            self.lease.suspend(self.raw.raft.term);
        }
    }

    /// After stepping a message: one from the current leader in its term starts the
    /// vote guard's span again.
    pub(super) fn note_leader_contact(
        &mut self,
        from: u64,
        kind: MessageType,
        term: u64,
        now: Instant,
    ) {
        let from_leader = matches!(
            kind,
            MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
        );
        if from_leader && term == self.raw.raft.term && from == self.raw.raft.leader_id {
            self.vote_guard.heard_from_leader(now);
        }
    }

    /// A leader that is not the group's preferred leader hands leadership to it once the
    /// preferred replica is active and has every entry.
    pub(super) fn maybe_transfer_to_preferred(&mut self) {
        if !self.ticks.is_multiple_of(self.transfer_every_ticks) || !self.transfer_due() {
            return;
        }
        if let Some(preferred) = self.preferred_leader {
            tracing::info!(
                group = self.group,
                to = preferred,
                "transferring leadership to the preferred leader"
            );
            self.raw.transfer_leader(preferred);
        }
    }

    /// Whether this leader should hand leadership to its preferred leader: another
    /// replica, active and holding every entry.
    pub(super) fn transfer_due(&self) -> bool {
        let Some(preferred) = self.preferred_leader else {
            return false;
        };
        if preferred == self.node_id
            || self.role != StateRole::Leader
            || self.raw.raft.lead_transferee.is_some()
        {
            return false;
        }
        let last = self.raw.raft.raft_log.last_index();
        // Replicate state means the peer acknowledged recently: a failed send (peer down,
        // partitioned, paused past the request timeout) puts it back in Probe. (Not
        // `recent_active`: check_quorum clears it every election timeout.)
        self.raw
            .raft
            .prs()
            .get(preferred)
            .is_some_and(|pr| pr.matched == last && pr.state == ProgressState::Replicate)
    }

    pub(super) fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.failed {
            return;
        }
        if self.quiet {
            match self.quiet_replica_wakes() {
                Some(why) => self.wake(ctx, why),
                None => return,
            }
        }
        self.ticks += 1;
        // A replica still replaying the group's history from before its addition may
        // hold a configuration in which it is a voter (an earlier membership): its
        // election timer must not run until it reaches the entry that added it.
        if self.storage.conf_index() >= self.joined_at {
            self.raw.tick();
        }
        let now = Instant::now();
        let err = self.expiry_error();
        self.proposals.expire(now, || err.clone());
        self.reads.expire(now, || err.clone());
        if self.role == StateRole::Leader {
            // A lost heartbeat round would leave its reads waiting: ask again.
            self.reads.requeue_stale(now, self.election_timeout);
        }
        self.maybe_transfer_to_preferred();
        self.maybe_hibernate(ctx);
        if self.storage.take_snapshot_wanted() {
            // A new replica needs a snapshot that holds it; the apply thread writes one
            // (the log is then compacted to it, `on_snapshot_written`).
            if let Err(e) = self.send_to_apply(ApplyTask::Snapshot) {
                self.fail(ctx, e);
                return;
            }
        }
        self.schedule_ready(ctx);
    }

    pub(super) fn publish_progress(&self) {
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
        let conf = self.storage.conf_state();
        p.voters = conf.voters;
        p.learners = conf.learners;
        p.voters_outgoing = conf.voters_outgoing;
        p.preferred_leader = self.preferred_leader;
    }
}
