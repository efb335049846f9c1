//! Benchmark of one shard state machine (release build):
//! insert throughput, query latency p50/p99 and recall@10 (plain and
//! filtered), brute-force scan speed as the reference, snapshot write/restore;
//! with `--sweep`, unfiltered queries at each ef_search, and with `--data-out` /
//! `--results-out` the files `scripts/hnswlib_bench.py` compares hnswlib against.
//!
//! `cargo run --release -p node --example shard_bench -- --n 100000 --dim 128`
//! (`scripts/bench-shard` runs it). An example, not a binary of the node package: its
//! data (`tests::vectors`) is test support, kept out of the production library.

use std::time::{Duration, Instant};

use clap::Parser;
use common::command::{AddMode, IndexConfig, MetadataPatch, Proposal, RecordWrite, ShardCommand};
use common::read::{Include, QueryRequest};
use common::{Filter, MetadataValue, Space};
use node::raft::StateMachine;
use node::shard::snapshot::{read_snapshot, write_snapshot};
use node::shard::{AppliedPosition, ShardStateMachine};
use tests::vectors::{brute_force_top_k, recall, Mixture};

#[derive(Parser)]
struct Args {
    /// Records to insert.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Queries to time.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Records per add command.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value = "l2")]
    space: String,
    /// Standard deviation of points around their cluster centre (centres are N(0, 1)).
    #[arg(long, default_value_t = 0.5)]
    spread: f32,
    /// Where the snapshot is written.
    #[arg(long, default_value = "data/bench")]
    dir: std::path::PathBuf,
    /// ef_search values to sweep (unfiltered queries) after the default run,
    /// e.g. `16,32,64,128`; empty for none.
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<usize>,
    /// Writes the data, queries and exact top-k (see `write_dataset`) here,
    /// so another engine (scripts/hnswlib_bench.py) runs on the very same data.
    #[arg(long)]
    data_out: Option<std::path::PathBuf>,
    /// Writes the build rate and each sweep point as JSON lines here.
    #[arg(long)]
    results_out: Option<std::path::PathBuf>,
}

const COLLECTION: &str = "bench";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn bucket_metadata(i: usize) -> MetadataPatch {
    // bucket % 100 == 0 selects 1% of records; parity selects 50%.
    [
        (
            "bucket".to_owned(),
            Some(MetadataValue::Int((i % 100) as i64)),
        ),
        (
            "even".to_owned(),
            Some(MetadataValue::Bool(i.is_multiple_of(2))),
        ),
    ]
    .into_iter()
    .collect()
}

struct QueryStats {
    p50: Duration,
    p99: Duration,
    qps: f64,
    recall: f64,
}

fn run_queries(
    sm: &ShardStateMachine,
    queries: &[Vec<f32>],
    k: usize,
    filter: &Filter,
    truth: impl Fn(&[f32]) -> Vec<usize>,
) -> QueryStats {
    let mut lat = Vec::with_capacity(queries.len());
    let mut total_recall = 0.0;
    for q in queries {
        let req = QueryRequest {
            collection: COLLECTION.into(),
            embeddings: vec![q.clone()],
            n_results: k,
            ids: None,
            filter: filter.clone(),
            include: Include::default(),
        };
        let t = Instant::now();
        let hits = match sm.query(&req) {
            Ok(mut h) => h.pop().unwrap_or_default(),
            Err(e) => panic!("query failed: {e}"),
        };
        lat.push(t.elapsed());
        let got: Vec<usize> = hits
            .iter()
            .filter_map(|h| h.record.id.parse().ok())
            .collect();
        total_recall += recall(&got, &truth(q));
    }
    lat.sort();
    QueryStats {
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        // Throughput of the queries alone (the recall oracle is not timed).
        qps: queries.len() as f64 / lat.iter().sum::<Duration>().as_secs_f64(),
        recall: total_recall / queries.len() as f64,
    }
}

/// Prints the resident memory grown over `phase`, per record and against the raw vectors.
fn print_memory_growth(phase: &str, before: Option<u64>, after: Option<u64>, args: &Args) {
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    let grown = after.saturating_sub(before) as f64;
    let per_record = grown / args.n as f64;
    println!(
        "{:<36} {:>9.0} bytes/record  ({:.1}x the {} raw vector bytes; {:.0} MB)",
        format!("memory (RSS growth over the {phase})"),
        per_record,
        per_record / (args.dim * 4) as f64,
        args.dim * 4,
        grown / 1e6
    );
}

