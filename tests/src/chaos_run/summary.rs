//! The run's summary: operations by kind and outcome, latencies, faults by
//! kind with their failover time and unavailable seconds (defined in
//! [`super::report`]), the checker's findings, and the last line `N
//! operations, M faults, K anomalies`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::report::{by_kind, kind_table, quantile, window_stats};
use super::RunConfig;
use crate::checker::{Anomaly, Report};
use crate::history::{History, Op, Outcome};

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
    let mut lat_ms: Vec<f64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| (o.complete_ns - o.invoke_ns) as f64 / 1e6)
        .collect();
    lat_ms.sort_unstable_by(f64::total_cmp);
    let _ = writeln!(
        out,
        "latency of acknowledged operations: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quantile(&lat_ms, 0.5),
        quantile(&lat_ms, 0.99),
        lat_ms.last().copied().unwrap_or(0.0)
    );
    out
}

fn faults_table(history: &History) -> String {
    let stats = by_kind(&window_stats(history));
    if stats.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "fault windows: failover = from the fault in place to the first acknowledged write \
         invoked after; unavail = longest stretch without an acknowledged write around it\n",
    );
    out += &kind_table(&stats, false);
    out
}
