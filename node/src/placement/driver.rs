//! The placement driver's loop: on the node whose replica leads the metadata group, every
//! `placement.tick_ms` it observes the cluster, plans ([`super::plan`]) and makes the most
//! urgent step (all map records, then one change), through the same admin API an
//! operator uses. A driver that loses the metadata leadership stops acting; the next
//! leader's driver starts from a fresh observation, so nothing is carried over but the
//! cluster map. New replicas are started at most once per `placement.move_interval_ms`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::catalog::{CatalogCommand, CatalogOutcome, CatalogSuccess};
use common::config::PlacementSection;
use common::group_client::{ClusterClient, ClusterError};
use common::placement::METADATA_GROUP;
use common::registry::NodeState;
use common::wire::{
    BootstrapReplica, CreateReplicaRequest, DestroyReplicaRequest, MemberChange, MembersReply,
    MembersRequest, PeerRequest, PreferredLeaderRequest, RaftRole,
};
use reqwest::Method;

use super::calls::{is_transient, CallError, NodeCalls};
use super::plan::{plan, Rules, Step, REMOVED_COOLDOWN};
use super::view::{observe, ClusterView, NodeView, Silence};
use crate::raft::Replicas;

/// Everything the driver needs.
pub struct Driver {
    pub node_id: u64,
    pub settings: PlacementSection,
    pub rules: Rules,
    pub metadata: Arc<ClusterClient>,
    pub calls: NodeCalls,
    pub replicas: Arc<Replicas>,
    /// Nodes of the config, asked even before they registered.
    pub seeds: Vec<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Metadata(#[from] ClusterError),
    #[error("the metadata group refused: {0}")]
    Refused(String),
    #[error("node {0} is not in sight")]
    Unknown(u64),
}

/// The members of `group` on nodes that answered this round.
fn live_members(view: &ClusterView, group: u64) -> Vec<(u64, &NodeView)> {
    let members = view
        .groups
        .get(&group)
        .map(|g| g.members())
        .unwrap_or_default();
    members
        .into_iter()
        .filter_map(|m| Some((m, view.nodes.get(&m).filter(|v| v.up())?)))
        .collect()
}

impl Driver {
    fn leads_metadata(&self) -> bool {
        self.replicas
            .get(METADATA_GROUP)
            .is_some_and(|h| h.failure().is_none() && h.progress.lock().role == RaftRole::Leader)
    }

    /// Runs for as long as the node does.
    pub async fn run(self) {
        let tick = Duration::from_millis(self.settings.tick_ms);
        let mut silence = Silence::default();
        let mut last_move: Option<Instant> = None;
        // (group, node) → when a running replica there was removed.
        let mut removed: HashMap<(u64, u64), Instant> = HashMap::new();
        loop {
            tokio::time::sleep(tick).await;
            if !self.settings.enabled || !self.leads_metadata() {
                silence = Silence::default();
                continue;
            }
            let Ok(map) = self.metadata.cluster_map(Instant::now() + tick * 5).await else {
                continue;
            };
            if map.placement_paused {
                continue;
            }
            let mut view = observe(&self.calls, map, &self.seeds, &mut silence).await;
            if !view.map.born.is_empty() {
                let deadline = Instant::now() + tick * 5;
                view.in_use = self
                    .metadata
                    .shard_groups_in_use(deadline)
                    .await
                    .ok()
                    .map(BTreeSet::from_iter);
            }
            removed.retain(|_, at| at.elapsed() < REMOVED_COOLDOWN);
            let cooling: HashSet<(u64, u64)> = removed.keys().copied().collect();
            let steps = plan(&view, &self.rules, &cooling);
            let move_due = last_move.is_none_or(|t| {
                t.elapsed() >= Duration::from_millis(self.settings.move_interval_ms)
            });
            let (records, changes): (Vec<Step>, Vec<Step>) =
                steps.into_iter().partition(Step::is_bookkeeping);
            for step in records
                .iter()
                .chain(changes.iter().filter(|s| move_due || !s.is_move()).take(1))
            {
                match self.make(&view, step).await {
                    Ok(()) => {
                        if step.is_move() {
                            last_move = Some(Instant::now());
                        }
                        if let Step::Remove { group, node, .. } = step {
                            // A failed replica has no apply thread and sends nothing.
                            if view.nodes.get(node).is_some_and(|n| n.runs(*group)) {
                                removed.insert((*group, *node), Instant::now());
                            }
                        }
                    }
                    Err(e) if matches!(&e, StepError::Call(c) if is_transient(c)) => {
                        tracing::debug!(?step, error = %e, "placement step not done yet");
                    }
                    Err(e) => tracing::warn!(?step, error = %e, "placement step failed"),
                }
            }
        }
    }

