//! The apply machine of one replica: a thread of its own that applies committed entries to
//! the state machine, reports their outcomes to the replica, and writes state-machine
//! snapshots.
//!
//! It is apart from the replica's Raft actor for the reason TiKV's apply FSM is apart from
//! its peer FSM: applying an `add` of a thousand records (HNSW inserts) or writing a snapshot
//! file of a few hundred MB takes from milliseconds to seconds, and a Raft actor busy for
//! that long misses heartbeats, votes and appends, so a loaded cluster re-elects all the
//! time. The actor hands committed entries over and goes on; this thread applies them in log
//! order and reports back, and the actor tells raft-rs what is applied
//! (`advance_apply_to`), answers proposals and releases reads.
//!
//! The thread runs at a lower CPU priority than the Raft actors (and the router-facing HTTP
//! threads), so on a machine whose cores are all busy applying, heartbeats still go out.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use raft::prelude::{Entry, EntryType};

use super::indexer::IndexerLink;
use super::snapshot_files::SnapshotFiles;
use super::state_machine::{AppliedPosition, SharedStateMachine};
use crate::{panic_guard, priority};

/// The proposing leader's clock (Unix ms) written into an entry's context when it was
/// proposed; 0 for an entry without one (empty leader entries, conf changes).
pub fn entry_stamp(e: &Entry) -> u64 {
    e.context
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The context a leader proposes an entry with: its clock (Unix ms) at that moment.
pub fn stamp_context(now_ms: u64) -> Vec<u8> {
    now_ms.to_le_bytes().to_vec()
}

/// The byte after the stamp that marks an entry the replica's background work proposed
/// (see [`super::indexer`]).
const BACKGROUND_MARK: u8 = 1;

/// The context of an entry the replica's background work proposed: the stamp, then
/// [`BACKGROUND_MARK`].
pub fn background_context(now_ms: u64) -> Vec<u8> {
    let mut context = stamp_context(now_ms);
    context.push(BACKGROUND_MARK);
    context
}

/// Whether the entry was proposed by a replica's background work.
pub fn is_background(e: &Entry) -> bool {
    e.context.len() == 9 && e.context[8] == BACKGROUND_MARK
}

/// Set (once) when the state machine may be half-mutated: readers check it *after* taking
/// the state machine's lock and then do not touch it. Shared with the replica's status.
pub type StopFlag = std::sync::Arc<parking_lot::Mutex<Option<String>>>;

/// Work for the apply thread, in log order.
pub enum ApplyTask {
    /// Committed entries. Conf changes were applied to Raft by the replica when they
    /// committed (membership is Raft's, not the state machine's); here they only advance.
    Entries(Vec<Entry>),
    /// A snapshot from the leader: its file is durable and installed in the log; the state
    /// machine is replaced by it.
    Restore {
        index: u64,
        term: u64,
        path: PathBuf,
    },
    /// Write a snapshot file now (if anything was applied since the last one): the leader
    /// has a new replica to catch up, and its latest snapshot predates that replica's
    /// configuration.
    Snapshot,
    /// The replica was removed from its group: after everything queued before, delete
    /// its directory (log, snapshot files) and end the thread.
    Destroy { dir: PathBuf },
}

/// One applied entry, for the proposal that may wait on it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedEntry {
    pub index: u64,
    pub term: u64,
    /// The state machine's encoded reply; `None` for an entry without a command.
    pub outcome: Option<Vec<u8>>,
}

/// What the apply thread tells the replica.
#[derive(Debug)]
pub enum ApplyReport {
    /// The state machine applied through `applied` (index, term); `entries` are the entries
    /// applied since the last report (empty after a restore).
    Applied {
        applied: (u64, u64),
        entries: Vec<AppliedEntry>,
        /// Set when the report ends a snapshot restore: proposals at or below this index
        /// cannot know whether they were applied.
        restored: Option<u64>,
    },
    /// A snapshot file of the state at (index, term) is durable: the log may be compacted.
    SnapshotWritten { index: u64, term: u64 },
    /// The state machine could not be snapshotted or restored, or applying panicked: the
    /// replica must stop.
    Failed(String),
}

impl actix::Message for ApplyReport {
    type Result = ();
}

/// When the apply thread writes a snapshot (and so lets the log be compacted).
///
/// By entries, as configured, and by bytes: after `min_bytes` of applied commands (not
/// counting background entries), or a quarter of the last snapshot file's size if that
/// is larger. Large batches (an `add` of
/// thousands of records is one entry) would otherwise never reach an entry count, and a
/// restart would replay (re-index) the whole log; the size ratio keeps the cost of
/// snapshots proportional to what was written, however big the state grows.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    pub every_entries: u64,
    pub min_bytes: u64,
}

