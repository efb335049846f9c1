//! The checker's self-test: hand-made histories, each anomaly caught and
//! each valid history (unknown outcomes that did and did not take effect,
//! non-snapshot multi-id reads) accepted.

use super::*;
use crate::history::{Op, OpKind, Outcome};
use crate::workload::FINAL_CLIENT;

/// A value of group `g` written by client `c` as its operation `s`.
fn v(c: u32, s: u32, g: u8) -> String {
    crate::workload::Value {
        client: c,
        seq: s,
        index: 0,
        group: g,
    }
    .text()
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
}

impl Builder {
    fn op(mut self, client: u32, kind: OpKind, inv: u64, comp: u64, outcome: Outcome) -> Self {
        let status = match outcome {
            Outcome::Ok => 200,
            Outcome::Failed => 409,
            Outcome::Unknown => 503,
        };
        self.ops.push(Op {
            n: self.ops.len() as u64,
            client,
            router: 0,
            kind,
            invoke_ns: inv,
            complete_ns: comp,
            outcome,
            status,
            error: None,
        });
        self
    }

    fn upsert(self, id: &str, value: &str, inv: u64, comp: u64, outcome: Outcome) -> Self {
        let kind = OpKind::Upsert {
            ids: vec![id.into()],
            values: vec![value.into()],
        };
        self.op(0, kind, inv, comp, outcome)
    }

    fn delete(self, id: &str, inv: u64, comp: u64) -> Self {
        let kind = OpKind::Delete {
            ids: vec![id.into()],
        };
        self.op(1, kind, inv, comp, Outcome::Ok)
    }

    fn read(self, client: u32, id: &str, seen: Option<&str>, inv: u64, comp: u64) -> Self {
        let kind = OpKind::Get {
            ids: vec![id.into()],
            read: Some(vec![(id.into(), seen.map(str::to_string))]),
        };
        self.op(client, kind, inv, comp, Outcome::Ok)
    }

    fn history(self) -> History {
        History::from_events(self.ops.into_iter().map(crate::history::Event::Op))
    }

    fn check(self) -> Report {
        let h = self.history();
        let report = check(&h, DEFAULT_BUDGET);
        eprintln!("{}", report.render(&h));
        report
    }
}

fn checks(r: &Report) -> Vec<&'static str> {
    let mut c: Vec<&'static str> = r.anomalies.iter().map(|a| a.check).collect();
    c.sort();
    c.dedup();
    c
}

use Outcome::{Failed, Ok as Acked, Unknown};

#[test]
fn a_stale_read_is_caught() {
    let r = Builder::default()
        .upsert("k", &v(0, 1, 0), 0, 10, Acked)
        .upsert("k", &v(0, 2, 0), 20, 30, Acked)
        .read(1, "k", Some(&v(0, 1, 0)), 40, 50)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
}

#[test]
fn a_lost_write_is_caught() {
    let r = Builder::default()
        .upsert("k", &v(0, 1, 0), 0, 10, Acked)
        .upsert("k", &v(0, 2, 0), 20, 30, Acked)
        .read(FINAL_CLIENT, "k", Some(&v(0, 1, 0)), 100, 110)
        .check();
    assert_eq!(checks(&r), ["linearizability", "lost-write"]);
    // An id that vanished altogether.
    let r = Builder::default()
        .upsert("k", &v(0, 1, 0), 0, 10, Acked)
        .read(FINAL_CLIENT, "k", None, 100, 110)
        .check();
    assert_eq!(checks(&r), ["linearizability", "lost-write"]);
}

#[test]
fn a_phantom_is_caught() {
    let r = Builder::default()
        .upsert("k", &v(0, 1, 0), 0, 10, Acked)
        .read(1, "k", Some(&v(7, 7, 0)), 20, 30)
        .check();
    assert_eq!(checks(&r), ["linearizability", "phantom"]);
    // A value read before its write was even invoked.
    let r = Builder::default()
        .read(1, "k", Some(&v(0, 1, 0)), 0, 5)
        .upsert("k", &v(0, 1, 0), 10, 20, Acked)
        .check();
    assert_eq!(checks(&r), ["linearizability", "phantom"]);
}

