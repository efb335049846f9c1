//! The faults a chaos run injects, one at a time, each with a name, a start
//! and a stop (heal); the driver records every window in the history.
//!
//! A new kind of fault is one more [`FaultKind`] variant: its name and help
//! line in [`FaultKind::ALL`] / [`FaultKind::help`], what it does in
//! [`FaultKind::start`] and how it heals in [`ActiveFault::stop`]. The
//! driver's `--faults` list, schedule and report pick it up from there.
//!
//! The membership faults (`member-*`) replace one replica of a shard group
//! ([`crate::faults::members`]) in a task that runs through the fault's
//! window; the heal waits for it, so every group is back at its full voter
//! set when the window closes (or the heal reports why not).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use common::config::RaftLogLayout;
use common::wire::ReplicaState;

use crate::cluster::Cluster;
use crate::faults::members::{replace_replica, Placed, Rejoin};
use crate::faults::{FaultError, Netem};

/// A network fault that cannot be set or cleared leaves the run meaningless:
/// stop it loudly (the driver checked at the start that namespaces work).
fn net(result: Result<(), FaultError>) {
    if let Err(e) = result {
        panic!("network fault: {e}");
    }
}

/// How long a restarted node may take to answer again (log replay,
/// snapshot load on a loaded machine).
const RESTART_PATIENCE: Duration = Duration::from_secs(60);

/// How long a replica replacement may take from the fault's start, the
/// partition or the kill held and healed in between (a snapshot to send,
/// elections, a loaded machine).
const REPLACE_PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// kill -9 of a random node, restarted at the heal.
    Kill,
    /// SIGSTOP of a random node, SIGCONT at the heal.
    Pause,
    /// SIGSTOP of a majority of the nodes, sparing the leader of a random
    /// group, SIGCONT at the heal: requests time out (unknown outcomes)
    /// while their proposals wait in that leader's log, and may commit after
    /// the heal.
    PauseMajority,
    /// A random minority of the nodes cut off from the rest (the nodes'
    /// transport filter: Raft traffic only, routers still reach every node).
    PartitionMinority,
    /// The leader of a random group cut off alone: the majority elects a new
    /// leader while the old one may still believe it leads.
    PartitionLeader,
    /// The leader of a random shard group hands its leadership to another
    /// replica, under load (an instant fault: no heal).
    LeaderTransfer,
    /// Real partition (nodes in network namespaces, nftables): a random
    /// minority, or the leader of a random group alone, cut off from the other
    /// nodes; routers still reach every node.
    NetPartition,
    /// Jepsen's bridge: the other nodes in two halves that cannot reach each
    /// other, a random node reaching both.
    NetBridge,
    /// One node's packets to another dropped, the other way open.
    NetOneWay,
    /// One router cannot reach one node (both up, everyone else unaffected).
    NetRouterCut,
    /// 30 % of a random node's outgoing packets dropped.
    NetLoss,
    /// Every Raft message a random node sends held 50-600 ms (the transport
    /// filter's delay: this kernel has no `netem` qdisc for `tc netem delay`;
    /// router traffic is not delayed).
    Delay,
    /// Power loss of a random node: SIGKILL with every write it had not
    /// fsynced gone (nodes run in the lose-unsynced storage mode); restarted
    /// at the heal.
    PowerCut,
    /// A follower's replica of a random shard group removed from the group
    /// and destroyed, an empty one created on the same node, added as a
    /// learner, caught up (by snapshot), promoted; the window lasts the
    /// whole replacement.
    MemberReplace,
    /// A random node killed, its data directory deleted, restarted as a new
    /// incarnation; the placement driver (otherwise paused in chaos runs) is
    /// resumed for the window and must remove the node's lost replicas and
    /// rebuild them, under load; the window lasts until every group is back
    /// at its full voter set, then the driver is paused again.
    DriverWipe,
    /// A replacement (as `member-replace`) started while a partition
    /// (transport filter) is in place: the replaced node alone, the group's
    /// leader alone, or a random minority; it completes after the heal.
    MemberDuringPartition,
    /// A replacement started, then the group's leader killed (-9) while it
    /// runs; the leader is restarted at the heal and the replacement
    /// completes.
    MemberDuringKill,
    /// `member-replace` with the new replica added back at once, the
    /// leader's log possibly still holding its removal: shows the finding
    /// in [`crate::faults::members`] (a replica re-created with the same
    /// Raft id replays its earlier incarnation's removal and destroys
    /// itself). Not in `all` until that is fixed.
    MemberRejoinLog,
    /// Mid-log corruption of one replica: a follower of a random shard group
    /// killed, bytes flipped in the middle of its WAL for that group,
    /// restarted; its WAL recovery must refuse the log (the replica fails,
    /// serving nothing) while the group goes on. Then the operator's repair:
    /// the failed replica deleted and replaced as in `member-replace`; the
    /// window lasts until the group is whole again.
    Corrupt,
}

