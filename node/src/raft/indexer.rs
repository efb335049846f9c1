//! A replica's background thread: runs its state machine's background jobs (the shard's
//! vector indexer, `shard::indexer`) behind the applied position, so an entry is
//! acknowledged once it is durable and applied to the records, not once it is indexed.
//!
//! The thread takes a job under the state machine's read lock and runs it without any
//! lock of the replica. The apply thread wakes it after applying, and before applying a
//! command waits while the state machine's lag is above `[raft] max_index_lag` (see
//! [`IndexerLink::wait_below`]): writes slow down to the indexer's pace instead of the
//! unindexed tail, which every query scans exactly, growing without bound.
//!
//! A job may answer with a command for the group's log (the shard leader's links of the
//! points it indexed, which spare its followers the search): the thread hands it to the
//! replica, which proposes it if it still leads. Those entries do not wait for the lag
//! limit (they are what brings a follower's lag down), and a follower waits at twice
//! the limit, since it indexes behind its leader's hints.
//!
//! Test knob: with the environment variable `VDB_TEST_INDEXER_PAUSED=1` a node's
//! indexers run no job (the tail grows until the lag limit), so tests can check that
//! queries see what the graph does not hold yet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::apply::StopFlag;
use super::state_machine::{BackgroundRole, SharedStateMachine};
use crate::{panic_guard, priority};

/// The environment variable that pauses every indexer of a node (tests only).
pub const PAUSE_ENV: &str = "VDB_TEST_INDEXER_PAUSED";

/// How long the apply thread, held back by the lag limit, sleeps without a signal
/// before it looks at the lag again.
const RECHECK: Duration = Duration::from_millis(100);

/// How long an idle indexer sleeps without a signal before it looks for work again.
/// Every change that can make work signals it (applied entries, a restored snapshot,
/// the lag limit, stop), and the counter loses no signal, so this is only a safety
/// net: a look collects every collection of the shard, and at 100 ms nine idle
/// replicas with 2,000 collections each took a fifth of a core
/// (`scripts/bench-collections`).
const IDLE_RECHECK: Duration = Duration::from_secs(5);

/// How soon a follower with an unindexed tail looks again without a signal: it may be
/// waiting for hints from a leader that is gone (`shard::indexer::HINT_PATIENCE`).
const FOLLOWER_RECHECK: Duration = Duration::from_secs(1);

/// Where a job's command for the group's log goes (the replica's actor, which drops it
/// unless it leads).
pub type Proposer = Box<dyn Fn(Vec<u8>) + Send + Sync>;

/// A wake-up between the apply thread and the indexer: a counter bumped by the
/// notifier, so a signal given before the wait starts is not lost.
#[derive(Default)]
struct Signal {
    count: Mutex<u64>,
    cond: Condvar,
}

impl Signal {
    fn notify(&self) {
        *self.count.lock() += 1;
        self.cond.notify_all();
    }

    fn count(&self) -> u64 {
        *self.count.lock()
    }

    /// Waits until notified after `seen` was read, or `timeout` passed.
    fn wait_after(&self, seen: u64, timeout: Duration) {
        let mut count = self.count.lock();
        if *count == seen {
            self.cond.wait_for(&mut count, timeout);
        }
    }
}

/// What the apply thread and the indexer thread of one replica share.
pub struct IndexerLink {
    sm: SharedStateMachine,
    /// Set by the apply thread after applying: there may be work.
    work: Signal,
    /// Set by the indexer after each job: the lag went down.
    progress: Signal,
    stop: AtomicBool,
    max_lag: u64,
    /// The replica leads its group / the group has other members (set by the replica).
    leading: AtomicBool,
    has_followers: AtomicBool,
    propose: Proposer,
}