#[derive(Debug, Default)]
struct SinceSnapshot {
    index: u64,
    file_bytes: u64,
    applied_bytes: u64,
}

impl SinceSnapshot {
    /// Nothing applied since the snapshot file at `index` (0: none).
    fn at(files: &SnapshotFiles, index: u64) -> Self {
        let file_bytes = if index == 0 {
            0
        } else {
            std::fs::metadata(files.path(index)).map_or(0, |m| m.len())
        };
        SinceSnapshot {
            index,
            file_bytes,
            applied_bytes: 0,
        }
    }
}

impl SnapshotPolicy {
    fn due(&self, applied: u64, since: &SinceSnapshot) -> bool {
        if applied <= since.index {
            return false;
        }
        let by_entries = self.every_entries > 0 && applied >= since.index + self.every_entries;
        let byte_limit = self.min_bytes.max(since.file_bytes / 4);
        let by_bytes = self.min_bytes > 0 && since.applied_bytes >= byte_limit;
        by_entries || by_bytes
    }
}

/// How the apply thread (and its snapshot writer) tell the replica.
type Report = Arc<dyn Fn(ApplyReport) + Send + Sync>;

/// A snapshot file being written apart from the apply thread: its state was captured
/// at `index` under the state machine's read lock (a copy of the records), and the
/// file (the records and every graph's dump, hundreds of MB) is written and fsynced by
/// a thread of its own while entries keep being applied. Written on the apply thread,
/// a snapshot held up every apply, and every linearizable read waiting for its apply
/// index, for 0.3-2.5 s at a time during a bulk load. The thread reports the file to
/// the replica itself (`SnapshotWritten`, or `Failed`), so the replica compacts the log
/// without waiting for the apply thread's next task.
struct SnapshotWriting {
    index: u64,
    /// The file's size when written; `None` when it failed (the replica was told).
    thread: std::thread::JoinHandle<Option<u64>>,
}

/// The apply thread's state.
pub struct ApplyWorker {
    group: u64,
    sm: SharedStateMachine,
    files: SnapshotFiles,
    policy: SnapshotPolicy,
    since: SinceSnapshot,
    /// The snapshot file being written by its own thread, if any.
    writing: Option<SnapshotWriting>,
    report: Report,
    stopped: StopFlag,
    /// The replica's background indexer: woken after applies, waited for above its lag limit.
    indexer: Option<Arc<IndexerLink>>,
}

impl ApplyWorker {
    /// `last_snapshot`: index of the snapshot file the state machine was restored from.
    pub fn new(
        group: u64,
        sm: SharedStateMachine,
        files: SnapshotFiles,
        policy: SnapshotPolicy,
        last_snapshot: u64,
        report: impl Fn(ApplyReport) + Send + Sync + 'static,
    ) -> Self {
        ApplyWorker {
            group,
            since: SinceSnapshot::at(&files, last_snapshot),
            writing: None,
            sm,
            files,
            policy,
            report: Arc::new(report),
            stopped: StopFlag::default(),
            indexer: None,
        }
    }

    /// Starts the replica's background indexer thread beside this one (ended when this
    /// one ends); commands wait while its lag is above the link's limit.
    pub fn with_indexer(mut self, link: Arc<IndexerLink>) -> Self {
        match link.spawn(self.group, self.stopped.clone()) {
            Ok(()) => self.indexer = Some(link),
            // Without it nothing is indexed: refuse nothing, but say so loudly.
            Err(e) => {
                tracing::error!(group = self.group, error = %e, "cannot start the indexer thread")
            }
        }
        self
    }

    /// Where the worker records that the state machine must not be used any more (set
    /// while it still holds the write lock, so a reader that checks after locking never
    /// sees a half-applied state).
    pub fn with_stop_flag(mut self, stopped: StopFlag) -> Self {
        self.stopped = stopped;
        self
    }

    /// Starts the thread; it ends when every sender of `tasks` is gone or after a failure.
    pub fn spawn(self, tasks: Receiver<ApplyTask>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name(format!("apply-{}", self.group))
            .spawn(move || {
                priority::lower_this_thread();
                let mut worker = self;
                worker.run(tasks);
                // Whoever opens the replica's directory next finds the file complete.
                worker.reap_writer(true);
                if let Some(link) = worker.indexer.clone() {
                    link.stop();
                }
            })
            .map(|_| ())
    }

