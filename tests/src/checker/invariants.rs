//! The checks besides linearizability, each a direct statement about the
//! history that needs no search (so each names its own anomaly even where
//! the linearizability check would also fail):
//!
//! - no phantom: every value read was written by an operation invoked
//!   before the read completed (and a record is never a mix of writes);
//! - no lost write: the final read of each id (after the heal) shows the
//!   last acknowledged write, or a write or delete that may have taken
//!   effect after it;
//! - a query never returns an id that is certainly deleted: deleted by an
//!   acknowledged delete completed before the query was invoked, and not
//!   rewritten by any operation that may have taken effect since;
//! - a query's records match its filter;
//! - a `count` lies between the number of ids certainly present and the
//!   number possibly present during its window (a count over several shards
//!   is not a snapshot, so no exact value is required);
//! - no answer the workload's valid requests should never get (a 4xx other
//!   than an add's 409).

use std::collections::BTreeMap;

use super::model::{IdHistory, RegFn, RegOp, State, ABSENT};
use super::Anomaly;
use crate::history::{History, Op, OpKind, Outcome};
use crate::workload::{Value, FINAL_CLIENT};

/// When an operation may still take effect (`u64::MAX`: unknown outcome).
fn until(op: &RegOp) -> u64 {
    op.complete.unwrap_or(u64::MAX)
}

fn is_write(f: RegFn) -> bool {
    matches!(
        f,
        RegFn::Write(_) | RegFn::WriteIfAbsent(_) | RegFn::UpdateIfPresent(_)
    )
}

fn is_delete(f: RegFn) -> bool {
    matches!(f, RegFn::Delete | RegFn::DeleteIfGroup(_))
}

/// Whether the id is certainly absent for the whole window [inv, comp]:
/// never written by an operation invoked before `comp`, or deleted by an
/// acknowledged delete completed before `inv` that no write invoked before
/// `comp` can follow. (Linear in the id's operations: counts and queries
/// ask this for every id.)
pub fn certainly_absent(h: &IdHistory, inv: u64, comp: u64) -> bool {
    // The latest moment any write invoked before `comp` may take effect.
    let Some(last_write) = h
        .ops
        .iter()
        .filter(|o| is_write(o.f) && o.invoke < comp)
        .map(until)
        .max()
    else {
        return true;
    };
    h.ops.iter().any(|d| {
        d.f == RegFn::Delete && d.complete.is_some_and(|c| c < inv) && d.invoke > last_write
    })
}

/// Whether the id is certainly present for the whole window: an
/// acknowledged unconditional write completed before `inv`, and no delete
/// invoked before `comp` may follow it.
fn certainly_present(h: &IdHistory, inv: u64, comp: u64) -> bool {
    let last_delete = h
        .ops
        .iter()
        .filter(|d| is_delete(d.f) && d.invoke < comp)
        .map(until)
        .max();
    h.ops.iter().any(|w| {
        matches!(w.f, RegFn::Write(_) | RegFn::WriteIfAbsent(_))
            && w.complete.is_some_and(|c| c < inv)
            && last_delete.is_none_or(|d| d < w.invoke)
    })
}

fn anomaly(check: &'static str, id: Option<&str>, message: String, ops: Vec<u64>) -> Anomaly {
    Anomaly {
        check,
        id: id.map(str::to_string),
        message,
        ops,
    }
}

/// Every value a read saw, with the reading operation.
fn reads(history: &History) -> impl Iterator<Item = (&Op, &String, Option<&String>)> {
    history
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .flat_map(|op| {
            let seen: Vec<(&String, Option<&String>)> = match &op.kind {
                OpKind::Get { read: Some(r), .. } => {
                    r.iter().map(|(id, v)| (id, v.as_ref())).collect()
                }
                OpKind::Query { read: Some(r), .. } => {
                    r.iter().map(|(id, v)| (id, Some(v))).collect()
                }
                _ => Vec::new(),
            };
            seen.into_iter().map(move |(id, v)| (op, id, v))
        })
}

pub fn phantoms(history: &History, per: &BTreeMap<String, IdHistory>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (op, id, seen) in reads(history) {
        let Some(value) = seen else { continue };
        let Some(h) = per.get(id) else { continue };
        let written = h.ops.iter().any(|w| {
            is_write(w.f)
                && w.invoke < op.complete_ns
                && matches!(w.f, RegFn::Write(s) | RegFn::WriteIfAbsent(s) | RegFn::UpdateIfPresent(s)
                    if h.show(s) == value)
        });
        if !written {
            out.push(anomaly(
                "phantom",
                Some(id),
                format!(
                    "{} read {id} = {value}, which no operation invoked before the read \
                     completed wrote",
                    op.kind.name()
                ),
                vec![op.n],
            ));
        }
    }
    out
}