impl FaultKind {
    pub const ALL: [FaultKind; 19] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::PauseMajority,
        FaultKind::PartitionMinority,
        FaultKind::PartitionLeader,
        FaultKind::LeaderTransfer,
        FaultKind::NetPartition,
        FaultKind::NetBridge,
        FaultKind::NetOneWay,
        FaultKind::NetRouterCut,
        FaultKind::NetLoss,
        FaultKind::Delay,
        FaultKind::PowerCut,
        FaultKind::MemberReplace,
        FaultKind::MemberDuringPartition,
        FaultKind::MemberDuringKill,
        FaultKind::MemberRejoinLog,
        FaultKind::Corrupt,
        FaultKind::DriverWipe,
    ];

    /// Whether the fault needs the nodes and routers in network namespaces
    /// (`ClusterOptions::netns`: root, `ip`, `nft`).
    pub fn needs_netns(self) -> bool {
        matches!(
            self,
            FaultKind::NetPartition
                | FaultKind::NetBridge
                | FaultKind::NetOneWay
                | FaultKind::NetRouterCut
                | FaultKind::NetLoss
        )
    }

    /// Whether the run needs the placement driver on (paused outside this
    /// fault's windows).
    pub fn needs_placement_driver(self) -> bool {
        self == FaultKind::DriverWipe
    }

    /// Whether the nodes must run in the lose-unsynced storage mode.
    pub fn needs_power_loss_mode(self) -> bool {
        self == FaultKind::PowerCut
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::PauseMajority => "pause-majority",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::LeaderTransfer => "leader-transfer",
            FaultKind::NetPartition => "net-partition",
            FaultKind::NetBridge => "net-bridge",
            FaultKind::NetOneWay => "net-one-way",
            FaultKind::NetRouterCut => "net-router-cut",
            FaultKind::NetLoss => "net-loss",
            FaultKind::Delay => "delay",
            FaultKind::PowerCut => "power-cut",
            FaultKind::MemberReplace => "member-replace",
            FaultKind::MemberDuringPartition => "member-during-partition",
            FaultKind::MemberDuringKill => "member-during-kill",
            FaultKind::MemberRejoinLog => "member-rejoin-log",
            FaultKind::Corrupt => "corrupt",
            FaultKind::DriverWipe => "driver-wipe",
        }
    }

    /// One line for `--help`.
    pub fn help(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill -9 of a random node, restarted at the heal",
            FaultKind::Pause => "SIGSTOP of a random node, SIGCONT at the heal",
            FaultKind::PauseMajority => {
                "SIGSTOP of a majority of nodes (a group leader spared): requests time out"
            }
            FaultKind::PartitionMinority => {
                "a random minority of nodes cut off (transport filter, Raft traffic)"
            }
            FaultKind::PartitionLeader => "the leader of a random group cut off alone",
            FaultKind::LeaderTransfer => "a shard leader hands its leadership to another replica",
            FaultKind::NetPartition => {
                "netns + nftables: a minority, or a group leader alone, cut off (root)"
            }
            FaultKind::NetBridge => "netns: two halves that only one node joins (root)",
            FaultKind::NetOneWay => "netns: one node's packets to another dropped (root)",
            FaultKind::NetRouterCut => "netns: one router cannot reach one node (root)",
            FaultKind::NetLoss => "netns: 30 % of one node's packets dropped (root)",
            FaultKind::Delay => "every raft message of a random node held 50-600 ms",
            FaultKind::PowerCut => "SIGKILL losing every unsynced write (lose-unsynced mode)",
            FaultKind::MemberReplace => {
                "a shard follower's replica removed, recreated empty, re-added, promoted"
            }
            FaultKind::MemberDuringPartition => {
                "member-replace while a partition (transport filter) is in place"
            }
            FaultKind::MemberDuringKill => "member-replace while the group's leader is killed",
            FaultKind::MemberRejoinLog => {
                "member-replace re-adding at once (known finding; not in `all`)"
            }
            FaultKind::Corrupt => {
                "bytes flipped mid-WAL of a follower's replica; it must fail; then replaced"
            }
            FaultKind::DriverWipe => {
                "a node's data wiped and restarted; the placement driver rebuilds its replicas"
            }
        }
    }

    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind this machine can run: the net-* faults only where network
    /// namespaces work (root, `ip`, `nft`); without `member-rejoin-log`,
    /// which shows a known finding (named explicitly, it runs).
    pub fn available() -> Vec<FaultKind> {
        let netns = crate::faults::netns::available().is_none();
        FaultKind::ALL
            .into_iter()
            .filter(|k| netns || !k.needs_netns())
            .filter(|k| *k != FaultKind::MemberRejoinLog)
            .collect()
    }

    /// A comma-separated list of names (`all` = every kind this machine can run).
    pub fn parse_list(list: &str) -> Result<Vec<FaultKind>, String> {
        if list == "all" {
            return Ok(FaultKind::available());
        }
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                FaultKind::parse(s.trim()).ok_or_else(|| {
                    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    format!("unknown fault {s:?}; known: {}", names.join(", "))
                })
            })
            .collect()
    }

    /// How long the fault is held before the heal: sometimes shorter than
    /// an election timeout (nobody notices), mostly longer, and one time in
    /// five longer than the router's 5 s request deadline, so that requests
    /// end with unknown outcomes while their proposals may still commit.
    pub fn hold(self, rng: &mut StdRng) -> Duration {
        match self {
            // The window is the replacement itself: the heal waits for it.
            FaultKind::LeaderTransfer
            | FaultKind::MemberReplace
            | FaultKind::MemberRejoinLog
            | FaultKind::Corrupt
            | FaultKind::DriverWipe => Duration::ZERO,
            FaultKind::PauseMajority => Duration::from_millis(rng.gen_range(2000..8000)),
            _ if rng.gen_bool(0.2) => Duration::from_millis(rng.gen_range(5000..9000)),
            _ => Duration::from_millis(rng.gen_range(300..4000)),
        }
    }

    /// Injects the fault on nodes chosen with `rng`.
    pub async fn start(self, cluster: &Arc<Cluster>, rng: &mut StdRng) -> ActiveFault {
        let ids = cluster.ids();
        let mut replacement = None;
        let any = *ids.choose(rng).expect("a cluster has nodes");
        let (nodes, detail) = match self {
            FaultKind::Kill => {
                cluster.kill_node(any);
                (vec![any], format!("node {any}"))
            }
            FaultKind::Pause => {
                cluster.pause_node(any, true);
                (vec![any], format!("node {any}"))
            }
            FaultKind::PauseMajority => {
                let group = *cluster.groups().choose(rng).expect("groups");
                let spared = cluster
                    .find_leader(group, &cluster.running())
                    .await
                    .unwrap_or(any);
                let others: Vec<u64> = ids.iter().copied().filter(|n| *n != spared).collect();
                let paused: Vec<u64> = others
                    .choose_multiple(rng, ids.len() / 2 + 1)
                    .copied()
                    .collect();
                for &n in &paused {
                    cluster.pause_node(n, true);
                }
                (
                    paused.clone(),
                    format!("nodes {paused:?} (node {spared}, leader of group {group}, spared)"),
                )
            }
            FaultKind::PartitionMinority => {
                let side: Vec<u64> = ids
                    .choose_multiple(rng, (ids.len() - 1) / 2)
                    .copied()
                    .collect();
                cluster.partition(&side).await;
                (side.clone(), format!("nodes {side:?} cut off"))
            }
            FaultKind::PartitionLeader => {
                let group = *cluster.groups().choose(rng).expect("groups");
                let leader = cluster
                    .find_leader(group, &cluster.running())
                    .await
                    .unwrap_or(any);
                cluster.partition(&[leader]).await;
                (
                    vec![leader],
                    format!("node {leader} (leader of group {group}) cut off"),
                )
            }
            FaultKind::Delay => {
                let ms = rng.gen_range(50..600);
                cluster.delay(any, ms).await;
                (
                    vec![any],
                    format!("node {any}'s raft messages held {ms} ms"),
                )
            }
            FaultKind::PowerCut => {
                cluster.power_cut(any);
                (vec![any], format!("node {any}"))
            }
            FaultKind::NetPartition => {
                let side: Vec<u64> = if rng.gen_bool(0.5) {
                    let group = *cluster.groups().choose(rng).expect("groups");
                    vec![cluster
                        .find_leader(group, &cluster.running())
                        .await
                        .unwrap_or(any)]
                } else {
                    ids.choose_multiple(rng, (ids.len() - 1) / 2)
                        .copied()
                        .collect()
                };
                net(cluster.net().partition(&[&side]));
                (side.clone(), format!("nodes {side:?} cut off (nftables)"))
            }
            FaultKind::NetBridge => {
                net(cluster.net().bridge(any));
                (vec![any], format!("node {any} bridges two halves"))
            }
            FaultKind::NetOneWay => {
                let others: Vec<u64> = ids.iter().copied().filter(|n| *n != any).collect();
                let to = *others.choose(rng).expect("a cluster has two nodes");
                net(cluster.net().one_way(any, to));
                (vec![any, to], format!("node {any} -> node {to} dropped"))
            }
            FaultKind::NetRouterCut => {
                let router = rng.gen_range(0..cluster.router_count());
                net(cluster.net().cut_router(router, any));
                (
                    vec![any],
                    format!("router {router} cannot reach node {any}"),
                )
            }
            FaultKind::NetLoss => {
                let loss = Netem {
                    loss_percent: 30.0,
                    ..Netem::default()
                };
                net(cluster.net().netem(any, loss));
                (vec![any], format!("30 % of node {any}'s packets dropped"))
            }
            FaultKind::MemberReplace | FaultKind::MemberRejoinLog => {
                let (group, node, leader) = replace_target(cluster, rng).await;
                let rejoin = if self == FaultKind::MemberRejoinLog {
                    Rejoin::ByLog
                } else {
                    Rejoin::JoinedAt
                };
                replacement = Some(Replacement::start(cluster, group, node, rejoin));
                (
                    Vec::new(),
                    format!("group {group}: node {node}'s replica replaced (leader {leader:?})"),
                )
            }
            FaultKind::MemberDuringPartition => {
                let (group, node, leader) = replace_target(cluster, rng).await;
                let side: Vec<u64> = match (rng.gen_range(0..3), leader) {
                    (0, _) | (1, None) => vec![node],
                    (1, Some(l)) => vec![l],
                    _ => ids
                        .choose_multiple(rng, (ids.len() - 1) / 2)
                        .copied()
                        .collect(),
                };
                cluster.partition(&side).await;
                replacement = Some(Replacement::start(cluster, group, node, Rejoin::JoinedAt));
                (
                    side.clone(),
                    format!(
                        "group {group}: node {node}'s replica replaced while nodes {side:?} \
                         are cut off (leader {leader:?})"
                    ),
                )
            }
            FaultKind::MemberDuringKill => {
                let (group, node, _) = replace_target(cluster, rng).await;
                replacement = Some(Replacement::start(cluster, group, node, Rejoin::JoinedAt));
                // Into the replacement: the removal, the creation or the
                // catch-up, depending on the machine's speed.
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1500))).await;
                let victim = cluster
                    .find_leader(group, &cluster.running())
                    .await
                    .unwrap_or(node);
                cluster.kill_node(victim);
                (
                    vec![victim],
                    format!(
                        "group {group}: node {node}'s replica replaced, \
                         leader node {victim} killed during it"
                    ),
                )
            }
            FaultKind::Corrupt if cluster.config.raft.log == RaftLogLayout::Node => {
                // Every replica of the node is in the damaged log: the node must
                // refuse to start; the repair is its data directory's, rebuilt by
                // the placement driver (as after `driver-wipe`).
                let (group, node, _) = replace_target(cluster, rng).await;
                let outcome = corrupt_node_log(cluster, group, node).await;
                replacement = Some(Replacement::by_driver(cluster, node));
                (vec![node], format!("node {node}'s node log {outcome}"))
            }
            FaultKind::Corrupt => {
                let (group, node, leader) = replace_target(cluster, rng).await;
                let outcome = corrupt_replica(cluster, group, node).await;
                replacement = Some(Replacement::start(cluster, group, node, Rejoin::JoinedAt));
                (
                    vec![node],
                    format!("group {group}: node {node}'s WAL {outcome} (leader {leader:?})"),
                )
            }
            FaultKind::DriverWipe => {
                cluster.kill_node(any);
                let dir = cluster.config.node_data_dir(any);
                let wiped = std::fs::remove_dir_all(&dir);
                cluster.spawn_node(any);
                replacement = Some(Replacement::by_driver(cluster, any));
                (
                    vec![any],
                    format!("node {any}'s data directory wiped ({wiped:?}), restarted"),
                )
            }
            FaultKind::LeaderTransfer => {
                let group = *cluster.shard_groups().choose(rng).expect("shard groups");
                match cluster.find_leader(group, &cluster.running()).await {
                    Some(leader) => {
                        let others: Vec<u64> = cluster
                            .replicas_of(group)
                            .into_iter()
                            .filter(|n| *n != leader)
                            .collect();
                        let to = *others.choose(rng).expect("a group has other replicas");
                        cluster.transfer_leader(leader, group, to).await;
                        (
                            vec![leader, to],
                            format!("group {group}: node {leader} -> node {to}"),
                        )
                    }
                    None => (Vec::new(), format!("group {group} had no leader to move")),
                }
            }
        };
        ActiveFault {
            kind: self,
            nodes,
            detail,
            replacement,
        }
    }
}

