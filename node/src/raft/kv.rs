//! A small, real replicated state machine: an ordered string map with an incremental
//! digest. The Raft runtime's tests (and the node binary, until the shard and catalog
//! state machines are plugged in) run every group on it.
//!
//! Commands ([`KvCommand`]), outcomes ([`KvOutcome`]), reads ([`KvRead`]) and read replies
//! ([`KvReadReply`]) are bincode-encoded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state_machine::ReplicatedStateMachine;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// Panics while being applied, on every replica, every time: the poison pill the
    /// failed-replica tests commit (this state machine exists only for tests).
    PanicOnApply,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOutcome {
    /// The value the key held before, if any.
    Done { previous: Option<String> },
    /// The command could not be decoded (nothing changed).
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRead {
    Get {
        key: String,
    },
    Len,
    /// Every key from `from` on, at most `limit`.
    Scan {
        from: String,
        limit: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvReadReply {
    Value(Option<String>),
    Len(u64),
    Entries(Vec<(String, String)>),
    Rejected(String),
}

#[derive(Serialize, Deserialize)]
struct KvSnapshot {
    applied: (u64, u64),
    entries: BTreeMap<String, String>,
}

/// Ordered string map; digest = XOR over entries of FNV-1a(key, 0xff, value), so it is
/// maintained in O(1) per write and independent of history.
#[derive(Debug, Default)]
pub struct KvStateMachine {
    entries: BTreeMap<String, String>,
    applied: (u64, u64),
    digest: u64,
}

fn entry_hash(key: &str, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding these plain enums into a Vec cannot fail.
    bincode::serialize(value).unwrap_or_default()
}

impl KvStateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn put(&mut self, key: String, value: String) -> Option<String> {
        self.digest ^= entry_hash(&key, &value);
        let previous = self.entries.insert(key.clone(), value);
        if let Some(old) = &previous {
            self.digest ^= entry_hash(&key, old);
        }
        previous
    }

    fn delete(&mut self, key: &str) -> Option<String> {
        let previous = self.entries.remove(key);
        if let Some(old) = &previous {
            self.digest ^= entry_hash(key, old);
        }
        previous
    }
}

impl ReplicatedStateMachine for KvStateMachine {
    fn apply(&mut self, index: u64, term: u64, data: &[u8]) -> Vec<u8> {
        self.applied = (index, term);
        let outcome = match bincode::deserialize::<KvCommand>(data) {
            Ok(KvCommand::Put { key, value }) => KvOutcome::Done {
                previous: self.put(key, value),
            },
            Ok(KvCommand::Delete { key }) => KvOutcome::Done {
                previous: self.delete(&key),
            },
            Ok(KvCommand::PanicOnApply) => panic!("KvCommand::PanicOnApply at index {index}"),
            Err(e) => KvOutcome::Rejected(format!("bad command: {e}")),
        };
        encode(&outcome)
    }

    fn advance(&mut self, index: u64, term: u64) {
        self.applied = (index, term);
    }

    fn applied(&self) -> (u64, u64) {
        self.applied
    }

    fn read(&self, request: &[u8]) -> Vec<u8> {
        let reply = match bincode::deserialize::<KvRead>(request) {
            Ok(KvRead::Get { key }) => KvReadReply::Value(self.entries.get(&key).cloned()),
            Ok(KvRead::Len) => KvReadReply::Len(self.entries.len() as u64),
            Ok(KvRead::Scan { from, limit }) => KvReadReply::Entries(
                self.entries
                    .range(from..)
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            Err(e) => KvReadReply::Rejected(format!("bad read: {e}")),
        };
        encode(&reply)
    }

    fn write_snapshot(&self, path: &Path) -> Result<(), String> {
        let snap = KvSnapshot {
            applied: self.applied,
            entries: self.entries.clone(),
        };
        let bytes = bincode::serialize(&snap).map_err(|e| e.to_string())?;
        let mut f = std::fs::File::create(path).map_err(|e| e.to_string())?;
        f.write_all(&bytes).map_err(|e| e.to_string())
    }

    fn restore_snapshot(&mut self, path: &Path) -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let snap: KvSnapshot = bincode::deserialize(&bytes).map_err(|e| e.to_string())?;
        self.digest = snap
            .entries
            .iter()
            .fold(0, |d, (k, v)| d ^ entry_hash(k, v));
        self.entries = snap.entries;
        self.applied = snap.applied;
        Ok(())
    }

    fn digest(&self) -> u64 {
        self.digest
    }

    fn record_count(&self) -> Option<u64> {
        Some(self.entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Vec<u8> {
        encode(&KvCommand::Put {
            key: k.into(),
            value: v.into(),
        })
    }

    #[test]
    fn digest_depends_on_content_not_history() {
        let mut a = KvStateMachine::new();
        let mut b = KvStateMachine::new();
        a.apply(1, 1, &put("x", "1"));
        a.apply(2, 1, &put("y", "2"));
        a.apply(3, 1, &put("x", "3"));
        b.apply(1, 1, &put("y", "2"));
        b.apply(2, 1, &put("x", "3"));
        assert_eq!(a.digest(), b.digest());
        a.apply(4, 1, &encode(&KvCommand::Delete { key: "y".into() }));
        assert_ne!(a.digest(), b.digest());
        let reply: KvOutcome = bincode::deserialize(&a.apply(5, 1, b"\xff")).unwrap();
        assert!(matches!(reply, KvOutcome::Rejected(_)));
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = KvStateMachine::new();
        for i in 0..50 {
            a.apply(i + 1, 2, &put(&format!("k{i}"), &format!("v{i}")));
        }
        let path = dir.path().join("s");
        a.write_snapshot(&path).unwrap();
        let mut b = KvStateMachine::new();
        b.restore_snapshot(&path).unwrap();
        assert_eq!(b.applied(), (50, 2));
        assert_eq!(b.digest(), a.digest());
        let reply: KvReadReply =
            bincode::deserialize(&b.read(&encode(&KvRead::Get { key: "k7".into() }))).unwrap();
        assert_eq!(reply, KvReadReply::Value(Some("v7".into())));
        assert!(b.restore_snapshot(&dir.path().join("missing")).is_err());
    }
}
