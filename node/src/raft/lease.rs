//! Leader leases: a leader answers linearizable reads without a heartbeat round while
//! no other leader can exist, and the follower-side promise that makes it so.
//!
//! A ReadIndex round costs a heartbeat round trip to a quorum on every read (about a
//! millisecond of a query's few here). A round submitted at `t` and confirmed by a
//! quorum proves that each replica of that quorum heard from this leader after `t`.
//! Such a replica neither grants a vote nor campaigns for [`VoteGuard`]'s span after it
//! last heard from its leader:
//! - campaigning waits for `election_ticks` ticks since that contact (raft-rs), and the
//!   k-th tick after a moment comes at least `(k - 1) * tick` after it, even when missed
//!   ticks fire in a burst (each tick fires no earlier than its deadline, and deadlines
//!   are a tick apart) or the replica ticks slower while quiet;
//! - granting a vote (or a pre-vote) is refused here, by the wall clock, for
//!   `(election_ticks - 1) * tick` after the last message from the leader and after the
//!   replica opened: a restarted replica forgot whom it heard from, and raft-rs's own
//!   refusal counts ticks from a leader it knows of.
//!
//! Any new leader needs a vote of that quorum (quorums intersect, joint configurations
//! included), so none can be elected before `t + span`. The lease ends earlier, at
//! `t + 0.9 * span`: the monotonic clocks of two machines may run at slightly different
//! rates (NTP slews at most 500 ppm; 10% is ample). A paused leader's monotonic clock
//! keeps running, so a leader stopped past its lease finds it expired when it resumes.
//!
//! A leadership transfer bypasses the promise: its target campaigns at once and the
//! voters grant it regardless of their lease (raft-rs's `CAMPAIGN_TRANSFER`). A leader
//! that began a transfer (or sent `TimeoutNow`, which may arrive late) therefore takes
//! no lease for the rest of its term; its reads go back to ReadIndex rounds.
//!
//! A configuration change takes effect on the leader when its entry commits; from then
//! on a new leader needs a quorum of the new configuration, which the rounds confirmed
//! before may not include. The change therefore ends the lease; the next round,
//! confirmed by the new configuration's quorum, starts a new one.
//!
//! A read on the lease is answered at the leader's applied index, like every read
//! once the leader applied an entry of its term (see `PendingReads::submit_queued`).

use std::time::{Duration, Instant};

use raft::eraftpb::{Message, MessageType};
use raft::CAMPAIGN_TRANSFER;

/// How long a replica refuses votes after hearing from its leader: one tick less than
/// the election timeout (see the module doc).
pub fn vote_guard_span(tick: Duration, election_ticks: usize) -> Duration {
    tick * (election_ticks.saturating_sub(1) as u32)
}

/// The leader's side: until when it may answer reads without a heartbeat round.
#[derive(Debug)]
pub struct LeaderLease {
    /// 0: leases are off.
    duration: Duration,
    /// The term the fields below are of.
    term: u64,
    until: Option<Instant>,
    /// This term saw a leadership transfer: no lease until the next term.
    suspended: bool,
    /// When the last round only meant to renew the lease was asked for.
    renewal_asked: Option<Instant>,
}

impl LeaderLease {
    /// A lease of 90% of the followers' vote guard (`None`: leases are off).
    pub fn new(vote_guard: Option<Duration>) -> Self {
        LeaderLease {
            duration: vote_guard.map_or(Duration::ZERO, |g| g.mul_f64(0.9)),
            term: 0,
            until: None,
            suspended: false,
            renewal_asked: None,
        }
    }

    fn at_term(&mut self, term: u64) {
        if term != self.term {
            self.term = term;
            self.until = None;
            self.suspended = false;
            self.renewal_asked = None;
        }
    }

    /// A ReadIndex round this leader submitted at `submitted`, in `term`, was
    /// confirmed by a quorum.
    pub fn confirmed(&mut self, term: u64, submitted: Instant) {
        self.at_term(term);
        if self.suspended || self.duration.is_zero() {
            return;
        }
        let until = submitted + self.duration;
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
    }

    /// A leadership transfer began (or `TimeoutNow` went out) in `term`.
    pub fn suspend(&mut self, term: u64) {
        self.at_term(term);
        if !self.suspended {
            tracing::debug!(term, "leader lease suspended for the term: a transfer");
        }
        self.suspended = true;
        self.until = None;
    }

    /// The group's configuration changed: a quorum of the old one may not be one of
    /// the new, so only rounds confirmed from now on (by the new one) count.
    pub fn expire(&mut self) {
        self.until = None;
    }

    /// Whether a read in `term` may be answered now without a round.
    pub fn valid(&self, term: u64, now: Instant) -> bool {
        term == self.term && !self.suspended && self.until.is_some_and(|u| now < u)
    }

    /// Whether to start a round only to renew a lease in use: past half of it, and
    /// no renewal asked for in the last quarter of a lease.
    pub fn wants_renewal(&mut self, term: u64, now: Instant) -> bool {
        let Some(until) = self.until.filter(|_| self.valid(term, now)) else {
            return false;
        };
        let half = self.duration / 2;
        let recently = self
            .renewal_asked
            .is_some_and(|asked| now.duration_since(asked) < self.duration / 4);
        if until.saturating_duration_since(now) > half || recently {
            return false;
        }
        self.renewal_asked = Some(now);
        true
    }
}

