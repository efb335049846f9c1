//! `backup backup DIR --config F` and `backup restore DIR [--force] --config F`: a
//! consistent backup of a running cluster into a new directory, and its restore into a
//! cluster (see `router::backup`; `scripts/cluster backup|restore` call this). Prints the
//! throughput on success; exits 1 with the reason otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::config::ClusterConfig;
use router::backup::{restore, take};

#[derive(Parser, Debug)]
#[command(name = "backup", about = "Backup and restore of a vdb cluster")]
struct Args {
    /// Cluster config (TOML); the cluster secret is its `security.secret_file`.
    #[arg(long, default_value = "cluster-config/local-3.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Back every group up into DIR (new or empty), while the cluster serves.
    Backup { dir: PathBuf },
    /// Restore the backup in DIR into the cluster.
    Restore {
        dir: PathBuf,
        /// Restore into a cluster that has collections: each one with the id or the name
        /// of a backup collection is deleted first (with its records); others stay.
        #[arg(long)]
        force: bool,
    },
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

async fn run(args: Args) -> Result<String, String> {
    let config = ClusterConfig::load(&args.config).map_err(|e| e.to_string())?;
    match args.command {
        Command::Backup { dir } => {
            let m = take::take_backup(&config, &dir)
                .await
                .map_err(|e| e.to_string())?;
            let records: u64 = m.groups.iter().map(|g| g.records).sum();
            let bytes: u64 = m.groups.iter().map(|g| g.bytes).sum();
            let secs = (m.elapsed_ms as f64 / 1e3).max(1e-3);
            Ok(format!(
                "backup of {} groups, {} collections, {records} records, {:.1} MB in {secs:.2} s \
                 ({:.0} records/s, {:.1} MB/s) in {}",
                m.groups.len(),
                m.collections.len(),
                mb(bytes),
                records as f64 / secs,
                mb(bytes) / secs,
                dir.display()
            ))
        }
        Command::Restore { dir, force } => {
            let r = restore::restore(&config, &dir, force)
                .await
                .map_err(|e| e.to_string())?;
            let secs = r.elapsed.as_secs_f64().max(1e-3);
            Ok(format!(
                "restored {} collections, {} records, {:.1} MB in {secs:.2} s \
                 ({:.0} records/s, {:.1} MB/s); every collection's count and digest match the manifest",
                r.collections,
                r.records,
                mb(r.bytes),
                r.records as f64 / secs,
                mb(r.bytes) / secs
            ))
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backup: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backup: {e}");
            ExitCode::FAILURE
        }
    }
}