/// A random shard group, the node whose replica a membership fault
/// replaces (a follower when the group has a leader), and the leader.
async fn replace_target(cluster: &Cluster, rng: &mut StdRng) -> (u64, u64, Option<u64>) {
    let group = *cluster.shard_groups().choose(rng).expect("shard groups");
    let leader = cluster.find_leader(group, &cluster.running()).await;
    let followers: Vec<u64> = cluster
        .replicas_of(group)
        .into_iter()
        .filter(|n| Some(*n) != leader)
        .collect();
    let node = *followers.choose(rng).expect("a group has followers");
    (group, node, leader)
}

/// Kills `node`, flips bytes mid-way through its WAL of `group`, restarts
/// it and says what became of the replica. A replica that still runs on a
/// damaged log is not an anomaly by itself (the bytes may lie in a segment
/// recovery no longer reads, behind a snapshot), but whatever it then serves
/// goes through the run's history and digest checks.
async fn corrupt_replica(cluster: &Cluster, group: u64, node: u64) -> String {
    cluster.kill_node(node);
    let corrupted = cluster.corrupt_wal(node, group);
    cluster.spawn_node(node);
    cluster.wait_node_up(node, RESTART_PATIENCE).await;
    let at = match corrupted {
        Ok(c) => format!(
            "corrupted at {}+{} ({} segments)",
            c.file.display(),
            c.offset,
            c.segments
        ),
        Err(e) => return format!("not corrupted ({e})"),
    };
    match cluster.replica(node, group).await {
        Some(r) if r.state == ReplicaState::Failed => {
            format!(
                "{at}: replica failed as it must ({})",
                r.error.unwrap_or_default()
            )
        }
        Some(r) => format!(
            "{at}: replica {:?} (damage outside the log it reads)",
            r.state
        ),
        None => format!("{at}: no status from the node"),
    }
}

