//! The run's summary: operations by kind and outcome, latencies, faults by
//! kind with the longest stretch without an acknowledged write around each,
//! the checker's findings, and the last line `N operations, M faults, K
//! anomalies`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::RunConfig;
use crate::checker::{Anomaly, Report};
use crate::history::{secs, History, Op, Outcome};

#[derive(Debug)]
pub struct Summary {
    pub operations: usize,
    pub faults: usize,
    pub anomalies: Vec<Anomaly>,
    /// Ids the linearizability search could not decide within its budget.
    pub inconclusive: Vec<String>,
    header: String,
    checker: String,
}

/// The `q` quantile of sorted `xs`.
fn quantile(xs: &[u64], q: f64) -> u64 {
    if xs.is_empty() {
        return 0;
    }
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

/// The longest time without an acknowledged write that overlaps
/// [start, end], in ns: how long writes stalled around a fault.
pub fn longest_write_gap(acked_writes: &[u64], start: u64, end: u64) -> u64 {
    let before = acked_writes.iter().rev().find(|t| **t <= start).copied();
    let mut last = before.unwrap_or(start);
    let mut gap = 0;
    for &t in acked_writes.iter().filter(|t| **t > start) {
        gap = gap.max(t - last);
        last = t;
        if t > end {
            return gap;
        }
    }
    gap
}

impl Summary {
    pub fn new(
        cfg: &RunConfig,
        history: &History,
        faults: usize,
        anomalies: Vec<Anomaly>,
        report: &Report,
    ) -> Summary {
        let mut header = String::new();
        let _ = writeln!(
            header,
            "seed {} | {} nodes, {} router(s), {} clients on {} ids | {} s of faults from {:?}",
            cfg.seed,
            cfg.nodes,
            cfg.routers,
            cfg.clients,
            cfg.keys,
            cfg.secs,
            cfg.faults.iter().map(|k| k.name()).collect::<Vec<_>>()
        );
        header += &operations_table(&history.ops);
        header += &faults_table(history);
        Summary {
            operations: history.ops.len(),
            faults,
            anomalies,
            inconclusive: report.inconclusive.clone(),
            header,
            checker: String::new(),
        }
        .with_checker(report)
    }

    fn with_checker(mut self, report: &Report) -> Summary {
        self.checker = format!(
            "checker: {} ids, {} register operations, {:.1?}",
            report.ids_checked, report.register_ops, report.took
        );
        self
    }

    /// The text printed and saved as summary.txt.
    pub fn render(&self, history: &History) -> String {
        let mut out = self.header.clone();
        let _ = writeln!(out, "{}", self.checker);
        let report = Report {
            anomalies: self.anomalies.clone(),
            inconclusive: self.inconclusive.clone(),
            ..Report::default()
        };
        // The report's first line repeats the counts above; skip it.
        for line in report.render(history).lines().skip(1) {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(
            out,
            "{} operations, {} faults, {} anomalies",
            self.operations,
            self.faults,
            self.anomalies.len()
        );
        out
    }
}

fn operations_table(ops: &[Op]) -> String {
    let mut by_kind: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for op in ops {
        let slot = match op.outcome {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Unknown => 2,
        };
        by_kind.entry(op.kind.name()).or_default()[slot] += 1;
    }
    let mut out = format!(
        "{:<13} {:>7} {:>7} {:>7}\n",
        "operation", "ok", "failed", "unknown"
    );
    for (kind, [ok, failed, unknown]) in &by_kind {
        let _ = writeln!(out, "{kind:<13} {ok:>7} {failed:>7} {unknown:>7}");
    }
    let mut lat: Vec<u64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.complete_ns - o.invoke_ns)
        .collect();
    lat.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let _ = writeln!(
        out,
        "latency of acknowledged operations: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(quantile(&lat, 0.5)),
        ms(quantile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or(0))
    );
    out
}

fn faults_table(history: &History) -> String {
    let mut writes: Vec<u64> = history
        .ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && !o.kind.is_read())
        .map(|o| o.complete_ns)
        .collect();
    writes.sort_unstable();
    let mut by_kind: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for f in &history.faults {
        let end = f.end_ns.unwrap_or(f.start_ns);
        by_kind
            .entry(&f.name)
            .or_default()
            .push(longest_write_gap(&writes, f.start_ns, end));
    }
    let mut out = String::new();
    if by_kind.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<19} {:>6}  longest stretch without an acknowledged write around it: p50 / max",
        "fault", "count"
    );
    for (kind, mut gaps) in by_kind {
        gaps.sort_unstable();
        let _ = writeln!(
            out,
            "{kind:<19} {:>6}  {:.2} s / {:.2} s",
            gaps.len(),
            secs(quantile(&gaps, 0.5)),
            secs(gaps.last().copied().unwrap_or(0))
        );
    }
    out
}
