//! The faults a chaos run injects, one at a time, each with a name, a start
//! and a stop (heal); the driver records every window in the history.
//!
//! A new kind of fault is one more [`FaultKind`] variant: its name and help
//! line in [`FaultKind::ALL`] / [`FaultKind::help`], what it does in
//! [`FaultKind::start`] and how it heals in [`ActiveFault::stop`]. The
//! driver's `--faults` list, schedule and report pick it up from there.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::Cluster;

/// How long a restarted node may take to answer again (log replay,
/// snapshot load on a loaded machine).
const RESTART_PATIENCE: Duration = Duration::from_secs(60);

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
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::PauseMajority,
        FaultKind::PartitionMinority,
        FaultKind::PartitionLeader,
        FaultKind::LeaderTransfer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::PauseMajority => "pause-majority",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::LeaderTransfer => "leader-transfer",
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
        }
    }

    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A comma-separated list of names (`all` = every kind).
    pub fn parse_list(list: &str) -> Result<Vec<FaultKind>, String> {
        if list == "all" {
            return Ok(FaultKind::ALL.to_vec());
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
            FaultKind::LeaderTransfer => Duration::ZERO,
            FaultKind::PauseMajority => Duration::from_millis(rng.gen_range(2000..8000)),
            _ if rng.gen_bool(0.2) => Duration::from_millis(rng.gen_range(5000..9000)),
            _ => Duration::from_millis(rng.gen_range(300..4000)),
        }
    }

    /// Injects the fault on nodes chosen with `rng`.
    pub async fn start(self, cluster: &Cluster, rng: &mut StdRng) -> ActiveFault {
        let ids = cluster.ids();
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
        }
    }
}

/// A fault in place, and what its heal needs.
#[derive(Debug, Clone)]
pub struct ActiveFault {
    pub kind: FaultKind,
    pub nodes: Vec<u64>,
    pub detail: String,
}

impl ActiveFault {
    /// Heals the fault.
    pub async fn stop(&self, cluster: &Cluster) {
        match self.kind {
            FaultKind::Kill => {
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
            FaultKind::PartitionMinority | FaultKind::PartitionLeader => cluster.heal().await,
            FaultKind::LeaderTransfer => {}
        }
    }
}
