//! The placement rules: from one round's view, the steps that bring the cluster closer to
//! where it should be, most urgent first. Pure, so every rule is unit-tested.
//!
//! Order: record each group's replicas in the map; take out replicas that lost their
//! data; promote caught-up learners; take out surplus voters (on a down node first, then
//! a draining one, then the most loaded); add a replica where a group has fewer healthy
//! members than the replication factor; move leadership off draining nodes; mark
//! drained nodes removed; then, only when nothing else is to be done, even out replicas
//! and leaders across nodes. A group in a joint configuration or without a leader in
//! sight is left alone until it settles.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::registry::{GroupBirth, NodeState};
use common::wire::ReplicaState;

use super::view::{ClusterView, GroupView, NodeView};

/// What the placement driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The map's replicas of `group` are out of date.
    Record { group: u64, replicas: Vec<u64> },
    /// `node` leaves `group`.
    Remove {
        group: u64,
        node: u64,
        why: &'static str,
    },
    /// A caught-up learner votes.
    Promote { group: u64, node: u64 },
    /// A new replica of `group` on `node` (created empty, added as a learner).
    AddReplica {
        group: u64,
        node: u64,
        why: &'static str,
    },
    /// Every replica of `group` hands leadership to `to` when it leads.
    PreferLeader { group: u64, to: u64 },
    /// A draining node holds nothing any more.
    MarkRemoved { node: u64 },
    /// A new shard group on `voters`, first led by `leader` (the cluster grew).
    CreateGroup { voters: Vec<u64>, leader: u64 },
    /// A first voter of a group created at run time starts its replica.
    Bootstrap { group: u64, node: u64 },
    /// A group created at run time runs: new collections may use it.
    MarkReady { group: u64 },
    /// A group created at run time that no collection uses goes away for good.
    Retire { group: u64, why: &'static str },
    /// `node` still holds a replica of a retired group: it is deleted.
    DestroyRetired { group: u64, node: u64 },
}

impl Step {
    /// Whether the step builds new replicas (rate-limited).
    pub fn is_move(&self) -> bool {
        matches!(self, Step::AddReplica { .. } | Step::CreateGroup { .. })
    }

    /// Whether the step only records or completes what was decided already: every such
    /// step of a round is made, not just the most urgent change.
    pub fn is_bookkeeping(&self) -> bool {
        matches!(
            self,
            Step::Record { .. }
                | Step::Bootstrap { .. }
                | Step::MarkReady { .. }
                | Step::DestroyRetired { .. }
        )
    }
}

/// The rules' parameters.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub replication_factor: usize,
    /// A node silent this long is down: its replicas are rebuilt elsewhere.
    pub down_after: Duration,
    /// The config's `shard_count`: the shard groups `1..=shard_count` the cluster was
    /// born with, on `initial_nodes` nodes.
    pub shard_count: u64,
    /// How many nodes the config starts the cluster with (those without `join`).
    pub initial_nodes: usize,
}

/// How long a node whose running replica of a group was removed gets no new replica of
/// that group. Raft ids are node ids, so the removed replica and a new one on the same
/// node share one: until the old one's apply thread has deleted its directory and no
/// acknowledgement it sent can still arrive, a new one would lose its files or be
/// credited with entries it does not have (both seen by the chaos driver).
pub const REMOVED_COOLDOWN: Duration = Duration::from_secs(30);

impl Rules {
    fn down(&self, n: &NodeView) -> bool {
        !n.up() && n.silent_for >= self.down_after
    }

    /// May hold new replicas and leaders.
    fn usable(&self, n: &NodeView) -> bool {
        n.up() && n.state == NodeState::Up
    }

    /// How many shard groups a cluster of `usable` nodes keeps: as many per node as the
    /// config gave the first nodes (`shard_count / initial_nodes`, rounded up overall),
    /// never fewer than `shard_count`. So a node that joins brings its share of groups,
    /// and with them leaders. When nodes leave, their replicas move; groups created at
    /// run time that no collection uses are retired down to the target again.
    pub fn target_shard_groups(&self, usable: usize) -> u64 {
        let initial = self.initial_nodes.max(1) as u64;
        (self.shard_count * usable as u64)
            .div_ceil(initial)
            .max(self.shard_count)
    }
}

