//! The placement rules on hand-made views.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::placement::GroupKind;
use common::registry::{ClusterMap, NodeState};
use common::wire::{NodeStatus, RaftRole, ReplicaState, ReplicaStatus};

use super::*;
use crate::placement::view::{ClusterView, NodeView};

/// Born with 3 shard groups on 4 nodes: no test view below calls for a new group
/// unless it says so.
const RULES: Rules = Rules {
    replication_factor: 3,
    down_after: Duration::from_secs(60),
    shard_count: 3,
    initial_nodes: 4,
};

/// A running replica of `group` whose configuration is `voters` / `learners`.
fn replica(group: u64, leads: bool, voters: &[u64], learners: &[u64]) -> ReplicaStatus {
    let mut r = ReplicaStatus::idle(group, GroupKind::Shard, ReplicaState::Running, None);
    r.role = if leads {
        RaftRole::Leader
    } else {
        RaftRole::Follower
    };
    r.term = 2;
    r.commit = 100;
    r.applied = 100;
    r.voters = voters.to_vec();
    r.learners = learners.to_vec();
    r
}

struct Builder {
    nodes: BTreeMap<u64, NodeView>,
}

impl Builder {
    fn new(ids: &[u64]) -> Builder {
        let nodes = ids
            .iter()
            .map(|&id| {
                let status = NodeStatus {
                    node_id: id,
                    replicas: Vec::new(),
                    blocked: Vec::new(),
                    dropped_messages: 0,
                    sent_messages: 0,
                    registered: Some(true),
                };
                let view = NodeView {
                    id,
                    addr: format!("127.0.0.1:{}", 9000 + id),
                    state: NodeState::Up,
                    status: Some(status),
                    silent_for: Duration::ZERO,
                };
                (id, view)
            })
            .collect();
        Builder { nodes }
    }

    /// Group `group` on `voters` (+ `learners`), led by the first voter.
    fn group(mut self, group: u64, voters: &[u64], learners: &[u64]) -> Builder {
        for (i, &n) in voters.iter().chain(learners).enumerate() {
            let r = replica(group, i == 0, voters, learners);
            if let Some(s) = self.nodes.get_mut(&n).and_then(|v| v.status.as_mut()) {
                s.replicas.push(r);
            }
        }
        self
    }

    fn down(mut self, id: u64, for_secs: u64) -> Builder {
        let n = self.nodes.get_mut(&id).unwrap();
        n.status = None;
        n.silent_for = Duration::from_secs(for_secs);
        self
    }

    fn failed(mut self, id: u64, group: u64) -> Builder {
        let s = self.nodes.get_mut(&id).unwrap().status.as_mut().unwrap();
        s.replicas.retain(|r| r.group != group);
        s.replicas.push(ReplicaStatus::idle(
            group,
            GroupKind::Shard,
            ReplicaState::Failed,
            Some("lost its data".into()),
        ));
        self
    }

    fn state(mut self, id: u64, state: NodeState) -> Builder {
        self.nodes.get_mut(&id).unwrap().state = state;
        self
    }

    /// The view, with the map already recording every group as it is.
    fn view(self) -> ClusterView {
        let mut view = ClusterView::new(self.nodes, ClusterMap::default());
        for g in view.groups.values() {
            view.map.groups.insert(g.group, g.members());
        }
        view
    }
}

#[test]
fn a_settled_cluster_needs_nothing() {
    let view = Builder::new(&[1, 2, 3])
        .group(0, &[1, 2, 3], &[])
        .group(1, &[2, 3, 1], &[])
        .group(2, &[3, 1, 2], &[])
        .view();
    assert_eq!(plan(&view, &RULES, &HashSet::new()), vec![]);
}

#[test]
fn the_map_is_told_where_replicas_are() {
    let b = Builder::new(&[1, 2, 3]).group(1, &[1, 2, 3], &[]);
    let view = ClusterView::new(b.nodes, ClusterMap::default());
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::Record {
            group: 1,
            replicas: vec![1, 2, 3]
        }]
    );
}