/// With `raft.log = "node"`: kills `node`, flips bytes mid-way through its
/// node log, restarts it, and waits for it to refuse to start (a node that
/// runs on a damaged log panics the run); then wipes its data directory and
/// starts it empty, for the placement driver to rebuild its replicas.
async fn corrupt_node_log(cluster: &Cluster, group: u64, node: u64) -> String {
    cluster.kill_node(node);
    let corrupted = cluster.corrupt_wal(node, group);
    cluster.spawn_node(node);
    let at = match &corrupted {
        Ok(c) => format!("corrupted at {}+{}", c.file.display(), c.offset),
        Err(e) => format!("not corrupted ({e})"),
    };
    if corrupted.is_ok() {
        // A node still running on its damaged log panics the run here.
        let status = cluster.wait_node_exit(node, RESTART_PATIENCE).await;
        assert!(
            !status.success(),
            "node {node} exited cleanly on a damaged log ({at})"
        );
    }
    cluster.kill_node(node);
    let wiped = std::fs::remove_dir_all(cluster.config.node_data_dir(node));
    cluster.spawn_node(node);
    format!("{at}: the node refused to start; data directory wiped ({wiped:?}), restarted")
}

/// A replica replacement running in the background.
#[derive(Debug)]
pub struct Replacement {
    /// What it replaces, for its error.
    what: String,
    task: tokio::task::JoinHandle<Result<String, String>>,
}