#[test]
fn a_non_linearizable_interleaving_is_caught() {
    // Two concurrent writes, then reads that see them in both orders.
    let (a, b) = (v(0, 1, 0), v(1, 1, 0));
    let r = Builder::default()
        .upsert("k", &a, 0, 100, Acked)
        .upsert("k", &b, 0, 100, Acked)
        .read(2, "k", Some(&a), 110, 120)
        .read(3, "k", Some(&b), 130, 140)
        .read(4, "k", Some(&a), 150, 160)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
    // Reads concurrent with the writes may see either order once.
    let r = Builder::default()
        .upsert("k", &a, 0, 100, Acked)
        .upsert("k", &b, 0, 100, Acked)
        .read(2, "k", Some(&b), 10, 20)
        .read(3, "k", Some(&a), 30, 40)
        .read(4, "k", Some(&a), 150, 160)
        .check();
    assert!(r.anomalies.is_empty());
}

#[test]
fn unknown_writes_may_take_effect_late_or_never() {
    let (a, b) = (v(0, 1, 0), v(0, 2, 0));
    // Took effect, long after its invocation (after a read that missed it).
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .upsert("k", &b, 20, 30, Unknown)
        .read(1, "k", Some(&a), 100, 110)
        .read(1, "k", Some(&b), 200, 210)
        .read(FINAL_CLIENT, "k", Some(&b), 300, 310)
        .check();
    assert!(r.anomalies.is_empty());
    // Never took effect.
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .upsert("k", &b, 20, 30, Unknown)
        .read(FINAL_CLIENT, "k", Some(&a), 300, 310)
        .check();
    assert!(r.anomalies.is_empty());
    // But once seen it cannot be unseen.
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .upsert("k", &b, 20, 30, Unknown)
        .read(1, "k", Some(&b), 100, 110)
        .read(1, "k", Some(&a), 200, 210)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
    // Failed writes never took effect.
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .op(
            1,
            OpKind::Update {
                ids: vec!["k".into()],
                values: vec![b.clone()],
            },
            20,
            30,
            Failed,
        )
        .read(1, "k", Some(&b), 100, 110)
        .check();
    assert!(checks(&r).contains(&"linearizability"));
}

fn add(id: &str, value: &str) -> OpKind {
    OpKind::Add {
        id: id.into(),
        value: value.into(),
    }
}

#[test]
fn add_in_reject_mode_is_write_if_absent() {
    let (a, b) = (v(0, 1, 0), v(1, 1, 0));
    // Acknowledged add of a present id.
    let r = Builder::default()
        .op(0, add("k", &a), 0, 10, Acked)
        .op(1, add("k", &b), 20, 30, Acked)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
    // 409 for an id nobody wrote.
    let r = Builder::default()
        .op(1, add("k", &b), 20, 30, Failed)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
    // Concurrent adds: one wins, the other gets 409; an unknown add of a
    // present id is a no-op.
    let r = Builder::default()
        .op(0, add("k", &a), 0, 10, Acked)
        .op(1, add("k", &b), 0, 10, Failed)
        .op(2, add("k", &v(2, 1, 0)), 5, 6, Unknown)
        .read(3, "k", Some(&a), 20, 30)
        .check();
    assert!(r.anomalies.is_empty());
}

#[test]
fn conditional_deletes_and_updates() {
    let a = v(0, 1, 1);
    let del = |g| OpKind::DeleteWhere { group: g };
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .op(1, del(1), 20, 30, Acked)
        .read(2, "k", None, 40, 50)
        .check();
    assert!(r.anomalies.is_empty());
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .op(1, del(2), 20, 30, Acked)
        .read(2, "k", None, 40, 50)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
    // update of an absent id does nothing.
    let upd = OpKind::Update {
        ids: vec!["k".into()],
        values: vec![a.clone()],
    };
    let r = Builder::default()
        .op(0, upd.clone(), 0, 10, Acked)
        .read(2, "k", None, 40, 50)
        .check();
    assert!(r.anomalies.is_empty());
    let r = Builder::default()
        .op(0, upd, 0, 10, Acked)
        .read(2, "k", Some(&a), 40, 50)
        .check();
    assert_eq!(checks(&r), ["linearizability"]);
}

#[test]
fn a_multi_id_read_is_not_required_to_be_a_snapshot() {
    // One batch writes k1 and k2; a concurrent get sees k1 new and k2 old.
    let (a, b) = (v(0, 1, 0), v(0, 1, 1));
    let batch = OpKind::Upsert {
        ids: vec!["k1".into(), "k2".into()],
        values: vec![a.clone(), b.clone()],
    };
    let get = OpKind::Get {
        ids: vec!["k1".into(), "k2".into()],
        read: Some(vec![("k1".into(), Some(a.clone())), ("k2".into(), None)]),
    };
    let r = Builder::default()
        .op(0, batch, 0, 100, Acked)
        .op(1, get, 10, 20, Acked)
        .check();
    assert!(r.anomalies.is_empty());
}