#[test]
fn a_replica_that_lost_its_data_is_taken_out_and_then_rebuilt_on_the_same_node() {
    let view = Builder::new(&[1, 2, 3])
        .group(1, &[1, 2, 3], &[])
        .failed(3, 1)
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::Remove {
            group: 1,
            node: 3,
            why: "its replica lost its data"
        }]
    );
    // Once out, the group is short of a replica: node 3 (the only other) gets a new one.
    let view = Builder::new(&[1, 2, 3])
        .group(1, &[1, 2], &[])
        .failed(3, 1)
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::AddReplica {
            group: 1,
            node: 3,
            why: "fewer healthy replicas than the replication factor"
        }]
    );
    // A learner that caught up is promoted; one still catching up is waited for, and
    // no other replica is added meanwhile.
    let view = Builder::new(&[1, 2, 3]).group(1, &[1, 2], &[3]).view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::Promote { group: 1, node: 3 }]
    );
    let mut view = Builder::new(&[1, 2, 3, 4]).group(1, &[1, 2], &[3]).view();
    if let Some(s) = view.nodes.get_mut(&3).and_then(|n| n.status.as_mut()) {
        s.replicas[0].applied = 10;
    }
    assert_eq!(plan(&view, &RULES, &HashSet::new()), vec![]);
}

#[test]
fn a_node_down_past_the_timeout_is_replaced_on_the_least_loaded_spare() {
    let b = || {
        Builder::new(&[1, 2, 3, 4, 5])
            .group(1, &[1, 2, 3], &[])
            .group(2, &[2, 3, 4], &[])
    };
    // Briefly silent: nothing yet.
    assert_eq!(
        plan(&b().down(3, 5).view(), &RULES, &HashSet::new()),
        vec![]
    );
    let steps = plan(&b().down(3, 61).view(), &RULES, &HashSet::new());
    assert_eq!(
        steps[0],
        Step::AddReplica {
            group: 1,
            node: 5,
            why: "fewer healthy replicas than the replication factor"
        }
    );
    // With the new replica promoted, the surplus voter on the down node goes.
    let view = Builder::new(&[1, 2, 3, 4, 5])
        .group(1, &[1, 2, 3, 5], &[])
        .down(3, 61)
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::Remove {
            group: 1,
            node: 3,
            why: "more voters than the replication factor"
        }]
    );
}

#[test]
fn a_draining_node_hands_over_leadership_is_emptied_and_marked_removed() {
    let view = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3], &[])
        .state(1, NodeState::Draining)
        .view();
    let steps = plan(&view, &RULES, &HashSet::new());
    assert_eq!(
        steps[0],
        Step::AddReplica {
            group: 1,
            node: 4,
            why: "fewer healthy replicas than the replication factor"
        }
    );
    let view = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3, 4], &[])
        .state(1, NodeState::Draining)
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new())[0],
        Step::Remove {
            group: 1,
            node: 1,
            why: "more voters than the replication factor"
        }
    );
    let view = Builder::new(&[1, 2, 3, 4])
        .group(1, &[2, 3, 4], &[])
        .state(1, NodeState::Draining)
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::MarkRemoved { node: 1 }]
    );
}

#[test]
fn a_new_node_receives_replicas_and_leaders_even_out() {
    let view = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[])
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::AddReplica {
            group: 1,
            node: 4,
            why: "evening out replicas across nodes"
        }]
    );
    let view = Builder::new(&[1, 2, 3])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[1, 3, 2], &[])
        .group(3, &[1, 2, 3], &[])
        .view();
    assert_eq!(
        plan(&view, &RULES, &HashSet::new()),
        vec![Step::PreferLeader { group: 1, to: 2 }]
    );
}

