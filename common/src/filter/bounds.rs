//! The limits of one filter ([`crate::limits`]), enforced wherever a filter
//! is made: parsing JSON (`parse.rs`), and decoding bincode that came from
//! another process (the `Deserialize` impls in `ast.rs`, which every node
//! goes through for a proposal, a log entry or a read request). A filter that
//! exists has passed them, so evaluating, cloning or dropping one (all
//! recursive) stays shallow and cheap.
//!
//! Decoding needs its own guard because the recursion happens inside serde:
//! a bincode `Where` nested a few hundred thousand levels deep is a few MB of
//! bytes and would overflow the decoding thread's stack long before any
//! check on the finished value could run. So each `Filter`, `Where` and
//! `WhereDocument` level enters a per-thread depth counter first (a thread
//! decodes one value at a time, and the guard restores the counter on every
//! exit, error or not), and each regex is counted before it is compiled.

use std::cell::Cell;

use regex::{Regex, RegexBuilder};
use thiserror::Error;

use super::ast::{FieldOp, ScalarList, Where, WhereDocument};
use super::Filter;
use crate::error::CommonError;
use crate::limits::{
    MAX_FILTER_DEPTH, MAX_FILTER_TERMS, MAX_IN_VALUES, MAX_REGEXES, MAX_REGEX_PATTERN_BYTES,
    REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT,
};

/// Levels a decoded filter may nest: the `Filter` itself, a chain of
/// `MAX_FILTER_DEPTH` logical operators above a condition (one `Where` level
/// more than that), and a `#document` condition's own `WhereDocument` level.
/// Every filter the JSON parser accepts decodes again.
pub const MAX_DECODE_NESTING: usize = MAX_FILTER_DEPTH + 3;

#[derive(Clone, Copy, Default)]
struct DecodeState {
    /// Filter / Where / WhereDocument levels entered and not yet left.
    depth: usize,
    /// Regexes decoded since the outermost level was entered.
    regexes: usize,
}

thread_local! {
    static DECODE: Cell<DecodeState> = Cell::new(DecodeState::default());
}

/// One level of a filter being decoded; leaving it (dropping the guard)
/// restores the depth.
pub(super) struct DecodeGuard(());

impl DecodeGuard {
    /// Enters one level; refused past [`MAX_DECODE_NESTING`]. The outermost
    /// level starts a fresh regex count.
    pub(super) fn enter() -> Result<DecodeGuard, String> {
        DECODE.with(|cell| {
            let mut state = cell.get();
            if state.depth >= MAX_DECODE_NESTING {
                return Err(format!(
                    "filter nested more than {MAX_FILTER_DEPTH} levels deep (MAX_FILTER_DEPTH)"
                ));
            }
            if state.depth == 0 {
                state.regexes = 0;
            }
            state.depth += 1;
            cell.set(state);
            Ok(DecodeGuard(()))
        })
    }
}

impl Drop for DecodeGuard {
    fn drop(&mut self) {
        DECODE.with(|cell| {
            let mut state = cell.get();
            state.depth = state.depth.saturating_sub(1);
            cell.set(state);
        });
    }
}

/// Counts one regex of the filter being decoded, before it is compiled.
pub(super) fn count_decoded_regex() -> Result<(), String> {
    DECODE.with(|cell| {
        let mut state = cell.get();
        state.regexes += 1;
        cell.set(state);
        if state.regexes > MAX_REGEXES {
            return Err(too_many_regexes());
        }
        Ok(())
    })
}

fn too_many_regexes() -> String {
    format!("a filter may hold at most {MAX_REGEXES} $regex / $not_regex conditions (MAX_REGEXES)")
}

/// Why a regex pattern was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RegexError {
    #[error("the pattern is {0} bytes, more than the limit of {MAX_REGEX_PATTERN_BYTES} (MAX_REGEX_PATTERN_BYTES)")]
    TooLong(usize),
    /// Not a valid pattern, or it compiles larger than [`REGEX_SIZE_LIMIT`].
    #[error("{0}")]
    Invalid(#[from] regex::Error),
}