pub fn deleted_in_query(history: &History, per: &BTreeMap<String, IdHistory>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (op, id, _) in reads(history) {
        if !matches!(op.kind, OpKind::Query { .. }) {
            continue;
        }
        let Some(h) = per.get(id) else { continue };
        if certainly_absent(h, op.invoke_ns, op.complete_ns) {
            let deletes: Vec<u64> = h
                .ops
                .iter()
                .filter(|d| d.f == RegFn::Delete && d.complete.is_some_and(|c| c < op.invoke_ns))
                .map(|d| d.n)
                .collect();
            let mut ops = deletes;
            ops.push(op.n);
            out.push(anomaly(
                "deleted-in-query",
                Some(id),
                format!("query returned {id}, deleted before it was invoked and not written since"),
                ops,
            ));
        }
    }
    out
}

pub fn query_filters(history: &History) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for op in history.ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let OpKind::Query {
            group: Some(g),
            read: Some(read),
        } = &op.kind
        else {
            continue;
        };
        for (id, v) in read {
            if Value::parse(v).is_some_and(|v| v.group != *g) {
                out.push(anomaly(
                    "query-filter",
                    Some(id),
                    format!("query where g={g} returned {id} = {v}, of another group"),
                    vec![op.n],
                ));
            }
        }
    }
    out
}

pub fn count_bounds(history: &History, per: &BTreeMap<String, IdHistory>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for op in history.ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let OpKind::Count { count: Some(c) } = op.kind else {
            continue;
        };
        let (inv, comp) = (op.invoke_ns, op.complete_ns);
        let min = per
            .values()
            .filter(|h| certainly_present(h, inv, comp))
            .count() as u64;
        let max = per
            .values()
            .filter(|h| !certainly_absent(h, inv, comp))
            .count() as u64;
        if c < min || c > max {
            out.push(anomaly(
                "count-bounds",
                None,
                format!("count answered {c}; between {min} and {max} ids can have been present"),
                vec![op.n],
            ));
        }
    }
    out
}

/// The value an operation leaves, for the lost-write check (`None`: a
/// conditional op that may leave the old value).
fn leaves(f: RegFn) -> Option<State> {
    match f {
        RegFn::Write(s) | RegFn::WriteIfAbsent(s) | RegFn::UpdateIfPresent(s) => Some(s),
        RegFn::Delete | RegFn::DeleteIfGroup(_) => Some(ABSENT),
        RegFn::Present | RegFn::Read(_) => None,
    }
}

pub fn lost_writes(history: &History, per: &BTreeMap<String, IdHistory>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    // The last final read per id.
    let mut finals: BTreeMap<&String, (&Op, Option<&String>)> = BTreeMap::new();
    for (op, id, v) in reads(history) {
        if op.client == FINAL_CLIENT {
            finals.insert(id, (op, v));
        }
    }
    for (id, (read, seen)) in finals {
        let Some(h) = per.get(id) else { continue };
        // The last acknowledged unconditional write or delete.
        let last = h
            .ops
            .iter()
            .filter(|o| {
                matches!(
                    o.f,
                    RegFn::Write(_) | RegFn::WriteIfAbsent(_) | RegFn::Delete
                ) && o.complete.is_some()
            })
            .max_by_key(|o| o.complete);
        let Some(last) = last else { continue };
        let explains = |o: &&RegOp| {
            let s = leaves(o.f);
            let value_matches = match (s, seen) {
                (Some(ABSENT), None) => true,
                (Some(s), Some(v)) if s != ABSENT => h.show(s) == v,
                _ => false,
            };
            value_matches && (*o == last || until(o) > last.invoke)
        };
        if !h.ops.iter().any(|o| explains(&o)) {
            out.push(anomaly(
                "lost-write",
                Some(id),
                format!(
                    "the final read shows {id} = {}, but the acknowledged #{} ({}) came \
                     after every operation that leaves that",
                    seen.map_or("absent", |v| v.as_str()),
                    last.n,
                    h.show(leaves(last.f).unwrap_or(ABSENT)),
                ),
                vec![last.n, read.n],
            ));
        }
    }
    out
}

pub fn unexpected_answers(history: &History) -> Vec<Anomaly> {
    history
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Failed)
        .filter(|op| !(op.status == 409 && matches!(op.kind, OpKind::Add { .. })))
        .map(|op| {
            anomaly(
                "unexpected-answer",
                None,
                format!(
                    "a valid {} answered {}: {}",
                    op.kind.name(),
                    op.status,
                    op.error.as_deref().unwrap_or("")
                ),
                vec![op.n],
            )
        })
        .collect()
}