/// The follower's side: refuses votes for a span after hearing from its leader
/// (and after the replica opened), by the wall clock.
#[derive(Debug)]
pub struct VoteGuard {
    span: Duration,
    since: Instant,
}

impl VoteGuard {
    /// A guard that starts now: a replica (re)opening may have confirmed a leader's
    /// round just before it stopped.
    pub fn new(span: Duration) -> Self {
        VoteGuard {
            span,
            since: Instant::now(),
        }
    }

    /// A message of the current leader, in its term, was stepped at `now`.
    pub fn heard_from_leader(&mut self, now: Instant) {
        self.since = self.since.max(now);
    }

    /// Whether `m`, arriving at a replica in `term`, is a vote request to refuse: a
    /// vote or pre-vote for a later term, not a transfer's, within the span.
    pub fn refuses(&self, m: &Message, term: u64, now: Instant) -> bool {
        let vote = matches!(
            m.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        );
        vote && m.term > term
            && m.context.as_ref() != CAMPAIGN_TRANSFER
            && now.saturating_duration_since(self.since) < self.span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_confirmed_round_grants_a_lease_of_its_submit_time_plus_the_duration() {
        let mut lease = LeaderLease::new(Some(1000 * MS));
        let t = Instant::now();
        assert!(!lease.valid(1, t), "no round confirmed yet");
        lease.confirmed(1, t);
        assert!(lease.valid(1, t + 899 * MS));
        assert!(!lease.valid(1, t + 900 * MS), "90% of the guard");
        assert!(!lease.valid(2, t + MS), "another term");
        // An older round never shortens it.
        lease.confirmed(1, t - 500 * MS);
        assert!(lease.valid(1, t + 899 * MS));
    }

    #[test]
    fn a_transfer_suspends_the_lease_for_the_rest_of_the_term() {
        let mut lease = LeaderLease::new(Some(1000 * MS));
        let t = Instant::now();
        lease.confirmed(3, t);
        lease.suspend(3);
        assert!(!lease.valid(3, t + MS));
        lease.confirmed(3, t + 10 * MS);
        assert!(
            !lease.valid(3, t + 11 * MS),
            "rounds of the term no longer count"
        );
        lease.confirmed(4, t + 20 * MS);
        assert!(lease.valid(4, t + 21 * MS), "a new term starts afresh");
    }

    #[test]
    fn a_configuration_change_ends_the_lease_until_the_next_round() {
        let mut lease = LeaderLease::new(Some(1000 * MS));
        let t = Instant::now();
        lease.confirmed(2, t);
        lease.expire();
        assert!(!lease.valid(2, t + MS));
        lease.confirmed(2, t + 5 * MS);
        assert!(lease.valid(2, t + 6 * MS));
    }

    #[test]
    fn leases_off_never_grant() {
        let mut lease = LeaderLease::new(None);
        let t = Instant::now();
        lease.confirmed(1, t);
        assert!(!lease.valid(1, t));
    }

    #[test]
    fn renewal_is_asked_past_half_the_lease_and_not_again_at_once() {
        let mut lease = LeaderLease::new(Some(1000 * MS));
        let t = Instant::now();
        lease.confirmed(1, t);
        assert!(!lease.wants_renewal(1, t + 100 * MS), "most of it left");
        assert!(lease.wants_renewal(1, t + 500 * MS));
        assert!(!lease.wants_renewal(1, t + 510 * MS), "just asked");
        assert!(lease.wants_renewal(1, t + 800 * MS), "a quarter later");
        assert!(
            !lease.wants_renewal(1, t + 950 * MS),
            "expired: a read renews it"
        );
    }

    fn vote(kind: MessageType, term: u64, context: &[u8]) -> Message {
        let mut m = Message::default();
        m.set_msg_type(kind);
        m.term = term;
        m.context = context.to_vec().into();
        m
    }

    #[test]
    fn votes_are_refused_within_the_span_of_the_leader_and_of_the_open() {
        let t = Instant::now();
        let mut guard = VoteGuard::new(900 * MS);
        let opened = guard.since;
        let request = vote(MessageType::MsgRequestVote, 5, b"");
        assert!(guard.refuses(&request, 4, opened + 899 * MS), "just opened");
        assert!(!guard.refuses(&request, 4, opened + 900 * MS));
        guard.heard_from_leader(t + 1000 * MS);
        assert!(guard.refuses(&request, 4, t + 1899 * MS));
        let pre = vote(MessageType::MsgRequestPreVote, 5, b"");
        assert!(guard.refuses(&pre, 4, t + 1899 * MS));
        assert!(!guard.refuses(&request, 4, t + 1900 * MS));
        assert!(
            !guard.refuses(&request, 5, t + 1000 * MS),
            "the current term is raft-rs's business"
        );
        let transfer = vote(MessageType::MsgRequestVote, 5, CAMPAIGN_TRANSFER);
        assert!(!guard.refuses(&transfer, 4, t + 1000 * MS), "a transfer");
        let heartbeat = vote(MessageType::MsgHeartbeat, 5, b"");
        assert!(!guard.refuses(&heartbeat, 4, t + 1000 * MS));
    }
}
