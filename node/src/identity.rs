//! The Raft amnesia guard: a replica must never vote or serve with an empty log if the
//! node it runs on took part in its group before and lost its data (a wiped data
//! directory, or one group's directory gone). Raft's safety rests on every node keeping
//! what it acknowledged; an emptied voter can elect a leader missing committed entries.
//!
//! Two durable facts, kept in the node's data directory:
//! - [`MARKER_FILE`]: written (fsynced) once every hosted group has a log, before any
//!   replica starts. A group directory without a log on a node that has the marker lost
//!   its data.
//! - [`SEEN_FILE`]: the peer nodes this node has ever received a Raft message from,
//!   recorded (fsynced) *before* the first message from each is handed to a replica, so
//!   nothing a peer acknowledged can count unless this node remembers the peer took part.
//!
//! A node without the marker and with groups that have no log (a first start, or the whole
//! data directory wiped) asks every peer it shares a group with (`GET
//! /internal/seen/{node}`, through the transport's HTTP client). Any peer that has seen it
//! means its data is gone: those groups stay failed, never voting. Every peer answering
//! "never seen" means this is a first start: the groups are bootstrapped. Until every peer
//! answered, those groups wait (not started, not voting). A fresh cluster starts: no node
//! sends a Raft message before its own check is done, so no node has seen another yet.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use common::fs::write_atomic;
use parking_lot::{Mutex, RwLock};

/// The node's "this data directory holds every hosted group's log" marker.
pub const MARKER_FILE: &str = "node-bootstrapped";
/// Peer nodes this node has received Raft messages from, one id per line.
pub const SEEN_FILE: &str = "peers-seen";
/// The node's incarnation: a random id drawn when its data directory is first used (see
/// [`common::registry`]); a node whose directory was wiped draws another and is known
/// to the cluster as having lost its replicas.
pub const INCARNATION_FILE: &str = "incarnation";
/// A seen file longer than this is not ours (a node id per line, for a few thousand
/// nodes at most).
const MAX_SEEN_FILE_BYTES: u64 = 1 << 20;

pub fn marker_exists(data_dir: &Path) -> bool {
    data_dir.join(MARKER_FILE).is_file()
}

pub fn write_marker(data_dir: &Path, node_id: u64) -> io::Result<()> {
    write_atomic(
        &data_dir.join(MARKER_FILE),
        format!("node {node_id}: every hosted group's log is in this directory\n").as_bytes(),
    )
}

/// This data directory's incarnation, drawn (and made durable) if it has none yet. A file
/// that cannot be read as one is an error: the node must not guess who it is.
pub fn incarnation(data_dir: &Path) -> io::Result<u64> {
    let path = data_dir.join(INCARNATION_FILE);
    match fs::read(&path) {
        Ok(bytes) if bytes.len() <= 64 => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|&n| n != 0)
            .ok_or_else(|| io::Error::other(format!("{}: not an incarnation id", path.display()))),
        Ok(_) => Err(io::Error::other(format!("{}: too long", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let fresh = rand::random::<u64>().max(1);
            write_atomic(&path, format!("{fresh}\n").as_bytes())?;
            Ok(fresh)
        }
        Err(e) => Err(e),
    }
}

/// The durable set of peers this node has received Raft messages from.
pub struct PeersSeen {
    dir: PathBuf,
    seen: RwLock<BTreeSet<u64>>,
    /// Set when the file could not be read: then every peer counts as seen (a node asking
    /// is told it took part, the safe answer), and nothing is written over the file.
    unreadable: Option<String>,
    write: Mutex<()>,
}

impl PeersSeen {
    /// Loads `data_dir/peers-seen` (absent: nobody seen yet).
    pub fn load(data_dir: &Path) -> PeersSeen {
        let path = data_dir.join(SEEN_FILE);
        let (seen, unreadable) = match read_seen(&path) {
            Ok(seen) => (seen, None),
            Err(e) => {
                let why = format!("{}: {e}", path.display());
                tracing::error!(error = %why, "cannot read the peers-seen file; every peer counts as seen");
                (BTreeSet::new(), Some(why))
            }
        };
        PeersSeen {
            dir: data_dir.to_path_buf(),
            seen: RwLock::new(seen),
            unreadable,
            write: Mutex::new(()),
        }
    }

    /// Whether node `id` took part (sent this node a Raft message) at any time.
    pub fn contains(&self, id: u64) -> bool {
        self.unreadable.is_some() || self.seen.read().contains(&id)
    }

    /// Records that node `id` sent a Raft message; durable when this returns Ok. Cheap
    /// after the first time for each node.
    pub fn note(&self, id: u64) -> io::Result<()> {
        if self.seen.read().contains(&id) {
            return Ok(());
        }
        if let Some(why) = &self.unreadable {
            return Err(io::Error::other(why.clone()));
        }
        let _w = self.write.lock();
        if self.seen.read().contains(&id) {
            return Ok(());
        }
        let mut next = self.seen.read().clone();
        next.insert(id);
        let text: String = next.iter().map(|n| format!("{n}\n")).collect();
        write_atomic(&self.dir.join(SEEN_FILE), text.as_bytes())?;
        *self.seen.write() = next;
        tracing::info!(peer = id, "first Raft message from this peer: recorded");
        Ok(())
    }
}

fn read_seen(path: &Path) -> io::Result<BTreeSet<u64>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    if meta.len() > MAX_SEEN_FILE_BYTES {
        return Err(io::Error::other(format!(
            "{} bytes, more than {MAX_SEEN_FILE_BYTES}",
            meta.len()
        )));
    }
    let text = fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<u64>()
                .map_err(|e| io::Error::other(format!("bad line {l:?}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_peers_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let s = PeersSeen::load(dir.path());
        assert!(!s.contains(2));
        s.note(2).unwrap();
        s.note(3).unwrap();
        s.note(2).unwrap();
        let again = PeersSeen::load(dir.path());
        assert!(again.contains(2) && again.contains(3) && !again.contains(4));
    }

    #[test]
    fn an_unreadable_file_counts_everyone_as_seen_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SEEN_FILE), "2\nnot a number\n").unwrap();
        let s = PeersSeen::load(dir.path());
        assert!(s.contains(7));
        assert!(s.note(7).is_err());
        assert_eq!(
            fs::read_to_string(dir.path().join(SEEN_FILE)).unwrap(),
            "2\nnot a number\n"
        );
    }

    #[test]
    fn an_incarnation_is_drawn_once_and_a_wiped_directory_draws_another() {
        let dir = tempfile::tempdir().unwrap();
        let first = incarnation(dir.path()).unwrap();
        assert_eq!(incarnation(dir.path()).unwrap(), first);
        fs::remove_file(dir.path().join(INCARNATION_FILE)).unwrap();
        assert_ne!(incarnation(dir.path()).unwrap(), first);
        fs::write(dir.path().join(INCARNATION_FILE), "zero?\n").unwrap();
        assert!(incarnation(dir.path()).is_err());
    }

    #[test]
    fn the_marker_is_durable_and_found() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!marker_exists(dir.path()));
        write_marker(dir.path(), 3).unwrap();
        assert!(marker_exists(dir.path()));
    }
}