#[test]
fn a_node_that_just_lost_a_running_replica_of_a_group_gets_no_new_one_of_it_yet() {
    let view = Builder::new(&[1, 2, 3, 4]).group(1, &[1, 2], &[]).view();
    let cooling: HashSet<(u64, u64)> = [(1, 3)].into();
    assert_eq!(
        plan(&view, &RULES, &cooling)[0],
        Step::AddReplica {
            group: 1,
            node: 4,
            why: "fewer healthy replicas than the replication factor"
        }
    );
}

/// Born with 3 shard groups on 3 nodes.
const GROWING: Rules = Rules {
    shard_count: 3,
    initial_nodes: 3,
    ..RULES
};

/// Registers every node of `view` in its map, node `n` as incarnation `100 + n`.
fn registered(mut view: ClusterView) -> ClusterView {
    for &id in view.nodes.keys() {
        view.map
            .register(id, &format!("127.0.0.1:{}", 9000 + id), 100 + id)
            .unwrap();
    }
    view
}

#[test]
fn the_target_number_of_shard_groups_grows_with_the_nodes() {
    assert_eq!(GROWING.target_shard_groups(2), 3, "never below shard_count");
    assert_eq!(GROWING.target_shard_groups(3), 3);
    assert_eq!(GROWING.target_shard_groups(4), 4);
    assert_eq!(GROWING.target_shard_groups(6), 6);
    let two_each = Rules {
        shard_count: 6,
        ..GROWING
    };
    assert_eq!(two_each.target_shard_groups(5), 10);
}

#[test]
fn a_node_that_joins_brings_a_new_group_on_the_least_loaded_nodes() {
    let view = Builder::new(&[1, 2, 3, 4])
        .group(0, &[1, 2, 3], &[])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[])
        .view();
    // Node 4 holds nothing and leads nothing: in the new group, and its first leader.
    assert_eq!(
        plan(&view, &GROWING, &HashSet::new()),
        vec![Step::CreateGroup {
            voters: vec![1, 2, 4],
            leader: 4
        }]
    );
    // Enough groups for four nodes: the usual evening out instead.
    let view = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[])
        .group(7, &[1, 2, 3], &[])
        .view();
    assert!(matches!(
        plan(&view, &GROWING, &HashSet::new()).as_slice(),
        [Step::AddReplica { node: 4, .. }]
    ));
}

#[test]
fn a_new_group_bootstraps_on_its_first_voters_then_is_ready() {
    let b = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[]);
    let mut view = registered(b.view());
    let group = view.map.create_group(4, &[1, 2, 4], 4).unwrap();
    let steps = plan(&view, &GROWING, &HashSet::new());
    assert_eq!(
        steps,
        vec![
            Step::Bootstrap { group, node: 1 },
            Step::Bootstrap { group, node: 2 },
            Step::Bootstrap { group, node: 4 },
        ],
        "no other step while a group is being born (its voters are not lost replicas)"
    );

    // Two bootstrapped and elected a leader; the third has not started yet.
    let b = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[])
        .group(group, &[4, 1], &[]);
    let map = view.map.clone();
    let mut view = b.view();
    view.map = map;
    assert_eq!(
        plan(&view, &GROWING, &HashSet::new()),
        vec![Step::Bootstrap { group, node: 2 }]
    );

    // Node 2 lost its disk since it was chosen: not waited for; ready once led.
    view.map.register(2, "127.0.0.1:9002", 999).unwrap();
    assert_eq!(
        plan(&view, &GROWING, &HashSet::new()),
        vec![Step::MarkReady { group }]
    );
    view.map.mark_group_ready(group).unwrap();
    // Ready: the usual rules take over (node 2 is a voter without a replica: lost).
    let steps = plan(&view, &GROWING, &HashSet::new());
    assert!(
        steps
            .iter()
            .all(|s| !matches!(s, Step::Bootstrap { .. } | Step::MarkReady { .. })),
        "{steps:?}"
    );
}