impl IndexerLink {
    /// `max_lag`: see [`Self::wait_below`]; 0 means no limit. `propose`: where the
    /// commands jobs answer go, while the replica leads.
    pub fn new(sm: SharedStateMachine, max_lag: u64, propose: Proposer) -> Arc<Self> {
        Arc::new(IndexerLink {
            sm,
            work: Signal::default(),
            progress: Signal::default(),
            stop: AtomicBool::new(false),
            max_lag,
            leading: AtomicBool::new(false),
            has_followers: AtomicBool::new(false),
            propose,
        })
    }

    /// The replica's role changed (or its group's membership): jobs are taken for it.
    pub fn set_role(&self, leading: bool, has_followers: bool) {
        self.has_followers.store(has_followers, Ordering::Release);
        if self.leading.swap(leading, Ordering::AcqRel) != leading {
            self.work.notify();
        }
    }

    fn role(&self) -> BackgroundRole {
        BackgroundRole {
            leading: self.leading.load(Ordering::Acquire),
            has_followers: self.has_followers.load(Ordering::Acquire),
            max_lag: self.max_lag,
        }
    }

    /// Starts the indexer thread of `group`; it ends after [`Self::stop`].
    /// `stopped`: the replica's stop flag (a failed apply left the state machine
    /// unusable; no job is taken from it).
    pub fn spawn(self: &Arc<Self>, group: u64, stopped: StopFlag) -> std::io::Result<()> {
        let link = self.clone();
        let paused = std::env::var(PAUSE_ENV).is_ok_and(|v| v == "1");
        std::thread::Builder::new()
            .name(format!("index-{group}"))
            .spawn(move || {
                priority::lower_this_thread();
                link.run(group, paused, &stopped)
            })
            .map(|_| ())
    }

    fn run(&self, group: u64, paused: bool, stopped: &StopFlag) {
        if paused {
            tracing::warn!(group, "indexer paused ({PAUSE_ENV}=1): tests only");
        }
        while !self.stop.load(Ordering::Acquire) {
            let seen = self.work.count();
            let role = self.role();
            let mut idle_wait = IDLE_RECHECK;
            let job = if paused {
                None
            } else {
                let sm = self.sm.read();
                // Checked under the lock, as readers do: a failed apply marks it first.
                if stopped.lock().is_some() {
                    return;
                }
                let job = sm.background_job(role);
                if job.is_none() && !role.leading && sm.background_lag() > 0 {
                    idle_wait = FOLLOWER_RECHECK;
                }
                job
            };
            let Some(job) = job else {
                self.work.wait_after(seen, idle_wait);
                continue;
            };
            match panic_guard::catch(job) {
                // The replica proposes it only if it still leads.
                Ok(Some(command)) => (self.propose)(command),
                Ok(None) => {}
                Err(panic) => {
                    // Queries stay correct (the tail is scanned exactly); writes stop once
                    // the lag limit is reached, as they would behind a stopped apply.
                    tracing::error!(group, %panic, "indexer job panicked; this replica's indexer stops");
                    return;
                }
            }
            self.progress.notify();
        }
    }

    /// The apply thread applied entries: there may be work.
    pub fn wake(&self) {
        self.work.notify();
    }

    /// Blocks the apply thread while the state machine's lag is above the limit,
    /// with no lock held, until the indexer brings it down. Waiting (rather than
    /// refusing) is the only choice here: the entry is committed and every
    /// replica must apply it; its proposer sees a slower write, within the
    /// router's deadline as any slow write, never an error of its own.
    pub fn wait_below(&self) {
        if self.max_lag == 0 {
            return;
        }
        loop {
            let seen = self.progress.count();
            let limit = if self.leading.load(Ordering::Acquire) {
                self.max_lag
            } else {
                self.max_lag.saturating_mul(2)
            };
            if self.sm.read().background_lag() <= limit || self.stop.load(Ordering::Acquire) {
                return;
            }
            self.work.notify();
            self.progress.wait_after(seen, RECHECK);
        }
    }

    /// Ends the indexer thread (the apply thread ended).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.work.notify();
    }
}
