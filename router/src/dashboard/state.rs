//! What `GET /dashboard/state` answers, and how it is assembled from what the router
//! gathered (`super::gather`): each node's admin status, the groups' expected replicas
//! from the cluster map, the catalogue's collections. Assembly is pure, so the views of a
//! down node, a missing replica or diverging digests are tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use common::placement::{group_kind, GroupKind};
use common::wire::{NodeStatus, RaftRole, ReplicaState, ReplicaStatus};
use serde::Serialize;

use super::traffic::TrafficSeries;

/// The whole page's data, built at most once a second (`super::Dashboard`).
#[derive(Debug, Clone, Serialize)]
pub struct DashboardState {
    pub generated_unix_ms: u64,
    pub nodes: Vec<NodeView>,
    pub groups: Vec<GroupView>,
    pub collections: CollectionsView,
    pub traffic: TrafficSeries,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    pub id: u64,
    pub addr: String,
    /// Whether it answered its admin status in time.
    pub up: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    pub replicas: usize,
    pub leaders: usize,
    pub dropped_messages: Option<u64>,
    /// Nodes it drops Raft traffic to (the fault filter): worth seeing during chaos.
    pub blocked: Vec<u64>,
}

/// Whether a group's replicas hold the same data, as far as their digests say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestCheck {
    /// Every running replica reported the same digest.
    Agree,
    /// Digests differ, but so do the applied indexes: replicas are at different points
    /// of the log (normal under writes), not diverged.
    CatchingUp,
    /// Two replicas at the same applied index with different digests: a real divergence.
    Differ,
    /// Fewer than two digests to compare.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaView {
    pub node: u64,
    /// Whether its node answered.
    pub up: bool,
    /// `None`: the node answered but hosts no replica of the group (yet, or any more).
    pub role: Option<RaftRole>,
    pub state: Option<ReplicaState>,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    /// Entries behind the group's highest known commit index.
    pub lag: Option<u64>,
    pub digest: Option<String>,
    pub records: Option<u64>,
    pub index_lag: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    pub group: u64,
    pub kind: GroupKind,
    /// The leader named by the replicas of the highest term.
    pub leader: Option<u64>,
    pub term: u64,
    pub commit: u64,
    pub digests: DigestCheck,
    pub replicas: Vec<ReplicaView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionView {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub database: String,
    /// `None` with `error` set when a shard could not be counted.
    pub records: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionsView {
    pub items: Vec<CollectionView>,
    /// More collections exist than the dashboard lists.
    pub truncated: bool,
    /// The catalogue could not be read.
    pub error: Option<String>,
}

/// A node's admin status, or why there is none.
pub type NodeAnswer = Result<NodeStatus, String>;

/// The nodes' rows, in id order.
pub fn nodes(addrs: &[(u64, String)], answers: &BTreeMap<u64, NodeAnswer>) -> Vec<NodeView> {
    addrs
        .iter()
        .map(|(id, addr)| {
            let answer = answers.get(id);
            let status = answer.and_then(|a| a.as_ref().ok());
            NodeView {
                id: *id,
                addr: addr.clone(),
                up: status.is_some(),
                error: match answer {
                    Some(Err(e)) => Some(e.clone()),
                    Some(Ok(_)) => None,
                    None => Some("not asked".into()),
                },
                replicas: status.map_or(0, |s| s.replicas.len()),
                leaders: status.map_or(0, |s| {
                    s.replicas
                        .iter()
                        .filter(|r| r.role == RaftRole::Leader)
                        .count()
                }),
                dropped_messages: status.map(|s| s.dropped_messages),
                blocked: status.map(|s| s.blocked.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// Every group the cluster map names or a node reports, with one row per replica node:
/// the expected ones (from the map) and any other node that reports a replica.
pub fn groups(expected: &[(u64, Vec<u64>)], answers: &BTreeMap<u64, NodeAnswer>) -> Vec<GroupView> {
    let mut members: BTreeMap<u64, BTreeSet<u64>> = expected
        .iter()
        .map(|(g, nodes)| (*g, nodes.iter().copied().collect()))
        .collect();
    let mut reported: BTreeMap<(u64, u64), &ReplicaStatus> = BTreeMap::new();
    for (node, answer) in answers {
        for replica in answer.iter().flat_map(|s| &s.replicas) {
            members.entry(replica.group).or_default().insert(*node);
            reported.insert((replica.group, *node), replica);
        }
    }
    members
        .into_iter()
        .map(|(group, nodes)| {
            let rows: Vec<(u64, Option<&ReplicaStatus>)> = nodes
                .into_iter()
                .map(|n| (n, reported.get(&(group, n)).copied()))
                .collect();
            group_view(group, &rows, answers)
        })
        .collect()
}

fn group_view(
    group: u64,
    rows: &[(u64, Option<&ReplicaStatus>)],
    answers: &BTreeMap<u64, NodeAnswer>,
) -> GroupView {
    let statuses: Vec<&ReplicaStatus> = rows.iter().filter_map(|(_, r)| *r).collect();
    let term = statuses.iter().map(|r| r.term).max().unwrap_or(0);
    let commit = statuses.iter().map(|r| r.commit).max().unwrap_or(0);
    let leader = statuses
        .iter()
        .filter(|r| r.term == term)
        .find_map(|r| r.leader);
    let replicas = rows
        .iter()
        .map(|(node, status)| {
            let up = answers.get(node).is_some_and(|a| a.is_ok());
            match status {
                Some(r) => replica_view(*node, r, commit),
                None => ReplicaView {
                    node: *node,
                    up,
                    role: None,
                    state: None,
                    term: 0,
                    commit: 0,
                    applied: 0,
                    lag: None,
                    digest: None,
                    records: None,
                    index_lag: None,
                    error: Some(if up { "no replica here" } else { "node down" }.into()),
                },
            }
        })
        .collect();
    GroupView {
        group,
        kind: group_kind(group),
        leader,
        term,
        commit,
        digests: digest_check(&statuses),
        replicas,
    }
}

fn replica_view(node: u64, r: &ReplicaStatus, group_commit: u64) -> ReplicaView {
    let running = r.state == ReplicaState::Running;
    ReplicaView {
        node,
        up: true,
        role: Some(r.role),
        state: Some(r.state),
        term: r.term,
        commit: r.commit,
        applied: r.applied,
        lag: running.then(|| group_commit.saturating_sub(r.applied)),
        digest: (!r.digest.is_empty()).then(|| r.digest.clone()),
        records: r.records,
        index_lag: r.index_lag,
        error: r.error.clone(),
    }
}

fn digest_check(statuses: &[&ReplicaStatus]) -> DigestCheck {
    let with_digest: Vec<&&ReplicaStatus> = statuses
        .iter()
        .filter(|r| r.state == ReplicaState::Running && !r.digest.is_empty())
        .collect();
    if with_digest.len() < 2 {
        return DigestCheck::Unknown;
    }
    let digests: BTreeSet<&str> = with_digest.iter().map(|r| r.digest.as_str()).collect();
    if digests.len() == 1 {
        return DigestCheck::Agree;
    }
    // Per applied index, every digest must be the same.
    let mut at_index: BTreeMap<u64, &str> = BTreeMap::new();
    for r in &with_digest {
        match at_index.insert(r.applied, &r.digest) {
            Some(other) if other != r.digest => return DigestCheck::Differ,
            _ => {}
        }
    }
    DigestCheck::CatchingUp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(
        group: u64,
        role: RaftRole,
        leader: u64,
        applied: u64,
        digest: &str,
    ) -> ReplicaStatus {
        let mut r = ReplicaStatus::idle(group, group_kind(group), ReplicaState::Running, None);
        r.role = role;
        r.term = 3;
        r.leader = Some(leader);
        r.commit = 10;
        r.applied = applied;
        r.digest = digest.into();
        r
    }

    fn node(id: u64, replicas: Vec<ReplicaStatus>) -> (u64, NodeAnswer) {
        (
            id,
            Ok(NodeStatus {
                node_id: id,
                replicas,
                blocked: vec![],
                dropped_messages: 0,
                sent_messages: 0,
                registered: Some(true),
            }),
        )
    }

    #[test]
    fn a_down_node_shows_in_its_row_and_in_its_groups() {
        let answers: BTreeMap<u64, NodeAnswer> = [
            node(1, vec![replica(1, RaftRole::Leader, 1, 10, "aa")]),
            node(3, vec![replica(1, RaftRole::Follower, 1, 7, "bb")]),
            (2, Err("node 2 unreachable: connection refused".into())),
        ]
        .into_iter()
        .collect();
        let addrs: Vec<(u64, String)> = (1..=3).map(|i| (i, format!("127.0.0.1:{i}"))).collect();
        let rows = nodes(&addrs, &answers);
        assert_eq!(
            rows.iter().map(|n| n.up).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(rows[0].leaders, 1);
        assert!(rows[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("refused")));

        let groups = groups(&[(1, vec![1, 2, 3])], &answers);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!((g.leader, g.term, g.commit), (Some(1), 3, 10));
        assert_eq!(g.kind, GroupKind::Shard);
        assert_eq!(g.digests, DigestCheck::CatchingUp);
        let down = &g.replicas[1];
        assert_eq!((down.node, down.up, down.role), (2, false, None));
        assert_eq!(g.replicas[2].lag, Some(3));
        assert_eq!(g.replicas[0].lag, Some(0));
    }

    #[test]
    fn digests_agree_catch_up_or_differ() {
        let check = |a: (u64, &str), b: (u64, &str)| {
            let r1 = replica(1, RaftRole::Leader, 1, a.0, a.1);
            let r2 = replica(1, RaftRole::Follower, 1, b.0, b.1);
            digest_check(&[&r1, &r2])
        };
        assert_eq!(check((10, "aa"), (10, "aa")), DigestCheck::Agree);
        assert_eq!(check((10, "aa"), (9, "bb")), DigestCheck::CatchingUp);
        assert_eq!(check((10, "aa"), (10, "bb")), DigestCheck::Differ);
        let lone = replica(1, RaftRole::Leader, 1, 10, "aa");
        assert_eq!(digest_check(&[&lone]), DigestCheck::Unknown);
    }

    #[test]
    fn replicas_outside_the_map_are_shown_and_missing_ones_say_so() {
        // Node 4 reports a replica the map does not list yet (being added); node 2
        // answered but hosts none (removed).
        let answers: BTreeMap<u64, NodeAnswer> = [
            node(1, vec![replica(0, RaftRole::Leader, 1, 10, "aa")]),
            node(2, vec![]),
            node(4, vec![replica(0, RaftRole::Follower, 1, 10, "aa")]),
        ]
        .into_iter()
        .collect();
        let groups = groups(&[(0, vec![1, 2])], &answers);
        let g = &groups[0];
        assert_eq!(g.kind, GroupKind::Metadata);
        assert_eq!(g.digests, DigestCheck::Agree);
        let nodes: Vec<u64> = g.replicas.iter().map(|r| r.node).collect();
        assert_eq!(nodes, [1, 2, 4]);
        assert_eq!(g.replicas[1].error.as_deref(), Some("no replica here"));
        assert!(g.replicas[1].up);
    }
}
