//! A small, real replicated state machine: an ordered string map with an incremental
//! digest. The Raft runtime's tests run every group on it (`node --kv-state-machines`);
//! it is compiled only with the `test-kv` feature, which the node package's own tests
//! enable, so production builds do not carry it.
//!
//! Commands ([`KvCommand`], inside a `common::wire::Proposal`), outcomes
//! ([`KvOutcome`]), reads ([`KvRead`]) and read replies ([`KvReadReply`]) are
//! bincode-encoded.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::wire::Proposal;
use serde::{Deserialize, Serialize};

use crate::raft::dedup::RequestDedup;
use crate::raft::{AppliedPosition, Encoded, StateMachine, StateMachineFactory};
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

/// Request ids the KV state machine remembers at least (tests push more through it).
pub const DEDUP_WINDOW: usize = 1_000;

#[derive(Serialize, Deserialize)]
struct KvSnapshot {
    applied: AppliedPosition,
    entries: BTreeMap<String, String>,
    dedup: RequestDedup<KvOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum KvSnapshotError {
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot encoding: {0}")]
    Encoding(#[from] bincode::Error),
    #[error("snapshot has an inconsistent request-id window")]
    Dedup,
}

/// Ordered string map; digest = XOR over entries of FNV-1a(key, 0xff, value), so it is
/// maintained in O(1) per write and independent of history.
#[derive(Debug)]
pub struct KvStateMachine {
    entries: BTreeMap<String, String>,
    applied: AppliedPosition,
    dedup: RequestDedup<KvOutcome>,
    digest: u64,
}

/// Every group runs a [`KvStateMachine`]: the replication tests drive Raft through it
/// with plain key/value commands.
pub fn state_machines() -> StateMachineFactory {
    Arc::new(|_group, _kind| Box::new(Encoded(KvStateMachine::new())))
}

/// `command` in a proposal with a fresh request id, to be proposed within `budget`.
pub fn proposal(command: &KvCommand, budget: std::time::Duration) -> Proposal<KvCommand> {
    Proposal {
        request_id: rand::random(),
        deadline_ms: common::clock::wall_deadline(std::time::Instant::now() + budget),
        command: command.clone(),
    }
}

fn entry_hash(key: &str, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Default for KvStateMachine {
    fn default() -> Self {
        KvStateMachine {
            entries: BTreeMap::new(),
            applied: AppliedPosition::default(),
            dedup: RequestDedup::with_capacity(DEDUP_WINDOW),
            digest: 0,
        }
    }
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

impl StateMachine for KvStateMachine {
    type Command = KvCommand;
    type Outcome = KvOutcome;
    type Read = KvRead;
    type ReadInProgress = KvRead;
    type ReadReply = KvReadReply;
    type SnapshotError = KvSnapshotError;

    const NAME: &'static str = "key/value";

    fn execute(&mut self, command: &KvCommand) -> KvOutcome {
        match command {
            KvCommand::Put { key, value } => KvOutcome::Done {
                previous: self.put(key.clone(), value.clone()),
            },
            KvCommand::Delete { key } => KvOutcome::Done {
                previous: self.delete(key),
            },
            KvCommand::PanicOnApply => {
                panic!("KvCommand::PanicOnApply at index {}", self.applied.index)
            }
        }
    }

    fn applied(&self) -> AppliedPosition {
        self.applied
    }

    fn applied_mut(&mut self) -> (&mut AppliedPosition, &mut RequestDedup<KvOutcome>) {
        (&mut self.applied, &mut self.dedup)
    }

    fn rejected(reason: String) -> KvOutcome {
        KvOutcome::Rejected(reason)
    }

    fn start_read(read: KvRead) -> Result<KvRead, KvReadReply> {
        Ok(read)
    }

    fn rejected_read(reason: String) -> KvReadReply {
        KvReadReply::Rejected(reason)
    }

    fn read_step(&self, read: &mut KvRead) -> Option<KvReadReply> {
        Some(match read {
            KvRead::Get { key } => KvReadReply::Value(self.entries.get(key).cloned()),
            KvRead::Len => KvReadReply::Len(self.entries.len() as u64),
            KvRead::Scan { from, limit } => KvReadReply::Entries(
                self.entries
                    .range(from.clone()..)
                    .take(*limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        })
    }

    fn write_snapshot(&self, path: &Path) -> Result<(), KvSnapshotError> {
        let snap = KvSnapshot {
            applied: self.applied,
            entries: self.entries.clone(),
            dedup: self.dedup.clone(),
        };
        let bytes = bincode::serialize(&snap)?;
        std::fs::File::create(path)?.write_all(&bytes)?;
        Ok(())
    }

    fn read_snapshot(path: &Path) -> Result<Self, KvSnapshotError> {
        let snap: KvSnapshot = bincode::deserialize(&std::fs::read(path)?)?;
        if !snap.dedup.is_consistent() {
            return Err(KvSnapshotError::Dedup);
        }
        Ok(KvStateMachine {
            digest: snap
                .entries
                .iter()
                .fold(0, |d, (k, v)| d ^ entry_hash(k, v)),
            entries: snap.entries,
            applied: snap.applied,
            dedup: snap.dedup,
        })
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
    use crate::raft::EncodedStateMachine;

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serialize(value).unwrap()
    }

    fn put(k: &str, v: &str) -> Vec<u8> {
        encode(&proposal(
            &KvCommand::Put {
                key: k.into(),
                value: v.into(),
            },
            std::time::Duration::from_secs(60),
        ))
    }

    fn at(index: u64, term: u64) -> AppliedPosition {
        AppliedPosition { index, term }
    }

    #[test]
    fn digest_depends_on_content_not_history() {
        let mut a = Encoded(KvStateMachine::new());
        let mut b = Encoded(KvStateMachine::new());
        a.apply(at(1, 1), 0, &put("x", "1"));
        a.apply(at(2, 1), 0, &put("y", "2"));
        a.apply(at(3, 1), 0, &put("x", "3"));
        b.apply(at(1, 1), 0, &put("y", "2"));
        b.apply(at(2, 1), 0, &put("x", "3"));
        assert_eq!(a.digest(), b.digest());
        a.apply(
            at(4, 1),
            0,
            &encode(&proposal(
                &KvCommand::Delete { key: "y".into() },
                std::time::Duration::from_secs(60),
            )),
        );
        assert_ne!(a.digest(), b.digest());
        let reply: KvOutcome = bincode::deserialize(&a.apply(at(5, 1), 0, b"\xff")).unwrap();
        assert!(matches!(reply, KvOutcome::Rejected(_)));
        assert_eq!(a.applied(), at(5, 1));
    }

    /// The byte adapter and the exactly-once rule as every group gets them: a retried
    /// request id answers its first outcome and changes nothing.
    #[test]
    fn a_retried_request_applies_once() {
        let mut sm = Encoded(KvStateMachine::new());
        let first = put("x", "1");
        let outcome = |bytes: Vec<u8>| bincode::deserialize::<KvOutcome>(&bytes).unwrap();
        assert_eq!(
            outcome(sm.apply(at(1, 1), 0, &first)),
            KvOutcome::Done { previous: None }
        );
        sm.apply(at(2, 1), 0, &put("x", "2"));
        assert_eq!(
            outcome(sm.apply(at(3, 2), 0, &first)),
            KvOutcome::Done { previous: None }
        );
        assert_eq!(sm.0.get("x").map(String::as_str), Some("2"));
        assert_eq!(sm.applied(), at(3, 2));
        let reply: KvReadReply = bincode::deserialize(&sm.read(b"\xff\xff")).unwrap();
        assert!(matches!(reply, KvReadReply::Rejected(_)));
    }

    #[test]
    fn proposals_are_read_before_they_enter_the_log() {
        let sm = Encoded(KvStateMachine::new());
        let read = sm.proposal_reader();
        let p = proposal(
            &KvCommand::Delete { key: "k".into() },
            std::time::Duration::from_secs(60),
        );
        assert_eq!(read(&encode(&p)), Ok(p.header()));
        let refused = read(&encode(&KvCommand::Delete { key: "k".into() })).unwrap_err();
        match bincode::deserialize::<KvOutcome>(&refused).unwrap() {
            KvOutcome::Rejected(m) => assert!(m.contains("undecodable key/value command"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Encoded(KvStateMachine::new());
        for i in 0..50 {
            a.apply(at(i + 1, 2), 0, &put(&format!("k{i}"), &format!("v{i}")));
        }
        let path = dir.path().join("s");
        a.0.write_snapshot(&path).unwrap();
        let mut b = Encoded(KvStateMachine::new());
        b.restore_snapshot(&path).unwrap();
        assert_eq!(b.applied(), at(50, 2));
        assert_eq!(b.digest(), a.digest());
        assert_eq!(b.0.dedup.len(), 50);
        let reply: KvReadReply =
            bincode::deserialize(&b.read(&encode(&KvRead::Get { key: "k7".into() }))).unwrap();
        assert_eq!(reply, KvReadReply::Value(Some("v7".into())));
        assert!(matches!(
            b.restore_snapshot(&dir.path().join("missing")),
            Err(crate::raft::SnapshotError::Restore { .. })
        ));
    }
}
