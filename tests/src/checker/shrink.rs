//! The smallest offending sub-history of a register that is not
//! linearizable: first the shortest prefix (by invocation) that already
//! fails, then greedy removal, in halving chunks down to single operations,
//! of every operation whose removal keeps the violation.

use super::linear::{check, Verdict};
use super::model::{IdHistory, RegFn, RegOp, State, ABSENT};

/// Configurations each trial may explore: a trial that runs out counts as
/// "not a violation", so shrinking only keeps proven violations.
const TRIAL_BUDGET: usize = 200_000;

fn fails(h: &IdHistory) -> bool {
    check(h, TRIAL_BUDGET) == Verdict::Violation
}

/// Whether every value a read in `ops` saw is written by an operation in
/// `ops`, when the full history `h` has a writer of it: dropping the write
/// a read observed would turn any violation into a trivial phantom.
fn keeps_writers(h: &IdHistory, ops: &[RegOp]) -> bool {
    let writes = |ops: &[RegOp], v: State| {
        ops.iter().any(|o| {
            matches!(o.f, RegFn::Write(s) | RegFn::WriteIfAbsent(s) | RegFn::UpdateIfPresent(s) if s == v)
        })
    };
    ops.iter().all(|o| match o.f {
        RegFn::Read(v) if v != ABSENT => writes(ops, v) || !writes(&h.ops, v),
        _ => true,
    })
}

/// A trial sub-history that still shows a violation of the same kind.
fn still_fails(h: &IdHistory, ops: &[RegOp]) -> bool {
    keeps_writers(h, ops) && fails(&h.with_ops(ops.to_vec()))
}

/// A sub-history of `h` (which must fail) that still fails and from which
/// no single operation can be dropped.
pub fn shrink(h: &IdHistory) -> IdHistory {
    let mut ops = h.ops.clone();
    ops.sort_by_key(|o| o.invoke);
    // Shortest failing prefix, by binary search (a longer prefix adds
    // operations invoked later; the violation usually stays).
    let (mut lo, mut hi) = (1, ops.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if still_fails(h, &ops[..mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if still_fails(h, &ops[..hi]) {
        ops.truncate(hi);
    }
    // Chunks of halving size; single operations until nothing more goes
    // (a write becomes removable once the reads that saw it are gone).
    let mut chunk = ops.len().div_ceil(2).max(1);
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < ops.len() {
            let mut trial = ops.clone();
            let end = (i + chunk).min(trial.len());
            trial.drain(i..end);
            if still_fails(h, &trial) {
                ops = trial;
                removed = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !removed {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    h.with_ops(ops)
}
