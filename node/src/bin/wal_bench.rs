//! WAL append throughput: one fsync per entry, group commit of 64 and 256 entries per
//! append, concurrent appenders coalesced by the WAL, and no-fsync baselines, for 1 KiB
//! and 16 KiB entries.
//!
//! ```text
//! cargo run --release -p node --bin wal_bench -- [--dir DIR] [--secs S] [--threads N] [--payloads 1024,16384]
//! ```
//! Runs in a fresh directory under `--dir` (default `data/wal-bench`), removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::storage::wal::{Record, Wal};
use node::storage::{StorageError, SyncMode, WalOptions, WalStats};
use raft::prelude::Entry;

struct Args {
    dir: PathBuf,
    secs: f64,
    threads: usize,
    payloads: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::from("data/wal-bench"),
        secs: 2.0,
        threads: 8,
        payloads: vec![1024, 16 * 1024],
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
            "--payloads" => {
                args.payloads = value()?
                    .split(',')
                    .map(|p| p.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--payloads: {e}"))?
            }
            "-h" | "--help" => {
                println!("wal_bench [--dir DIR] [--secs S] [--threads N] [--payloads 1024,16384]");
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
    let (wal, _) = Wal::open(dir, opts, |_, _| Ok(()))?;
    let wal = Arc::new(wal);
    // Entries are cloned from a template: the payload (`Bytes`) is shared, not copied.
    let template = Entry {
        term: 1,
        data: vec![0x5a; payload].into(),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let next_index = Arc::new(AtomicU64::new(1));
    let deadline = Duration::from_secs_f64(secs);
    let max_entries = MAX_BYTES_PER_RUN / payload as u64;
    let start = Instant::now();
    let workers: Vec<_> = (0..sc.threads)
        .map(|_| {
            let (wal, stop, next_index, template) = (
                wal.clone(),
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
    let mut appends = 0;
    for w in workers {
        appends += w
            .join()
            .map_err(|_| StorageError::Poisoned("bench thread panicked".into()))??;
    }
    let elapsed = start.elapsed();
    let stats = wal.stats();
    drop(wal);
    let _ = std::fs::remove_dir_all(dir);
    Ok(Outcome {
        entries: appends * sc.batch as u64,
        appends,
        elapsed,
        stats,
    })
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
    let scenarios = [
        Scenario {
            name: "fsync per entry",
            sync: SyncMode::Fsync,
            batch: 1,
            threads: 1,
        },
        Scenario {
            name: "group commit, batch 64",
            sync: SyncMode::Fsync,
            batch: 64,
            threads: 1,
        },
        Scenario {
            name: "group commit, batch 256",
            sync: SyncMode::Fsync,
            batch: 256,
            threads: 1,
        },
        Scenario {
            name: "concurrent appenders, 1 entry each",
            sync: SyncMode::Fsync,
            batch: 1,
            threads: args.threads,
        },
        Scenario {
            name: "no fsync (baseline), batch 1",
            sync: SyncMode::NoSync,
            batch: 1,
            threads: 1,
        },
        Scenario {
            name: "no fsync (baseline), batch 64",
            sync: SyncMode::NoSync,
            batch: 64,
            threads: 1,
        },
    ];
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
        for sc in scenarios {
            let name = if sc.threads > 1 {
                format!("{} ({} threads)", sc.name, sc.threads)
            } else {
                sc.name.to_string()
            };
            match run(&root.join("wal"), sc, payload, args.secs) {
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
