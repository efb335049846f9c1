//! What a run measured, machine-readable: `summary.json` next to the history
//! ([`RunReport`]), with each fault window's failover time and unavailable
//! seconds, and their figures per fault kind ([`KindStats`]), which the
//! summary prints and the long tier ([`super::aggregate`]) sums over runs.
//!
//! Definitions, cluster-wide (a write is any operation but get, query and
//! count; "acknowledged" = its outcome is ok):
//! - **failover time** of a fault in place at `P` (the injection done:
//!   nodes killed or stopped, rules set, the replacement started; the
//!   injection itself may take a few hundred ms of status requests, during
//!   which the cluster still works): from `P` to the completion of the
//!   first acknowledged write *invoked* at or after `P` (writes invoked
//!   before may have been served before the fault took hold). Undefined
//!   (`null`) when no write invoked after `P` was ever acknowledged. The
//!   clients write to every shard, so a fault that stops one shard group
//!   shows here only if it stalls the others too (a majority paused does);
//!   the stall itself shows in the unavailable seconds.
//! - **unavailable seconds** of a window `[S, E]` (`E` = the heal done):
//!   the longest stretch without the completion of any acknowledged write
//!   that overlaps `[S, E]`, from the last acknowledgement at or before `S`
//!   to the first after `E` (the longest stretch, not the sum of stretches:
//!   a window with writes trickling through a stalled cluster still counts
//!   its worst hole). With 12 clients it is a few tens of ms when nothing
//!   stalls.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RunConfig;
use crate::checker::Anomaly;
use crate::history::{secs, History, Outcome};

/// One fault window's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub name: String,
    pub detail: String,
    /// Seconds since the run's start.
    pub start_s: f64,
    /// When the fault was in place (see the module docs).
    pub in_place_s: f64,
    pub end_s: f64,
    pub failover_s: Option<f64>,
    pub unavailable_s: f64,
}

/// One finding, as `summary.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingJson {
    pub check: String,
    pub id: Option<String>,
    pub message: String,
}

/// `summary.json`: the run's configuration, its counts, every fault window
/// with its figures, and the findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: usize,
    pub routers: usize,
    pub clients: u32,
    pub keys: u32,
    pub secs: u64,
    pub fault_kinds: Vec<String>,
    pub operations: usize,
    /// Operations by outcome: ok, failed, unknown.
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub faults: usize,
    pub windows: Vec<WindowStats>,
    pub anomalies: Vec<FindingJson>,
    /// Ids the linearizability search could not decide within its budget.
    pub inconclusive: Vec<String>,
}

impl RunReport {
    pub fn new(
        cfg: &RunConfig,
        history: &History,
        faults: usize,
        anomalies: &[Anomaly],
        inconclusive: &[String],
    ) -> RunReport {
        let count = |o: Outcome| history.ops.iter().filter(|op| op.outcome == o).count();
        RunReport {
            seed: cfg.seed,
            nodes: cfg.nodes,
            routers: cfg.routers,
            clients: cfg.clients,
            keys: cfg.keys,
            secs: cfg.secs,
            fault_kinds: cfg.faults.iter().map(|k| k.name().to_string()).collect(),
            operations: history.ops.len(),
            ok: count(Outcome::Ok),
            failed: count(Outcome::Failed),
            unknown: count(Outcome::Unknown),
            faults,
            windows: window_stats(history),
            anomalies: anomalies
                .iter()
                .map(|a| FindingJson {
                    check: a.check.to_string(),
                    id: a.id.clone(),
                    message: a.message.clone(),
                })
                .collect(),
            inconclusive: inconclusive.to_vec(),
        }
    }
}

/// The longest time without an acknowledged write that overlaps
/// [start, end], in ns (see the module docs).
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

/// Every fault window's figures, in the order of the history.
pub fn window_stats(history: &History) -> Vec<WindowStats> {
    // (invoke, complete) of the acknowledged writes, by completion.
    let mut writes: Vec<(u64, u64)> = history
        .ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && !o.kind.is_read())
        .map(|o| (o.invoke_ns, o.complete_ns))
        .collect();
    writes.sort_unstable_by_key(|&(_, c)| c);
    let completions: Vec<u64> = writes.iter().map(|&(_, c)| c).collect();
    history
        .faults
        .iter()
        .map(|f| {
            let end = f.end_ns.unwrap_or(f.start_ns);
            let in_place = f.in_place_ns.unwrap_or(f.start_ns);
            let failover = writes
                .iter()
                .find(|&&(i, _)| i >= in_place)
                .map(|&(_, c)| secs(c - in_place));
            WindowStats {
                name: f.name.clone(),
                detail: f.detail.clone(),
                start_s: secs(f.start_ns),
                in_place_s: secs(in_place),
                end_s: secs(end),
                failover_s: failover,
                unavailable_s: secs(longest_write_gap(&completions, f.start_ns, end)),
            }
        })
        .collect()
}

/// The `q` quantile (nearest rank) of sorted `xs`; 0 when empty.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

/// One fault kind's figures over many windows (of one run or many).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindStats {
    pub count: usize,
    /// Windows after which no write invoked in or after them was acknowledged.
    pub no_failover: usize,
    pub failover_p50_s: f64,
    pub failover_p99_s: f64,
    pub unavailable_p50_s: f64,
    pub unavailable_max_s: f64,
    /// The sum over the windows of each one's longest stretch.
    pub unavailable_total_s: f64,
}

