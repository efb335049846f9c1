//! Bookkeeping of a replica's callers waiting for Raft: proposals waiting for their entry
//! to apply, and reads waiting for a ReadIndex confirmation. Pure data structures (no
//! Raft), so they are tested on their own.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::wire::{InternalError, InternalReply};
use tokio::sync::oneshot;

use crate::metrics::{self, ReadPhase};

/// The answer a read waiter gets: `Ok` means the replica applied through a confirmed read
/// index, so the caller may read the state machine now.
pub type ReadReply = Result<(), InternalError>;

/// A caller waiting for one reply, until its deadline.
pub struct Waiter<T> {
    pub deadline: Instant,
    pub reply: oneshot::Sender<T>,
}

impl<T> Waiter<T> {
    pub fn new(deadline: Instant) -> (Self, oneshot::Receiver<T>) {
        let (reply, rx) = oneshot::channel();
        (Waiter { deadline, reply }, rx)
    }

    fn send(self, value: T) {
        // The caller may have given up already; nothing to do then.
        let _ = self.reply.send(value);
    }
}

/// A proposed entry and the callers waiting for it.
struct PendingEntry {
    /// The request id of the proposal's envelope.
    request_id: u128,
    /// Empty once every caller gave up; the entry stays so a retry of the same request can
    /// still wait for it.
    waiters: Vec<Waiter<InternalReply>>,
}

/// Proposals this replica appended as leader, keyed by the (index, term) of their entry.
///
/// A request the router retries (after its attempt timed out on a leader that is slow to
/// apply) carries the same request id; it waits for the entry already in the log instead
/// of appending another copy behind everything proposed since, which could never finish
/// sooner than the first.
#[derive(Default)]
pub struct PendingProposals {
    waiting: BTreeMap<(u64, u64), PendingEntry>,
    by_request: HashMap<u128, (u64, u64)>,
}

impl PendingProposals {
    pub fn insert(
        &mut self,
        index: u64,
        term: u64,
        request_id: u128,
        waiter: Waiter<InternalReply>,
    ) {
        self.by_request.insert(request_id, (index, term));
        self.waiting.insert(
            (index, term),
            PendingEntry {
                request_id,
                waiters: vec![waiter],
            },
        );
    }

