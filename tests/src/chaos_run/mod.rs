//! One chaos run: a real cluster ([`Cluster`]), the [`workload`]'s clients
//! through one or more routers, the [`nemesis`] injecting faults from a
//! seeded schedule, then the heal, the final reads, the replicas'
//! convergence, and the [`checker`] over the recorded history. The driver
//! binary (`scripts/chaos`) and the CI scenarios (`tests/tests/checker.rs`)
//! both call [`run`].
//!
//! Output, in `out`: `history.jsonl` (written as the run goes),
//! `summary.txt` (the summary [`run`] also prints), `summary.json` (the
//! same, machine-readable, with every fault window's failover time and
//! unavailable seconds: [`report::RunReport`]), `history.png` (latency and
//! throughput over time, fault windows shaded, failed and unknown
//! operations marked); when the run found anomalies, `log-tails.txt` and
//! every process's whole log in `logs/`.

pub mod aggregate;
mod plot;
pub mod report;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::checker::{self, Anomaly};
use crate::cluster::{Cluster, ClusterOptions, RouterOptions};
use crate::history::{Event, FaultWindow, History, Recorder};
use crate::nemesis::FaultKind;
use crate::workload::{self, Target};

pub use summary::Summary;

/// The router's request deadline in chaos clusters.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// What a client waits beyond the router's deadline before it calls the
/// request unknown (scheduling on two shared cores).
const CLIENT_SLACK: Duration = Duration::from_secs(5);
/// Elections after the heal; the final reads' patience.
const LONG: Duration = Duration::from_secs(60);
/// Catch-up of every replica after the run.
const CONVERGE: Duration = Duration::from_secs(120);
/// `raft.snapshot_interval_entries`: low, so snapshots and log compaction
/// (and snapshot installs on restarted nodes) happen within a run.
const SNAPSHOT_EVERY: u64 = 200;
/// `raft.entry_cache_bytes`: none, so a leader catching up a follower that a
/// fault left behind reads every applied entry it sends back from its WAL, under
/// the faults (with a few KiB, the chaos workload's small entries all fit).
const ENTRY_CACHE_BYTES: u64 = 0;
/// Quiet seconds before the first fault and after the last.
const QUIET: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    /// How long faults are injected (the run takes the cluster start, two
    /// quiet seconds each side, the heal and the checks more).
    pub secs: u64,
    pub nodes: usize,
    pub routers: usize,
    pub faults: Vec<FaultKind>,
    pub clients: u32,
    pub keys: u32,
    /// Where history.jsonl, summary.txt and history.png go.
    pub out: PathBuf,
    /// The linearizability search's budget per id.
    pub budget: usize,
}

impl RunConfig {
    /// Defaults: 3 nodes, 1 router, every fault, 12 clients on 12 ids.
    pub fn new(seed: u64, secs: u64, out: PathBuf) -> RunConfig {
        RunConfig {
            seed,
            secs,
            nodes: 3,
            routers: 1,
            faults: FaultKind::available(),
            clients: 12,
            keys: 12,
            out,
            budget: checker::DEFAULT_BUDGET,
        }
    }
}

/// A failed task's panic message (the harness asserts; a failed heal is a
/// finding).
fn panic_text(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        crate::checks::panic_text(e.into_panic())
    } else {
        format!("task failed: {e}")
    }
}

fn finding(check: &'static str, message: String) -> Anomaly {
    Anomaly {
        check,
        id: None,
        message,
        ops: Vec::new(),
    }
}

/// Injects faults from `kinds` until `until`, one at a time, recording each
/// window; every group must have a leader again after each heal. Returns the
/// number of faults and the heals' findings (a group not back at its full
/// voter set after a membership fault).
async fn nemesis(
    cluster: Arc<Cluster>,
    kinds: Vec<FaultKind>,
    seed: u64,
    until: Instant,
    rec: Recorder,
) -> (usize, Vec<Anomaly>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17);
    let mut count = 0;
    let mut findings = Vec::new();
    tokio::time::sleep(QUIET).await;
    while Instant::now() < until && !kinds.is_empty() {
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let hold = kind.hold(&mut rng);
        let start_ns = rec.now_ns();
        let mut active = kind.start(&cluster, &mut rng).await;
        let in_place_ns = rec.now_ns();
        eprintln!(
            "[{:>7.1}s] fault {} ({}) for {hold:?}",
            start_ns as f64 / 1e9,
            kind.name(),
            active.detail
        );
        count += 1;
        tokio::time::sleep(hold).await;
        let before = active.detail.clone();
        let healed_at = |rec: &Recorder| rec.now_ns() as f64 / 1e9;
        match active.stop(&cluster).await {
            Err(e) => {
                eprintln!("[{:>7.1}s] heal of {}: {e}", healed_at(&rec), kind.name());
                findings.push(finding("membership", e));
            }
            Ok(()) if active.detail != before => {
                eprintln!("[{:>7.1}s] healed: {}", healed_at(&rec), active.detail);
            }
            Ok(()) => {}
        }
        rec.record(Event::Fault(FaultWindow {
            name: kind.name().to_string(),
            detail: active.detail.clone(),
            start_ns,
            in_place_ns: Some(in_place_ns),
            end_ns: Some(rec.now_ns()),
        }));
        cluster.wait_all_leaders(LONG).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2500))).await;
    }
    (count, findings)
}

