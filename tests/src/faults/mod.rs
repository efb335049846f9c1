//! Faults beyond the transport filter (issue 12), as a library a chaos driver
//! or a test calls on a running [`Cluster`](crate::Cluster):
//!
//! - [`netns`]: every node (and router) in its own network namespace, joined
//!   by veth pairs to a bridge; the harness starts a cluster on it with
//!   [`ClusterOptions::netns`](crate::ClusterOptions::netns);
//! - [`net`]: [`NetFaults`], partitions with nftables inside the nodes'
//!   namespaces (majority/minority, bridge, one-way, router-to-node) and
//!   `tc netem` delay and loss per node or per link, each undone by
//!   [`NetFaults::heal`];
//! - [`power`]: a power cut of one node (kill -9 under the node's
//!   `NODE_FAULT_STORAGE=lose-unsynced` mode: every write it had not fsynced
//!   is gone);
//! - [`corrupt`]: bytes flipped in the middle of a stopped node's WAL;
//! - [`members`]: a shard group's replica replaced by an empty one on the
//!   same node through the membership admin API, and the check that every
//!   group is back at its full voter set.
//!
//! The network faults need root, `ip` and `tc` (iproute2) and `nft`
//! (nftables); [`netns::available`] says why not when they cannot run, and
//! tests skip with that reason. Without them the transport filter
//! (`Cluster::partition`, `/admin/partition`) stays the fallback.

pub mod corrupt;
pub mod members;
pub mod net;
pub mod netns;
pub mod power;

pub use net::{NetFaults, Netem};

use std::process::{Command, Output, Stdio};

/// A fault that could not be set up or undone.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// Not root, or a tool is missing: the fault cannot run on this machine.
    #[error("network faults unavailable: {0}")]
    Unavailable(String),
    /// A command failed (its stderr).
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A request the fault cannot express (unknown node, too many links, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Runs `program args..`, with `stdin` fed when given; an error carries the
/// command line and its stderr.
pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, FaultError> {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(FaultError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}