#[test]
fn queries_and_counts() {
    let a = v(0, 1, 0);
    let query = |id: &str, value: &str, group| OpKind::Query {
        group,
        read: Some(vec![(id.into(), value.into())]),
    };
    // A query returning an id deleted before it.
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .delete("k", 20, 30)
        .op(2, query("k", &a, None), 40, 50, Acked)
        .check();
    assert_eq!(checks(&r), ["deleted-in-query", "linearizability"]);
    // ... unless a write that may have taken effect since brought it back.
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .delete("k", 20, 30)
        .upsert("k", &a.replace("s1", "s2"), 25, 26, Unknown)
        .op(2, query("k", &a.replace("s1", "s2"), None), 40, 50, Acked)
        .check();
    assert!(r.anomalies.is_empty());
    // A filtered query returning another group.
    let r = Builder::default()
        .upsert("k", &a, 0, 10, Acked)
        .op(2, query("k", &a, Some(2)), 40, 50, Acked)
        .check();
    assert_eq!(checks(&r), ["query-filter"]);
    // Counts: two ids certainly present, a third maybe.
    let base = || {
        Builder::default()
            .upsert("k1", &v(0, 1, 0), 0, 10, Acked)
            .upsert("k2", &v(0, 2, 0), 0, 10, Acked)
            .upsert("k3", &v(0, 3, 0), 0, 10, Unknown)
            .upsert("k4", &v(0, 4, 0), 0, 10, Acked)
            .op(
                1,
                OpKind::Delete {
                    ids: vec!["k4".into()],
                },
                12,
                14,
                Acked,
            )
    };
    for (count, ok) in [(1, false), (2, true), (3, true), (4, false)] {
        let r = base()
            .op(2, OpKind::Count { count: Some(count) }, 20, 30, Acked)
            .check();
        assert_eq!(r.anomalies.is_empty(), ok, "count {count}");
        if !ok {
            assert_eq!(checks(&r), ["count-bounds"]);
        }
    }
}

#[test]
fn a_violation_is_shrunk_to_the_operations_that_show_it() {
    let mut b = Builder::default();
    // A long valid history on one id, then one stale read in the middle.
    for i in 0..200u64 {
        let value = v(0, i as u32, 0);
        b = b.upsert("k", &value, i * 100, i * 100 + 10, Acked).read(
            1,
            "k",
            Some(&value),
            i * 100 + 20,
            i * 100 + 30,
        );
    }
    b = b.read(2, "k", Some(&v(0, 50, 0)), 10_020, 10_030);
    let r = b.check();
    assert_eq!(checks(&r), ["linearizability"]);
    let ops = &r.anomalies[0].ops;
    assert!(ops.len() <= 3, "not shrunk: {ops:?}");
}

#[test]
fn a_search_over_budget_is_inconclusive_not_a_verdict() {
    let mut b = Builder::default();
    for i in 0..12u32 {
        b = b.upsert("k", &v(0, i, 0), 0, 10, Unknown);
    }
    b = b.read(1, "k", Some(&v(9, 9, 0)), 20, 30);
    let h = b.history();
    let per = model::decompose(&h);
    assert_eq!(linear::check(&per["k"], 100), Verdict::Inconclusive);
    assert_eq!(linear::check(&per["k"], DEFAULT_BUDGET), Verdict::Violation);
}

#[test]
fn a_saved_history_checks_the_same() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.jsonl");
    let rec = crate::history::Recorder::create(Some(&path)).expect("recorder");
    let b = Builder::default()
        .upsert("k", &v(0, 1, 0), 0, 10, Acked)
        .upsert("k", &v(0, 2, 0), 20, 30, Acked)
        .read(1, "k", Some(&v(0, 1, 0)), 40, 50);
    for op in b.ops {
        rec.record(crate::history::Event::Op(op));
    }
    let written = rec.snapshot();
    let loaded = History::load(&path).expect("load");
    let r = check(&loaded, DEFAULT_BUDGET);
    assert_eq!(checks(&r), ["linearizability"]);
    assert_eq!(r.anomalies, check(&written, DEFAULT_BUDGET).anomalies);
}
