//! A history cut into one register history per record id: the README
//! promises linearizability per record, so every operation is decomposed
//! into its effect on each id it touches, and each id is checked alone
//! (P-compositionality; a multi-id read is not a snapshot and is never
//! checked as one).
//!
//! - a batch `upsert` / `update` / `delete` = one write per id, all with the
//!   batch's invoke/complete window;
//! - `add` in reject mode = write-if-absent; its 409 = a read "present";
//! - `delete` with `where g = G` = a conditional delete on *every* id of the
//!   key space, taking effect where the value at its linearization point
//!   is in group G;
//! - `get` by ids = one read per id (absent included); `query` = a read of
//!   each returned id (ids it did not return say nothing: top-k).
//!
//! An operation with an unknown outcome may take effect at any point after
//! its invocation, or never: it has no completion (`complete: None`). An
//! unknown read says nothing and is dropped; a failed write did nothing and
//! is dropped.

use std::collections::BTreeMap;

use crate::history::{History, Op, OpKind, Outcome};
use crate::workload::Value;

/// A register's value: `ABSENT` or an index into [`IdHistory::values`] + 1.
pub type State = u32;
pub const ABSENT: State = 0;

/// One operation's effect on one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegFn {
    /// upsert.
    Write(State),
    /// add in reject mode that was acknowledged or unknown: writes only if
    /// absent (acknowledged: it *was* absent).
    WriteIfAbsent(State),
    /// add answered 409: the id was present.
    Present,
    /// update: writes only if present.
    UpdateIfPresent(State),
    Delete,
    /// delete where g = group.
    DeleteIfGroup(u8),
    Read(State),
}

/// One operation on one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegOp {
    /// The history operation (`Op::n`) it comes from.
    pub n: u64,
    pub f: RegFn,
    pub invoke: u64,
    /// `None`: unknown outcome (may take effect any time after invoke, or
    /// never).
    pub complete: Option<u64>,
}

/// The register history of one id.
#[derive(Debug, Clone, Default)]
pub struct IdHistory {
    pub id: String,
    /// Value texts; state `i + 1` is `values[i]`.
    pub values: Vec<String>,
    /// Group of each value (`u8::MAX` if the text is not a workload value).
    pub groups: Vec<u8>,
    pub ops: Vec<RegOp>,
}

impl IdHistory {
    fn new(id: &str) -> IdHistory {
        IdHistory {
            id: id.to_string(),
            ..IdHistory::default()
        }
    }

    /// The state of value `text`, interned.
    fn state(&mut self, text: &str) -> State {
        if let Some(i) = self.values.iter().position(|v| v == text) {
            return i as State + 1;
        }
        self.values.push(text.to_string());
        self.groups
            .push(Value::parse(text).map_or(u8::MAX, |v| v.group));
        self.values.len() as State
    }

    pub fn group_of(&self, s: State) -> Option<u8> {
        (s != ABSENT).then(|| self.groups[s as usize - 1])
    }

    pub fn show(&self, s: State) -> &str {
        if s == ABSENT {
            "absent"
        } else {
            &self.values[s as usize - 1]
        }
    }

    fn push(&mut self, op: &Op, f: RegFn) {
        let complete = match op.outcome {
            Outcome::Ok | Outcome::Failed => Some(op.complete_ns),
            Outcome::Unknown => None,
        };
        self.ops.push(RegOp {
            n: op.n,
            f,
            invoke: op.invoke_ns,
            complete,
        });
    }

    /// This history with only the operations `keep` selects (for shrinking).
    pub fn with_ops(&self, ops: Vec<RegOp>) -> IdHistory {
        IdHistory {
            id: self.id.clone(),
            values: self.values.clone(),
            groups: self.groups.clone(),
            ops,
        }
    }
}

