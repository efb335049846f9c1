//! WAL append throughput: one fsync per entry, group commit of 64 and 256 entries per
//! append, concurrent appenders coalesced by the WAL, and no-fsync baselines, for 1 KiB
//! and 16 KiB entries.
//!
//! With `--groups 3,30,300` it measures instead what a node's log writer is for: G Raft
//! groups, each a thread (as each replica's ready loop is) appending one round of
//! `--batch` entries with a hard state after another to its `RaftLogStorage`, and
//! compacting every 256 rounds, once with a WAL per group (every group fsyncs its own
//! file; `raft.log = "group"`) and once in the node-wide log per `--lanes` count
//! (`NodeLog`, default 4 lanes: concurrent rounds of a lane coalesced into one write and
//! one fsync, old segments freed by its collector).
//!
//! ```text
//! cargo run --release -p node --bin wal_bench -- [--dir DIR] [--secs S] [--threads N] [--payloads 1024,16384]
//! cargo run --release -p node --bin wal_bench -- --groups 3,30,300 [--lanes 1,4] [--batch 1] [--payloads 1024]
//! ```
//! Runs in a fresh directory under `--dir` (default `data/wal-bench`), removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::storage::wal::{Record, Wal};
use node::storage::{
    NodeLog, NodeLogOptions, RaftLogStorage, StorageError, SyncMode, WalOptions, WalStats,
};
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};

struct Args {
    dir: PathBuf,
    secs: f64,
    threads: usize,
    payloads: Vec<usize>,
    /// Group counts for the log-writer comparison; empty: the classic scenarios.
    groups: Vec<usize>,
    /// Lane counts of the node log rows (`--groups` only).
    lanes: Vec<usize>,
    /// Entries per round in the log-writer comparison.
    batch: usize,
}