/// Resident memory after returning the heap's free pages to the system.
fn resident_after_trim() -> Option<u64> {
    // SAFETY: malloc_trim only releases free memory of glibc's allocator.
    unsafe { libc::malloc_trim(0) };
    common::metrics::resident_memory_bytes()
}

/// Little-endian file read by scripts/hnswlib_bench.py: `u32` n, queries,
/// dim, k; then n x dim data `f32`, queries x dim `f32`, queries x k `u32`
/// indices of the exact top-k.
fn write_dataset(
    path: &std::path::Path,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    truths: &[Vec<usize>],
    dim: usize,
    k: usize,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in [data.len(), queries.len(), dim, k] {
        out.write_all(&(x as u32).to_le_bytes())?;
    }
    for x in data.iter().chain(queries).flatten() {
        out.write_all(&x.to_le_bytes())?;
    }
    for t in truths {
        // A short truth (k > n) is padded with u32::MAX, which matches nothing.
        for j in 0..k {
            let i = t.get(j).map_or(u32::MAX, |&i| i as u32);
            out.write_all(&i.to_le_bytes())?;
        }
    }
    out.flush()
}

fn print_query(label: &str, s: &QueryStats) {
    println!(
        "{label:<34} p50 {:>8.3} ms  p99 {:>8.3} ms  {:>8.0} q/s  recall@k {:.4}",
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.qps,
        s.recall
    );
}