/// Nodes 1-3 with the config's groups 1-3 and group 4, created at run time and ready,
/// all on every node.
fn shrunk_with_a_fourth_group() -> ClusterView {
    let b = Builder::new(&[1, 2, 3])
        .group(0, &[1, 2, 3], &[])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[])
        .group(4, &[2, 3, 1], &[]);
    let mut view = registered(b.view());
    view.map.groups.remove(&4);
    let group = view.map.create_group(4, &[1, 2, 3], 1).unwrap();
    assert_eq!(group, 4);
    view.map.mark_group_ready(group).unwrap();
    view
}

#[test]
fn an_unused_group_created_at_run_time_is_retired_when_the_cluster_shrank() {
    let mut view = shrunk_with_a_fourth_group();
    // Three nodes call for three groups, but whether group 4 is free is not known.
    assert_eq!(plan(&view, &GROWING, &HashSet::new()), vec![]);
    view.in_use = Some([1, 2, 3, 4].into());
    assert_eq!(
        plan(&view, &GROWING, &HashSet::new()),
        vec![],
        "a group a collection uses stays"
    );
    view.in_use = Some([1, 2].into());
    assert_eq!(
        plan(&view, &GROWING, &HashSet::new()),
        vec![Step::Retire {
            group: 4,
            why: "more shard groups than the cluster's nodes call for"
        }]
    );
    // A fourth node in the map (down or not) keeps it.
    view.map.register(9, "127.0.0.1:9009", 109).unwrap();
    assert_eq!(plan(&view, &GROWING, &HashSet::new()), vec![]);
}

#[test]
fn the_replicas_of_a_retired_group_are_deleted_wherever_they_are_found() {
    let shrunk = shrunk_with_a_fourth_group();
    let mut map = shrunk.map.clone();
    map.retire_group(4).unwrap();
    let mut view = ClusterView::new(shrunk.nodes, map);
    view.in_use = Some([1, 2, 3].into());
    assert!(!view.groups.contains_key(&4), "not a group any more");
    assert_eq!(
        plan(&view, &GROWING, &HashSet::new()),
        vec![
            Step::DestroyRetired { group: 4, node: 1 },
            Step::DestroyRetired { group: 4, node: 2 },
            Step::DestroyRetired { group: 4, node: 3 },
        ]
    );
}

#[test]
fn a_group_whose_first_voters_cannot_form_a_quorum_is_retired() {
    let b = Builder::new(&[1, 2, 3, 4])
        .group(1, &[1, 2, 3], &[])
        .group(2, &[2, 3, 1], &[])
        .group(3, &[3, 1, 2], &[])
        .group(7, &[4, 1, 2], &[]);
    let mut view = registered(b.view());
    let group = view.map.create_group(8, &[1, 2, 4], 4).unwrap();
    view.in_use = Some([1, 2, 3].into());
    // Node 2 lost its disk, node 4 is down past the timeout: one first voter is left.
    view.map.register(2, "127.0.0.1:9002", 999).unwrap();
    let n = view.nodes.get_mut(&4).unwrap();
    n.status = None;
    n.silent_for = Duration::from_secs(600);
    let steps = plan(&view, &GROWING, &HashSet::new());
    assert!(
        steps.contains(&Step::Retire {
            group,
            why: "its first voters cannot form a quorum"
        }),
        "{steps:?}"
    );
    assert!(
        !steps.contains(&Step::Bootstrap { group, node: 1 }),
        "no bootstrap for a group that cannot be born: {steps:?}"
    );
    // With node 4 only briefly silent, its birth may still finish.
    view.nodes.get_mut(&4).unwrap().silent_for = Duration::from_secs(1);
    let steps = plan(&view, &GROWING, &HashSet::new());
    assert!(
        steps.iter().all(|s| !matches!(s, Step::Retire { .. })),
        "{steps:?}"
    );
}
