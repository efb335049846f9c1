//! What the placement driver sees in one round: every node's status (or that it did not
//! answer, and since when), each group's configuration as its leader reports it, and the
//! cluster map. Also the operator's summary of it (`GET /admin/cluster`,
//! `scripts/cluster status --json`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::registry::{ClusterMap, NodeState};
use common::wire::{NodeStatus, RaftRole, ReplicaState, ReplicaStatus};
use serde::Serialize;

use super::calls::NodeCalls;

/// A follower this many entries behind its leader's commit is not caught up.
pub const CAUGHT_UP_LAG: u64 = 64;

/// One node as seen this round.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: u64,
    pub addr: String,
    pub state: NodeState,
    /// Its status; `None` when it did not answer.
    pub status: Option<NodeStatus>,
    /// How long it has not answered (zero when it answered).
    pub silent_for: Duration,
}

impl NodeView {
    pub fn up(&self) -> bool {
        self.status.is_some()
    }

    pub fn replica(&self, group: u64) -> Option<&ReplicaStatus> {
        self.status
            .as_ref()?
            .replicas
            .iter()
            .find(|r| r.group == group)
    }

    /// Whether its replica of `group` runs.
    pub fn runs(&self, group: u64) -> bool {
        self.replica(group)
            .is_some_and(|r| r.state == ReplicaState::Running && r.error.is_none())
    }
}

/// One group's configuration, from the replica that leads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group: u64,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// In a joint configuration (a change under way).
    pub joint: bool,
    pub commit: u64,
    pub preferred_leader: Option<u64>,
}

