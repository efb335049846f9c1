//! Membership changes of the group, with TiKV's discipline:
//! - a change is proposed on the leader only, one at a time (none while another is in the
//!   log unapplied or the group is in a joint configuration); two or more changes at once
//!   go through a joint configuration (ConfChangeV2), which raft-rs leaves by itself
//!   (transition `Auto`) once it is applied;
//! - a new replica is added as a learner and promoted only once it has (nearly) every
//!   entry, so it never counts for a quorum it cannot serve;
//! - a leader asked to remove itself hands leadership to a caught-up voter first;
//! - changes take effect when their entry commits, in log order ([`Replica::hand_over`]),
//!   each recorded with its index, so snapshots carry the configuration at their index;
//! - a replica removed from its group stops, leaves a tombstone and deletes its data.

use std::path::Path;

use common::wire::MemberChange;
use raft::prelude::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};
use raft::ProgressState;

use super::*;
use crate::raft::apply::ApplyTask;
use crate::raft::inbound::is_member;

/// A learner is promoted only when its log is at most this many entries behind the
/// leader's last index (and it is in the replicate state: acknowledging appends).
pub const PROMOTE_MAX_LAG: u64 = 64;

/// Why a membership change was not proposed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("not the leader of the group (leader hint: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("a membership change is in progress; retry once it is applied")]
    Busy,
    #[error("node {node} has not caught up (it has entry {matched}, the leader {last})")]
    NotCaughtUp { node: u64, matched: u64, last: u64 },
    #[error("node {0} is not a learner of the group")]
    NotLearner(u64),
    #[error("the group would be left without a voter")]
    NoVoter,
    #[error("raft refused the change: {0}")]
    Raft(String),
    #[error("the replica does not run: {0}")]
    Stopped(String),
}

/// The file that marks group `group` as removed from the node with data dir `data_dir`:
/// its replica is not opened again at start, and messages for it create nothing.
pub fn tombstone_path(data_dir: &Path, group: u64) -> std::path::PathBuf {
    data_dir.join(format!("group-{group}.removed"))
}

impl Replica {
    /// Proposes `changes` as one conf change; `Ok(None)` when the configuration already
    /// is what they ask.
    pub(super) fn propose_membership(
        &mut self,
        changes: &[MemberChange],
    ) -> Result<Option<u64>, MembershipError> {
        if self.role != StateRole::Leader || self.raw.raft.state != StateRole::Leader {
            return Err(MembershipError::NotLeader {
                leader: self.leader_hint(),
            });
        }
        let conf = self.storage.conf_state();
        if self.raw.raft.has_pending_conf() || !conf.voters_outgoing.is_empty() {
            return Err(MembershipError::Busy);
        }
        if changes.contains(&MemberChange::Remove(self.node_id)) {
            return Err(self.hand_over_leadership(changes));
        }
        let mut singles = Vec::new();
        let mut voters = conf.voters.clone();
        for &change in changes {
            let (change_type, node) = match change {
                MemberChange::AddLearner(n) if !is_member(&conf, n) => {
                    (ConfChangeType::AddLearnerNode, n)
                }
                MemberChange::Promote(n) if !conf.voters.contains(&n) => {
                    if !conf.learners.contains(&n) {
                        return Err(MembershipError::NotLearner(n));
                    }
                    self.check_caught_up(n)?;
                    voters.push(n);
                    (ConfChangeType::AddNode, n)
                }
                MemberChange::Remove(n) if is_member(&conf, n) => {
                    voters.retain(|&v| v != n);
                    (ConfChangeType::RemoveNode, n)
                }
                _ => continue,
            };
            singles.push(ConfChangeSingle {
                change_type,
                node_id: node,
                ..Default::default()
            });
        }
        if voters.is_empty() {
            return Err(MembershipError::NoVoter);
        }
        if singles.is_empty() {
            return Ok(None);
        }
        let mut cc = ConfChangeV2::default();
        cc.set_transition(ConfChangeTransition::Auto);
        cc.set_changes(singles.into());
        tracing::info!(
            group = self.group,
            ?changes,
            "proposing a membership change"
        );
        self.raw
            .propose_conf_change(Vec::new(), cc)
            .map_err(|e| match e {
                // A leadership transfer under way drops proposals: transient.
                raft::Error::ProposalDropped => MembershipError::Busy,
                other => MembershipError::Raft(other.to_string()),
            })?;
        Ok(Some(self.raw.raft.raft_log.last_index()))
    }