    /// Adds `waiter` to the pending entry of `request_id` proposed in `term` (the leader's
    /// current one); gives it back when there is none (then the caller proposes; the state
    /// machine's request-id dedup keeps a re-applied command from applying twice). An entry
    /// of an earlier term is never joined: a later leader may have overwritten it.
    pub fn attach(
        &mut self,
        request_id: u128,
        term: u64,
        waiter: Waiter<InternalReply>,
    ) -> Result<(), Waiter<InternalReply>> {
        let entry = self
            .by_request
            .get(&request_id)
            .filter(|key| key.1 == term)
            .and_then(|key| self.waiting.get_mut(key));
        match entry {
            Some(entry) => {
                entry.waiters.push(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// Number of pending entries.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn take_through(&mut self, index: u64) -> BTreeMap<(u64, u64), PendingEntry> {
        let later = self.waiting.split_off(&(index.saturating_add(1), 0));
        let done = std::mem::replace(&mut self.waiting, later);
        for entry in done.values() {
            self.by_request.remove(&entry.request_id);
        }
        done
    }

    /// The entry at (index, term) was applied, with the state machine's reply if it carried
    /// a command. The proposal made for exactly that entry gets the reply; any other
    /// proposal at or below `index` lost its entry to a new leader: dropped.
    pub fn on_applied(&mut self, index: u64, term: u64, outcome: Option<Vec<u8>>) {
        if self.waiting.is_empty() {
            return;
        }
        for (key, entry) in self.take_through(index) {
            let reply = match (&outcome, key == (index, term)) {
                (Some(bytes), true) => Ok(bytes.clone()),
                (None, true) => Err(InternalError::Internal(
                    "the proposal's entry was applied without a command".into(),
                )),
                (_, false) => Err(InternalError::Dropped),
            };
            for w in entry.waiters {
                w.send(reply.clone());
            }
        }
    }

    /// A snapshot replaced the state through `index`: whether those proposals were applied
    /// is unknown to this replica.
    pub fn fail_through(&mut self, index: u64, err: InternalError) {
        for (_, entry) in self.take_through(index) {
            for w in entry.waiters {
                w.send(Err(err.clone()));
            }
        }
    }

    /// Replies `err()` to every caller past its deadline. The entries stay until applied or
    /// dropped: a retry of the same request may attach to them.
    pub fn expire(&mut self, now: Instant, err: impl Fn() -> InternalError) {
        for entry in self.waiting.values_mut() {
            let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut entry.waiters)
                .into_iter()
                .partition(|w| w.deadline <= now || w.reply.is_closed());
            entry.waiters = live;
            for w in expired {
                w.send(Err(err()));
            }
        }
    }

    pub fn fail_all(&mut self, err: InternalError) {
        self.by_request.clear();
        for (_, entry) in std::mem::take(&mut self.waiting) {
            for w in entry.waiters {
                w.send(Err(err.clone()));
            }
        }
    }
}

struct ReadBatch {
    waiters: Vec<Waiter<ReadReply>>,
    /// The read index, once the ReadState arrived.
    index: Option<u64>,
    /// The leader's applied index at the submit, when it may stand in for the commit
    /// index (see [`PendingReads::submit_queued`]).
    applied: Option<u64>,
    /// The leader's term at the submit.
    term: u64,
    submitted: Instant,
    /// When the ReadState arrived.
    confirmed: Option<Instant>,
}

/// Reads waiting for ReadIndex. Reads that arrive together share one ReadIndex request
/// (one heartbeat round): they are queued, and the ready loop submits the queue as one
/// batch under a fresh context.
#[derive(Default)]
pub struct PendingReads {
    queued: Vec<Waiter<ReadReply>>,
    /// When the first of `queued` arrived.
    queued_since: Option<Instant>,
    /// A round is wanted even without reads queued: to renew the leader's lease.
    renewal: bool,
    batches: BTreeMap<u64, ReadBatch>,
    next_ctx: u64,
}

impl PendingReads {
    pub fn push(&mut self, waiter: Waiter<ReadReply>) {
        self.queued_since.get_or_insert_with(Instant::now);
        self.queued.push(waiter);
    }

    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty() || self.renewal
    }

    /// The next submit makes a round even if no read is queued (the leader's lease
    /// wants renewing while reads are answered on it).
    pub fn ask_renewal(&mut self) {
        self.renewal = true;
    }

    pub fn len(&self) -> usize {
        self.queued.len()
            + self
                .batches
                .values()
                .map(|b| b.waiters.len())
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the queued reads into a new batch; returns the context to pass to
    /// `RawNode::read_index`.
    ///
    /// `applied`: the leader's applied index, given when the leader has applied an
    /// entry of its own term. The batch then reads at that index instead of the
    /// commit index raft-rs confirms, so it does not wait for the entries committed
    /// but not yet applied (during a bulk load, up to a second behind a snapshot's
    /// capture or a long apply). Still linearizable, because a write is acknowledged
    /// only once its leader applied it: a write acknowledged before these reads
    /// arrived was applied either by this leader (so it is at or below `applied`) or
    /// by an earlier one (so it is below this term's first entry, which is applied).
    /// A newer leader cannot have acknowledged anything: the heartbeat round that
    /// confirms the batch would not reach a quorum. Entries committed but not applied
    /// were not acknowledged yet, so these reads are concurrent with them.
    pub fn submit_queued(
        &mut self,
        now: Instant,
        term: u64,
        applied: Option<u64>,
    ) -> Option<Vec<u8>> {
        if !self.has_queued() {
            return None;
        }
        self.renewal = false;
        self.next_ctx += 1;
        let ctx = self.next_ctx;
        if let Some(since) = self.queued_since.take() {
            let waited = now.saturating_duration_since(since);
            metrics::get().read_phase(ReadPhase::Queued, waited);
        }
        self.batches.insert(
            ctx,
            ReadBatch {
                waiters: std::mem::take(&mut self.queued),
                index: None,
                applied,
                term,
                submitted: now,
                confirmed: None,
            },
        );
        Some(ctx.to_be_bytes().to_vec())
    }

    /// A ReadState arrived for `ctx`: returns the term and the time its round was
    /// submitted (a quorum heard from this leader since), if it is one of this
    /// replica's.
    pub fn on_read_state(&mut self, ctx: &[u8], index: u64) -> Option<(u64, Instant)> {
        let bytes = <[u8; 8]>::try_from(ctx).ok()?;
        let b = self.batches.get_mut(&u64::from_be_bytes(bytes))?;
        let now = Instant::now();
        b.index = Some(b.applied.map_or(index, |applied| applied.min(index)));
        b.confirmed = Some(now);
        metrics::get().read_phase(ReadPhase::Confirm, now - b.submitted);
        Some((b.term, b.submitted))
    }

    /// Answers every batch whose read index is applied.
    pub fn resolve(&mut self, applied: u64) {
        let ready: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, b)| b.index.is_some_and(|i| i <= applied))
            .map(|(c, _)| *c)
            .collect();
        for c in ready {
            if let Some(b) = self.batches.remove(&c) {
                if let Some(confirmed) = b.confirmed {
                    metrics::get().read_phase(ReadPhase::Apply, confirmed.elapsed());
                }
                for w in b.waiters {
                    w.send(Ok(()));
                }
            }
        }
    }

