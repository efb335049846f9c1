//! Membership changes as faults (issue 12): one replica of a shard group
//! replaced by a fresh, empty one on the same node, through the nodes' admin
//! API only (`node/src/api/members.rs`), while clients keep writing and,
//! for the combined faults, while a partition or a leader kill is in place.
//!
//! A replacement ([`replace_replica`]) is, in order, each step retried until
//! the deadline (a node down or cut off answers nothing; a group without a
//! leader takes none of the changes):
//! 1. `Remove(node)` on the group's leader (a leader asked to remove itself
//!    hands its leadership over first), answered once applied;
//! 2. `DELETE /admin/replicas/{group}` on the node: the old replica stops and
//!    its data is deleted (a 404 means it already removed itself), then a wait
//!    until its directory is gone from the node's data dir;
//! 3. ([`Rejoin::JoinedAt`]) a leadership transfer until the group's term is
//!    past every term the old replica could have sent a message in;
//! 4. `AddLearner(node)`, answered with the index of the change;
//! 5. `POST /admin/replicas` on the node with `joined_at` = that index: an
//!    empty replica, without a configuration, that does not vote, and to which
//!    every configuration before its addition is history; the leader sends it
//!    a snapshot or the log;
//! 6. `Promote(node)`, accepted once the learner has caught up;
//! 7. a wait until the new replica itself runs with the full voter set.
//!
//! At the end the group has its full voter set again, each voter with a
//! running replica, which [`voter_set_problems`] checks for every group
//! (Raft ids are node ids).
//!
//! The waits work around findings of these faults (NOTES-chaoslong.md), all
//! from one Raft id serving two incarnations of a replica on a node:
//! - step 2's: the old replica's data is deleted by its apply thread after
//!   the replica is gone from the node's table; a replica created meanwhile
//!   in the same directory had its files deleted under it (lost at the next
//!   restart: "holds no Raft log");
//! - step 5's `joined_at`: a new replica that catches up from a log (or a
//!   snapshot) older than its own removal replays its earlier incarnation's
//!   configurations: a member, then removed, and destroys itself on that old
//!   removal while the leader counts it (`Promote` then makes a dead voter).
//!   [`Rejoin::ByLog`] creates the replica first, without `joined_at`, and
//!   skips step 3, to show it (`member-rejoin-log`). Until it reaches that
//!   index the replica takes its leader's messages whatever the history's
//!   configuration says, and neither votes nor campaigns; and a leader sends
//!   it only a snapshot after its last removal (long-tier run s19b, seed
//!   1033: a snapshot from the node's earlier membership made it refuse its
//!   leader for good; `node/tests/membership.rs`);
//! - step 3's term: append responses the old replica sent in the removal's
//!   term, arriving after `AddLearner`, are credited to the new one: the
//!   leader believes it holds entries it never received, takes its
//!   rejections as stale and its heartbeats carry a commit index past the
//!   new replica's log, which refuses them; it never catches up. In a newer
//!   term such responses are dropped as stale.

use std::time::{Duration, Instant};

use common::wire::{MemberChange, ReplicaState, ReplicaStatus};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::Cluster;

/// Pause between attempts of a step.
const RETRY: Duration = Duration::from_millis(200);

/// How the new replica may catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {
    /// The placement driver's way: a leadership transfer until the group's
    /// term is past every term the old replica could have sent in, then
    /// `AddLearner` first and the replica created with `joined_at` = the
    /// index of that addition, so that the configurations before it (its own
    /// earlier removal) are history to it, whatever log or snapshot it gets.
    /// (The earlier way, a wait for a snapshot taken after the removal on
    /// every voter, never finished on a group with too little traffic to
    /// take one: long-tier run s19, seed 1010.)
    JoinedAt,
    /// Added back at once, the leader's log possibly still holding the
    /// removal: shows the finding.
    ByLog,
}

