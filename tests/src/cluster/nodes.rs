//! Node processes: start (again), SIGKILL, SIGSTOP/SIGCONT, their logs.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{binary, log_file, tail, Cluster, NodeProc};
use crate::faults::netns::Member;

impl Cluster {
    pub fn node_log(&self, id: u64) -> PathBuf {
        self.dir().join(format!("node-{id}.log"))
    }

    /// The last `lines` lines of node `id`'s log (for failure messages).
    pub fn node_log_tail(&self, id: u64, lines: usize) -> String {
        tail(&self.node_log(id), lines)
    }

    /// Starts node `id` (again, after a kill).
    pub fn spawn_node(&self, id: u64) {
        let mut nodes = self.nodes.lock();
        assert!(!nodes.contains_key(&id), "node {id} already running");
        let log = log_file(&self.node_log(id));
        let program = &self.node_program;
        let path = program.path.clone().unwrap_or_else(|| binary("node"));
        let child = self
            .command(Member::Node(id), &path)
            .args(&program.args)
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(id.to_string())
            .env("RUST_LOG", &program.log_filter)
            .envs(program.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        nodes.insert(
            id,
            NodeProc {
                child,
                paused: false,
            },
        );
    }

    /// SIGKILL of node `id`.
    pub fn kill_node(&self, id: u64) {
        let proc = self.nodes.lock().remove(&id);
        if let Some(mut p) = proc {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// SIGSTOP (`stop`) or SIGCONT of node `id`.
    pub fn pause_node(&self, id: u64, stop: bool) {
        let mut nodes = self.nodes.lock();
        let proc = nodes.get_mut(&id).expect("running node");
        let status = Command::new("kill")
            .arg(if stop { "-STOP" } else { "-CONT" })
            .arg(proc.child.id().to_string())
            .status()
            .expect("kill command");
        assert!(status.success(), "kill -STOP/-CONT of node {id}");
        proc.paused = stop;
    }

    /// Whether the harness started node `id` and has not killed it (it may be
    /// paused, or have exited on its own: see [`Cluster::exited`]).
    pub fn is_running(&self, id: u64) -> bool {
        self.nodes.lock().contains_key(&id)
    }

    /// Nodes running and not paused.
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .lock()
            .iter()
            .filter(|(_, p)| !p.paused)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Node processes the harness started that have exited on their own
    /// (crashed), with their exit status.
    pub fn exited(&self) -> Vec<(u64, std::process::ExitStatus)> {
        self.nodes
            .lock()
            .iter_mut()
            .filter_map(|(id, p)| p.child.try_wait().ok().flatten().map(|s| (*id, s)))
            .collect()
    }

    /// Waits until node `id`'s process exits on its own (a node that refuses to
    /// start) and returns its exit status; panics, with the end of its log, after
    /// `timeout`.
    pub async fn wait_node_exit(&self, id: u64, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, status)) = self.exited().into_iter().find(|&(n, _)| n == id) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} still runs after {timeout:?}; log:\n{}",
                self.node_log_tail(id, 20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `id` answers its admin status: a restarted node opens
    /// its replicas (log replay, snapshot load) before it listens, while the
    /// other nodes may already have leaders for every group, so
    /// [`Cluster::wait_all_leaders`] alone does not mean it is reachable.
    pub async fn wait_node_up(&self, id: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.status(id).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "node {id} does not answer after {timeout:?}; log:\n{}",
                self.node_log_tail(id, 20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
