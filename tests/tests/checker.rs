//! The CI tier of the chaos checker (issue 12): short seeded runs of the
//! chaos driver (`tests::chaos_run`, also behind `scripts/chaos`) on real
//! node and router processes, each with its recorded history checked for
//! per-record linearizability, lost writes, phantoms, deleted ids in
//! queries, count bounds and replica convergence. Every run must end with
//! 0 anomalies, having injected faults and completed operations.
//! Scenarios: kill -9 + restart and majority pauses on 3 nodes; minority
//! and leader partitions through 2 routers; pauses and leader transfers on
//! 5 nodes; shard replicas replaced (alone, during a partition, during a
//! leader kill) on 3 nodes, every group back at its full voter set.
//!
//! `CHAOS_SEED` replaces the fixed seeds; a failed run's output directory
//! (history.jsonl, summary.txt, history.png, log tails) is kept and named.
//! Long runs: `scripts/chaos --secs 120 ...`.

use tests::chaos_run::{run, RunConfig};
use tests::nemesis::FaultKind;

/// Seconds of faults per scenario (each run takes ~15 s more: start,
/// quiet periods, heal, convergence, check).
const SECS: u64 = 25;

fn seed(default: u64) -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

async fn scenario(seed: u64, nodes: usize, routers: usize, faults: &[FaultKind]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = RunConfig {
        nodes,
        routers,
        faults: faults.to_vec(),
        ..RunConfig::new(seed, SECS, dir.path().to_path_buf())
    };
    let summary = run(&cfg).await;
    let png = dir.path().join("history.png");
    let ok = summary.anomalies.is_empty()
        && summary.faults > 0
        && summary.operations > 200
        && png.is_file();
    if !ok {
        let kept = dir.keep();
        panic!(
            "seed {seed}: {} anomalies, {} faults, {} operations, plot written: {}; output kept in {}",
            summary.anomalies.len(),
            summary.faults,
            summary.operations,
            png.is_file(),
            kept.display()
        );
    }
}

/// kill -9 and restart, and pauses of a majority: requests time out with
/// unknown outcomes whose proposals may commit after the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_majority_pauses_three_nodes() {
    let faults = [FaultKind::Kill, FaultKind::PauseMajority];
    scenario(seed(12_001), 3, 1, &faults).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_through_two_routers() {
    let faults = [FaultKind::PartitionMinority, FaultKind::PartitionLeader];
    scenario(seed(12_002), 3, 2, &faults).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_and_leader_transfers_five_nodes() {
    let faults = [FaultKind::Pause, FaultKind::LeaderTransfer];
    scenario(seed(12_003), 5, 1, &faults).await;
}

/// Membership changes as faults: a shard group's replica removed, destroyed,
/// created empty on the same node, re-added and promoted, alone, while a
/// partition is in place, and while the group's leader is killed; the run
/// reports a group not back at its full voter set as an anomaly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_replaced_during_partitions_and_kills_three_nodes() {
    let faults = [
        FaultKind::MemberReplace,
        FaultKind::MemberDuringPartition,
        FaultKind::MemberDuringKill,
    ];
    scenario(seed(12_004), 3, 1, &faults).await;
}