/// Replaces `node`'s replica of `group` by an empty one (see the module
/// docs); `Ok` says how the new replica caught up. `Err` names the step that
/// did not finish before `deadline`, or a refusal.
pub async fn replace_replica(
    cluster: &Cluster,
    group: u64,
    node: u64,
    rejoin: Rejoin,
    deadline: Instant,
) -> Result<String, String> {
    let mut voters = cluster.replicas_of(group);
    voters.sort_unstable();
    cluster
        .try_change_members(group, &[MemberChange::Remove(node)], deadline)
        .await?;
    // The removal is applied on the leader that answered: its index is at
    // most the highest applied index now.
    let (removed_at, _) = highest_applied(cluster, group).await;
    let path = format!("/admin/replicas/{group}");
    admin_until(cluster, node, Method::DELETE, &path, json!({}), deadline).await?;
    wait_dir_gone(cluster, group, node, deadline).await?;
    // The old replica is gone: every message it sent carries a term at most
    // the highest term now.
    let (_, old_term) = highest_applied(cluster, group).await;
    match rejoin {
        Rejoin::JoinedAt => {
            new_term(cluster, group, node, old_term, deadline).await?;
            let added = cluster
                .try_change_members(group, &[MemberChange::AddLearner(node)], deadline)
                .await?;
            let joined_at = added.index.unwrap_or(removed_at);
            let create = json!({ "group": group, "joined_at": joined_at });
            create_replica(cluster, node, create, deadline).await?;
        }
        Rejoin::ByLog => {
            create_replica(cluster, node, json!({ "group": group }), deadline).await?;
            cluster
                .try_change_members(group, &[MemberChange::AddLearner(node)], deadline)
                .await?;
        }
    }
    let reply = cluster
        .try_change_members(group, &[MemberChange::Promote(node)], deadline)
        .await?;
    let mut now = reply.voters.clone();
    now.sort_unstable();
    if now != voters || !reply.learners.is_empty() {
        return Err(format!(
            "group {group} after replacing node {node}'s replica: voters {now:?}, \
             learners {:?}; expected voters {voters:?}",
            reply.learners
        ));
    }
    let snapshot = wait_member(cluster, group, node, &voters, deadline).await?;
    Ok(if snapshot > 0 {
        format!("caught up from a snapshot at index {snapshot}")
    } else {
        "caught up from the log".to_string()
    })
}

/// The highest index of `group` any running replica has applied, and the
/// highest term any reports.
async fn highest_applied(cluster: &Cluster, group: u64) -> (u64, u64) {
    let (mut index, mut term) = (0, 0);
    for id in cluster.running() {
        if let Some(r) = cluster.replica(id, group).await {
            index = index.max(r.applied);
            term = term.max(r.term);
        }
    }
    (index, term)
}

/// Waits until `node`'s directory of `group` is gone (its old replica's data
/// deleted).
async fn wait_dir_gone(
    cluster: &Cluster,
    group: u64,
    node: u64,
    deadline: Instant,
) -> Result<(), String> {
    let dir = cluster
        .config
        .node_data_dir(node)
        .join(format!("group-{group}"));
    while dir.exists() {
        if Instant::now() >= deadline {
            return Err(format!("{} still there in time", dir.display()));
        }
        tokio::time::sleep(RETRY).await;
    }
    Ok(())
}

/// The leader of `group` among the running nodes, and its status.
async fn leader_status(cluster: &Cluster, group: u64) -> Option<(u64, ReplicaStatus)> {
    let leader = cluster.find_leader(group, &cluster.running()).await?;
    Some((leader, cluster.replica(leader, group).await?))
}

/// Moves the leadership of `group` to another voter (never `node`) until
/// its leader's term is past `term`.
async fn new_term(
    cluster: &Cluster,
    group: u64,
    node: u64,
    term: u64,
    deadline: Instant,
) -> Result<(), String> {
    let mut seen = None;
    while Instant::now() < deadline {
        if let Some((leader, r)) = leader_status(cluster, group).await {
            if r.term > term {
                return Ok(());
            }
            seen = Some((leader, r.term));
            if let Some(&to) = r.voters.iter().find(|&&v| v != leader && v != node) {
                let body = json!({ "group": group, "to": to });
                let path = "/admin/transfer-leader";
                // Refused or lost: the next round asks again.
                let _ = cluster
                    .admin_json(leader, Method::POST, path, Some(&body))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "group {group}: no leader in a term past {term} in time; last seen (leader, term) {seen:?}"
    ))
}

/// Waits until `node`'s replica of `group` runs and reports `voters` (it
/// has applied its promotion); returns its snapshot index. A replica that
/// disappears once created destroyed itself: the finding of the module docs.
async fn wait_member(
    cluster: &Cluster,
    group: u64,
    node: u64,
    voters: &[u64],
    deadline: Instant,
) -> Result<u64, String> {
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(status) = cluster.status(node).await {
            let Some(r) = status.replicas.into_iter().find(|r| r.group == group) else {
                return Err(format!(
                    "node {node}'s new replica of group {group} is gone (it destroyed itself) \
                     although the group counts it as a voter"
                ));
            };
            let mut now = r.voters.clone();
            now.sort_unstable();
            if r.state == ReplicaState::Running && now == voters {
                return Ok(r.snapshot_index);
            }
            last = Some(r);
        }
        tokio::time::sleep(RETRY).await;
    }
    Err(format!(
        "node {node}'s new replica of group {group} does not run with voters {voters:?} in time: {last:?}"
    ))
}

