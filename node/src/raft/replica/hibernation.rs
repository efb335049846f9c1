//! Hibernating groups (TiKV's hibernate regions, in a smaller form): a group with nothing
//! to do stops ticking, so it sends no heartbeats and costs next to nothing, however many
//! such groups a node hosts.
//!
//! - A leader goes quiet after `raft.hibernate_after_ticks` ticks in which it had nothing
//!   to do: every entry committed, applied and matched by every replica (each in
//!   Replicate state), no proposal, read, leadership transfer or conf change pending. It
//!   tells its followers with one last heartbeat carrying [`QUIET`] as its context. (A
//!   hand-over to the preferred leader waits until traffic wakes the group: leadership
//!   is spread for the load, and an idle group has none.)
//! - A follower goes quiet on that heartbeat, from the leader it follows, in its term.
//! - Any Raft message but a heartbeat or its answer, a proposal, read, conf change or
//!   transfer wakes a replica;
//!   a quiet follower also wakes when nothing came from its leader's node for an
//!   election timeout (the transport's node-level keepalives stop when that node dies
//!   or is cut off), and then campaigns like any follower that lost its leader.
//! - A quiet leader wakes when the nodes it heard from within an election timeout (its
//!   own included) no longer make a quorum of the group's voters: cut off in a
//!   minority, it must tick for check_quorum to step it down; asleep, it would go on
//!   calling itself the leader (to the router, to operators) until the partition heals,
//!   while the majority has long elected another. (One lost follower does not wake it:
//!   the group still has a quorum, and nothing is to be done until traffic comes.)
//!
//! Quiet only stops ticking, never stepping or persisting, so safety is raft-rs's; only
//! the time to notice a dead leader grows (by at most one election timeout).

use std::time::Duration;

use actix::{AsyncContext, Context};
use raft::eraftpb::MessageType;
use raft::prelude::Message;
use raft::ProgressState;

use super::*;

/// The context of the heartbeat that puts a group's followers to sleep (a heartbeat
/// context otherwise carries ReadIndex ids: 8 bytes, never this).
pub const QUIET: &[u8] = b"vdb-quiet";

/// Whether `m` is a heartbeat or its answer: the pulse of a group, not work. It wakes
/// nothing (a quiet follower needs no wake-up to answer it, and a leader's idle count
/// would otherwise never get past one heartbeat interval).
pub fn is_pulse(m: &Message) -> bool {
    matches!(
        m.get_msg_type(),
        MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse
    )
}

/// Whether `m` is the heartbeat that puts a follower to sleep.
pub fn is_quiet_heartbeat(m: &Message) -> bool {
    m.get_msg_type() == MessageType::MsgHeartbeat && m.context.as_ref() == QUIET
}

impl Replica {
    /// Runs [`Replica::on_tick`] every `every` (replacing the pace set before).
    pub(super) fn tick_every(&mut self, ctx: &mut Context<Self>, every: Duration) {
        if let Some(old) = self.tick_timer.take() {
            ctx.cancel_future(old);
        }
        self.tick_timer = Some(ctx.run_interval(every, |act, ctx| act.on_tick(ctx)));
    }

    /// Back to ticking.
    pub(super) fn wake(&mut self, ctx: &mut Context<Self>, why: &'static str) {
        self.idle_ticks = 0;
        if self.quiet {
            self.quiet = false;
            tracing::debug!(group = self.group, why, "group woke");
            self.progress.lock().hibernating = false;
            self.tick_every(ctx, self.tick);
        }
    }

    /// Stops ticking: the timer only looks, every half election timeout, whether a
    /// follower's leader went silent or a leader lost its quorum.
    fn sleep(&mut self, ctx: &mut Context<Self>) {
        self.quiet = true;
        self.progress.lock().hibernating = true;
        tracing::debug!(group = self.group, "group hibernates");
        let look = (self.election_timeout / 2).max(self.tick);
        self.tick_every(ctx, look);
    }

    /// Why a quiet replica should tick again, if it should: a follower whose leader's
    /// node has been silent for an election timeout, or a leader that no longer hears
    /// a quorum of its voters' nodes.
    pub(super) fn quiet_replica_wakes(&self) -> Option<&'static str> {
        let liveness = self.transport.liveness();
        let heard = |node: u64| liveness.silent_for(node) < self.election_timeout;
        if self.raw.raft.state == StateRole::Leader {
            let mut live = std::collections::HashSet::default();
            live.insert(self.node_id);
            live.extend(
                self.raw
                    .raft
                    .prs()
                    .iter()
                    .map(|(&id, _)| id)
                    .filter(|&id| heard(id)),
            );
            return (!self.raw.raft.prs().has_quorum(&live))
                .then_some("the leader lost its quorum");
        }
        match self.leader_hint() {
            Some(leader) if heard(leader) => None,
            _ => Some("the leader's node went silent"),
        }
    }

    /// Whether the leader has nothing to do (see the module docs).
    fn idle_leader(&self) -> bool {
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        raft.state == StateRole::Leader
            && raft.lead_transferee.is_none()
            && !raft.has_pending_conf()
            && raft.raft_log.committed == last
            && self.applied.0 == last
            && self.proposals.is_empty()
            && self.reads.is_empty()
            && self.storage.conf_state().voters_outgoing.is_empty()
            && raft
                .prs()
                .iter()
                .all(|(_, pr)| pr.matched == last && pr.state == ProgressState::Replicate)
    }

    /// Counts a leader's idle ticks; after `hibernate_after_ticks` of them, tells every
    /// follower and learner to sleep and sleeps.
    pub(super) fn maybe_hibernate(&mut self, ctx: &mut Context<Self>) {
        if self.hibernate_after_ticks == 0 || self.quiet {
            return;
        }
        if !self.idle_leader() {
            self.idle_ticks = 0;
            return;
        }
        self.idle_ticks += 1;
        if self.idle_ticks < self.hibernate_after_ticks {
            return;
        }
        let raft = &self.raw.raft;
        let committed = raft.raft_log.committed;
        let messages: Vec<Message> = raft
            .prs()
            .iter()
            .filter(|(&id, _)| id != self.node_id)
            .map(|(&id, pr)| {
                let mut m = Message::default();
                m.set_msg_type(MessageType::MsgHeartbeat);
                m.from = self.node_id;
                m.to = id;
                m.term = raft.term;
                m.commit = pr.matched.min(committed);
                m.context = QUIET.to_vec().into();
                m
            })
            .collect();
        self.transport.send(self.group, messages);
        self.sleep(ctx);
    }

    /// A follower sleeps on its leader's quiet heartbeat (`from`, `term`), once stepped.
    pub(super) fn on_quiet_heartbeat(&mut self, ctx: &mut Context<Self>, from: u64, term: u64) {
        let raft = &self.raw.raft;
        if self.hibernate_after_ticks > 0
            && raft.state == StateRole::Follower
            && term == raft.term
            && self.leader_hint() == Some(from)
        {
            self.sleep(ctx);
        }
    }
}
