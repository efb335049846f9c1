//! Linearizability of one register history: the Wing & Gong search with
//! Lowe's memoization, as Porcupine does it.
//!
//! The calls and returns of every operation form one list in time order.
//! The search walks it: at a call it tries to linearize that operation now
//! (the register's step must allow it, and the pair (set of linearized
//! operations, state) must be new); at the return of an operation not yet
//! linearized it backtracks. An operation with an unknown outcome returns
//! "at infinity", after every acknowledged one: reaching such a return
//! means every acknowledged operation is linearized, and the pending
//! unknown ones simply never took effect.
//!
//! The set of linearized operations is kept as two 64-bit Zobrist hashes
//! (XOR of a random key per operation), so the memo holds 20 bytes per
//! configuration whatever the history's length; two different sets sharing
//! both hashes (odds ~2^-128 per pair) could only make the search skip a
//! configuration. The search stops after `budget` new configurations and
//! says so (`Verdict::Inconclusive`) instead of running on.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};

use super::model::{step, IdHistory, State, ABSENT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order of the operations explains what the reads saw.
    Violation,
    /// The search hit its budget of configurations first.
    Inconclusive,
}

const NIL: usize = usize::MAX;

/// The doubly linked list of call and return events; entry `2 * i` is the
/// call of operation `i`, `2 * i + 1` its return. `head` is a sentinel.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl Events {
    fn new(h: &IdHistory) -> Events {
        let n = h.ops.len();
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in h.ops.iter().enumerate() {
            order.push((op.invoke, 0, 2 * i));
            // Unknown: returns after everything else. At equal times calls
            // come first: operations ordered by real time need a return
            // strictly before the other's call.
            order.push((op.complete.unwrap_or(u64::MAX), 1, 2 * i + 1));
        }
        order.sort();
        let head = 2 * n;
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = head;
        for (_, _, e) in order {
            next[last] = e;
            prev[e] = last;
            last = e;
        }
        Events { next, prev, head }
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    /// Takes operation `op`'s call and return out of the list.
    fn lift(&mut self, op: usize) {
        self.unlink(2 * op);
        self.unlink(2 * op + 1);
    }

    /// Puts them back (in the reverse order of [`Events::lift`]).
    fn unlift(&mut self, op: usize) {
        self.relink(2 * op + 1);
        self.relink(2 * op);
    }
}

/// Whether `h` is linearizable, exploring at most `budget` configurations.
pub fn check(h: &IdHistory, budget: usize) -> Verdict {
    let n = h.ops.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let keys: Vec<(u64, u64)> = (0..n).map(|_| (rng.gen(), rng.gen())).collect();
    let mut events = Events::new(h);
    let mut seen: HashSet<(u64, u64, State)> = HashSet::new();
    let mut calls: Vec<(usize, State)> = Vec::new();
    let mut state: State = ABSENT;
    let mut hash = (0u64, 0u64);
    let mut entry = events.next[events.head];
    while entry != NIL {
        let op = entry / 2;
        let reg = h.ops[op];
        if entry.is_multiple_of(2) {
            let unknown = reg.complete.is_none();
            if let Some(after) = step(h, state, reg.f, unknown) {
                let next_hash = (hash.0 ^ keys[op].0, hash.1 ^ keys[op].1);
                if seen.insert((next_hash.0, next_hash.1, after)) {
                    if seen.len() > budget {
                        return Verdict::Inconclusive;
                    }
                    calls.push((op, state));
                    state = after;
                    hash = next_hash;
                    events.lift(op);
                    entry = events.next[events.head];
                    continue;
                }
            }
            entry = events.next[entry];
        } else {
            if reg.complete.is_none() {
                // Every acknowledged operation is linearized.
                return Verdict::Linearizable;
            }
            let Some((last, before)) = calls.pop() else {
                return Verdict::Violation;
            };
            state = before;
            hash = (hash.0 ^ keys[last].0, hash.1 ^ keys[last].1);
            events.unlift(last);
            entry = events.next[2 * last];
        }
    }
    Verdict::Linearizable
}
