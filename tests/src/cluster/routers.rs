//! Router processes and HTTP clients of them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{binary, free_port, log_file, tail, Cluster};
use crate::faults::netns::Member;

/// A router's port inside its own namespace.
const NETNS_ROUTER_PORT: u16 = 8000;
use crate::http::Client;

/// Router variables an outer environment must not leak into a test router.
const ROUTER_ENV: [&str; 8] = [
    "CHROMA_SERVER_AUTHN_PROVIDER",
    "CHROMA_SERVER_AUTHN_CREDENTIALS",
    "CHROMA_SERVER_AUTHN_CREDENTIALS_FILE",
    "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER",
    "ROUTER_MAX_BODY_BYTES",
    "ROUTER_MAX_IN_FLIGHT",
    "ROUTER_TLS_CERT_FILE",
    "ROUTER_TLS_KEY_FILE",
];

/// One router process to start.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// `ROUTER_ADD_EXISTING` (`reject` or `skip`); unset = the TOML's value.
    pub add_existing: Option<&'static str>,
    /// `ROUTER_ALLOW_RESET`; unset = the TOML's value (false).
    pub allow_reset: Option<bool>,
    /// More environment for the router: Chroma's auth variables
    /// (`CHROMA_SERVER_AUTHN_*`, `CHROMA_AUTH_TOKEN_TRANSPORT_HEADER`),
    /// `ROUTER_MAX_BODY_BYTES`, `ROUTER_MAX_IN_FLIGHT`.
    pub env: Vec<(String, String)>,
}

impl RouterOptions {
    /// A router with `ROUTER_ADD_EXISTING=skip` (Chroma 1.x's add).
    pub fn skip_existing() -> RouterOptions {
        RouterOptions {
            add_existing: Some("skip"),
            ..RouterOptions::default()
        }
    }

    /// A router with `ROUTER_ALLOW_RESET=true`.
    pub fn reset_allowed() -> RouterOptions {
        RouterOptions {
            allow_reset: Some(true),
            ..RouterOptions::default()
        }
    }
}

impl Cluster {
    pub fn router_log(&self, i: usize) -> PathBuf {
        self.dir().join(format!("router-{i}.log"))
    }

    /// Starts router `i` on a free port (in its namespace with
    /// `ClusterOptions::netns`); returns its base URL.
    pub(super) fn spawn_router(&self, i: usize, opts: &RouterOptions) -> String {
        let listen = match &self.net {
            Some(net) => format!("{}:{NETNS_ROUTER_PORT}", net.lab().ip(Member::Router(i))),
            None => format!("127.0.0.1:{}", free_port()),
        };
        let log = log_file(&self.router_log(i));
        let mut command = self.command(Member::Router(i), &binary("router"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg(&listen)
            .env("RUST_LOG", "info")
            // The harness decides; an outer environment must not leak in.
            .env_remove("ROUTER_ADD_EXISTING")
            .env_remove("ROUTER_ALLOW_RESET");
        for var in ROUTER_ENV {
            command.env_remove(var);
        }
        command.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(mode) = opts.add_existing {
            command.env("ROUTER_ADD_EXISTING", mode);
        }
        if let Some(allow) = opts.allow_reset {
            command.env("ROUTER_ALLOW_RESET", allow.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn router");
        self.routers.lock().push(child);
        format!("http://{listen}")
    }

    pub(super) async fn wait_router_ready(&self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/api/v2/healthcheck", self.router_urls[i]);
        loop {
            if let Ok(r) = self.admin.get(&url).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            let exited = self.routers.lock()[i].try_wait().ok().flatten();
            if let Some(status) = exited {
                panic!(
                    "router {i} exited ({status}) before it was ready; log:\n{}",
                    tail(&self.router_log(i), 30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "router {i} not healthy after {timeout:?}; log:\n{}",
                tail(&self.router_log(i), 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn router_count(&self) -> usize {
        self.router_urls.len()
    }

    /// Client of router `i`, with a 30 s per-request timeout (a hang fails).
    pub fn client(&self, i: usize) -> Client {
        self.client_with_timeout(i, Duration::from_secs(30))
    }

    /// Client of router `i` sending `headers` (a token) with every request.
    pub fn client_with_headers(&self, i: usize, headers: &[(&str, &str)]) -> Client {
        Client::with_headers(
            self.router_urls[i].clone(),
            Duration::from_secs(30),
            headers,
        )
    }

    /// `host:port` of router `i`, for raw socket tests.
    pub fn router_addr(&self, i: usize) -> String {
        self.router_urls[i].trim_start_matches("http://").to_owned()
    }

    pub fn client_with_timeout(&self, i: usize, timeout: Duration) -> Client {
        Client::new(self.router_urls[i].clone(), timeout)
    }
}