impl GroupView {
    pub fn members(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.voters.iter().chain(&self.learners).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub fn is_member(&self, node: u64) -> bool {
        self.voters.contains(&node) || self.learners.contains(&node)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: BTreeMap<u64, NodeView>,
    /// Every group but the retired ones (whose leftover replicas are only deleted).
    pub groups: BTreeMap<u64, GroupView>,
    pub map: ClusterMap,
    /// The shard groups some collection uses; `None` when not read this round (then no
    /// group is retired).
    pub in_use: Option<BTreeSet<u64>>,
}

impl ClusterView {
    /// Builds the groups from the nodes' statuses: a group's configuration is its
    /// leader's (the highest term's, should two claim it); a group with no leader in
    /// sight is reported with what its most advanced replica knows.
    pub fn new(nodes: BTreeMap<u64, NodeView>, map: ClusterMap) -> ClusterView {
        let mut best: BTreeMap<u64, (bool, u64, u64, GroupView)> = BTreeMap::new();
        for node in nodes.values() {
            let Some(status) = &node.status else { continue };
            for r in &status.replicas {
                if r.state != ReplicaState::Running
                    || r.error.is_some()
                    || map.retired.contains(&r.group)
                {
                    continue;
                }
                let leads = r.role == RaftRole::Leader;
                let rank = (leads, r.term, r.applied);
                let view = GroupView {
                    group: r.group,
                    leader: leads.then_some(node.id),
                    voters: r.voters.clone(),
                    learners: r.learners.clone(),
                    joint: !r.voters_outgoing.is_empty(),
                    commit: r.commit,
                    preferred_leader: r.preferred_leader,
                };
                let better = best
                    .get(&r.group)
                    .is_none_or(|(l, t, a, _)| rank > (*l, *t, *a));
                if better {
                    best.insert(r.group, (leads, r.term, r.applied, view));
                }
            }
        }
        ClusterView {
            groups: best.into_iter().map(|(g, (.., v))| (g, v)).collect(),
            nodes,
            map,
            in_use: None,
        }
    }

    /// Whether `group` was created at run time and is not ready yet: the placement
    /// rules leave it to its birth steps (a first voter whose bootstrap is still to come
    /// must not look like a replica that lost its data).
    pub fn unborn(&self, group: u64) -> bool {
        self.map.born.get(&group).is_some_and(|b| !b.ready)
    }

    /// Whether node `n` holds a running, caught-up replica of `group`.
    pub fn caught_up(&self, n: u64, group: &GroupView) -> bool {
        self.nodes.get(&n).is_some_and(|node| {
            node.runs(group.group)
                && node
                    .replica(group.group)
                    .is_some_and(|r| r.applied + CAUGHT_UP_LAG >= group.commit)
        })
    }

    /// Whether every member of `group` is on a node that answers, runs and is caught up.
    pub fn healthy(&self, group: &GroupView) -> bool {
        group.leader.is_some()
            && !group.joint
            && group.learners.is_empty()
            && group.voters.iter().all(|&n| self.caught_up(n, group))
    }

    /// Groups each node is a member of.
    pub fn memberships(&self) -> HashMap<u64, usize> {
        let mut count: HashMap<u64, usize> = self.nodes.keys().map(|&n| (n, 0)).collect();
        for g in self.groups.values() {
            for n in g.members() {
                *count.entry(n).or_default() += 1;
            }
        }
        count
    }

    /// Groups each node leads.
    pub fn leaderships(&self) -> HashMap<u64, usize> {
        let mut count: HashMap<u64, usize> = self.nodes.keys().map(|&n| (n, 0)).collect();
        for l in self.groups.values().filter_map(|g| g.leader) {
            *count.entry(l).or_default() += 1;
        }
        count
    }

    /// The operator's summary.
    pub fn report(&self) -> ClusterReport {
        let members = self.memberships();
        let leaders = self.leaderships();
        ClusterReport {
            nodes: self
                .nodes
                .values()
                .map(|n| NodeReport {
                    id: n.id,
                    addr: n.addr.clone(),
                    state: match (n.state, n.up()) {
                        (NodeState::Removed, _) => "removed",
                        (_, false) => "down",
                        (NodeState::Draining, true) => "draining",
                        (NodeState::Up, true) => "up",
                    }
                    .to_owned(),
                    replicas: members.get(&n.id).copied().unwrap_or(0),
                    leaders: leaders.get(&n.id).copied().unwrap_or(0),
                })
                .collect(),
            groups: self
                .groups
                .values()
                .map(|g| GroupReport {
                    id: g.group,
                    replicas: g.members(),
                    learners: g.learners.clone(),
                    leader: g.leader,
                    healthy: self.healthy(g),
                })
                .collect(),
            map_version: self.map.version,
            placement_paused: self.map.placement_paused,
            retired_groups: self.map.retired.iter().copied().collect(),
        }
    }
}

/// `GET /admin/cluster`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClusterReport {
    pub nodes: Vec<NodeReport>,
    pub groups: Vec<GroupReport>,
    pub map_version: u64,
    /// The operator paused the placement driver (`POST /admin/placement`).
    #[serde(default)]
    pub placement_paused: bool,
    /// Shard groups created at run time and retired since.
    #[serde(default)]
    pub retired_groups: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeReport {
    pub id: u64,
    pub addr: String,
    /// `up`, `down` (not answering), `draining` or `removed`.
    pub state: String,
    pub replicas: usize,
    pub leaders: usize,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct GroupReport {
    pub id: u64,
    /// Node ids of its voters and learners.
    pub replicas: Vec<u64>,
    pub learners: Vec<u64>,
    pub leader: Option<u64>,
    /// Every replica on a node that answers, running and caught up; no change under way.
    pub healthy: bool,
}

/// Since when each node has not answered (kept across rounds by the driver).
#[derive(Debug, Default)]
pub struct Silence {
    since: HashMap<u64, Instant>,
}

impl Silence {
    fn note(&mut self, node: u64, answered: bool, now: Instant) -> Duration {
        if answered {
            self.since.remove(&node);
            return Duration::ZERO;
        }
        now - *self.since.entry(node).or_insert(now)
    }
}

/// Asks every node of the map (and of `seeds`, nodes of the config not registered yet)
/// for its status, all at once.
pub async fn observe(
    calls: &NodeCalls,
    map: ClusterMap,
    seeds: &[(u64, String)],
    silence: &mut Silence,
) -> ClusterView {
    let mut targets: BTreeMap<u64, (String, NodeState)> = map
        .nodes
        .values()
        .map(|n| (n.id, (n.addr.clone(), n.state)))
        .collect();
    for (id, addr) in seeds {
        targets
            .entry(*id)
            .or_insert_with(|| (addr.clone(), NodeState::Up));
    }
    let asked: BTreeSet<u64> = targets
        .iter()
        .filter(|(_, (_, s))| *s != NodeState::Removed)
        .map(|(&id, _)| id)
        .collect();
    let answers = futures::future::join_all(asked.iter().map(|id| {
        let addr = targets[id].0.clone();
        async move { (*id, calls.status(&addr).await.ok()) }
    }))
    .await;
    let now = Instant::now();
    let mut nodes = BTreeMap::new();
    for (id, status) in answers {
        let (addr, state) = targets[&id].clone();
        let silent_for = silence.note(id, status.is_some(), now);
        nodes.insert(
            id,
            NodeView {
                id,
                addr,
                state,
                status,
                silent_for,
            },
        );
    }
    for (&id, (addr, state)) in targets.iter().filter(|(id, _)| !asked.contains(id)) {
        nodes.insert(
            id,
            NodeView {
                id,
                addr: addr.clone(),
                state: *state,
                status: None,
                silent_for: Duration::ZERO,
            },
        );
    }
    ClusterView::new(nodes, map)
}
