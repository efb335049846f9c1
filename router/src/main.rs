//! The router process: `router --config cluster-config/local-3.toml
//! [--listen HOST:PORT]`. Serves Chroma's v2 HTTP API over the cluster the
//! config describes. `ROUTER_ADD_EXISTING=reject|skip` and
//! `ROUTER_ALLOW_RESET=true|false` override the config's `[router]` options.
//! `--log-format text|json` (or `LOG_FORMAT`) and `RUST_LOG` set the logs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use common::config::ClusterConfig;
use common::logging::LogFormat;
use router::settings::RouterSettings;

#[derive(Parser, Debug)]
#[command(
    name = "router",
    about = "Chroma's HTTP API over the vector database cluster"
)]
struct Args {
    /// Cluster config (TOML).
    #[arg(long, default_value = "cluster-config/local-3.toml")]
    config: PathBuf,
    /// Listen address; overrides the config's `router.listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Log lines as `text` or `json` (one object per line); default `$LOG_FORMAT`, else
    /// text. `RUST_LOG` filters (default `info`).
    #[arg(long)]
    log_format: Option<LogFormat>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match LogFormat::resolve(args.log_format) {
        Ok(format) => common::logging::init(format, "info"),
        Err(e) => {
            eprintln!("router: {e}");
            return ExitCode::from(2);
        }
    }
    let config = match ClusterConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("router: {e}");
            return ExitCode::from(1);
        }
    };
    let mut settings = match RouterSettings::from_config(&config, |k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("router: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    tracing::info!(
        add_mode = ?settings.add_mode,
        allow_reset = settings.allow_reset,
        max_body_bytes = settings.max_body_bytes,
        max_in_flight = settings.max_in_flight,
        "router settings"
    );
    match &settings.auth {
        Some(auth) => tracing::info!(
            users = auth.users.len(),
            header = auth.header.name(),
            "token authentication on: every request but heartbeat, version and healthcheck needs a token"
        ),
        None => tracing::warn!(
            "no authentication configured: the API is open to anyone who can reach it \
             (set CHROMA_SERVER_AUTHN_PROVIDER and CHROMA_SERVER_AUTHN_CREDENTIALS[_FILE] to require tokens)"
        ),
    }
    match actix_web::rt::System::new().block_on(router::server::run(config, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("router: {e}");
            ExitCode::from(1)
        }
    }
}