/// `POST /admin/replicas` on `node` with `body`, retried until `deadline`.
async fn create_replica(
    cluster: &Cluster,
    node: u64,
    body: serde_json::Value,
    deadline: Instant,
) -> Result<(), String> {
    admin_until(
        cluster,
        node,
        Method::POST,
        "/admin/replicas",
        body,
        deadline,
    )
    .await
}

/// One admin request to `node`, retried while the node does not answer, or
/// answers 409 (a leader refuses to delete its own replica: it is about to
/// learn it was removed) or 503, until `deadline`. A 404 counts as done for a
/// DELETE (the replica removed itself when it applied its removal).
async fn admin_until(
    cluster: &Cluster,
    node: u64,
    method: Method,
    path: &str,
    body: serde_json::Value,
    deadline: Instant,
) -> Result<(), String> {
    let mut last = None;
    while Instant::now() < deadline {
        let answer = cluster
            .admin_json(node, method.clone(), path, Some(&body))
            .await;
        match &answer {
            Some((s, _)) if s.is_success() => return Ok(()),
            Some((StatusCode::NOT_FOUND, _)) if method == Method::DELETE => return Ok(()),
            Some((StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE, _)) | None => {
                tokio::time::sleep(RETRY).await;
            }
            Some(_) => return Err(format!("{method} {path} on node {node}: {answer:?}")),
        }
        last = answer;
    }
    Err(format!(
        "{method} {path} on node {node} not done in time: last answer {last:?}"
    ))
}

/// Which voters a group must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Exactly the nodes [`Cluster::replicas_of`] names (replacements by hand
    /// put the new replica on the node that lost one).
    Kept,
    /// As many as [`Cluster::replicas_of`] names, on any nodes: the placement
    /// driver may rebuild a lost replica on another node than the one that
    /// lost it (the least loaded). A group found complete elsewhere is
    /// recorded there ([`Cluster::record_replicas`]) for the later checks.
    ByDriver,
}

/// Every group whose leader does not report its full voter set (`placed`; no
/// learner, no joint configuration), that has no leader, or one of whose
/// voters has no running replica, as one line each; empty when every group is
/// at full size. Call it on a healed cluster with every node running.
pub async fn voter_set_problems(cluster: &Cluster, placed: Placed) -> Vec<String> {
    let mut problems = Vec::new();
    let running = cluster.running();
    for group in cluster.groups() {
        let found_before = problems.len();
        let mut expected = cluster.replicas_of(group);
        expected.sort_unstable();
        let Some(leader) = cluster.find_leader(group, &running).await else {
            problems.push(format!("group {group}: no leader to ask for its voters"));
            continue;
        };
        let Some(r) = cluster.replica(leader, group).await else {
            problems.push(format!("group {group}: leader {leader} did not answer"));
            continue;
        };
        let mut voters = r.voters.clone();
        voters.sort_unstable();
        if placed == Placed::ByDriver && voters.len() == expected.len() && voters != expected {
            expected = voters.clone();
        }
        if voters != expected || !r.learners.is_empty() || !r.voters_outgoing.is_empty() {
            problems.push(format!(
                "group {group} (leader {leader}): voters {voters:?}, learners {:?}, \
                 outgoing {:?}; expected voters {expected:?}",
                r.learners, r.voters_outgoing
            ));
        }
        for &id in &expected {
            match cluster.replica(id, group).await {
                Some(r) if r.state == ReplicaState::Running => {}
                Some(r) => problems.push(format!(
                    "group {group}: voter {id}'s replica is {:?}: {:?}",
                    r.state, r.error
                )),
                None => problems.push(format!(
                    "group {group}: voter {id} has no replica of it (or does not answer)"
                )),
            }
        }
        if placed == Placed::ByDriver && problems.len() == found_before {
            cluster.record_replicas(group, voters);
        }
    }
    problems
}