fn parse_list(flag: &str, v: String) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{flag}: {e}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::from("data/wal-bench"),
        secs: 2.0,
        threads: 8,
        payloads: vec![1024, 16 * 1024],
        groups: Vec::new(),
        lanes: vec![NodeLogOptions::default().lanes],
        batch: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()?),
            "--secs" => args.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--payloads" => args.payloads = parse_list("--payloads", value()?)?,
            "--groups" => args.groups = parse_list("--groups", value()?)?,
            "--lanes" => args.lanes = parse_list("--lanes", value()?)?,
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "-h" | "--help" => {
                println!("wal_bench [--dir DIR] [--secs S] [--threads N] [--payloads 1024,16384]");
                println!("wal_bench --groups 3,30,300 [--lanes 1,4] [--batch N] [--dir DIR] [--secs S] [--payloads 1024]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    sync: SyncMode,
    /// Entries per append call.
    batch: usize,
    /// Concurrent appending threads.
    threads: usize,
    /// One WAL for all threads, or one each.
    layout: Layout,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Every thread appends to the same WAL (its group commit coalesces them).
    Shared,
    /// Every thread has a WAL of its own, in its own directory.
    PerThread,
    /// Every thread a group in one [`NodeLog`] of this many lanes.
    NodeLog(usize),
}

struct Outcome {
    entries: u64,
    appends: u64,
    elapsed: Duration,
    stats: WalStats,
}

/// Stop a run after this many payload bytes even if time remains (bounds disk use).
const MAX_BYTES_PER_RUN: u64 = 2 << 30;

fn run(dir: &Path, sc: Scenario, payload: usize, secs: f64) -> Result<Outcome, StorageError> {
    let _ = std::fs::remove_dir_all(dir);
    let opts = WalOptions {
        segment_bytes: 64 << 20,
        sync: sc.sync,
    };
    let wal_count = match sc.layout {
        Layout::PerThread => sc.threads,
        Layout::Shared | Layout::NodeLog(_) => 1,
    };
    let wals = (0..wal_count)
        .map(|i| {
            Ok(Arc::new(
                Wal::open(&dir.join(i.to_string()), opts, |_, _| Ok(()))?.0,
            ))
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    let template = template(payload);
    let stop = Arc::new(AtomicBool::new(false));
    let next_index = Arc::new(AtomicU64::new(1));
    let deadline = Duration::from_secs_f64(secs);
    let max_entries = MAX_BYTES_PER_RUN / payload as u64;
    let start = Instant::now();
    let workers: Vec<_> = (0..sc.threads)
        .map(|t| {
            let (wal, stop, next_index, template) = (
                wals[t % wals.len()].clone(),
                stop.clone(),
                next_index.clone(),
                template.clone(),
            );
            std::thread::spawn(move || -> Result<u64, StorageError> {
                let mut appends = 0;
                while !stop.load(Ordering::Relaxed) {
                    let first = next_index.fetch_add(sc.batch as u64, Ordering::Relaxed);
                    let entries: Vec<Entry> = (first..first + sc.batch as u64)
                        .map(|index| Entry {
                            index,
                            ..template.clone()
                        })
                        .collect();
                    wal.append(&[Record::Entries {
                        entries,
                        hard_state: None,
                    }])?;
                    appends += 1;
                    if start.elapsed() >= deadline || first >= max_entries {
                        stop.store(true, Ordering::Relaxed);
                    }
                    // Keep disk use bounded on long runs.
                    if appends % 64 == 0 && wal.segments().len() > 4 {
                        wal.purge_before(wal.active_segment())?;
                    }
                }
                Ok(appends)
            })
        })
        .collect();
    let appends = join_all(workers)?;
    let elapsed = start.elapsed();
    let stats = wals
        .iter()
        .map(|w| w.stats())
        .fold(WalStats::default(), WalStats::sum);
    drop(wals);
    let _ = std::fs::remove_dir_all(dir);
    Ok(Outcome {
        entries: appends * sc.batch as u64,
        appends,
        elapsed,
        stats,
    })
}

/// The entry every append clones: the payload (`Bytes`) is shared, not copied.
fn template(payload: usize) -> Entry {
    Entry {
        term: 1,
        data: vec![0x5a; payload].into(),
        ..Default::default()
    }
}

/// Waits for the bench threads; the sum of what they counted.
fn join_all(
    workers: Vec<std::thread::JoinHandle<Result<u64, StorageError>>>,
) -> Result<u64, StorageError> {
    let mut total = 0;
    for w in workers {
        total += w
            .join()
            .map_err(|_| StorageError::Poisoned("bench thread panicked".into()))??;
    }
    Ok(total)
}

/// Rounds between compactions of a group in the log-writer comparison.
const COMPACT_EVERY: u64 = 256;

/// The log-writer comparison: `sc.threads` groups, each appending rounds of `sc.batch`
/// entries with a hard state to its own `RaftLogStorage` ([`Layout::PerThread`]: a WAL
/// each) or in one [`NodeLog`] ([`Layout::NodeLog`], of that many lanes).
fn run_groups(
    dir: &Path,
    sc: Scenario,
    payload: usize,
    secs: f64,
) -> Result<Outcome, StorageError> {
    let _ = std::fs::remove_dir_all(dir);
    let wal = WalOptions {
        segment_bytes: 64 << 20,
        sync: sc.sync,
    };
    let node_log = match sc.layout {
        Layout::NodeLog(lanes) => Some(NodeLog::open(
            &dir.join("node"),
            NodeLogOptions {
                wal,
                lanes,
                ..Default::default()
            },
        )?),
        Layout::PerThread | Layout::Shared => None,
    };
    let groups = (1..=sc.threads as u64)
        .map(|g| match &node_log {
            Some(log) => RaftLogStorage::open_in(log, g),
            None => RaftLogStorage::open(&dir.join(g.to_string()), wal),
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    let template = template(payload);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let deadline = Duration::from_secs_f64(secs);
    let max_entries = MAX_BYTES_PER_RUN / payload as u64;
    let batch = sc.batch as u64;
    let start = Instant::now();
    let workers: Vec<_> = groups
        .iter()
        .cloned()
        .map(|storage| {
            let (stop, written, template) = (stop.clone(), written.clone(), template.clone());
            std::thread::spawn(move || -> Result<u64, StorageError> {
                let mut rounds = 0;
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let entries: Vec<Entry> = (last + 1..=last + batch)
                        .map(|index| Entry {
                            index,
                            ..template.clone()
                        })
                        .collect();
                    last += batch;
                    let hs = HardState {
                        term: 1,
                        vote: 1,
                        commit: last,
                        ..Default::default()
                    };
                    storage.append(&entries, Some(&hs))?;
                    rounds += 1;
                    if rounds % COMPACT_EVERY == 0 {
                        let mut meta = SnapshotMetadata {
                            index: last,
                            term: 1,
                            ..Default::default()
                        };
                        meta.set_conf_state(ConfState::default());
                        storage.compact(&meta)?;
                    }
                    let total = written.fetch_add(batch, Ordering::Relaxed) + batch;
                    if start.elapsed() >= deadline || total >= max_entries {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                Ok(rounds)
            })
        })
        .collect();
    let appends = join_all(workers)?;
    let elapsed = start.elapsed();
    let stats = match &node_log {
        Some(log) => log.stats(),
        None => groups
            .iter()
            .map(|g| g.wal_stats())
            .fold(WalStats::default(), WalStats::sum),
    };
    drop(groups);
    drop(node_log);
    let _ = std::fs::remove_dir_all(dir);
    Ok(Outcome {
        entries: appends * batch,
        appends,
        elapsed,
        stats,
    })
}

/// The classic single-WAL scenarios.
fn classic_scenarios(threads: usize) -> Vec<Scenario> {
    let one = |name, sync, batch| Scenario {
        name,
        sync,
        batch,
        threads: 1,
        layout: Layout::Shared,
    };
    vec![
        one("fsync per entry", SyncMode::Fsync, 1),
        one("group commit, batch 64", SyncMode::Fsync, 64),
        one("group commit, batch 256", SyncMode::Fsync, 256),
        Scenario {
            threads,
            ..one("concurrent appenders, 1 entry each", SyncMode::Fsync, 1)
        },
        one("no fsync (baseline), batch 1", SyncMode::NoSync, 1),
        one("no fsync (baseline), batch 64", SyncMode::NoSync, 64),
    ]
}

/// The log-writer comparison: per group count, a WAL per group against the node log with
/// each of `lanes` lane counts.
fn group_scenarios(groups: &[usize], batch: usize, lanes: &[usize]) -> Vec<Scenario> {
    let layouts: Vec<Layout> = std::iter::once(Layout::PerThread)
        .chain(lanes.iter().map(|&n| Layout::NodeLog(n)))
        .collect();
    groups
        .iter()
        .flat_map(|&g| {
            layouts.iter().map(move |&layout| Scenario {
                name: "",
                sync: SyncMode::Fsync,
                batch,
                threads: g,
                layout,
            })
        })
        .collect()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wal_bench: {e}");
            std::process::exit(2);
        }
    };
    let root = args.dir.join(format!("run-{}", std::process::id()));
    let scenarios = if args.groups.is_empty() {
        classic_scenarios(args.threads)
    } else {
        group_scenarios(&args.groups, args.batch, &args.lanes)
    };
    println!(
        "WAL append throughput in {} ({} s per row, 64 MiB segments)",
        root.display(),
        args.secs
    );
    println!(
        "{:>8}  {:<38} {:>12} {:>10} {:>14} {:>10} {:>12}",
        "payload", "scenario", "entries/s", "MB/s", "entries/fsync", "fsyncs", "us/append"
    );
    for &payload in &args.payloads {
        for &sc in &scenarios {
            let name = if let Layout::NodeLog(lanes) = sc.layout {
                format!("{} groups, node log, {lanes} lanes", sc.threads)
            } else if !args.groups.is_empty() {
                format!("{} groups, WAL per group", sc.threads)
            } else if sc.threads > 1 {
                format!("{} ({} threads)", sc.name, sc.threads)
            } else {
                sc.name.to_string()
            };
            let outcome = if args.groups.is_empty() {
                run(&root.join("wal"), sc, payload, args.secs)
            } else {
                run_groups(&root.join("wal"), sc, payload, args.secs)
            };
            match outcome {
                Ok(o) => {
                    let secs = o.elapsed.as_secs_f64();
                    let per_fsync = if o.stats.fsyncs == 0 {
                        "-".to_string()
                    } else {
                        format!("{:.1}", o.entries as f64 / o.stats.fsyncs as f64)
                    };
                    println!(
                        "{:>7}K  {:<38} {:>12.0} {:>10.1} {:>14} {:>10} {:>12.1}",
                        payload / 1024,
                        name,
                        o.entries as f64 / secs,
                        (o.entries * payload as u64) as f64 / secs / 1e6,
                        per_fsync,
                        o.stats.fsyncs,
                        secs * 1e6 * sc.threads as f64 / o.appends as f64,
                    );
                }
                Err(e) => println!("{:>7}K  {:<38} failed: {e}", payload / 1024, name),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