    fn addr(&self, view: &ClusterView, node: u64) -> Result<String, StepError> {
        view.nodes
            .get(&node)
            .map(|n| n.addr.clone())
            .ok_or(StepError::Unknown(node))
    }

    async fn propose(&self, command: CatalogCommand) -> Result<CatalogSuccess, StepError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome: CatalogOutcome = self.metadata.propose_catalog(command, deadline).await?;
        outcome.map_err(|e| StepError::Refused(e.to_string()))
    }

    /// One membership change on the group's leader (following a hint once); the log
    /// index of the change, if one was made.
    async fn change(
        &self,
        view: &ClusterView,
        group: u64,
        change: MemberChange,
    ) -> Result<Option<u64>, StepError> {
        let leader = view
            .groups
            .get(&group)
            .and_then(|g| g.leader)
            .ok_or(StepError::Unknown(group))?;
        let body = MembersRequest {
            group,
            changes: vec![change],
        };
        let first = self
            .calls
            .send(
                Method::POST,
                &self.addr(view, leader)?,
                "/admin/members",
                &body,
            )
            .await;
        let reply = match first {
            Err(e) => match e.leader_hint().filter(|&l| l != leader) {
                Some(hint) => {
                    self.calls
                        .send(
                            Method::POST,
                            &self.addr(view, hint)?,
                            "/admin/members",
                            &body,
                        )
                        .await?
                }
                None => return Err(e.into()),
            },
            Ok(reply) => reply,
        };
        Ok(serde_json::from_value::<MembersReply>(reply)
            .ok()
            .and_then(|r| r.index))
    }

    async fn make(&self, view: &ClusterView, step: &Step) -> Result<(), StepError> {
        tracing::info!(?step, "placement step");
        match step {
            Step::Record { group, replicas } => self
                .propose(CatalogCommand::SetGroupReplicas {
                    group: *group,
                    replicas: replicas.clone(),
                })
                .await
                .map(drop),
            Step::Remove { group, node, .. } => {
                self.change(view, *group, MemberChange::Remove(*node))
                    .await?;
                // A running replica deletes itself once it applies its removal; a
                // failed one is replaced when the node is chosen again.
                Ok(())
            }
            Step::Promote { group, node } => self
                .change(view, *group, MemberChange::Promote(*node))
                .await
                .map(drop),
            Step::AddReplica { group, node, .. } => self.add_replica(view, *group, *node).await,
            Step::PreferLeader { group, to } => {
                let body = PreferredLeaderRequest {
                    group: *group,
                    to: Some(*to),
                };
                for (_, member) in live_members(view, *group) {
                    self.calls
                        .send(Method::POST, &member.addr, "/admin/preferred-leader", &body)
                        .await?;
                }
                Ok(())
            }
            Step::MarkRemoved { node } => self
                .propose(CatalogCommand::SetNodeState {
                    id: *node,
                    state: NodeState::Removed,
                })
                .await
                .map(drop),
            Step::CreateGroup { voters, leader } => {
                let created = self
                    .propose(CatalogCommand::CreateShardGroup {
                        first_free: self.rules.shard_count + 1,
                        voters: voters.clone(),
                        leader: *leader,
                    })
                    .await?;
                tracing::info!(?created, "shard group created; its replicas bootstrap next");
                Ok(())
            }
            Step::Bootstrap { group, node } => self.bootstrap(view, *group, *node).await,
            Step::MarkReady { group } => self
                .propose(CatalogCommand::ShardGroupReady { group: *group })
                .await
                .map(drop),
            Step::Retire { group, .. } => self
                .propose(CatalogCommand::RetireShardGroup { group: *group })
                .await
                .map(drop),
            Step::DestroyRetired { group, node } => {
                let target = self.addr(view, *node)?;
                let path = format!("/admin/replicas/{group}");
                let body = DestroyReplicaRequest { retired: true };
                self.calls
                    .send(Method::DELETE, &target, &path, &body)
                    .await?;
                Ok(())
            }
        }
    }

