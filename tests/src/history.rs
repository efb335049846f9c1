//! A recorded history of a chaos run: every client operation with its
//! invocation and completion time, its outcome and what a read returned, and
//! every fault window. Written as JSON lines (one [`Event`] per line) while the
//! run goes, so a saved `history.jsonl` can be checked again later
//! (`chaos --check FILE`).
//!
//! Times are nanoseconds since the run's start on a monotonic clock.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What an operation's answer says about its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged (2xx): took effect once, between invoke and complete.
    Ok,
    /// Definitely not applied (400 validation, 409 reject: the API
    /// guarantees nothing of the request was written).
    Failed,
    /// May have taken effect at any point after invoke, or never (timeout,
    /// 5xx, connection error).
    Unknown,
}

/// One operation of the workload, with its arguments and, for reads, what it
/// returned. Record ids are strings; written values are unique strings (see
/// `workload::Value`), `None` in a read = the id was absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OpKind {
    /// `add` in reject mode of one id (a 409 = the id existed).
    Add {
        id: String,
        value: String,
    },
    Upsert {
        ids: Vec<String>,
        values: Vec<String>,
    },
    /// `update`: ignored for an id that does not exist.
    Update {
        ids: Vec<String>,
        values: Vec<String>,
    },
    Delete {
        ids: Vec<String>,
    },
    /// `delete` with `where: {"g": group}`.
    DeleteWhere {
        group: u8,
    },
    /// `get` by ids: per requested id the value seen (`None` = absent).
    Get {
        ids: Vec<String>,
        #[serde(default)]
        read: Option<Vec<(String, Option<String>)>>,
    },
    /// `query` (optionally `where: {"g": group}`): the (id, value) pairs
    /// returned. Ids not returned say nothing (top-k).
    Query {
        group: Option<u8>,
        #[serde(default)]
        read: Option<Vec<(String, String)>>,
    },
    /// `count` of the collection.
    Count {
        #[serde(default)]
        count: Option<u64>,
    },
}

impl OpKind {
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Add { .. } => "add",
            OpKind::Upsert { .. } => "upsert",
            OpKind::Update { .. } => "update",
            OpKind::Delete { .. } => "delete",
            OpKind::DeleteWhere { .. } => "delete-where",
            OpKind::Get { .. } => "get",
            OpKind::Query { .. } => "query",
            OpKind::Count { .. } => "count",
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(
            self,
            OpKind::Get { .. } | OpKind::Query { .. } | OpKind::Count { .. }
        )
    }
}

/// One completed operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Index in invocation order over the whole run.
    pub n: u64,
    pub client: u32,
    /// Which router served it.
    pub router: u32,
    #[serde(flatten)]
    pub kind: OpKind,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
    /// HTTP status (0: transport error or client timeout).
    pub status: u16,
    /// Error text of a non-2xx answer, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// One line for reports: times in seconds, arguments, outcome.
    pub fn describe(&self) -> String {
        let args = match &self.kind {
            OpKind::Add { id, value } => format!("{id}={value}"),
            OpKind::Upsert { ids, values } | OpKind::Update { ids, values } => ids
                .iter()
                .zip(values)
                .map(|(i, v)| format!("{i}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            OpKind::Delete { ids } => ids.join(" "),
            OpKind::DeleteWhere { group } => format!("where g={group}"),
            OpKind::Get { ids, read } => match read {
                Some(read) => read
                    .iter()
                    .map(|(i, v)| format!("{i}->{}", v.as_deref().unwrap_or("absent")))
                    .collect::<Vec<_>>()
                    .join(" "),
                None => ids.join(" "),
            },
            OpKind::Query { group, read } => {
                let filter = group.map(|g| format!("where g={g} ")).unwrap_or_default();
                let seen = read
                    .iter()
                    .flatten()
                    .map(|(i, v)| format!("{i}->{v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("{filter}{seen}")
            }
            OpKind::Count { count } => match count {
                Some(c) => format!("-> {c}"),
                None => String::new(),
            },
        };
        let outcome = match self.outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Failed => format!("failed {}", self.status),
            Outcome::Unknown => format!("unknown {}", self.status),
        };
        format!(
            "#{:<6} [{:>8.3}s .. {:>8.3}s] c{:<2} r{} {:<12} {args} : {outcome}",
            self.n,
            secs(self.invoke_ns),
            secs(self.complete_ns),
            self.client,
            self.router,
            self.kind.name(),
        )
    }
}

/// Seconds, for printing a nanosecond timestamp.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A fault window: started at `start_ns`, in place (injected: nodes
/// killed, rules set, the replacement started) at `in_place_ns`, healed at
/// `end_ns` (`None` if the run ended before the heal was recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    pub name: String,
    /// What was hit (nodes, group), for people.
    pub detail: String,
    pub start_ns: u64,
    /// Absent in histories written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_ns: Option<u64>,
    pub end_ns: Option<u64>,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Op(Op),
    Fault(FaultWindow),
}

/// A whole history in memory: operations (sorted by `n`) and faults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub ops: Vec<Op>,
    pub faults: Vec<FaultWindow>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("history file {path} line {line}: {source}")]
    Parse {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
}

