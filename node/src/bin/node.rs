//! The node process: `node --config cluster-config/local-3.toml --id 1`.
//!
//! `--log-format text|json` (or `LOG_FORMAT`) and `RUST_LOG` set the logs.
//!
//! `node --config FILE --print-nodes` prints one line per node (`ID ADDR DATA_DIR`) and
//! exits; scripts use it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use common::config::ClusterConfig;
use common::logging::LogFormat;
use node::server::{self, NodeOptions};

/// jemalloc, not glibc malloc: under a bulk load the insert, apply and HTTP threads
/// free what others allocated, and glibc's per-thread arenas kept the holes (a
/// 300k-record node: 786 MB resident, 690 MB with two arenas).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(name = "node", about = "A node of the vector database cluster")]
struct Args {
    /// Cluster config (TOML).
    #[arg(long, default_value = "cluster-config/local-3.toml")]
    config: PathBuf,
    /// This node's id (as in the config).
    #[arg(long, required_unless_present = "print_nodes")]
    id: Option<u64>,
    /// Print `ID ADDR DATA_DIR` for every node of the config and exit.
    #[arg(long)]
    print_nodes: bool,
    /// Log lines as `text` or `json` (one object per line); default `$LOG_FORMAT`, else
    /// text. `RUST_LOG` filters (default `info,raft=warn`).
    #[arg(long)]
    log_format: Option<LogFormat>,
    /// Run every group on the small key/value state machine instead of the
    /// catalogue and shards (the replication tests use it; feature `test-kv`).
    #[cfg(feature = "test-kv")]
    #[arg(long, hide = true)]
    kv_state_machines: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match LogFormat::resolve(args.log_format) {
        Ok(format) => common::logging::init(format, "info,raft=warn"),
        Err(e) => {
            eprintln!("node: {e}");
            return ExitCode::from(2);
        }
    }
    // A panic takes the whole process down, except one applying a committed entry or
    // stepping a peer's Raft message: that stops only its replica (see `panic_guard`).
    node::panic_guard::install_hook();
    match common::synced_file::mode_from_env() {
        Ok(false) => {}
        Ok(true) => tracing::warn!(
            "NODE_FAULT_STORAGE=lose-unsynced: unsynced file writes live in memory until fsync \
             (power-loss fault injection; a kill -9 loses them)"
        ),
        Err(e) => {
            eprintln!("node: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Before anything runs on rayon: HNSW batch inserts yield the CPU to Raft threads.
    node::priority::init_bulk_pool();
    let config = match ClusterConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("node: {e}");
            return ExitCode::from(1);
        }
    };
    if args.print_nodes {
        for n in &config.nodes {
            println!(
                "{} {} {}",
                n.id,
                n.addr,
                config.node_data_dir(n.id).display()
            );
        }
        return ExitCode::SUCCESS;
    }
    let Some(id) = args.id else {
        eprintln!("node: --id is required");
        return ExitCode::from(1);
    };
    if config.node(id).is_none() {
        eprintln!("node: node {id} is not in {}", args.config.display());
        return ExitCode::from(1);
    }
    #[cfg(feature = "test-kv")]
    let state_machines = if args.kv_state_machines {
        node::kv::state_machines()
    } else {
        server::cluster_state_machines()
    };
    #[cfg(not(feature = "test-kv"))]
    let state_machines = server::cluster_state_machines();
    #[allow(unused_mut)]
    let mut opts = NodeOptions::new(config, id, state_machines);
    // The key/value state machines have no catalogue: no cluster map to register in.
    #[cfg(feature = "test-kv")]
    {
        opts.cluster_map = !args.kv_state_machines;
    }
    let system = actix::System::new();
    match system.block_on(server::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node {id}: {e}");
            ExitCode::from(1)
        }
    }
}
