//! The actor's mailbox: peer messages, proposals, reads, transfers, transport reports,
//! apply reports.

use std::time::Instant;

use actix::{Actor, Context, Handler};
use raft::SnapshotStatus;

use super::*;
use crate::metrics::ReadPath;
use crate::panic_guard;
use crate::raft::apply::{background_context, stamp_context, ApplyReport};
use crate::raft::inbound;
use crate::raft::messages::{
    ChangeMembership, Destroy, Propose, ProposeBackground, ReadIndex, Report, RunReady,
    SetPreferredLeader, StepBatch, TransferLeader,
};
use crate::transport::SendReport;

impl Actor for Replica {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick_every(ctx, self.tick);
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
        let standing = inbound::Standing::new(&conf, self.storage.conf_index(), self.joined_at);
        for m in msg.0 {
            if let Err(why) = inbound::check(&self.raw.raft, standing, &m) {
                tracing::warn!(
                    group = self.group,
                    from = m.from,
                    kind = ?m.get_msg_type(),
                    term = m.term,
                    "raft message refused: {why}"
                );
                continue;
            }
            let now = Instant::now();
            if self.vote_guard.refuses(&m, self.raw.raft.term, now) {
                // Silently, as raft-rs ignores a vote within its lease: the candidate
                // asks again after its election timeout.
                tracing::debug!(
                    group = self.group,
                    from = m.from,
                    term = m.term,
                    "vote refused: heard from the leader (or opened) within the vote guard"
                );
                continue;
            }
            let (from, kind, term) = (m.from, m.get_msg_type(), m.term);
            let quiet = hibernation::is_quiet_heartbeat(&m);
            if !hibernation::is_pulse(&m) {
                self.wake(ctx, "a raft message");
            }
            match panic_guard::catch(|| self.raw.step(m)) {
                Ok(Ok(())) => self.note_leader_contact(from, kind, term, now),
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
            if quiet {
                self.on_quiet_heartbeat(ctx, from, term);
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
            // A follower's election timer is not the caller's business: a quiet one
            // wakes when its leader's node goes silent, not on a misrouted request.
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
        self.wake(ctx, "a proposal");
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

impl Handler<ProposeBackground> for Replica {
    type Result = ();

    /// Best effort: a replica that does not lead (any more), or whose proposal Raft
    /// drops, forgets it (see [`ProposeBackground`]).
    fn handle(&mut self, msg: ProposeBackground, ctx: &mut Context<Self>) {
        if self.failed || self.role != StateRole::Leader {
            return;
        }
        self.wake(ctx, "a background proposal");
        let now_ms = common::clock::unix_ms();
        if self
            .raw
            .propose(background_context(now_ms), msg.data)
            .is_ok()
        {
            self.schedule_ready(ctx);
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
        self.wake(ctx, "a read");
        let now = Instant::now();
        if self.lease_holds(now) {
            crate::metrics::get().read_path(ReadPath::Lease);
            let _ = msg.waiter.reply.send(Ok(()));
            if self.lease.wants_renewal(self.raw.raft.term, now) {
                self.reads.ask_renewal();
                self.schedule_ready(ctx);
            }
            return;
        }
        crate::metrics::get().read_path(ReadPath::ReadIndex);
        self.reads.push(msg.waiter);
        self.schedule_ready(ctx);
    }
}

impl Handler<SetPreferredLeader> for Replica {
    type Result = ();

    fn handle(&mut self, msg: SetPreferredLeader, ctx: &mut Context<Self>) {
        if self.preferred_leader != msg.to {
            self.wake(ctx, "a new preferred leader");
            tracing::info!(group = self.group, to = ?msg.to, "preferred leader set");
            self.preferred_leader = msg.to;
            self.publish_progress();
        }
    }
}

impl Handler<TransferLeader> for Replica {
    type Result = ();

    fn handle(&mut self, msg: TransferLeader, ctx: &mut Context<Self>) {
        if self.raw.raft.state == StateRole::Leader && msg.to != self.node_id {
            self.wake(ctx, "a leadership transfer");
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

impl Handler<ChangeMembership> for Replica {
    type Result = ();

    fn handle(&mut self, msg: ChangeMembership, ctx: &mut Context<Self>) {
        let result = if self.failed {
            Err(MembershipError::Stopped("the replica stopped".into()))
        } else {
            self.wake(ctx, "a membership change");
            self.propose_membership(&msg.changes)
        };
        let _ = msg.reply.send(result);
        self.schedule_ready(ctx);
    }
}

impl Handler<Destroy> for Replica {
    type Result = ();

    fn handle(&mut self, msg: Destroy, ctx: &mut Context<Self>) {
        if self.raw.raft.state == StateRole::Leader && !msg.retired {
            let _ = msg.reply.send(Err(MembershipError::NotLeader {
                leader: Some(self.node_id),
            }));
            return;
        }
        self.destroy(ctx);
        let _ = msg.reply.send(Ok(()));
    }
}