impl History {
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> History {
        let mut h = History::default();
        for e in events {
            match e {
                Event::Op(op) => h.ops.push(op),
                Event::Fault(f) => h.faults.push(f),
            }
        }
        h.ops.sort_by_key(|o| o.n);
        h
    }

    /// Reads a `history.jsonl` file (blank lines skipped).
    pub fn load(path: &Path) -> Result<History, HistoryError> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| HistoryError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut events = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| HistoryError::Io {
                path: shown.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
                path: shown.clone(),
                line: i + 1,
                source,
            })?;
            events.push(event);
        }
        Ok(History::from_events(events))
    }
}

/// The run's clock and the JSONL file, shared by every client task. Each
/// event is written as one line when it completes (a crash of the driver
/// leaves every finished operation on disk).
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    inner: Arc<Mutex<RecorderInner>>,
}

struct RecorderInner {
    out: Option<BufWriter<std::fs::File>>,
    history: History,
    next_n: u64,
}

impl Recorder {
    /// Records into memory, and into `path` as JSON lines when given.
    pub fn create(path: Option<&Path>) -> Result<Recorder, HistoryError> {
        let out = match path {
            Some(p) => Some(BufWriter::new(std::fs::File::create(p).map_err(
                |source| HistoryError::Io {
                    path: p.display().to_string(),
                    source,
                },
            )?)),
            None => None,
        };
        Ok(Recorder {
            start: Instant::now(),
            inner: Arc::new(Mutex::new(RecorderInner {
                out,
                history: History::default(),
                next_n: 0,
            })),
        })
    }

    /// Nanoseconds since the recorder was created.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// A fresh operation number (taken at invocation, so `n` orders
    /// invocations).
    pub fn next_n(&self) -> u64 {
        let mut inner = self.inner.lock();
        inner.next_n += 1;
        inner.next_n - 1
    }

    pub fn record(&self, event: Event) {
        let mut inner = self.inner.lock();
        if let Some(out) = inner.out.as_mut() {
            // The in-memory copy is what the checker reads; a failed write
            // of the file copy is reported, not fatal.
            let line = serde_json::to_string(&event).unwrap_or_default();
            if let Err(e) = writeln!(out, "{line}") {
                eprintln!("history: write failed: {e}");
            }
        }
        match event {
            Event::Op(op) => inner.history.ops.push(op),
            Event::Fault(f) => inner.history.faults.push(f),
        }
    }

    /// The history so far (ops sorted by `n`), after flushing the file.
    pub fn snapshot(&self) -> History {
        let mut inner = self.inner.lock();
        if let Some(out) = inner.out.as_mut() {
            if let Err(e) = out.flush() {
                eprintln!("history: flush failed: {e}");
            }
        }
        let mut h = inner.history.clone();
        h.ops.sort_by_key(|o| o.n);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_file_reads_back_as_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(Some(&path)).expect("recorder");
        let ops = [
            OpKind::Add {
                id: "k1".into(),
                value: "c0-s0.0-g1".into(),
            },
            OpKind::Get {
                ids: vec!["k1".into(), "k2".into()],
                read: Some(vec![
                    ("k1".into(), Some("c0-s0.0-g1".into())),
                    ("k2".into(), None),
                ]),
            },
            OpKind::Query {
                group: Some(1),
                read: None,
            },
            OpKind::Count { count: Some(1) },
            OpKind::DeleteWhere { group: 2 },
        ];
        for (i, kind) in ops.into_iter().enumerate() {
            rec.record(Event::Op(Op {
                n: rec.next_n(),
                client: i as u32,
                router: 0,
                kind,
                invoke_ns: 10 * i as u64,
                complete_ns: 10 * i as u64 + 5,
                outcome: if i == 2 {
                    Outcome::Unknown
                } else {
                    Outcome::Ok
                },
                status: if i == 2 { 503 } else { 200 },
                error: (i == 2).then(|| "unavailable".to_string()),
            }));
        }
        rec.record(Event::Fault(FaultWindow {
            name: "kill".into(),
            detail: "node 2".into(),
            start_ns: 3,
            in_place_ns: Some(5),
            end_ns: Some(40),
        }));
        let written = rec.snapshot();
        let read = History::load(&path).expect("load");
        assert_eq!(read, written);
        assert_eq!(read.ops.len(), 5);
        assert_eq!(read.faults.len(), 1);
    }
}