/// Runs the cluster, the workload and the faults, then checks the history.
/// Prints progress and the summary to stderr/stdout; the summary's last
/// line is `N operations, M faults, K anomalies`.
/// Prints and writes (`entries_read_back.txt`) how many Raft entries the running
/// nodes read back from their WALs, and how many read backs failed: evidence that
/// the catch-ups of the run went through that path ([`ENTRY_CACHE_BYTES`]).
async fn report_entries_read_back(cluster: &Cluster, out: &Path) {
    const NAME: &str = "vdb_raft_entries_read_back_total";
    let (mut read, mut failed, mut silent) = (0.0, 0.0, Vec::new());
    for id in cluster.running() {
        match cluster.node_metrics(id).await {
            Some(m) => {
                read += m.sum(NAME, &[("outcome", "read")]);
                failed += m.sum(NAME, &[("outcome", "failed")]);
            }
            None => silent.push(id),
        }
    }
    let line = format!(
        "raft entries read back from a WAL: {read} read, {failed} failed \
         (running nodes without an answer: {silent:?})\n"
    );
    eprint!("{line}");
    if let Err(e) = std::fs::write(out.join("entries_read_back.txt"), line) {
        eprintln!("entries_read_back.txt: {e}");
    }
}

pub async fn run(cfg: &RunConfig) -> Summary {
    std::fs::create_dir_all(&cfg.out).expect("output dir");
    let history_path = cfg.out.join("history.jsonl");
    let rec = Recorder::create(Some(&history_path)).expect("history file");
    eprintln!(
        "chaos: seed {} for {} s, {} nodes, {} routers, {} clients on {} ids, faults {:?}; out {}",
        cfg.seed,
        cfg.secs,
        cfg.nodes,
        cfg.routers,
        cfg.clients,
        cfg.keys,
        cfg.faults.iter().map(|k| k.name()).collect::<Vec<_>>(),
        cfg.out.display()
    );
    let router = RouterOptions {
        add_existing: Some("reject"),
        ..RouterOptions::default()
    };
    let netns = cfg.faults.iter().any(|k| k.needs_netns());
    if netns {
        if let Some(why) = crate::faults::netns::available() {
            panic!("the net-* faults need network namespaces, unavailable here: {why}");
        }
    }
    let mut node_program = ClusterOptions::default().node_program;
    if cfg.faults.iter().any(|k| k.needs_power_loss_mode()) {
        node_program = crate::faults::power::power_loss_program(node_program);
    }
    // The placement driver is on only for runs with its fault, and paused
    // outside that fault's windows (the other membership faults move replicas
    // themselves). On the node-wide log, `corrupt` ends in a wiped node the
    // driver rebuilds.
    let node_log = ClusterOptions::default().raft_log.as_deref() == Some("node");
    let driver = cfg.faults.iter().any(|&k| {
        k.needs_placement_driver() || (node_log && k == crate::nemesis::FaultKind::Corrupt)
    });
    let placement = driver.then_some(common::config::PlacementSection {
        enabled: true,
        tick_ms: 300,
        down_after_secs: 3600,
        move_interval_ms: 200,
    });
    let cluster = Arc::new(
        Cluster::start(ClusterOptions {
            netns,
            node_program,
            placement,
            nodes: cfg.nodes,
            request_timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
            snapshot_interval_entries: Some(SNAPSHOT_EVERY),
            entry_cache_bytes: Some(ENTRY_CACHE_BYTES),
            routers: vec![router; cfg.routers.max(1)],
            ..ClusterOptions::default()
        })
        .await,
    );
    if driver {
        let paused = crate::nemesis::pause_placement(
            &cluster,
            true,
            Instant::now() + Duration::from_secs(30),
        )
        .await;
        assert!(paused, "the placement driver could not be paused");
    }
    let collection = cluster.client(0).new_collection("chaos", json!({})).await;
    let target = Target {
        collection,
        keys: cfg.keys,
        recorder: rec.clone(),
    };
    let http: Vec<_> = (0..cluster.router_count())
        .map(|r| cluster.client_with_timeout(r, REQUEST_TIMEOUT + CLIENT_SLACK))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..cfg.clients {
        let r = c as usize % http.len();
        clients.push(tokio::spawn(workload::run_client(
            c,
            r as u32,
            http[r].clone(),
            target.clone(),
            stop.clone(),
            cfg.seed.wrapping_add(c as u64 + 1),
        )));
    }
    let started = Instant::now();
    let until = started + QUIET + Duration::from_secs(cfg.secs);
    let faults = tokio::spawn(nemesis(
        cluster.clone(),
        cfg.faults.clone(),
        cfg.seed,
        until,
        rec.clone(),
    ));
    let mut anomalies = Vec::new();
    let fault_count = match faults.await {
        Ok((n, findings)) => {
            anomalies.extend(findings);
            n
        }
        Err(e) => {
            anomalies.push(finding(
                "availability",
                format!("fault injection or heal failed: {}", panic_text(e)),
            ));
            0
        }
    };
    tokio::time::sleep(QUIET).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        if let Err(e) = c.await {
            anomalies.push(finding("client", panic_text(e)));
        }
    }

    // Heal everything (a failed fault task may have left one in place).
    let healed = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            for id in cluster.ids() {
                if !cluster.is_running(id) {
                    cluster.spawn_node(id);
                }
            }
            for id in cluster.ids() {
                if !cluster.running().contains(&id) {
                    cluster.pause_node(id, false);
                }
                cluster.wait_node_up(id, LONG).await;
            }
            cluster.heal().await;
            cluster.wait_all_leaders(LONG).await;
        })
        .await
    };
    if let Err(e) = healed {
        anomalies.push(finding("availability", format!("heal: {}", panic_text(e))));
    }
    // Membership faults must leave every group at its full voter set.
    for problem in
        crate::faults::members::voter_set_problems(&cluster, crate::faults::members::Placed::Kept)
            .await
    {
        anomalies.push(finding("membership", problem));
    }
    if !workload::final_reads(&http, &target, LONG).await {
        anomalies.push(finding(
            "availability",
            format!("a final read got no answer but errors for {LONG:?} after the heal"),
        ));
    }
    let converged = {
        let cluster = cluster.clone();
        tokio::spawn(async move { cluster.wait_converged(CONVERGE).await }).await
    };
    if let Err(e) = converged {
        anomalies.push(finding("convergence", panic_text(e)));
    }
    report_entries_read_back(&cluster, &cfg.out).await;
    for (id, status) in cluster.exited() {
        anomalies.push(finding(
            "crash",
            format!("node {id} exited on its own: {status}"),
        ));
    }

    let history = rec.snapshot();
    let report = checker::check(&history, cfg.budget);
    anomalies.extend(report.anomalies.iter().cloned());
    let summary = Summary::new(cfg, &history, fault_count, anomalies, &report);
    let text = summary.render(&history);
    if let Err(e) = std::fs::write(cfg.out.join("summary.txt"), &text) {
        eprintln!("summary.txt: {e}");
    }
    let json = report::RunReport::new(
        cfg,
        &history,
        fault_count,
        &summary.anomalies,
        &summary.inconclusive,
    );
    match serde_json::to_vec_pretty(&json) {
        Ok(bytes) => {
            if let Err(e) = std::fs::write(cfg.out.join("summary.json"), bytes) {
                eprintln!("summary.json: {e}");
            }
        }
        Err(e) => eprintln!("summary.json: {e}"),
    }
    if let Err(e) = plot::draw(&history, &cfg.out.join("history.png")) {
        eprintln!("history.png: {e}");
    }
    if !summary.anomalies.is_empty() {
        // The logs are the other half of a finding: keep them (the cluster's
        // directory goes with it), whole in DIR/logs/, their tails together.
        let logs = cluster.log_tails(200);
        let _ = std::fs::write(cfg.out.join("log-tails.txt"), logs);
        keep_logs(&cluster, &cfg.out.join("logs"));
    }
    print!("{text}");
    summary
}

/// Copies every node's and router's log into `dir`.
fn keep_logs(cluster: &Cluster, dir: &std::path::Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("{}: {e}", dir.display());
        return;
    }
    let nodes = cluster
        .ids()
        .into_iter()
        .map(|id| (cluster.node_log(id), format!("node-{id}.log")));
    let routers =
        (0..cluster.router_count()).map(|i| (cluster.router_log(i), format!("router-{i}.log")));
    for (from, name) in nodes.chain(routers) {
        if let Err(e) = std::fs::copy(&from, dir.join(&name)) {
            eprintln!("{}: {e}", from.display());
        }
    }
}

/// Re-checks a saved history (`chaos --check FILE`).
pub fn check_file(
    path: &std::path::Path,
    budget: usize,
) -> Result<(History, checker::Report), String> {
    let history = History::load(path).map_err(|e| e.to_string())?;
    let report = checker::check(&history, budget);
    Ok((history, report))
}
