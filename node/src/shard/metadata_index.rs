//! An inverted index over scalar metadata values, (key, value) → points, so a
//! selective `where` (equality, `$in`, and `$and`/`$or` of them) finds its
//! candidates without scanning every record. It only ever narrows: callers
//! still check the full filter on each candidate, so a candidate set may be
//! a superset (e.g. integers beyond 2^53 sharing a float term).

use std::collections::{HashMap, HashSet};

use common::filter::{FieldOp, Number, Scalar, ScalarList, Where};
use common::{Metadata, MetadataValue};

use super::index::PointId;

/// An indexed value. Ints and floats share one numeric term because Chroma
/// compares them by value (`{"a": 1}` matches a stored `1.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Term {
    Str(String),
    Num(u64),
    Bool(bool),
}

fn num_term(f: f64) -> Term {
    // -0.0 == 0.0, so they must share a term.
    Term::Num(if f == 0.0 {
        0.0f64.to_bits()
    } else {
        f.to_bits()
    })
}

fn value_term(v: &MetadataValue) -> Option<Term> {
    match v {
        MetadataValue::Str(s) => Some(Term::Str(s.clone())),
        MetadataValue::Int(i) => Some(num_term(*i as f64)),
        MetadataValue::Float(f) => Some(num_term(*f)),
        MetadataValue::Bool(b) => Some(Term::Bool(*b)),
        // List values never equal a scalar and never match `$in`.
        _ => None,
    }
}

fn scalar_term(s: &Scalar) -> Term {
    match s {
        Scalar::Str(s) => Term::Str(s.clone()),
        Scalar::Int(i) => num_term(*i as f64),
        Scalar::Float(f) => num_term(*f),
        Scalar::Bool(b) => Term::Bool(*b),
    }
}

fn number_term(n: &Number) -> Term {
    match n {
        Number::Int(i) => num_term(*i as f64),
        Number::Float(f) => num_term(*f),
    }
}

#[derive(Debug, Default)]
pub struct MetadataIndex {
    postings: HashMap<String, HashMap<Term, HashSet<PointId>>>,
}

impl MetadataIndex {
    pub fn insert(&mut self, point: PointId, metadata: Option<&Metadata>) {
        for (key, value) in metadata.into_iter().flatten() {
            if let Some(term) = value_term(value) {
                self.postings
                    .entry(key.clone())
                    .or_default()
                    .entry(term)
                    .or_default()
                    .insert(point);
            }
        }
    }

    pub fn remove(&mut self, point: PointId, metadata: Option<&Metadata>) {
        for (key, value) in metadata.into_iter().flatten() {
            let Some(term) = value_term(value) else {
                continue;
            };
            let Some(by_term) = self.postings.get_mut(key) else {
                continue;
            };
            if let Some(points) = by_term.get_mut(&term) {
                points.remove(&point);
                if points.is_empty() {
                    by_term.remove(&term);
                }
            }
            if by_term.is_empty() {
                self.postings.remove(key);
            }
        }
    }

