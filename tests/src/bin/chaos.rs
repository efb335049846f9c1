//! The chaos driver (`scripts/chaos`): a real cluster under a seeded
//! schedule of faults while many clients work on a small key space; the
//! recorded history is checked for linearizability per record and the other
//! promises. Exits 1 when the checker finds anomalies.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tests::chaos_run::{self, RunConfig};
use tests::checker;
use tests::nemesis::FaultKind;

fn parse_nodes(s: &str) -> Result<usize, String> {
    match s {
        "3" => Ok(3),
        "5" => Ok(5),
        _ => Err("3 or 5".to_string()),
    }
}

fn fault_help() -> String {
    let mut text = String::from("Faults (--faults, comma-separated, or all):\n");
    for k in FaultKind::ALL {
        text += &format!("  {:<20} {}\n", k.name(), k.help());
    }
    text += "\nThe last line of the summary is `N operations, M faults, K anomalies`.\n\
             Output: DIR/history.jsonl, DIR/summary.txt, DIR/summary.json, DIR/history.png.\n\
             --aggregate DIR sums the runs in DIR/*/ into DIR/table.md and DIR/aggregate.json.";
    text
}

#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    about = "Chaos run with a recorded history and a linearizability checker",
    after_help = fault_help()
)]
struct Args {
    /// Seed of the workload and the fault schedule (default: the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of faults.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Nodes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = parse_nodes)]
    nodes: usize,
    /// Routers the clients spread over (1 or 2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    routers: u8,
    /// Fault kinds to draw from.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 12)]
    clients: u32,
    /// Record ids in the key space.
    #[arg(long, default_value_t = 12)]
    keys: u32,
    /// Output directory (default: data/chaos/seed-S).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Configurations the linearizability search may explore per id.
    #[arg(long, default_value_t = checker::DEFAULT_BUDGET)]
    budget: usize,
    /// Only check a saved history.jsonl (no cluster).
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Only sum the runs in DIR/*/ (their summary.json) into DIR/table.md
    /// and DIR/aggregate.json (no cluster); exits 1 if any run had
    /// anomalies or no summary.
    #[arg(long, value_name = "DIR")]
    aggregate: Option<PathBuf>,
}

/// The exit status of an offline mode: 2 when it could not run, 1 when it
/// found anomalies (`clean` false), 0 otherwise; `print` shows the result.
fn offline<T>(result: Result<T, String>, print: impl FnOnce(&T) -> bool) -> ExitCode {
    match result {
        Ok(value) if print(&value) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.aggregate {
        return offline(chaos_run::aggregate::write(dir), |agg| {
            print!("{}", agg.markdown());
            agg.problems.is_empty()
        });
    }
    if let Some(path) = &args.check {
        return offline(
            chaos_run::check_file(path, args.budget),
            |(history, report)| {
                print!("{}", report.render(history));
                println!(
                    "{} operations, {} faults, {} anomalies",
                    history.ops.len(),
                    history.faults.len(),
                    report.anomalies.len()
                );
                report.anomalies.is_empty()
            },
        );
    }
    let faults = match FaultKind::parse_list(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("data/chaos/seed-{seed}")));
    let cfg = RunConfig {
        nodes: args.nodes,
        routers: args.routers as usize,
        faults,
        clients: args.clients,
        keys: args.keys,
        budget: args.budget,
        ..RunConfig::new(seed, args.secs, out)
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = runtime.block_on(chaos_run::run(&cfg));
    if summary.anomalies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