fn main() {
    let args = Args::parse();
    let space = match Space::parse(&args.space) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!(
        "shard_bench: n={} dim={} k={} space={} batch={} spread={} (100 gaussian clusters)",
        args.n, args.dim, args.k, args.space, args.batch, args.spread
    );
    // Queries come from the same mixture as the data, as real queries do.
    let mut mixture = Mixture::new(args.dim, 100, args.spread, 1);
    let data = mixture.samples(args.n);
    let queries = mixture.samples(args.queries);
    let rss_before = common::metrics::resident_memory_bytes();

    let mut sm = ShardStateMachine::new();
    let mut index = 0u64;
    let mut apply = |sm: &mut ShardStateMachine, command: ShardCommand| {
        index += 1;
        sm.apply(
            AppliedPosition { index, term: 1 },
            0,
            &Proposal {
                request_id: index as u128,
                deadline_ms: 0,
                command,
            },
        )
    };
    let config = IndexConfig {
        space,
        ..IndexConfig::default()
    };
    apply(
        &mut sm,
        ShardCommand::CreateCollection {
            collection: COLLECTION.into(),
            config: config.clone(),
        },
    );

    let start = Instant::now();
    for (b, chunk) in data.chunks(args.batch).enumerate() {
        let records = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = b * args.batch + j;
                RecordWrite {
                    id: i.to_string(),
                    embedding: Some(v.clone()),
                    metadata: Some(bucket_metadata(i)),
                    document: None,
                    uri: None,
                }
            })
            .collect();
        apply(
            &mut sm,
            ShardCommand::Add {
                collection: COLLECTION.into(),
                records,
                mode: AddMode::RejectExisting,
            },
        );
    }
    // Applies leave the graph to the replica's background indexer; a bench
    // without a replica runs the indexer's jobs here, inside the timed build.
    sm.index_everything();
    let insert = start.elapsed();
    println!(
        "insert (apply add, HNSW build)     {:>10.0} records/s  ({:.2} s for {}; {} build threads)",
        args.n as f64 / insert.as_secs_f64(),
        insert.as_secs_f64(),
        args.n,
        rayon::current_num_threads()
    );
    // Memory the shard holds per record: resident growth over the insert (the
    // bench's own copy of the data was resident before), against the raw vector.
    print_memory_growth(
        "insert",
        rss_before,
        common::metrics::resident_memory_bytes(),
        &args,
    );

    // Brute force reference: the exact scan a query would cost without an index.
    let start = Instant::now();
    let truths: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| brute_force_top_k(&data, q, args.k, space))
        .collect();
    let scan = start.elapsed() / queries.len() as u32;
    println!(
        "brute-force scan                   {:>10.3} ms/query  {:>8.1} M vectors/s",
        scan.as_secs_f64() * 1e3,
        args.n as f64 / scan.as_secs_f64() / 1e6
    );

    let truth_of = |q: &[f32]| -> Vec<usize> {
        let i = queries.iter().position(|x| x.as_slice() == q).unwrap_or(0);
        truths[i].clone()
    };
    print_query(
        "query (HNSW, no filter)",
        &run_queries(&sm, &queries, args.k, &Filter::default(), truth_of),
    );
    if let Some(path) = &args.data_out {
        if let Err(e) = write_dataset(path, &data, &queries, &truths, args.dim, args.k) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    let mut results = vec![format!(
        "{{\"kind\":\"build\",\"records_per_s\":{:.1},\"threads\":{}}}",
        args.n as f64 / insert.as_secs_f64(),
        rayon::current_num_threads()
    )];
    for &ef in &args.sweep {
        apply(
            &mut sm,
            ShardCommand::ModifyCollection {
                collection: COLLECTION.into(),
                config: IndexConfig {
                    ef_search: ef,
                    ..config.clone()
                },
            },
        );
        let s = run_queries(&sm, &queries, args.k, &Filter::default(), truth_of);
        print_query(&format!("query (no filter, ef_search {ef})"), &s);
        results.push(format!(
            "{{\"kind\":\"search\",\"ef\":{ef},\"recall\":{:.4},\"p50_ms\":{:.4},\"qps\":{:.1}}}",
            s.recall,
            s.p50.as_secs_f64() * 1e3,
            s.qps
        ));
    }
    if !args.sweep.is_empty() {
        // Back to the collection's default for the filtered runs below.
        apply(
            &mut sm,
            ShardCommand::ModifyCollection {
                collection: COLLECTION.into(),
                config: config.clone(),
            },
        );
    }
    if let Some(path) = &args.results_out {
        if let Err(e) = std::fs::write(path, results.join("\n") + "\n") {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }

    let subset = |pred: &dyn Fn(usize) -> bool| -> Vec<Vec<f32>> {
        data.iter()
            .enumerate()
            .filter(|(i, _)| pred(*i))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one_pct: Vec<usize> = (0..args.n).filter(|i| i.is_multiple_of(100)).collect();
    let one_pct_data = subset(&|i| i.is_multiple_of(100));
    let filter =
        Filter::parse(Some(&serde_json::json!({"bucket": 0})), None).expect("valid filter");
    let few = 200.min(queries.len());
    let stats = run_queries(&sm, &queries[..few], args.k, &filter, |q| {
        brute_force_top_k(&one_pct_data, q, args.k, space)
            .into_iter()
            .map(|i| one_pct[i])
            .collect()
    });
    print_query("query (filter 1%, exact scan)", &stats);

    let half: Vec<usize> = (0..args.n).filter(|i| i.is_multiple_of(2)).collect();
    let half_data = subset(&|i| i.is_multiple_of(2));
    let filter =
        Filter::parse(Some(&serde_json::json!({"even": true})), None).expect("valid filter");
    let stats = run_queries(&sm, &queries[..few], args.k, &filter, |q| {
        brute_force_top_k(&half_data, q, args.k, space)
            .into_iter()
            .map(|i| half[i])
            .collect()
    });
    print_query("query (filter 50%, HNSW+filter)", &stats);

    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("cannot create {}: {e}", args.dir.display());
        std::process::exit(1);
    }
    let path = args.dir.join("shard_bench.snap");
    let start = Instant::now();
    let info = write_snapshot(&sm, &path).expect("snapshot write");
    let wrote = start.elapsed();
    let rss_before = resident_after_trim();
    let start = Instant::now();
    let restored = read_snapshot(&path).expect("snapshot read");
    let read = start.elapsed();
    assert_eq!(restored.digest(), sm.digest(), "restored digest differs");
    println!(
        "snapshot write                     {:>10.2} s  ({:.1} MB)\nsnapshot restore (index reused)    {:>10.2} s",
        wrote.as_secs_f64(),
        info.bytes as f64 / 1e6,
        read.as_secs_f64()
    );
    // What the restored shard holds (a restarted replica): resident growth over
    // the restore, with the heap trimmed before and after so the restore's
    // transient buffers do not count.
    print_memory_growth("restore", rss_before, resident_after_trim(), &args);
    drop(restored);
    let _ = std::fs::remove_file(&path);
}