/// Every id's register history. The key space is every id any operation
/// named (a `delete where` applies to each of them).
pub fn decompose(history: &History) -> BTreeMap<String, IdHistory> {
    let mut per: BTreeMap<String, IdHistory> = BTreeMap::new();
    for op in &history.ops {
        for id in named_ids(&op.kind) {
            per.entry(id.clone()).or_insert_with(|| IdHistory::new(id));
        }
    }
    for op in &history.ops {
        let failed = op.outcome == Outcome::Failed;
        let unknown = op.outcome == Outcome::Unknown;
        match &op.kind {
            OpKind::Add { id, value } => {
                let h = per.get_mut(id).expect("id collected");
                if failed && op.status == 409 {
                    let f = RegFn::Present;
                    h.push(
                        &Op {
                            outcome: Outcome::Ok,
                            ..op.clone()
                        },
                        f,
                    );
                } else if !failed {
                    let s = h.state(value);
                    h.push(op, RegFn::WriteIfAbsent(s));
                }
            }
            OpKind::Upsert { ids, values } | OpKind::Update { ids, values } if !failed => {
                let update = matches!(op.kind, OpKind::Update { .. });
                for (id, value) in ids.iter().zip(values) {
                    let h = per.get_mut(id).expect("id collected");
                    let s = h.state(value);
                    let f = if update {
                        RegFn::UpdateIfPresent(s)
                    } else {
                        RegFn::Write(s)
                    };
                    h.push(op, f);
                }
            }
            OpKind::Delete { ids } if !failed => {
                for id in ids {
                    per.get_mut(id)
                        .expect("id collected")
                        .push(op, RegFn::Delete);
                }
            }
            OpKind::DeleteWhere { group } if !failed => {
                for h in per.values_mut() {
                    h.push(op, RegFn::DeleteIfGroup(*group));
                }
            }
            OpKind::Get {
                read: Some(read), ..
            } if !unknown && !failed => {
                for (id, seen) in read {
                    let Some(h) = per.get_mut(id) else { continue };
                    let s = seen.as_deref().map_or(ABSENT, |v| h.state(v));
                    h.push(op, RegFn::Read(s));
                }
            }
            OpKind::Query {
                read: Some(read), ..
            } if !unknown && !failed => {
                for (id, seen) in read {
                    let h = per.entry(id.clone()).or_insert_with(|| IdHistory::new(id));
                    let s = h.state(seen);
                    h.push(op, RegFn::Read(s));
                }
            }
            _ => {}
        }
    }
    per
}

/// The ids an operation names (a query's returned ids included).
pub fn named_ids(kind: &OpKind) -> Vec<&String> {
    match kind {
        OpKind::Add { id, .. } => vec![id],
        OpKind::Upsert { ids, .. }
        | OpKind::Update { ids, .. }
        | OpKind::Delete { ids }
        | OpKind::Get { ids, .. } => ids.iter().collect(),
        OpKind::Query { read, .. } => read.iter().flatten().map(|(id, _)| id).collect(),
        OpKind::DeleteWhere { .. } | OpKind::Count { .. } => Vec::new(),
    }
}

/// The register's transition: the state after `f` from `s`, or `None` when
/// `f` cannot happen in `s` (an acknowledged add of a present id, a 409 on
/// an absent one, a read of another value). `unknown`: the operation's
/// outcome is unknown, so an add of a present id is a silent no-op.
pub fn step(h: &IdHistory, s: State, f: RegFn, unknown: bool) -> Option<State> {
    match f {
        RegFn::Write(v) => Some(v),
        RegFn::WriteIfAbsent(v) if s == ABSENT => Some(v),
        RegFn::WriteIfAbsent(_) => unknown.then_some(s),
        RegFn::Present => (s != ABSENT).then_some(s),
        RegFn::UpdateIfPresent(v) => Some(if s == ABSENT { ABSENT } else { v }),
        RegFn::Delete => Some(ABSENT),
        RegFn::DeleteIfGroup(g) => Some(if h.group_of(s) == Some(g) { ABSENT } else { s }),
        RegFn::Read(v) => (s == v).then_some(s),
    }
}