    fn run(&mut self, tasks: Receiver<ApplyTask>) {
        let mut next: Option<ApplyTask> = None;
        loop {
            let task = match next.take() {
                Some(task) => task,
                None => match tasks.recv() {
                    Ok(task) => task,
                    Err(_) => return,
                },
            };
            // A restore replaces the state (and deletes older files) and a destroy deletes
            // the directory: after the file being written. A forced snapshot must be of
            // the state as it is now, not of an older capture.
            let after_writer = matches!(
                task,
                ApplyTask::Restore { .. } | ApplyTask::Snapshot | ApplyTask::Destroy { .. }
            );
            if after_writer && !self.reap_writer(true) {
                return;
            }
            if let ApplyTask::Destroy { dir } = task {
                // Nothing of the replica is used any more: the actor stopped first.
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {
                        tracing::info!(group = self.group, dir = %dir.display(), "removed replica's data deleted")
                    }
                    Err(e) => {
                        tracing::error!(group = self.group, dir = %dir.display(), error = %e, "cannot delete the removed replica's data")
                    }
                }
                return;
            }
            if let Err(e) = self.handle(task) {
                self.stop(e);
                return;
            }
            // Snapshot only when caught up with what was handed over: a snapshot taken in
            // the middle of a backlog would be outdated before it is written.
            match tasks.try_recv() {
                Ok(task) => next = Some(task),
                Err(TryRecvError::Empty) => {
                    if !self.reap_writer(false) {
                        return;
                    }
                    if self.writing.is_some() {
                        continue;
                    }
                    if let Err(e) = self.guarded("snapshot", |w| w.snapshot(false)) {
                        self.stop(e);
                        return;
                    }
                }
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }

    fn stop(&self, error: String) {
        report_stop(self.group, &self.stopped, &*self.report, error);
    }

    fn handle(&mut self, task: ApplyTask) -> Result<(), String> {
        match task {
            ApplyTask::Entries(entries) => self.apply_entries(entries),
            ApplyTask::Restore { index, term, path } => {
                let what = format!("restore of snapshot {index} (term {term})");
                self.guarded(&what, |w| w.restore(index, term, path))
            }
            ApplyTask::Snapshot => self.guarded("snapshot", |w| w.snapshot(true)),
            ApplyTask::Destroy { .. } => Ok(()),
        }
    }

    /// Runs `f`; a panic in it marks the state machine unusable and becomes an error.
    fn guarded(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        match panic_guard::catch(|| f(self)) {
            Ok(r) => r,
            Err(panic) => {
                let reason = format!("{what} panicked: {panic}");
                self.stopped.lock().get_or_insert_with(|| reason.clone());
                Err(reason)
            }
        }
    }

    /// Applies in order, taking the write lock per entry so reads get in between, and
    /// reports after every entry that carried a command (its proposer waits for it).
    ///
    /// A panic while applying an entry leaves the state machine in an unknown state: it is
    /// marked stopped before the lock is released, and the error names the entry. The same
    /// entry panics again after a restart, so the replica stays stopped at it (it does not
    /// crash-loop the node).
    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        let mut done = Vec::new();
        let mut applied = (0, 0);
        for e in entries {
            let command = e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty();
            // Not a background entry (a leader's link hints), which is what lowers
            // the lag rather than adding to it.
            let client_command = command && !is_background(&e);
            if let Some(link) = self.indexer.as_ref().filter(|_| client_command) {
                link.wait_below();
            }
            let mut sm = self.sm.write();
            if e.index <= sm.applied().index {
                continue;
            }
            let at = AppliedPosition {
                index: e.index,
                term: e.term,
            };
            let result = panic_guard::catch(|| {
                if command {
                    Some(sm.apply(at, entry_stamp(&e), &e.data))
                } else {
                    sm.advance(at);
                    None
                }
            });
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let reason = format!(
                        "apply of entry {} (term {}) panicked: {panic}",
                        e.index, e.term
                    );
                    self.stopped.lock().get_or_insert_with(|| reason.clone());
                    drop(sm);
                    if !done.is_empty() {
                        self.send_applied(applied, done, None);
                    }
                    return Err(reason);
                }
            };
            // Hints are not state: a restart replays them without indexing anything,
            // so they do not bring the next snapshot (of the whole shard) nearer.
            if client_command {
                self.since.applied_bytes += e.data.len() as u64;
            }
            let now = sm.applied();
            applied = (now.index, now.term);
            drop(sm);
            done.push(AppliedEntry {
                index: e.index,
                term: e.term,
                outcome,
            });
            if command {
                self.send_applied(applied, std::mem::take(&mut done), None);
            }
        }
        if !done.is_empty() {
            self.send_applied(applied, done, None);
        }
        Ok(())
    }

    fn send_applied(&self, applied: (u64, u64), entries: Vec<AppliedEntry>, restored: Option<u64>) {
        if let Some(link) = &self.indexer {
            link.wake();
        }
        (self.report)(ApplyReport::Applied {
            applied,
            entries,
            restored,
        });
    }

    fn restore(&mut self, index: u64, term: u64, path: PathBuf) -> Result<(), String> {
        let started = Instant::now();
        // Snapshots from the leader can arrive back to back (a learner catching up while
        // the leader forces one per request). Their files are deleted only here, after a
        // newer one is restored, so a queued restore finds its file; should one be gone all
        // the same (deleted by hand, or by a newer local snapshot's compaction), a newer
        // snapshot's restore is queued behind this one, so this one is skipped rather than
        // stopping the replica on a missing file.
        if !path.exists() && self.files.list().iter().any(|&newer| newer > index) {
            tracing::info!(
                group = self.group,
                index,
                term,
                "leader's snapshot superseded by a newer one before it was restored; skipped"
            );
            return Ok(());
        }
        let mut sm = self.sm.write();
        sm.restore_snapshot(&path).map_err(|e| e.to_string())?;
        if sm.applied() != (AppliedPosition { index, term }) {
            return Err(format!(
                "snapshot {} restored a state machine applied to {:?}, not ({index}, {term})",
                path.display(),
                sm.applied()
            ));
        }
        drop(sm);
        self.files.retain_from(index);
        self.since = SinceSnapshot::at(&self.files, index);
        tracing::info!(
            group = self.group,
            index,
            term,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state machine restored from the leader's snapshot"
        );
        let event = crate::metrics::SnapshotEvent::Restored;
        crate::metrics::get().snapshot(self.group, event, Some(started.elapsed()));
        self.send_applied((index, term), Vec::new(), Some(index));
        Ok(())
    }

    /// Starts a snapshot file when the policy says it is due, or (`forced`) whenever
    /// something was applied since the last one: captures the state under the read lock
    /// and hands the file to a thread of its own (see [`SnapshotWriting`]). Called only
    /// when no file is being written.
    fn snapshot(&mut self, forced: bool) -> Result<(), String> {
        let started = Instant::now();
        // The read lock keeps reads going while the state is captured; applies wait.
        let sm = self.sm.read();
        let AppliedPosition { index, term } = sm.applied();
        let due = if forced {
            index > self.since.index
        } else {
            self.policy.due(index, &self.since)
        };
        if !due {
            return Ok(());
        }
        let pending = self.files.capture(index, &**sm)?;
        drop(sm);
        let capture_ms = started.elapsed().as_millis() as u64;
        let log_bytes = self.since.applied_bytes;
        // What is applied from now on counts toward the next snapshot.
        self.since = SinceSnapshot {
            index,
            file_bytes: self.since.file_bytes,
            applied_bytes: 0,
        };
        let group = self.group;
        let report = self.report.clone();
        let stopped = self.stopped.clone();
        let write = move || {
            priority::lower_this_thread();
            let written = panic_guard::catch(|| pending.write())
                .unwrap_or_else(|panic| Err(format!("panicked: {panic}")));
            match written {
                Ok(path) => {
                    let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                    tracing::info!(
                        group,
                        index,
                        term,
                        file_bytes,
                        log_bytes,
                        capture_ms,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                    let event = crate::metrics::SnapshotEvent::Taken;
                    crate::metrics::get().snapshot(group, event, Some(started.elapsed()));
                    report(ApplyReport::SnapshotWritten { index, term });
                    Some(file_bytes)
                }
                Err(e) => {
                    let reason = format!("snapshot at {index} (term {term}): {e}");
                    report_stop(group, &stopped, &*report, reason);
                    None
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name(format!("snapshot-{group}"))
            .spawn(write)
            .map_err(|e| format!("cannot start the snapshot writer: {e}"))?;
        self.writing = Some(SnapshotWriting { index, thread });
        Ok(())
    }

    /// Reaps the snapshot writer once it has finished (`wait`: waits for it). `false`:
    /// it failed and told the replica, and this thread ends without telling it again.
    fn reap_writer(&mut self, wait: bool) -> bool {
        let Some(writing) = self.writing.take_if(|w| wait || w.thread.is_finished()) else {
            return true;
        };
        match writing.thread.join() {
            Ok(Some(file_bytes)) => {
                if self.since.index == writing.index {
                    self.since.file_bytes = file_bytes;
                }
                true
            }
            // The writer catches panics: a failed join is a failure it could not report.
            Ok(None) => false,
            Err(_) => {
                self.stop("the snapshot writer thread panicked".to_owned());
                false
            }
        }
    }
}

/// Marks the state machine stopped (unless an earlier failure did) and tells the replica:
/// the end of the apply thread, or of its snapshot writer.
fn report_stop(group: u64, stopped: &StopFlag, report: &dyn Fn(ApplyReport), error: String) {
    tracing::error!(group, %error, "apply stopped");
    stopped.lock().get_or_insert_with(|| error.clone());
    report(ApplyReport::Failed(error));
}

/// The sending half the replica keeps.
pub type ApplySender = Sender<ApplyTask>;

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::RwLock;

    use super::*;
    use crate::kv::{proposal, KvCommand, KvOutcome, KvRead, KvReadReply, KvStateMachine};
    use std::collections::BTreeMap;
    use std::path::Path;

    use common::backup::{BackupItem, CollectionCount};

    use crate::raft::state_machine::{
        BackgroundJob, BackgroundRole, Encoded, EncodedStateMachine, ProposalReader, ReadCursor,
        SnapshotError, SnapshotWrite,
    };

    fn put(index: u64, key: &str, value: &str) -> Entry {
        let cmd = KvCommand::Put {
            key: key.into(),
            value: value.into(),
        };
        Entry {
            index,
            term: 1,
            data: bincode::serialize(&proposal(&cmd, std::time::Duration::from_secs(60)))
                .unwrap()
                .into(),
            ..Default::default()
        }
    }

    fn empty(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            ..Default::default()
        }
    }

    struct Running {
        tasks: mpsc::Sender<ApplyTask>,
        reports: mpsc::Receiver<ApplyReport>,
        sm: SharedStateMachine,
        files: SnapshotFiles,
        stopped: StopFlag,
        _dir: tempfile::TempDir,
    }

    fn start(policy: SnapshotPolicy) -> Running {
        start_with(policy, Box::new(Encoded(KvStateMachine::new())))
    }

    fn start_with(policy: SnapshotPolicy, sm: Box<dyn EncodedStateMachine>) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(&dir.path().join("snap")).unwrap();
        let sm: SharedStateMachine = Arc::new(RwLock::new(sm));
        let (tasks, rx) = mpsc::channel();
        let (report_tx, reports) = mpsc::channel();
        let report_tx = parking_lot::Mutex::new(report_tx);
        let stopped = StopFlag::default();
        ApplyWorker::new(7, sm.clone(), files.clone(), policy, 0, move |r| {
            let _ = report_tx.lock().send(r);
        })
        .with_stop_flag(stopped.clone())
        .spawn(rx)
        .unwrap();
        Running {
            tasks,
            reports,
            sm,
            files,
            stopped,
            _dir: dir,
        }
    }

    fn next(r: &Running) -> ApplyReport {
        r.reports.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// The next report that ends a restore: (applied, restored index); a stopped
    /// worker fails the test.
    fn next_restored(r: &Running) -> ((u64, u64), u64) {
        loop {
            match next(r) {
                ApplyReport::Applied {
                    applied,
                    restored: Some(at),
                    ..
                } => return (applied, at),
                ApplyReport::Failed(e) => panic!("the worker stopped: {e}"),
                _ => {}
            }
        }
    }

    /// A key-value state machine whose snapshot files wait, after their capture, until
    /// the test lets them be written.
    struct GatedSnapshots {
        kv: Encoded<KvStateMachine>,
        gate: Arc<parking_lot::Mutex<mpsc::Receiver<()>>>,
    }

    impl EncodedStateMachine for GatedSnapshots {
        fn apply(&mut self, at: AppliedPosition, stamp_ms: u64, data: &[u8]) -> Vec<u8> {
            self.kv.apply(at, stamp_ms, data)
        }
        fn advance(&mut self, at: AppliedPosition) {
            self.kv.advance(at)
        }
        fn applied(&self) -> AppliedPosition {
            self.kv.applied()
        }
        fn read_step(&self, request: &[u8], cursor: &mut ReadCursor) -> Option<Vec<u8>> {
            self.kv.read_step(request, cursor)
        }
        fn capture_snapshot(
            &self,
            path: &Path,
        ) -> Result<SnapshotWrite<SnapshotError>, SnapshotError> {
            let write = self.kv.capture_snapshot(path)?;
            let gate = self.gate.clone();
            Ok(Box::new(move || {
                let _ = gate.lock().recv();
                write()
            }))
        }
        fn restore_snapshot(&mut self, path: &Path) -> Result<(), SnapshotError> {
            self.kv.restore_snapshot(path)
        }
        fn digest(&self) -> u64 {
            self.kv.digest()
        }
        fn record_count(&self) -> Option<u64> {
            self.kv.record_count()
        }
        fn background_job(&self, _: BackgroundRole) -> Option<BackgroundJob<Vec<u8>>> {
            None
        }
        fn background_lag(&self) -> u64 {
            0
        }
        fn export(
            &self,
            include_records: bool,
            out: &mut dyn FnMut(BackupItem) -> std::io::Result<()>,
        ) -> std::io::Result<BTreeMap<String, CollectionCount>> {
            self.kv.export(include_records, out)
        }
        fn proposal_reader(&self) -> ProposalReader {
            self.kv.proposal_reader()
        }
    }

    #[test]
    fn entries_are_applied_while_a_snapshot_file_is_written() {
        let (open_gate, gate) = mpsc::channel();
        let sm = GatedSnapshots {
            kv: Encoded(KvStateMachine::new()),
            gate: Arc::new(parking_lot::Mutex::new(gate)),
        };
        let policy = SnapshotPolicy {
            every_entries: 2,
            min_bytes: 0,
        };
        let r = start_with(policy, Box::new(sm));
        r.tasks
            .send(ApplyTask::Entries(vec![put(1, "a", "1"), put(2, "b", "2")]))
            .unwrap();
        // Captured at 2, its file held back: entries 3..=20 are applied all the same.
        std::thread::sleep(Duration::from_millis(100));
        for i in 3..=20 {
            r.tasks
                .send(ApplyTask::Entries(vec![put(i, "k", &i.to_string())]))
                .unwrap();
        }
        let mut applied = 0;
        while applied < 20 {
            match next(&r) {
                ApplyReport::Applied {
                    applied: (i, _), ..
                } => applied = i,
                other => panic!("{other:?} while the file is held back"),
            }
        }
        assert!(r.files.list().is_empty());
        open_gate.send(()).unwrap();
        match next(&r) {
            ApplyReport::SnapshotWritten { index, .. } => assert_eq!(index, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.files.list(), vec![2]);
        // The file holds the state at its capture, not at 20.
        let mut at_two = Encoded(KvStateMachine::new());
        at_two.restore_snapshot(&r.files.path(2)).unwrap();
        assert_eq!(at_two.applied(), AppliedPosition { index: 2, term: 1 });
        // The next file is captured once the writer is done and something is applied.
        r.tasks
            .send(ApplyTask::Entries(vec![put(21, "k", "21")]))
            .unwrap();
        open_gate.send(()).unwrap();
        loop {
            if let ApplyReport::SnapshotWritten { index, .. } = next(&r) {
                assert_eq!(index, 21);
                break;
            }
        }
    }

    const NO_SNAPSHOTS: SnapshotPolicy = SnapshotPolicy {
        every_entries: 0,
        min_bytes: 0,
    };

    #[test]
    fn applies_in_order_and_reports_every_outcome() {
        let r = start(NO_SNAPSHOTS);
        r.tasks
            .send(ApplyTask::Entries(vec![empty(1), put(2, "a", "1")]))
            .unwrap();
        r.tasks
            .send(ApplyTask::Entries(vec![put(3, "a", "2"), empty(4)]))
            .unwrap();
        let mut seen = Vec::new();
        let mut last = (0, 0);
        while last.0 < 4 {
            match next(&r) {
                ApplyReport::Applied {
                    applied, entries, ..
                } => {
                    assert!(applied >= last, "applied went back: {applied:?} < {last:?}");
                    last = applied;
                    seen.extend(entries);
                }
                other => panic!("unexpected report {other:?}"),
            }
        }
        let indexes: Vec<u64> = seen.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4]);
        assert_eq!(seen[0].outcome, None);
        let second: KvOutcome = bincode::deserialize(seen[2].outcome.as_ref().unwrap()).unwrap();
        assert_eq!(
            second,
            KvOutcome::Done {
                previous: Some("1".into())
            }
        );
        assert_eq!(r.sm.read().applied(), AppliedPosition { index: 4, term: 1 });
    }

    #[test]
    fn entries_at_or_below_applied_are_skipped() {
        let r = start(NO_SNAPSHOTS);
        r.tasks
            .send(ApplyTask::Entries(vec![put(1, "k", "first")]))
            .unwrap();
        r.tasks
            .send(ApplyTask::Entries(vec![
                put(1, "k", "again"),
                put(2, "j", "x"),
            ]))
            .unwrap();
        let mut indexes = Vec::new();
        while !indexes.contains(&2) {
            if let ApplyReport::Applied { entries, .. } = next(&r) {
                indexes.extend(entries.iter().map(|e| e.index));
            }
        }
        assert_eq!(indexes, vec![1, 2]);
        let reply =
            r.sm.read()
                .read(&bincode::serialize(&KvRead::Get { key: "k".into() }).unwrap());
        let reply: KvReadReply = bincode::deserialize(&reply).unwrap();
        assert_eq!(reply, KvReadReply::Value(Some("first".into())));
    }

    /// Snapshots by bytes only, after 10,000 of them.
    const BY_BYTES: SnapshotPolicy = SnapshotPolicy {
        every_entries: 1_000_000,
        min_bytes: 10_000,
    };

    /// The (index, term) of the next snapshot file the worker reports written.
    fn next_written(r: &Running) -> (u64, u64) {
        loop {
            if let ApplyReport::SnapshotWritten { index, term } = next(r) {
                return (index, term);
            }
        }
    }

    #[test]
    fn snapshots_by_bytes_when_entries_are_few_but_large() {
        let r = start(BY_BYTES);
        let big = "x".repeat(4_000);
        let entries = (1..=3).map(|i| put(i, &format!("k{i}"), &big)).collect();
        r.tasks.send(ApplyTask::Entries(entries)).unwrap();
        assert_eq!(next_written(&r), (3, 1));
        assert_eq!(r.files.list(), vec![3]);
        // The restored file holds the state at that index.
        let mut other = Encoded(KvStateMachine::new());
        other.restore_snapshot(&r.files.path(3)).unwrap();
        assert_eq!(other.applied(), AppliedPosition { index: 3, term: 1 });
        assert_eq!(other.digest(), r.sm.read().digest());
    }

    #[test]
    fn background_entries_do_not_bring_a_snapshot_nearer() {
        let r = start(BY_BYTES);
        let big = "x".repeat(4_000);
        let background = (1..=3).map(|i| Entry {
            context: background_context(1).into(),
            ..put(i, &format!("k{i}"), &big)
        });
        r.tasks
            .send(ApplyTask::Entries(background.collect()))
            .unwrap();
        let mut applied = 0;
        while applied < 3 {
            match next(&r) {
                ApplyReport::Applied {
                    applied: (i, _), ..
                } => applied = i,
                other => panic!("12 kB of background entries: {other:?}"),
            }
        }
        assert!(r.files.list().is_empty(), "no snapshot for them");
        // The same bytes from clients take a snapshot.
        let entries = (4..=6).map(|i| put(i, &format!("k{i}"), &big)).collect();
        r.tasks.send(ApplyTask::Entries(entries)).unwrap();
        assert_eq!(next_written(&r), (6, 1));
    }

    #[test]
    fn byte_trigger_grows_with_the_snapshot() {
        let policy = SnapshotPolicy {
            every_entries: 0,
            min_bytes: 100,
        };
        let small = SinceSnapshot {
            index: 10,
            file_bytes: 200,
            applied_bytes: 100,
        };
        assert!(policy.due(11, &small));
        let large = SinceSnapshot {
            file_bytes: 4_000,
            ..small
        };
        assert!(!policy.due(11, &large), "a quarter of 4000 is 1000 > 100");
        assert!(policy.due(
            11,
            &SinceSnapshot {
                applied_bytes: 1_000,
                ..large
            }
        ));
        assert!(
            !policy.due(10, &small),
            "nothing applied since the snapshot"
        );
        assert!(!NO_SNAPSHOTS.due(1_000, &small));
    }

    /// Applies `l{i} = v` at index `i` to a "leader's" state machine.
    fn leader_put(leader: &mut Encoded<KvStateMachine>, i: u64) {
        let e = put(i, &format!("l{i}"), "v");
        let at = AppliedPosition {
            index: e.index,
            term: e.term,
        };
        leader.apply(at, 0, &e.data);
    }

    #[test]
    fn restore_replaces_the_state_and_reports_it() {
        let r = start(NO_SNAPSHOTS);
        // A "leader's" snapshot at index 5 made from another state machine.
        let mut leader = Encoded(KvStateMachine::new());
        for i in 1..=5 {
            leader_put(&mut leader, i);
        }
        let path = r.files.write_from(5, &leader).unwrap();
        r.tasks
            .send(ApplyTask::Entries(vec![put(1, "mine", "v")]))
            .unwrap();
        r.tasks
            .send(ApplyTask::Restore {
                index: 5,
                term: 1,
                path,
            })
            .unwrap();
        assert_eq!(next_restored(&r), ((5, 1), 5));
        assert_eq!(r.sm.read().digest(), leader.digest());
    }

    /// A "leader's" state machine after 7 puts, with snapshot files of it at 5 and 7 in
    /// the worker's directory, as the log writes them when the leader sends them.
    fn leader_snapshots_at_5_and_7(r: &Running) -> (Encoded<KvStateMachine>, Vec<(u64, PathBuf)>) {
        let mut leader = Encoded(KvStateMachine::new());
        let mut paths = Vec::new();
        for i in 1..=7 {
            leader_put(&mut leader, i);
            if i == 5 || i == 7 {
                paths.push((i, r.files.write_from(i, &leader).unwrap()));
            }
        }
        (leader, paths)
    }

    fn queue_restores(r: &Running, paths: Vec<(u64, PathBuf)>) {
        for (index, path) in paths {
            r.tasks
                .send(ApplyTask::Restore {
                    index,
                    term: 1,
                    path,
                })
                .unwrap();
        }
    }

    #[test]
    fn a_snapshot_superseded_before_its_restore_is_skipped_for_the_newer_one() {
        let r = start(NO_SNAPSHOTS);
        let (leader, paths) = leader_snapshots_at_5_and_7(&r);
        // The log installed 7 after 5 and deleted 5's file before 5 was restored.
        r.files.retain_from(7);
        queue_restores(&r, paths);
        assert_eq!(next_restored(&r), ((7, 1), 7));
        assert_eq!(r.sm.read().digest(), leader.digest());
    }

    #[test]
    fn older_snapshot_files_go_only_once_a_newer_one_is_restored() {
        let r = start(NO_SNAPSHOTS);
        let (leader, paths) = leader_snapshots_at_5_and_7(&r);
        // Both installed by the log before either restore ran (long-tier s20, seed 1027:
        // the log used to delete 5's file when it installed 7, under the restore of 5).
        // A reader holds the state machine meanwhile, as a query would.
        let reading = r.sm.read();
        queue_restores(&r, paths);
        assert_eq!(
            r.files.list(),
            vec![5, 7],
            "nothing deleted before the restores"
        );
        drop(reading);
        assert_eq!(next_restored(&r), ((5, 1), 5));
        assert_eq!(next_restored(&r), ((7, 1), 7));
        assert_eq!(r.files.list(), vec![7]);
        assert_eq!(r.sm.read().digest(), leader.digest());
    }

    #[test]
    fn a_panic_while_applying_stops_the_worker_naming_the_entry() {
        let r = start(NO_SNAPSHOTS);
        let pill = Entry {
            index: 2,
            term: 1,
            data: bincode::serialize(&proposal(
                &KvCommand::PanicOnApply,
                std::time::Duration::from_secs(60),
            ))
            .unwrap()
            .into(),
            ..Default::default()
        };
        r.tasks
            .send(ApplyTask::Entries(vec![
                put(1, "a", "1"),
                pill,
                put(3, "b", "2"),
            ]))
            .unwrap();
        let mut applied = Vec::new();
        let reason = loop {
            match next(&r) {
                ApplyReport::Applied { entries, .. } => {
                    applied.extend(entries.iter().map(|e| e.index))
                }
                ApplyReport::Failed(reason) => break reason,
                other => panic!("unexpected report {other:?}"),
            }
        };
        assert_eq!(
            applied,
            vec![1],
            "entries before the pill are reported, none after"
        );
        assert!(
            reason.contains("apply of entry 2 (term 1) panicked")
                && reason.contains("PanicOnApply"),
            "{reason}"
        );
        assert_eq!(r.stopped.lock().as_deref(), Some(reason.as_str()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            r.tasks.send(ApplyTask::Entries(vec![empty(4)])).is_err(),
            "the worker is gone: the state machine is not used again"
        );
    }

    #[test]
    fn a_bad_snapshot_file_stops_the_worker_with_a_report() {
        let r = start(NO_SNAPSHOTS);
        let path = r.files.write_bytes(9, b"not a snapshot").unwrap();
        r.tasks
            .send(ApplyTask::Restore {
                index: 9,
                term: 1,
                path,
            })
            .unwrap();
        assert!(matches!(next(&r), ApplyReport::Failed(_)));
        // The thread is gone: its queue is closed.
        std::thread::sleep(Duration::from_millis(50));
        assert!(r.tasks.send(ApplyTask::Entries(vec![empty(1)])).is_err());
    }
}