/// Whether `node`'s replica of `group` is gone: it answers, and has no replica of the
/// group or a failed one (lost data, damaged log).
fn lost(view: &ClusterView, node: u64, group: u64) -> bool {
    view.nodes.get(&node).is_some_and(|n| {
        n.up()
            && n.replica(group)
                .is_none_or(|r| r.state == ReplicaState::Failed || r.error.is_some())
    })
}

/// Every step the view calls for, most urgent first. `cooling`: (group, node) pairs
/// that get no new replica yet ([`REMOVED_COOLDOWN`]).
pub fn plan(view: &ClusterView, rules: &Rules, cooling: &HashSet<(u64, u64)>) -> Vec<Step> {
    let mut steps = Vec::new();
    let members = view.memberships();
    let leaders = view.leaderships();
    for g in view.groups.values() {
        if g.leader.is_none() || g.joint || view.unborn(g.group) {
            continue;
        }
        let replicas = g.members();
        if view.map.groups.get(&g.group) != Some(&replicas) {
            steps.push(Step::Record {
                group: g.group,
                replicas,
            });
        }
        steps.extend(group_steps(view, rules, g, &members, &leaders, cooling));
    }
    let growing = birth_steps(view, rules);
    let settling = !growing.is_empty();
    steps.extend(growing);
    for n in view.nodes.values() {
        let holds = view.groups.values().any(|g| g.is_member(n.id));
        if n.state == NodeState::Draining && !holds {
            steps.push(Step::MarkRemoved { node: n.id });
        }
    }
    if !settling && steps.iter().all(|s| matches!(s, Step::Record { .. })) {
        steps.extend(new_group(view, rules, &members, &leaders));
    }
    if steps.iter().all(|s| matches!(s, Step::Record { .. })) {
        steps.extend(retirement(view, rules));
    }
    if steps.iter().all(|s| matches!(s, Step::Record { .. })) {
        steps.extend(balance_replicas(view, rules, &members, cooling));
    }
    if steps.iter().all(|s| matches!(s, Step::Record { .. })) {
        steps.extend(balance_leaders(view, rules, &leaders));
    }
    steps.extend(leftovers_of_retired(view));
    steps
}

fn group_steps(
    view: &ClusterView,
    rules: &Rules,
    g: &GroupView,
    members: &HashMap<u64, usize>,
    leaders: &HashMap<u64, usize>,
    cooling: &HashSet<(u64, u64)>,
) -> Vec<Step> {
    let leader = g.leader.unwrap_or_default();
    let group = g.group;
    let node = |id: u64| view.nodes.get(&id);
    let is_down = |id: u64| node(id).is_some_and(|n| rules.down(n));
    let draining = |id: u64| node(id).is_some_and(|n| n.state != NodeState::Up);
    for &n in &g.members() {
        if n != leader && lost(view, n, group) {
            return vec![Step::Remove {
                group,
                node: n,
                why: "its replica lost its data",
            }];
        }
    }
    let mut steps = Vec::new();
    for &n in &g.learners {
        if is_down(n) || draining(n) {
            steps.push(Step::Remove {
                group,
                node: n,
                why: "a learner on a node that is down or leaving",
            });
        } else if view.caught_up(n, g) {
            steps.push(Step::Promote { group, node: n });
        }
    }
    if !g.learners.is_empty() {
        // A learner still catching up is this group's move in progress: nothing else
        // for the group until it is promoted (other groups' steps go on meanwhile).
        return steps;
    }
    if g.voters.len() > rules.replication_factor {
        // Worst first: down, leaving, lagging, then the busiest node; the leader last.
        let victim = g.voters.iter().copied().max_by_key(|&n| {
            (
                is_down(n),
                draining(n),
                !view.caught_up(n, g),
                n != leader,
                members.get(&n).copied().unwrap_or(0),
                n,
            )
        });
        if let Some(n) = victim {
            return vec![Step::Remove {
                group,
                node: n,
                why: "more voters than the replication factor",
            }];
        }
    }
    let healthy = g
        .voters
        .iter()
        .filter(|&&n| !is_down(n) && !draining(n))
        .count();
    if healthy < rules.replication_factor {
        let eligible = |n: &NodeView| !g.is_member(n.id) && !cooling.contains(&(group, n.id));
        if let Some(target) = least_loaded(view, rules, members, eligible) {
            return vec![Step::AddReplica {
                group,
                node: target,
                why: "fewer healthy replicas than the replication factor",
            }];
        }
    }
    let wants_other_leader = draining(leader) || g.preferred_leader.is_some_and(draining);
    if wants_other_leader {
        let to = g
            .voters
            .iter()
            .copied()
            .filter(|&n| !draining(n) && view.caught_up(n, g))
            .min_by_key(|n| (leaders.get(n).copied().unwrap_or(0), *n));
        if let Some(to) = to {
            return vec![Step::PreferLeader { group, to }];
        }
    }
    Vec::new()
}

