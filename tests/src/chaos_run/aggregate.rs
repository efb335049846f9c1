//! The long tier's sum over many runs (`chaos --aggregate DIR`): every
//! `DIR/*/summary.json` ([`RunReport`]) read, operations, faults and anomalies
//! added up per cluster size, and the fault windows of all runs pooled per
//! fault kind (quantiles over the pooled windows, not averages of each
//! run's quantiles). Written as `DIR/table.md` and `DIR/aggregate.json`.
//! A run directory (one with `history.jsonl` or `driver.log`) without a
//! readable `summary.json` (a driver that died) is listed, never skipped
//! silently.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::report::{by_kind, kind_table, KindStats, RunReport};

/// Runs of one cluster size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SizeTotals {
    pub runs: usize,
    pub fault_seconds: u64,
    pub operations: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub faults: usize,
    pub anomalies: usize,
    pub inconclusive_ids: usize,
}

/// A run with findings, or without a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProblem {
    pub dir: PathBuf,
    pub seed: Option<u64>,
    pub what: String,
}

/// `aggregate.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// By node count.
    pub sizes: BTreeMap<usize, SizeTotals>,
    pub kinds: BTreeMap<String, KindStats>,
    pub problems: Vec<RunProblem>,
}

impl Aggregate {
    pub fn anomalies(&self) -> usize {
        self.sizes.values().map(|s| s.anomalies).sum()
    }

    /// The markdown of `table.md`.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| nodes | runs | s of faults | operations | ok | failed | unknown | faults | anomalies |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for (nodes, s) in &self.sizes {
            let _ = writeln!(
                out,
                "| {nodes} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.runs,
                s.fault_seconds,
                s.operations,
                s.ok,
                s.failed,
                s.unknown,
                s.faults,
                s.anomalies
            );
        }
        out += "\n";
        out += &kind_table(&self.kinds, true);
        if !self.problems.is_empty() {
            out += "\nRuns with findings or without a summary:\n\n";
            for p in &self.problems {
                let _ = writeln!(
                    out,
                    "- {} (seed {}): {}",
                    p.dir.display(),
                    p.seed.map_or("?".to_string(), |s| s.to_string()),
                    p.what
                );
            }
        }
        out
    }
}

/// Reads every run directory under `dir` (see the module docs).
pub fn aggregate(dir: &Path) -> Result<Aggregate, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A run's directory has its history or driver output from the start
    // (scripts/chaos-long's `bin/` has neither).
    let mut runs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("history.jsonl").is_file() || p.join("driver.log").is_file())
        .collect();
    runs.sort();
    let mut agg = Aggregate::default();
    let mut windows = Vec::new();
    for run in runs {
        let path = run.join("summary.json");
        let report: RunReport = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                agg.problems.push(RunProblem {
                    dir: run,
                    seed: None,
                    what: format!("no summary.json: {e}"),
                });
                continue;
            }
        };
        let s = agg.sizes.entry(report.nodes).or_default();
        s.runs += 1;
        s.fault_seconds += report.secs;
        s.operations += report.operations;
        s.ok += report.ok;
        s.failed += report.failed;
        s.unknown += report.unknown;
        s.faults += report.faults;
        s.anomalies += report.anomalies.len();
        s.inconclusive_ids += report.inconclusive.len();
        if !report.anomalies.is_empty() {
            let checks: Vec<String> = report
                .anomalies
                .iter()
                .map(|a| format!("{}: {}", a.check, a.message))
                .collect();
            agg.problems.push(RunProblem {
                dir: run.clone(),
                seed: Some(report.seed),
                what: format!("{} anomalies: {}", checks.len(), checks.join("; ")),
            });
        }
        windows.extend(report.windows);
    }
    agg.kinds = by_kind(&windows);
    Ok(agg)
}

/// Aggregates `dir` and writes `table.md` and `aggregate.json` there.
pub fn write(dir: &Path) -> Result<Aggregate, String> {
    let agg = aggregate(dir)?;
    let md = dir.join("table.md");
    std::fs::write(&md, agg.markdown()).map_err(|e| format!("{}: {e}", md.display()))?;
    let json = dir.join("aggregate.json");
    let bytes = serde_json::to_vec_pretty(&agg).map_err(|e| e.to_string())?;
    std::fs::write(&json, bytes).map_err(|e| format!("{}: {e}", json.display()))?;
    Ok(agg)
}