    /// The postings a field clause selects: those of the terms an equality or
    /// `$in` names, or those of the numeric terms a `$gt`/`$gte`/`$lt`/`$lte`
    /// may accept; `None` for another operator. Ranges compare as `f64`, which
    /// is exact below 2^53; a term equal to the bound of a strict `$gt`/`$lt`
    /// is kept only where rounding may have put an integer onto it (the
    /// conversion is monotonic, so nothing that passes is left out). Keeping
    /// the bound always doubled the candidates of `{"$lt": 1}` over integers
    /// 0..99, which pushed a 1% filter at 1M off the one-step plan.
    fn field_postings<'a>(&'a self, key: &str, op: &FieldOp) -> Option<Vec<&'a HashSet<PointId>>> {
        let by_term = self.postings.get(key);
        if let Some(terms) = Self::terms_of(op) {
            return Some(
                terms
                    .iter()
                    .filter_map(|t| by_term.and_then(|m| m.get(t)))
                    .collect(),
            );
        }
        let as_f64 = |n: &Number| match n {
            Number::Int(i) => *i as f64,
            Number::Float(f) => *f,
        };
        let (bound, below, strict) = match op {
            FieldOp::Gt(n) => (as_f64(n), false, true),
            FieldOp::Gte(n) => (as_f64(n), false, false),
            FieldOp::Lt(n) => (as_f64(n), true, true),
            FieldOp::Lte(n) => (as_f64(n), true, false),
            _ => return None,
        };
        // A term equal to the bound is an f64 both sides rounded to. Below 2^53
        // every integer converts exactly (and rounding is monotonic, so only
        // integers of magnitude >= 2^53 land at or beyond it): there equal
        // means equal, and a strict range excludes it.
        let exact = bound.abs() < 9_007_199_254_740_992.0;
        let keeps_bound = !strict || !exact;
        let accepts = |v: f64| {
            if v == bound {
                keeps_bound
            } else if below {
                v < bound
            } else {
                v > bound
            }
        };
        Some(
            by_term
                .into_iter()
                .flatten()
                .filter_map(|(term, points)| match term {
                    Term::Num(bits) => accepts(f64::from_bits(*bits)).then_some(points),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The terms an equality or `$in` on a field looks up, or `None` for
    /// another operator.
    fn terms_of(op: &FieldOp) -> Option<Vec<Term>> {
        Some(match op {
            FieldOp::Eq(s) => vec![scalar_term(s)],
            FieldOp::In(ScalarList::Str(items)) => {
                items.iter().map(|s| Term::Str(s.clone())).collect()
            }
            FieldOp::In(ScalarList::Number(items)) => items.iter().map(number_term).collect(),
            FieldOp::In(ScalarList::Bool(items)) => items.iter().map(|b| Term::Bool(*b)).collect(),
            _ => return None,
        })
    }

    /// An upper bound on the size of [`Self::candidates`]`(w)`, from the
    /// postings' lengths alone (nothing is collected), or `None` when the
    /// index cannot narrow `w`. Lets a caller decide whether collecting the
    /// candidates pays before it does.
    pub fn candidates_bound(&self, w: &Where) -> Option<usize> {
        match w {
            Where::Field { key, op } => {
                Some(self.field_postings(key, op)?.iter().map(|s| s.len()).sum())
            }
            Where::And(children) => children
                .iter()
                .filter_map(|c| self.candidates_bound(c))
                .min(),
            Where::Or(children) => children.iter().map(|c| self.candidates_bound(c)).sum(),
            _ => None,
        }
    }

    /// A superset of the points whose metadata satisfies `w`, or `None` when
    /// the index cannot narrow it (the caller then scans). An `$and` yields
    /// the candidates of its narrowest child (by [`Self::candidates_bound`])
    /// only: the caller checks the whole filter on each anyway, and the
    /// other children's sets may be large.
    pub fn candidates(&self, w: &Where) -> Option<HashSet<PointId>> {
        match w {
            Where::Field { key, op } => {
                let sets = self.field_postings(key, op)?;
                let mut out = HashSet::with_capacity(sets.iter().map(|s| s.len()).sum());
                for set in sets {
                    out.extend(set.iter().copied());
                }
                Some(out)
            }
            Where::And(children) => {
                let (_, narrowest) = children
                    .iter()
                    .filter_map(|c| Some((self.candidates_bound(c)?, c)))
                    .min_by_key(|(bound, _)| *bound)?;
                self.candidates(narrowest)
            }
            Where::Or(children) => {
                let mut out = HashSet::new();
                for c in children {
                    out.extend(self.candidates(c)?);
                }
                Some(out)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: serde_json::Value) -> Metadata {
        common::record::metadata_from_json(&v).unwrap()
    }

    fn cands(ix: &MetadataIndex, w: serde_json::Value) -> Option<Vec<PointId>> {
        let f = common::Filter::parse(Some(&w), None).unwrap();
        ix.candidates(f.where_clause.as_ref().unwrap()).map(|s| {
            let mut v: Vec<_> = s.into_iter().collect();
            v.sort();
            v
        })
    }

    #[test]
    fn narrows_equality_in_and_or_and_follows_removals() {
        let mut ix = MetadataIndex::default();
        ix.insert(1, Some(&meta(json!({"a": 1, "s": "x"}))));
        ix.insert(2, Some(&meta(json!({"a": 1.0, "s": "y"}))));
        ix.insert(3, Some(&meta(json!({"a": 2, "l": [1, 2]}))));
        ix.insert(4, None);
        assert_eq!(cands(&ix, json!({"a": 1})), Some(vec![1, 2]));
        assert_eq!(cands(&ix, json!({"a": {"$in": [2, 7]}})), Some(vec![3]));
        assert_eq!(
            cands(&ix, json!({"$and": [{"a": 1}, {"s": "y"}]})),
            Some(vec![2])
        );
        assert_eq!(
            cands(&ix, json!({"$and": [{"a": 1}, {"s": {"$ne": "y"}}]})),
            Some(vec![1, 2])
        );
        assert_eq!(
            cands(&ix, json!({"$or": [{"a": 2}, {"s": "x"}]})),
            Some(vec![1, 3])
        );
        assert_eq!(
            cands(&ix, json!({"$or": [{"a": 2}, {"s": {"$ne": "x"}}]})),
            None
        );
        assert_eq!(cands(&ix, json!({"a": {"$ne": 0}})), None);
        assert_eq!(
            cands(&ix, json!({"l": 1})),
            Some(vec![]),
            "lists never equal a scalar"
        );
        // Integers beyond 2^53 share a float term with their neighbours; a range
        // still keeps every point that passes.
        let big = (1i64 << 53) + 1;
        ix.insert(9, Some(&meta(json!({"n": big}))));
        assert_eq!(cands(&ix, json!({"n": {"$gt": 1i64 << 53}})), Some(vec![9]));
        assert_eq!(cands(&ix, json!({"n": {"$lt": big + 1}})), Some(vec![9]));
        // A strict range leaves out a term equal to its bound where the f64 is
        // exact (small integers, every float), and keeps one inclusive range's.
        ix.insert(20, Some(&meta(json!({"b": 0}))));
        ix.insert(21, Some(&meta(json!({"b": 1}))));
        ix.insert(22, Some(&meta(json!({"b": 1.5}))));
        assert_eq!(cands(&ix, json!({"b": {"$lt": 1}})), Some(vec![20]));
        assert_eq!(cands(&ix, json!({"b": {"$lte": 1}})), Some(vec![20, 21]));
        assert_eq!(cands(&ix, json!({"b": {"$gt": 1}})), Some(vec![22]));
        assert_eq!(cands(&ix, json!({"b": {"$gte": 1.5}})), Some(vec![22]));
        assert_eq!(cands(&ix, json!({"b": {"$gt": 1.5}})), Some(vec![]));
        // Beyond 2^53 a strict bound keeps the term rounding may have put there.
        assert_eq!(cands(&ix, json!({"n": {"$lt": big}})), Some(vec![9]));
        ix.remove(2, Some(&meta(json!({"a": 1.0, "s": "y"}))));
        assert_eq!(cands(&ix, json!({"a": 1})), Some(vec![1]));
        assert_eq!(cands(&ix, json!({"s": "y"})), Some(vec![]));
    }

    fn bound(ix: &MetadataIndex, w: serde_json::Value) -> Option<usize> {
        let f = common::Filter::parse(Some(&w), None).unwrap();
        ix.candidates_bound(f.where_clause.as_ref().unwrap())
    }

    #[test]
    fn the_bound_is_known_exactly_when_candidates_are_and_never_below_them() {
        let mut ix = MetadataIndex::default();
        for p in 0..100u64 {
            let m = json!({"b": p % 10, "even": p % 2 == 0, "s": format!("s{}", p % 3)});
            ix.insert(p, Some(&meta(m)));
        }
        let clauses = [
            json!({"b": 3}),
            json!({"b": 11}),
            json!({"s": {"$in": ["s0", "s2", "zz"]}}),
            json!({"$and": [{"b": 3}, {"even": true}]}),
            json!({"$and": [{"even": true}, {"b": {"$gt": 3}}]}),
            json!({"$and": [{"b": {"$gt": 3}}, {"b": {"$lt": 5}}]}),
            json!({"$or": [{"b": 3}, {"s": "s1"}]}),
            json!({"$or": [{"b": 3}, {"b": {"$gt": 8}}]}),
            json!({"b": {"$nin": [1]}}),
        ];
        for w in clauses {
            let (c, b) = (cands(&ix, w.clone()), bound(&ix, w.clone()));
            assert_eq!(c.is_some(), b.is_some(), "{w}");
            if let (Some(c), Some(b)) = (c, b) {
                assert!(b >= c.len(), "{w}: bound {b} < {} candidates", c.len());
            }
        }
        // Ranges on small integers: exactly what passes (b is 8 or 9), the bound
        // term left out of a strict range.
        assert_eq!(
            cands(&ix, json!({"b": {"$gt": 7}})).map(|c| c.len()),
            Some(20)
        );
        assert_eq!(bound(&ix, json!({"b": {"$gt": 7}})), Some(20));
        assert_eq!(
            cands(&ix, json!({"b": {"$lte": 0.5}})).map(|c| c.len()),
            Some(10)
        );
        assert_eq!(
            cands(&ix, json!({"s": {"$lt": 3}})),
            Some(vec![]),
            "strings are not numbers"
        );
        assert_eq!(bound(&ix, json!({"b": 3})), Some(10));
        assert_eq!(
            bound(&ix, json!({"$and": [{"b": 3}, {"even": true}]})),
            Some(10)
        );
        assert_eq!(
            bound(&ix, json!({"$or": [{"b": 3}, {"s": "s1"}]})),
            Some(43)
        );
    }
}