/// Pauses (`true`) or resumes the placement driver through any running
/// node, trying until one accepts or `deadline`.
pub async fn pause_placement(cluster: &Cluster, paused: bool, deadline: Instant) -> bool {
    let body = serde_json::json!({ "paused": paused });
    while Instant::now() < deadline {
        for id in cluster.running() {
            let answer = cluster
                .admin_json(id, reqwest::Method::POST, "/admin/placement", Some(&body))
                .await;
            if answer.is_some_and(|(s, _)| s.is_success()) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

impl Replacement {
    fn start(cluster: &Arc<Cluster>, group: u64, node: u64, rejoin: Rejoin) -> Replacement {
        let cluster = cluster.clone();
        let deadline = Instant::now() + REPLACE_PATIENCE;
        let task =
            tokio::spawn(
                async move { replace_replica(&cluster, group, node, rejoin, deadline).await },
            );
        Replacement {
            what: format!(
                "group {group} not back at full size after replacing node {node}'s replica"
            ),
            task,
        }
    }

    /// The placement driver, resumed, rebuilds the replicas wiped node `node`
    /// lost; done when every group is at its full voter set again (then the
    /// driver is paused again, also on failure).
    fn by_driver(cluster: &Arc<Cluster>, node: u64) -> Replacement {
        let cluster = cluster.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let deadline = started + REPLACE_PATIENCE;
            if !pause_placement(&cluster, false, deadline).await {
                return Err("the placement driver could not be resumed".to_owned());
            }
            let mut problems = Vec::new();
            while Instant::now() < deadline {
                problems =
                    crate::faults::members::voter_set_problems(&cluster, Placed::ByDriver).await;
                if problems.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let paused = pause_placement(&cluster, true, Instant::now() + RESTART_PATIENCE).await;
            match (problems.is_empty(), paused) {
                (true, true) => Ok(format!(
                    "the placement driver rebuilt node {node}'s replicas in {:.1} s",
                    started.elapsed().as_secs_f64()
                )),
                (true, false) => Err("the placement driver could not be paused again".to_owned()),
                (false, _) => Err(problems.join("; ")),
            }
        });
        Replacement {
            what: format!("node {node}'s wiped replicas not rebuilt by the placement driver"),
            task,
        }
    }

    /// Waits for the replacement: how the new replica caught up, or why the
    /// group is not back at its full voter set.
    async fn finish(self) -> Result<String, String> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(format!("replacement task: {e}")),
        }
    }
}

