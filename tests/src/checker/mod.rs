//! Checks a recorded [`History`] against the README's promises:
//! linearizable per record ([`linear`] on the per-id registers of
//! [`model`]), plus the direct checks of [`invariants`] (phantoms, lost
//! writes, deleted ids in queries, query filters, count bounds, unexpected
//! answers). Convergence of the replicas is checked by the driver on the
//! live cluster and added to the same report.
//!
//! A register that is not linearizable is shrunk ([`shrink`]) to a minimal
//! offending sub-history, which the report prints operation by operation.

pub mod invariants;
pub mod linear;
pub mod model;
pub mod shrink;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::history::{secs, History};
use linear::Verdict;
use model::{IdHistory, RegFn, RegOp};

/// Configurations the linearizability search may explore per id before it
/// gives up and reports that id as inconclusive.
pub const DEFAULT_BUDGET: usize = 2_000_000;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Which check: `linearizability`, `phantom`, `lost-write`,
    /// `deleted-in-query`, `query-filter`, `count-bounds`,
    /// `unexpected-answer`, `convergence`, `crash`.
    pub check: &'static str,
    pub id: Option<String>,
    pub message: String,
    /// The operations (`Op::n`) that show it: for linearizability, the
    /// shrunk sub-history.
    pub ops: Vec<u64>,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub anomalies: Vec<Anomaly>,
    /// Ids whose search hit the budget (neither proven nor refuted).
    pub inconclusive: Vec<String>,
    pub ids_checked: usize,
    pub register_ops: usize,
    pub took: Duration,
}

/// Runs every check on `history`.
pub fn check(history: &History, budget: usize) -> Report {
    let started = Instant::now();
    let per = model::decompose(history);
    let mut report = Report {
        ids_checked: per.len(),
        register_ops: per.values().map(|h| h.ops.len()).sum(),
        ..Report::default()
    };
    for h in per.values() {
        match linear::check(h, budget) {
            Verdict::Linearizable => {}
            Verdict::Inconclusive => report.inconclusive.push(h.id.clone()),
            Verdict::Violation => report.anomalies.push(linearizability_anomaly(h)),
        }
    }
    report.anomalies.extend(invariants::phantoms(history, &per));
    report
        .anomalies
        .extend(invariants::lost_writes(history, &per));
    report
        .anomalies
        .extend(invariants::deleted_in_query(history, &per));
    report.anomalies.extend(invariants::query_filters(history));
    report
        .anomalies
        .extend(invariants::count_bounds(history, &per));
    report
        .anomalies
        .extend(invariants::unexpected_answers(history));
    report.took = started.elapsed();
    report
}

fn linearizability_anomaly(h: &IdHistory) -> Anomaly {
    let small = shrink::shrink(h);
    let mut message = format!(
        "no order of these {} operations on {} (of {}) explains what the reads saw:",
        small.ops.len(),
        h.id,
        h.ops.len()
    );
    let mut ops = small.ops.clone();
    ops.sort_by_key(|o| o.invoke);
    for op in &ops {
        let _ = write!(message, "\n    {}", describe_reg(&small, op));
    }
    Anomaly {
        check: "linearizability",
        id: Some(h.id.clone()),
        message,
        ops: ops.iter().map(|o| o.n).collect(),
    }
}

/// One register operation: its window and effect.
fn describe_reg(h: &IdHistory, op: &RegOp) -> String {
    let effect = match op.f {
        RegFn::Write(s) => format!("write {}", h.show(s)),
        RegFn::WriteIfAbsent(s) => format!("add {}", h.show(s)),
        RegFn::Present => "add -> 409 (present)".to_string(),
        RegFn::UpdateIfPresent(s) => format!("update {}", h.show(s)),
        RegFn::Delete => "delete".to_string(),
        RegFn::DeleteIfGroup(g) => format!("delete where g={g}"),
        RegFn::Read(s) => format!("read -> {}", h.show(s)),
    };
    let end = match op.complete {
        Some(c) => format!("{:>8.3}s", secs(c)),
        None => "       ? (unknown outcome)".to_string(),
    };
    format!("#{:<6} [{:>8.3}s .. {end}] {effect}", op.n, secs(op.invoke))
}

impl Report {
    /// The report's text: every anomaly with the operations that show it
    /// (the full history lines), then the inconclusive ids.
    pub fn render(&self, history: &History) -> String {
        let by_n: BTreeMap<u64, &crate::history::Op> =
            history.ops.iter().map(|o| (o.n, o)).collect();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "checked {} ids ({} register operations) in {:.1?}",
            self.ids_checked, self.register_ops, self.took
        );
        for (i, a) in self.anomalies.iter().enumerate() {
            let id = a.id.as_deref().map(|i| format!(" {i}")).unwrap_or_default();
            let _ = writeln!(out, "ANOMALY {} [{}{id}]: {}", i + 1, a.check, a.message);
            for n in &a.ops {
                if let Some(op) = by_n.get(n) {
                    let _ = writeln!(out, "    {}", op.describe());
                }
            }
        }
        if !self.inconclusive.is_empty() {
            let _ = writeln!(
                out,
                "inconclusive (search budget hit, neither proven nor refuted): {}",
                self.inconclusive.join(" ")
            );
        }
        out
    }
}