/// The steps that finish the groups created at run time and not ready yet: a bootstrap
/// for each first voter that answers, still has the incarnation it was chosen with and
/// hosts no replica of the group; once none is left to wait for (a voter that lost its
/// disk or stayed down past the timeout is replaced later, like any lost replica) and
/// the group has a leader, the group is marked ready.
fn birth_steps(view: &ClusterView, rules: &Rules) -> Vec<Step> {
    let mut steps = Vec::new();
    for (&group, birth) in view.map.born.iter().filter(|(_, b)| !b.ready) {
        if stillborn(view, rules, group, birth) {
            steps.push(Step::Retire {
                group,
                why: "its first voters cannot form a quorum",
            });
            continue;
        }
        let mut waiting = false;
        for &(n, incarnation) in &birth.voters {
            let same = still_chosen(view, n, incarnation);
            let Some(node) = view.nodes.get(&n).filter(|_| same) else {
                continue;
            };
            if node.up() && node.replica(group).is_none() {
                steps.push(Step::Bootstrap { group, node: n });
                waiting = true;
            } else if !node.up() && !rules.down(node) {
                waiting = true;
            }
        }
        let led = view.groups.get(&group).is_some_and(|g| g.leader.is_some());
        if !waiting && led {
            steps.push(Step::MarkReady { group });
        }
    }
    steps
}

/// A group created at run time that no collection uses, retired when the cluster keeps
/// more shard groups than its nodes in the map call for
/// ([`Rules::target_shard_groups`] of the nodes `up` in the map, answering or not: a
/// node silent for a while must not cost a group): the newest.
fn retirement(view: &ClusterView, rules: &Rules) -> Option<Step> {
    let in_use = view.in_use.as_ref()?;
    let members = view
        .map
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Up)
        .count();
    let groups = view.map.all_shard_groups(1..=rules.shard_count).len() as u64;
    if groups <= rules.target_shard_groups(members) {
        return None;
    }
    let group = *view.map.born.keys().rev().find(|g| !in_use.contains(g))?;
    Some(Step::Retire {
        group,
        why: "more shard groups than the cluster's nodes call for",
    })
}

/// A delete for every replica of a retired group a node still reports (it was down when
/// the group was retired, or the delete did not reach it).
fn leftovers_of_retired(view: &ClusterView) -> Vec<Step> {
    let mut steps = Vec::new();
    for n in view.nodes.values() {
        let Some(status) = &n.status else { continue };
        for r in status
            .replicas
            .iter()
            .filter(|r| view.map.retired.contains(&r.group))
        {
            steps.push(Step::DestroyRetired {
                group: r.group,
                node: n.id,
            });
        }
    }
    steps
}

/// Whether first voter `n` of a group being born is still the node it was chosen as: up
/// in the map with the incarnation it had then (not one that lost its disk since).
fn still_chosen(view: &ClusterView, n: u64, incarnation: u64) -> bool {
    view.map
        .nodes
        .get(&n)
        .is_some_and(|r| r.incarnation == incarnation && r.state == NodeState::Up)
}

/// Whether the birth of `group` cannot finish and no collection uses it (known): no
/// leader, and fewer than a quorum of its first voters are still there with the
/// incarnation they were chosen with and not down past the timeout.
fn stillborn(view: &ClusterView, rules: &Rules, group: u64, birth: &GroupBirth) -> bool {
    let unused = view.in_use.as_ref().is_some_and(|u| !u.contains(&group));
    let led = view.groups.get(&group).is_some_and(|g| g.leader.is_some());
    let viable = birth
        .voters
        .iter()
        .filter(|&&(n, incarnation)| {
            still_chosen(view, n, incarnation) && view.nodes.get(&n).is_some_and(|v| !rules.down(v))
        })
        .count();
    unused && !led && viable <= birth.voters.len() / 2
}