/// A fault in place, and what its heal needs.
#[derive(Debug)]
pub struct ActiveFault {
    pub kind: FaultKind,
    pub nodes: Vec<u64>,
    pub detail: String,
    /// The membership faults' replacement, waited for at the heal.
    pub replacement: Option<Replacement>,
}

impl ActiveFault {
    /// Heals the fault. A membership fault's heal then waits for its
    /// replacement; `Err` says why a group is not back at its full voter
    /// set (the driver reports it as an anomaly). The replacement's outcome
    /// is added to `detail`.
    pub async fn stop(&mut self, cluster: &Cluster) -> Result<(), String> {
        self.heal(cluster).await;
        let Some(r) = self.replacement.take() else {
            return Ok(());
        };
        let what = r.what.clone();
        match r.finish().await {
            Ok(how) => {
                self.detail += &format!("; {how}");
                Ok(())
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    async fn heal(&self, cluster: &Cluster) {
        match self.kind {
            FaultKind::Kill | FaultKind::PowerCut | FaultKind::MemberDuringKill => {
                for &n in &self.nodes {
                    cluster.spawn_node(n);
                }
                for &n in &self.nodes {
                    cluster.wait_node_up(n, RESTART_PATIENCE).await;
                }
            }
            FaultKind::Pause | FaultKind::PauseMajority => {
                for &n in &self.nodes {
                    cluster.pause_node(n, false);
                }
            }
            FaultKind::PartitionMinority
            | FaultKind::PartitionLeader
            | FaultKind::Delay
            | FaultKind::MemberDuringPartition => cluster.heal().await,
            FaultKind::LeaderTransfer
            | FaultKind::MemberReplace
            | FaultKind::MemberRejoinLog
            | FaultKind::Corrupt
            | FaultKind::DriverWipe => {}
            FaultKind::NetPartition
            | FaultKind::NetBridge
            | FaultKind::NetOneWay
            | FaultKind::NetRouterCut
            | FaultKind::NetLoss => net(cluster.net().heal()),
        }
    }
}