    /// Tells `node` and the group's other first voters each other's addresses, then has
    /// `node` bootstrap its replica of the group created at run time.
    async fn bootstrap(&self, view: &ClusterView, group: u64, node: u64) -> Result<(), StepError> {
        let birth = view.map.born.get(&group).ok_or(StepError::Unknown(group))?;
        let incarnation = birth
            .voters
            .iter()
            .find(|&&(n, _)| n == node)
            .map(|&(_, i)| i)
            .ok_or(StepError::Unknown(node))?;
        let target = self.addr(view, node)?;
        for &(m, _) in birth.voters.iter().filter(|&&(m, _)| m != node) {
            let Some(member) = view.nodes.get(&m).filter(|v| v.up()) else {
                continue;
            };
            self.introduce(&target, node, &member.addr, m).await?;
        }
        let request = CreateReplicaRequest {
            group,
            joined_at: 0,
            bootstrap: Some(BootstrapReplica {
                voters: birth.voters.iter().map(|&(n, _)| n).collect(),
                incarnation,
                leader: birth.leader,
            }),
        };
        self.calls
            .send(Method::POST, &target, "/admin/replicas", &request)
            .await?;
        Ok(())
    }

    /// Teaches nodes `a` (at `a_addr`) and `b` (at `b_addr`) each other's addresses.
    async fn introduce(&self, a_addr: &str, a: u64, b_addr: &str, b: u64) -> Result<(), StepError> {
        let to_a = PeerRequest {
            id: b,
            addr: b_addr.to_owned(),
        };
        self.calls
            .send(Method::POST, a_addr, "/admin/peers", &to_a)
            .await?;
        let to_b = PeerRequest {
            id: a,
            addr: a_addr.to_owned(),
        };
        self.calls
            .send(Method::POST, b_addr, "/admin/peers", &to_b)
            .await?;
        Ok(())
    }

    /// Teaches the new replica's node and the group's members each other's addresses,
    /// adds the node as a learner, then hosts an empty replica there that knows the
    /// index of its addition (the node may have been in the group before under the same
    /// id: the removal in the log it replays is history). It catches up from the
    /// leader's log or snapshot and is promoted by a later round.
    async fn add_replica(
        &self,
        view: &ClusterView,
        group: u64,
        node: u64,
    ) -> Result<(), StepError> {
        let target = self.addr(view, node)?;
        for (m, member) in live_members(view, group) {
            self.introduce(&target, node, &member.addr, m).await?;
        }
        // Already a learner (an earlier round added it and then failed to create the
        // replica): the leader's commit is past that addition, and every configuration
        // after it still counts.
        let commit = view.groups.get(&group).map_or(0, |g| g.commit);
        let joined_at = self
            .change(view, group, MemberChange::AddLearner(node))
            .await?
            .unwrap_or(commit);
        self.calls
            .send(
                Method::POST,
                &target,
                "/admin/replicas",
                &CreateReplicaRequest {
                    group,
                    joined_at,
                    bootstrap: None,
                },
            )
            .await?;
        Ok(())
    }
}