/// Figures per fault kind, by name.
pub fn by_kind<'a>(
    windows: impl IntoIterator<Item = &'a WindowStats>,
) -> BTreeMap<String, KindStats> {
    let mut groups: BTreeMap<String, Vec<&WindowStats>> = BTreeMap::new();
    for w in windows {
        groups.entry(w.name.clone()).or_default().push(w);
    }
    groups
        .into_iter()
        .map(|(name, ws)| {
            let mut failover: Vec<f64> = ws.iter().filter_map(|w| w.failover_s).collect();
            failover.sort_unstable_by(f64::total_cmp);
            let mut gaps: Vec<f64> = ws.iter().map(|w| w.unavailable_s).collect();
            gaps.sort_unstable_by(f64::total_cmp);
            let stats = KindStats {
                count: ws.len(),
                no_failover: ws.len() - failover.len(),
                failover_p50_s: quantile(&failover, 0.5),
                failover_p99_s: quantile(&failover, 0.99),
                unavailable_p50_s: quantile(&gaps, 0.5),
                unavailable_max_s: gaps.last().copied().unwrap_or(0.0),
                unavailable_total_s: gaps.iter().sum(),
            };
            (name, stats)
        })
        .collect()
}

/// The per-kind table as text (the summary) or markdown (the long tier).
pub fn kind_table(stats: &BTreeMap<String, KindStats>, markdown: bool) -> String {
    let header = [
        "fault",
        "count",
        "failover p50",
        "failover p99",
        "unavail p50",
        "unavail max",
        "unavail total",
    ];
    let rows: Vec<[String; 7]> = stats
        .iter()
        .map(|(name, s)| {
            let never = if s.no_failover > 0 {
                format!(" ({} never)", s.no_failover)
            } else {
                String::new()
            };
            [
                name.clone(),
                s.count.to_string(),
                format!("{:.2} s{never}", s.failover_p50_s),
                format!("{:.2} s", s.failover_p99_s),
                format!("{:.2} s", s.unavailable_p50_s),
                format!("{:.2} s", s.unavailable_max_s),
                format!("{:.1} s", s.unavailable_total_s),
            ]
        })
        .collect();
    let mut out = String::new();
    if markdown {
        out += &format!("| {} |\n", header.join(" | "));
        out += &format!("|{}\n", "---|".repeat(header.len()));
        for r in &rows {
            out += &format!("| {} |\n", r.join(" | "));
        }
    } else {
        out += &format!(
            "{:<24} {:>5} {:>14} {:>12} {:>11} {:>11} {:>13}\n",
            header[0], header[1], header[2], header[3], header[4], header[5], header[6]
        );
        for r in &rows {
            out += &format!(
                "{:<24} {:>5} {:>14} {:>12} {:>11} {:>11} {:>13}\n",
                r[0], r[1], r[2], r[3], r[4], r[5], r[6]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultWindow, Op, OpKind};

    const S: u64 = 1_000_000_000;

    fn write(n: u64, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op {
            n,
            client: 0,
            router: 0,
            kind: OpKind::Delete {
                ids: vec!["a".into()],
            },
            invoke_ns: invoke,
            complete_ns: complete,
            outcome,
            status: 200,
            error: None,
        }
    }

    fn fault(name: &str, start: u64, end: u64) -> FaultWindow {
        FaultWindow {
            name: name.into(),
            detail: String::new(),
            start_ns: start,
            in_place_ns: None,
            end_ns: Some(end),
        }
    }

    #[test]
    fn failover_counts_writes_invoked_after_the_start_and_unavailable_the_longest_hole() {
        let history = History {
            ops: vec![
                write(0, 0, S, Outcome::Ok),
                // Invoked before the fault (at 2 s), acknowledged in it: no failover.
                write(1, S + S / 2, 3 * S, Outcome::Ok),
                write(2, 2 * S + S / 2, 4 * S, Outcome::Unknown),
                // The first write invoked after the start acknowledged: 5 s - 2 s.
                write(3, 4 * S, 5 * S, Outcome::Ok),
                write(4, 5 * S, 9 * S, Outcome::Ok),
                // A read never counts.
                Op {
                    kind: OpKind::Count { count: Some(1) },
                    ..write(5, 2 * S, 2 * S + 1, Outcome::Ok)
                },
            ],
            faults: vec![fault("kill", 2 * S, 6 * S), fault("pause", 10 * S, 11 * S)],
        };
        let w = window_stats(&history);
        assert_eq!(w[0].failover_s, Some(3.0));
        // Acknowledgements at 1, 3, 5, 9 s around [2, 6]: the longest hole is 5 -> 9.
        assert_eq!(w[0].unavailable_s, 4.0);
        assert_eq!(w[1].failover_s, None, "no write invoked after 10 s");
        // Measured from when the fault was in place, if recorded: at 4 s the
        // write invoked then completes at 5 s.
        let mut later = history.clone();
        later.faults[0].in_place_ns = Some(4 * S);
        assert_eq!(window_stats(&later)[0].failover_s, Some(1.0));
        let kinds = by_kind(&w);
        assert_eq!(kinds["pause"].no_failover, 1);
        assert_eq!(kinds["kill"].count, 1);
        assert_eq!(kinds["kill"].failover_p99_s, 3.0);
        let table = kind_table(&kinds, true);
        assert!(table.contains("| kill | 1 | 3.00 s |"), "{table}");
        assert!(table.contains("(1 never)"), "{table}");
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), 51.0);
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