    /// Batches submitted longer than `older_than` ago and still unconfirmed (their
    /// heartbeat round was lost) go back to the queue, to be submitted again.
    pub fn requeue_stale(&mut self, now: Instant, older_than: Duration) {
        let stale: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, b)| b.index.is_none() && now.duration_since(b.submitted) >= older_than)
            .map(|(c, _)| *c)
            .collect();
        for c in stale {
            if let Some(b) = self.batches.remove(&c) {
                self.queued.extend(b.waiters);
            }
        }
    }

    /// Replies `err()` to every read past its deadline.
    pub fn expire(&mut self, now: Instant, err: impl Fn() -> InternalError) {
        let keep = |w: Waiter<ReadReply>| -> Option<Waiter<ReadReply>> {
            if w.deadline <= now || w.reply.is_closed() {
                w.send(Err(err()));
                None
            } else {
                Some(w)
            }
        };
        self.queued = std::mem::take(&mut self.queued)
            .into_iter()
            .filter_map(keep)
            .collect();
        for b in self.batches.values_mut() {
            b.waiters = std::mem::take(&mut b.waiters)
                .into_iter()
                .filter_map(keep)
                .collect();
        }
        // A renewal round (no reads) stays until confirmed, or requeued when stale.
        self.batches
            .retain(|_, b| !b.waiters.is_empty() || b.index.is_none());
    }

    pub fn fail_all(&mut self, err: InternalError) {
        self.renewal = false;
        for w in std::mem::take(&mut self.queued) {
            w.send(Err(err.clone()));
        }
        for (_, b) in std::mem::take(&mut self.batches) {
            for w in b.waiters {
                w.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn proposals_get_their_outcome_or_are_dropped() {
        let mut p = PendingProposals::default();
        let (w1, mut r1) = Waiter::new(later());
        let (w2, mut r2) = Waiter::new(later());
        let (w3, mut r3) = Waiter::new(later());
        p.insert(5, 1, 1, w1);
        p.insert(6, 1, 2, w2);
        p.insert(7, 1, 3, w3);
        p.on_applied(5, 1, Some(vec![42]));
        assert_eq!(r1.try_recv().unwrap(), Ok(vec![42]));
        // A new leader's entries overwrote index 6 and 7 (term 2).
        p.on_applied(6, 2, None);
        assert_eq!(r2.try_recv().unwrap(), Err(InternalError::Dropped));
        assert!(r3.try_recv().is_err());
        p.on_applied(7, 2, Some(vec![1]));
        assert_eq!(r3.try_recv().unwrap(), Err(InternalError::Dropped));
        assert!(p.is_empty());
    }

    #[test]
    fn proposals_expire_and_fail_through_a_snapshot() {
        let mut p = PendingProposals::default();
        let (w1, mut r1) = Waiter::new(Instant::now());
        let (w2, mut r2) = Waiter::new(later());
        let (w3, mut r3) = Waiter::new(later());
        p.insert(1, 1, 4, w1);
        p.insert(2, 1, 5, w2);
        p.insert(9, 1, 6, w3);
        p.expire(Instant::now(), || InternalError::Timeout);
        assert_eq!(r1.try_recv().unwrap(), Err(InternalError::Timeout));
        p.fail_through(5, InternalError::Timeout);
        assert_eq!(r2.try_recv().unwrap(), Err(InternalError::Timeout));
        assert!(r3.try_recv().is_err());
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn a_retried_request_waits_for_the_entry_already_proposed() {
        let mut p = PendingProposals::default();
        let (first, mut r1) = Waiter::new(Instant::now());
        p.insert(4, 1, 77, first);
        // The first caller gives up; the entry stays for a retry of request 77.
        p.expire(Instant::now(), || InternalError::Timeout);
        assert_eq!(r1.try_recv().unwrap(), Err(InternalError::Timeout));
        assert_eq!(p.len(), 1);
        let (stale, _) = Waiter::new(later());
        assert!(
            p.attach(77, 2, stale).is_err(),
            "a leader of term 2 does not join an entry of term 1"
        );
        let (retry, mut r2) = Waiter::new(later());
        assert!(p.attach(77, 1, retry).is_ok());
        let (other, _) = Waiter::new(later());
        assert!(p.attach(78, 1, other).is_err(), "no entry for request 78");
        p.on_applied(4, 1, Some(vec![9]));
        assert_eq!(r2.try_recv().unwrap(), Ok(vec![9]));
        assert!(p.is_empty());
        let (late, _) = Waiter::new(later());
        assert!(
            p.attach(77, 1, late).is_err(),
            "applied entries are forgotten"
        );
    }

    #[test]
    fn expired_callers_are_answered_and_their_entry_waits_for_a_retry() {
        let mut p = PendingProposals::default();
        let (w, mut r) = Waiter::new(Instant::now());
        p.insert(3, 1, 7, w);
        p.expire(Instant::now(), || InternalError::Timeout);
        assert_eq!(r.try_recv().unwrap(), Err(InternalError::Timeout));
        let (retry, mut retried) = Waiter::new(later());
        assert!(p.attach(7, 1, retry).is_ok(), "the entry is still pending");
        p.on_applied(3, 1, Some(vec![1]));
        assert_eq!(retried.try_recv().unwrap(), Ok(vec![1]));
        assert!(p.is_empty());
    }

    #[test]
    fn reads_resolve_once_applied_and_requeue_when_stale() {
        let mut r = PendingReads::default();
        let now = Instant::now();
        let (w1, mut r1) = Waiter::new(later());
        let (w2, mut r2) = Waiter::new(later());
        r.push(w1);
        r.push(w2);
        let ctx = r.submit_queued(now, 1, None).unwrap();
        assert!(r.submit_queued(now, 1, None).is_none());
        r.resolve(100);
        assert!(r1.try_recv().is_err(), "no read state yet");
        r.on_read_state(&ctx, 10);
        r.resolve(9);
        assert!(r1.try_recv().is_err(), "not applied yet");
        r.resolve(10);
        assert_eq!(r1.try_recv().unwrap(), Ok(()));
        assert_eq!(r2.try_recv().unwrap(), Ok(()));

        let (w3, mut r3) = Waiter::new(later());
        r.push(w3);
        let old = r.submit_queued(now, 1, None).unwrap();
        r.requeue_stale(now + Duration::from_secs(2), Duration::from_secs(1));
        assert!(r.has_queued());
        let new = r.submit_queued(now, 1, None).unwrap();
        r.on_read_state(&old, 1);
        r.resolve(50);
        assert!(r3.try_recv().is_err(), "the old context no longer counts");
        r.on_read_state(&new, 3);
        r.resolve(50);
        assert_eq!(r3.try_recv().unwrap(), Ok(()));
        assert!(r.is_empty());
    }

    #[test]
    fn reads_with_the_leaders_applied_index_do_not_wait_for_the_commit_index() {
        let mut r = PendingReads::default();
        let (w1, mut r1) = Waiter::new(later());
        r.push(w1);
        let ctx = r.submit_queued(Instant::now(), 1, Some(7)).unwrap();
        r.on_read_state(&ctx, 10);
        r.resolve(7);
        assert_eq!(
            r1.try_recv().unwrap(),
            Ok(()),
            "read at the applied index 7"
        );

        // The commit index, when lower (a ReadState never confirms less than the
        // applied index in raft-rs, but the smaller of the two is what is safe).
        let (w2, mut r2) = Waiter::new(later());
        r.push(w2);
        let ctx = r.submit_queued(Instant::now(), 1, Some(9)).unwrap();
        r.on_read_state(&ctx, 8);
        r.resolve(8);
        assert_eq!(r2.try_recv().unwrap(), Ok(()));
        assert!(r.is_empty());
    }

    #[test]
    fn reads_expire_and_fail() {
        let mut r = PendingReads::default();
        let (w1, mut r1) = Waiter::new(Instant::now());
        let (w2, mut r2) = Waiter::new(later());
        r.push(w1);
        r.push(w2);
        r.submit_queued(Instant::now(), 1, None);
        r.expire(Instant::now(), || InternalError::NoQuorum);
        assert_eq!(r1.try_recv().unwrap(), Err(InternalError::NoQuorum));
        assert_eq!(r.len(), 1);
        r.fail_all(InternalError::NotLeader { leader: Some(3) });
        assert_eq!(
            r2.try_recv().unwrap(),
            Err(InternalError::NotLeader { leader: Some(3) })
        );
    }
}
