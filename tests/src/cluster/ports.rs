//! Loopback ports for test processes. A port is found free here and bound a
//! moment later by the node or router given it, so two things must not take it
//! in between:
//!
//! - an outgoing connection's local port: ports are picked *below* the
//!   kernel's ephemeral range (`ip_local_port_range`), which the kernel never
//!   hands to a `connect` or a `bind(0)`;
//! - another claim on the same port, by this process (two nodes of one
//!   cluster: CI once gave nodes 4 and 5 the same `bind(0)` port) or by another
//!   test process running beside it: each port handed out is claimed by an
//!   exclusive lock on a file named after it in the temp dir, held for the
//!   rest of this process's life (the kernel drops the lock when the process
//!   exits, however it exits).

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

use parking_lot::Mutex;
use rand::Rng;

/// How many ports below the ephemeral range are candidates: with the usual range
/// (from 32768) 29768-32767, above the fixed ports the scripts' clusters listen
/// on (`scripts/fuzz-api`, `bench-*`: 8000-29153). A test process holds a
/// handful; they are free again when it exits.
const SPAN: u16 = 3_000;
/// The lowest candidate whatever the ephemeral range is.
const LOWEST: u16 = 1_024;

/// Claims held by this process (never released before it exits).
static CLAIMS: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A loopback port no other test process and no earlier call in this one
/// holds, and that nothing listens on now.
pub fn free_port() -> u16 {
    let dir = claims_dir();
    let (low, high) = candidates();
    let span = high - low;
    let start = rand::thread_rng().gen_range(0..span);
    for i in 0..span {
        let port = low + (start + i) % span;
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        CLAIMS.lock().push(file);
        return port;
    }
    panic!("no free loopback port in {low}..{high}");
}

fn claims_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("vdb-test-ports");
    std::fs::create_dir_all(&dir).expect("the port claims directory");
    dir
}

/// `[low, high)`: the `SPAN` ports just below the ephemeral range.
fn candidates() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let high = ephemeral_low.max(LOWEST + SPAN);
    (high - SPAN, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice_and_lie_below_the_ephemeral_range() {
        let (_, high) = candidates();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        assert!(ports.iter().all(|&p| p < high && p >= LOWEST));
    }
}