/// A new shard group when the cluster has fewer than its target
/// ([`Rules::target_shard_groups`]): on the replication factor's least-loaded usable
/// nodes, first led by the one of them leading fewest groups.
fn new_group(
    view: &ClusterView,
    rules: &Rules,
    members: &HashMap<u64, usize>,
    leaders: &HashMap<u64, usize>,
) -> Option<Step> {
    let usable: Vec<&NodeView> = view.nodes.values().filter(|n| rules.usable(n)).collect();
    let mut shard_groups: Vec<u64> = view
        .map
        .all_shard_groups(1..=rules.shard_count)
        .into_iter()
        .chain(view.groups.keys().copied())
        .chain(view.map.groups.keys().copied())
        .filter(|&g| g != common::placement::METADATA_GROUP)
        .collect();
    shard_groups.sort_unstable();
    shard_groups.dedup();
    if usable.len() < rules.replication_factor
        || shard_groups.len() as u64 >= rules.target_shard_groups(usable.len())
    {
        return None;
    }
    let mut chosen: Vec<u64> = usable.iter().map(|n| n.id).collect();
    chosen.sort_by_key(|n| (members.get(n).copied().unwrap_or(0), *n));
    chosen.truncate(rules.replication_factor);
    let leader = *chosen
        .iter()
        .min_by_key(|n| (leaders.get(n).copied().unwrap_or(0), **n))?;
    chosen.sort_unstable();
    Some(Step::CreateGroup {
        voters: chosen,
        leader,
    })
}

fn least_loaded(
    view: &ClusterView,
    rules: &Rules,
    counts: &HashMap<u64, usize>,
    eligible: impl Fn(&NodeView) -> bool,
) -> Option<u64> {
    view.nodes
        .values()
        .filter(|n| rules.usable(n) && eligible(n))
        .min_by_key(|n| (counts.get(&n.id).copied().unwrap_or(0), n.id))
        .map(|n| n.id)
}

/// One replica from the busiest usable node to the idlest, when they differ by two or
/// more (the surplus voter is then taken from the busiest by the rules above).
fn balance_replicas(
    view: &ClusterView,
    rules: &Rules,
    members: &HashMap<u64, usize>,
    cooling: &HashSet<(u64, u64)>,
) -> Option<Step> {
    let usable: Vec<&NodeView> = view.nodes.values().filter(|n| rules.usable(n)).collect();
    let count = |n: &NodeView| members.get(&n.id).copied().unwrap_or(0);
    let light = usable.iter().min_by_key(|n| (count(n), n.id))?;
    let heavy = usable.iter().max_by_key(|n| (count(n), n.id))?;
    if count(heavy) < count(light) + 2 {
        return None;
    }
    let g = view.groups.values().find(|g| {
        g.is_member(heavy.id)
            && !g.is_member(light.id)
            && !cooling.contains(&(g.group, light.id))
            && view.healthy(g)
            && g.voters.len() == rules.replication_factor
    })?;
    Some(Step::AddReplica {
        group: g.group,
        node: light.id,
        why: "evening out replicas across nodes",
    })
}

/// One leadership from the node leading most groups to a voter leading the fewest, when
/// they differ by two or more.
fn balance_leaders(
    view: &ClusterView,
    rules: &Rules,
    leaders: &HashMap<u64, usize>,
) -> Option<Step> {
    let count = |n: u64| leaders.get(&n).copied().unwrap_or(0);
    let heavy = view
        .nodes
        .values()
        .filter(|n| n.up())
        .max_by_key(|n| (count(n.id), n.id))?;
    view.groups
        .values()
        .filter(|g| g.leader == Some(heavy.id) && view.healthy(g))
        .flat_map(|g| {
            g.voters
                .iter()
                .filter(|&&n| {
                    view.nodes.get(&n).is_some_and(|x| rules.usable(x))
                        && count(n) + 2 <= count(heavy.id)
                })
                .map(move |&n| (count(n), g.group, n))
        })
        .min()
        .map(|(_, group, to)| Step::PreferLeader { group, to })
}

#[cfg(test)]
mod tests;