/// Compiles a document regex with the `regex` crate (Chroma's engine), within
/// the pattern length and compiled size limits.
pub(super) fn compile_regex(pattern: &str) -> Result<Regex, RegexError> {
    if pattern.len() > MAX_REGEX_PATTERN_BYTES {
        return Err(RegexError::TooLong(pattern.len()));
    }
    Ok(RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()?)
}

/// Counts regexes while a filter is parsed from JSON, before each is compiled.
#[derive(Debug, Default)]
pub(super) struct RegexBudget(usize);

impl RegexBudget {
    pub(super) fn take(&mut self) -> Result<(), CommonError> {
        self.0 += 1;
        if self.0 > MAX_REGEXES {
            return Err(CommonError::invalid(too_many_regexes()));
        }
        Ok(())
    }
}

/// What a walk over a finished filter counts.
#[derive(Default)]
struct Tally {
    terms: usize,
    regexes: usize,
}

impl Tally {
    fn term(&mut self, n: usize) -> Result<(), CommonError> {
        self.terms = self.terms.saturating_add(n);
        if self.terms > MAX_FILTER_TERMS {
            return Err(CommonError::invalid(format!(
                "a filter may hold at most {MAX_FILTER_TERMS} conditions, logical operators and $in / $nin values in all (MAX_FILTER_TERMS)"
            )));
        }
        Ok(())
    }

    fn depth(depth: usize) -> Result<(), CommonError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(CommonError::invalid(format!(
                "Expected where to be nested at most {MAX_FILTER_DEPTH} levels deep (MAX_FILTER_DEPTH)"
            )));
        }
        Ok(())
    }

    fn where_clause(&mut self, w: &Where, depth: usize) -> Result<(), CommonError> {
        Tally::depth(depth)?;
        match w {
            Where::And(children) | Where::Or(children) => {
                self.term(1)?;
                children
                    .iter()
                    .try_for_each(|c| self.where_clause(c, depth + 1))
            }
            Where::Field { op, .. } => {
                self.term(1)?;
                self.field(op)
            }
            // A `#document` condition is one condition, at this level.
            Where::Document(d) => self.document(d, depth),
        }
    }

    fn field(&mut self, op: &FieldOp) -> Result<(), CommonError> {
        let list = match op {
            FieldOp::In(list) | FieldOp::Nin(list) => list,
            _ => return Ok(()),
        };
        let n = match list {
            ScalarList::Str(v) => v.len(),
            ScalarList::Number(v) => v.len(),
            ScalarList::Bool(v) => v.len(),
        };
        if n > MAX_IN_VALUES {
            return Err(CommonError::invalid(format!(
                "Expected $in / $nin to hold at most {MAX_IN_VALUES} values, got {n} (MAX_IN_VALUES)"
            )));
        }
        self.term(n)
    }

    fn document(&mut self, d: &WhereDocument, depth: usize) -> Result<(), CommonError> {
        Tally::depth(depth)?;
        self.term(1)?;
        match d {
            WhereDocument::And(children) | WhereDocument::Or(children) => children
                .iter()
                .try_for_each(|c| self.document(c, depth + 1)),
            WhereDocument::Regex(_) | WhereDocument::NotRegex(_) => {
                self.regexes += 1;
                if self.regexes > MAX_REGEXES {
                    return Err(CommonError::invalid(too_many_regexes()));
                }
                Ok(())
            }
            WhereDocument::Contains(_) | WhereDocument::NotContains(_) => Ok(()),
        }
    }
}

impl Filter {
    /// Checks the whole filter against the limits: depth, terms, `$in` /
    /// `$nin` lengths and regex count. Parsing and decoding call it, so a
    /// `Filter` value that exists has passed it.
    pub fn check_limits(&self) -> Result<(), CommonError> {
        let mut tally = Tally::default();
        if let Some(w) = &self.where_clause {
            tally.where_clause(w, 0)?;
        }
        if let Some(d) = &self.where_document {
            tally.document(d, 0)?;
        }
        Ok(())
    }
}