    fn check_caught_up(&self, node: u64) -> Result<(), MembershipError> {
        let last = self.raw.raft.raft_log.last_index();
        let matched = self.raw.raft.prs().get(node).map_or(0, |pr| {
            if pr.state == ProgressState::Replicate {
                pr.matched
            } else {
                0
            }
        });
        if matched + PROMOTE_MAX_LAG < last {
            return Err(MembershipError::NotCaughtUp {
                node,
                matched,
                last,
            });
        }
        Ok(())
    }

    /// The leader is asked to remove itself: it starts a transfer to the most caught-up
    /// other voter that stays, and the caller retries there.
    fn hand_over_leadership(&mut self, changes: &[MemberChange]) -> MembershipError {
        let last = self.raw.raft.raft_log.last_index();
        let staying = |id: u64| !changes.contains(&MemberChange::Remove(id));
        let best = self
            .storage
            .conf_state()
            .voters
            .iter()
            .copied()
            .filter(|&id| id != self.node_id && staying(id))
            .filter_map(|id| {
                let pr = self.raw.raft.prs().get(id)?;
                (pr.state == ProgressState::Replicate).then_some((pr.matched, id))
            })
            .max();
        match best {
            Some((matched, to)) if matched + PROMOTE_MAX_LAG >= last => {
                tracing::info!(
                    group = self.group,
                    to,
                    "leader to be removed: transferring leadership first"
                );
                self.raw.transfer_leader(to);
                MembershipError::NotLeader { leader: Some(to) }
            }
            Some((matched, node)) => MembershipError::NotCaughtUp {
                node,
                matched,
                last,
            },
            None => MembershipError::NoVoter,
        }
    }

    /// Called with each configuration as it takes effect at `index` (a committed conf
    /// change, a snapshot from the leader): notes whether it removed this replica, which
    /// was a member before (acted on after the ready round, see [`Replica::destroy`]).
    /// Configurations before the replica joined are history, not news.
    pub(super) fn note_conf_state(&mut self, index: u64, cs: &ConfState) {
        self.tell_indexer_role();
        if index < self.joined_at {
            return;
        }
        if is_member(cs, self.node_id) {
            self.was_member = true;
        } else if self.was_member && !self.removed {
            tracing::info!(
                group = self.group,
                "this replica was removed from the group"
            );
            self.removed = true;
        }
    }

    /// Stops the replica for good and deletes its data, leaving a tombstone first (so a
    /// restart does not reopen it and a late message recreates nothing). The apply
    /// thread deletes the directory after whatever it was still doing.
    pub(super) fn destroy(&mut self, ctx: &mut Context<Self>) {
        let data_dir = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let tombstone = tombstone_path(&data_dir, self.group);
        if let Err(e) = common::fs::write_atomic(&tombstone, b"removed\n") {
            // Without the tombstone a restart would reopen the data: keep it.
            self.fail(
                ctx,
                ReplicaError::Apply(format!("cannot write {}: {e}", tombstone.display())),
            );
            return;
        }
        // In the node's shared log; a restart would do it too (the tombstone is written).
        if let Err(e) = self.storage.discard() {
            tracing::error!(group = self.group, error = %e, "cannot discard the removed replica's log");
        }
        let _ = self.send_to_apply(ApplyTask::Destroy {
            dir: self.dir.clone(),
        });
        self.apply = None;
        self.failed = true;
        let gone = InternalError::NotLeader { leader: None };
        self.proposals.fail_all(gone.clone());
        self.reads.fail_all(gone);
        {
            let mut p = self.progress.lock();
            p.state = ReplicaState::Removed;
            p.role = RaftRole::Follower;
            p.leader = None;
        }
        tracing::info!(
            group = self.group,
            "replica removed: stopped, data deleted, tombstone left"
        );
        ctx.stop();
    }
}
