//! One log for every Raft group of a node (`raft.log = "node"`), TiKV's raft-engine
//! shape: each group's records go to a shared WAL tagged with the group
//! ([`Record::Group`]), so the ready rounds of groups that persist at the same time share
//! one `write` and one fsync (the WAL's group commit coalesces concurrent appends; every
//! replica runs its ready loop on a thread of its own).
//!
//! # Lanes
//! The log is `lanes` WALs (`lane-0`, `lane-1`, ... in its directory; default 4), a
//! group always in lane `group % lanes`. One WAL has one flush in flight: with a few
//! groups writing, each round would wait for the others' fsync, where WALs of their own
//! fsync in parallel (a disk runs several at once: one shared file, 3 writers, was
//! 0.61x a file each). A second flush cannot overlap the first in the same WAL: a crash
//! could then keep the later flush's pages and lose the earlier's, a hole followed by
//! intact frames, which recovery must refuse as damage. So lanes: each WAL keeps one
//! flush in flight and a tail that only a crash tears, and a few flushes run at once.
//! Each lane has its own segments; everything below about segments is per lane.
//!
//! # Recovery
//! [`NodeLog::open`] replays the WAL once and sorts each group's records into that
//! group's replay state, which its replica takes when it opens
//! ([`super::RaftLogStorage::open_in`]). A [`Record::Discard`] forgets what came before it
//! for its group (a removed replica, or one replaced by an empty one).
//!
//! # Deleting segments
//! Segments go oldest first, once no group needs them. A group needs the segments from
//! the first one holding a record it still needs: after a compaction or a snapshot
//! install, the segment its compaction computed (as a per-group WAL would purge); before
//! either, the segment of its first record. A group that seldom compacts would pin old
//! segments for ever, so once the log holds more than `max_segments` and more than
//! twice the bytes its groups still need, the collector rewrites every group that pins
//! one of the older half: the group appends its whole state again (conf changes,
//! snapshot metadata with hard and conf state, its entries) and then needs only what it
//! just wrote. A group's rewrite is replayed to the state it restates, so a crash
//! between a rewrite and the deletion it allows changes nothing. The second condition
//! bounds what rewriting costs: while the groups' own logs are most of the log (many
//! busy groups between their compactions), rewriting would copy much and free little;
//! the log then grows to twice what they need, and no further.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::raft_log::Replay;
use super::wal::{segment, FramePos, Record, RecoveryReport, Wal, WalOptions, WalStats};
use super::StorageError;

/// How often the collector looks for segments to delete without being woken.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// Options of a node's shared log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLogOptions {
    pub wal: WalOptions,
    /// WALs the groups are spread over (at least 1; default 4). A log on disk is opened
    /// with the lanes it was written with: a different count is refused.
    pub lanes: usize,
    /// Past this many segments (at least 2), and past twice the bytes the groups need,
    /// groups pinning the older half are rewritten. Default 8.
    pub max_segments: usize,
}

impl Default for NodeLogOptions {
    fn default() -> Self {
        NodeLogOptions {
            wal: WalOptions::default(),
            lanes: 4,
            max_segments: 8,
        }
    }
}

/// What the collector asks of an open group's storage.
pub(super) trait Rewrite: Send + Sync {
    /// Appends the group's whole state again; returns the segment it starts in (the
    /// group needs nothing before it afterwards).
    fn rewrite(&self) -> Result<u64, StorageError>;

    /// About what a rewrite would write: the bytes of the group's entries.
    fn log_bytes(&self) -> u64;
}

/// A group's records replayed at open, until its replica takes them.
pub(super) struct Recovered {
    pub replay: Replay,
    /// The segment of its first record (after its last discard).
    pub first_segment: u64,
}

struct OpenGroup {
    /// Segments (of its lane) before this one hold nothing the group needs.
    needed_from: u64,
    storage: Weak<dyn Rewrite>,
}

#[derive(Default)]
struct State {
    recovered: HashMap<u64, Recovered>,
    open: HashMap<u64, OpenGroup>,
}

impl State {
    /// The oldest segment of lane `lane` (of `lanes`) some group needs.
    fn floor(&self, lane: usize, lanes: usize) -> Option<u64> {
        let in_lane = |g: &u64| lane_of(*g, lanes) == lane;
        let open = self
            .open
            .iter()
            .filter(|(g, _)| in_lane(g))
            .map(|(_, o)| o.needed_from);
        let recovered = self
            .recovered
            .iter()
            .filter(|(g, _)| in_lane(g))
            .map(|(_, r)| r.first_segment);
        open.chain(recovered).min()
    }
}

fn lane_of(group: u64, lanes: usize) -> usize {
    (group % lanes as u64) as usize
}

fn lane_dir(dir: &Path, lane: usize) -> PathBuf {
    dir.join(format!("lane-{lane}"))
}

/// Wakes the collector early (a group released segments) or for good (the log is gone).
/// Shared with the collector thread, which holds no reference to the log while it
/// waits: a dropped log is not kept alive (and at work on its files) by its collector.
#[derive(Default)]
struct Wakeup {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wakeup {
    fn wake(&self) {
        *self.woken.lock() = true;
        self.cv.notify_one();
    }

    fn wait(&self, timeout: Duration) {
        let mut woken = self.woken.lock();
        if !*woken {
            self.cv.wait_for(&mut woken, timeout);
        }
        *woken = false;
    }
}

/// A node's shared Raft log. See the module docs.
pub struct NodeLog {
    /// Group `g`'s records are in `lanes[g % lanes.len()]`.
    lanes: Vec<Wal>,
    state: Mutex<State>,
    wakeup: Arc<Wakeup>,
    max_segments: usize,
    segment_bytes: u64,
    /// What recovery found, per lane.
    recovery: Vec<RecoveryReport>,
}

impl Drop for NodeLog {
    fn drop(&mut self) {
        self.wakeup.wake();
    }
}

impl NodeLog {
    /// Opens (or creates) the node's log in `dir`, replays it, and starts its collector
    /// thread (which ends when the log is dropped).
    pub fn open(dir: &Path, opts: NodeLogOptions) -> Result<Arc<NodeLog>, StorageError> {
        let lane_count = opts.lanes.max(1);
        if segment::any_records(dir) {
            return Err(StorageError::Inconsistent(format!(
                "{} holds WAL segments of its own, not lanes: is this a replica's own WAL?",
                dir.display()
            )));
        }
        if let Some(extra) = extra_lane(dir, lane_count) {
            return Err(StorageError::Inconsistent(format!(
                "{} holds Raft log records, but the node log has {lane_count} lanes: it \
                 was written with more (opened with fewer, groups would be read from the \
                 wrong lane)",
                extra.display()
            )));
        }
        let mut recovered: HashMap<u64, Recovered> = HashMap::new();
        let mut lanes = Vec::with_capacity(lane_count);
        let mut recovery = Vec::with_capacity(lane_count);
        for lane in 0..lane_count {
            let (wal, report) = Wal::open(&lane_dir(dir, lane), opts.wal, |at, record| {
                replay_record(&mut recovered, lane, lane_count, at, record)
            })?;
            lanes.push(wal);
            recovery.push(report);
        }
        tracing::info!(dir = %dir.display(), groups = recovered.len(), "node log recovered");
        let log = Arc::new(NodeLog {
            lanes,
            state: Mutex::new(State {
                recovered,
                open: HashMap::new(),
            }),
            wakeup: Arc::new(Wakeup::default()),
            max_segments: opts.max_segments.max(2),
            segment_bytes: opts.wal.segment_bytes,
            recovery,
        });
        let (weak, wakeup) = (Arc::downgrade(&log), log.wakeup.clone());
        std::thread::Builder::new()
            .name("node-log-gc".into())
            .spawn(move || collector(weak, wakeup))
            .map_err(|e| StorageError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
        Ok(log)
    }

    /// Takes `group`'s replayed records (if any) to open its storage; refused while the
    /// group is open already.
    pub(super) fn attach(&self, group: u64) -> Result<Option<Recovered>, StorageError> {
        let mut st = self.state.lock();
        if st.open.contains_key(&group) {
            return Err(StorageError::Inconsistent(format!(
                "group {group} is open in the node log already"
            )));
        }
        Ok(st.recovered.remove(&group))
    }

    /// Registers an opened group: it needs the segments of its lane from `needed_from`
    /// (the lane's active one for a group with no record yet).
    pub(super) fn register(
        &self,
        group: u64,
        needed_from: Option<u64>,
        storage: Weak<dyn Rewrite>,
    ) {
        let needed_from = needed_from.unwrap_or_else(|| self.lane(group).active_segment());
        self.state.lock().open.insert(
            group,
            OpenGroup {
                needed_from,
                storage,
            },
        );
    }

    fn lane(&self, group: u64) -> &Wal {
        &self.lanes[lane_of(group, self.lanes.len())]
    }

    /// Appends `records` of `group` durably (one `write` and one fsync, shared with the
    /// other groups of its lane appending at the same time). Returns where the first one
    /// starts, in the group's lane.
    pub(super) fn append(
        &self,
        group: u64,
        records: Vec<Record>,
    ) -> Result<FramePos, StorageError> {
        if !self.state.lock().open.contains_key(&group) {
            return Err(StorageError::GroupNotOpen(group));
        }
        let tagged: Vec<Record> = records
            .into_iter()
            .map(|record| Record::Group {
                group,
                record: Box::new(record),
            })
            .collect();
        self.lane(group).append_at(&tagged)
    }

    /// Reads back a record of `group` (see [`Wal::read_frame`]).
    pub(super) fn read_frame(&self, group: u64, at: FramePos) -> Result<Record, StorageError> {
        match self.lane(group).read_frame(at)? {
            Record::Group { group: g, record } if g == group => Ok(*record),
            _ => Err(StorageError::Inconsistent(format!(
                "the node log's frame at segment {} offset {} is not group {group}'s",
                at.segment, at.offset
            ))),
        }
    }

    /// `group` needs nothing before segment `from` of its lane any more.
    pub(super) fn release(&self, group: u64, from: u64) {
        let mut st = self.state.lock();
        if let Some(g) = st.open.get_mut(&group) {
            if from > g.needed_from {
                g.needed_from = from;
                self.wakeup.wake();
            }
        }
    }

    /// Forgets everything of `group` (its replica was removed, or is replaced by an
    /// empty one): a durable [`Record::Discard`], unless the log holds nothing of it.
    /// Later appends of the group are refused until it is opened again.
    pub fn discard(&self, group: u64) -> Result<(), StorageError> {
        let known = {
            let st = self.state.lock();
            st.open.contains_key(&group) || st.recovered.contains_key(&group)
        };
        if known {
            self.lane(group).append(&[Record::Discard { group }])?;
        }
        let mut st = self.state.lock();
        st.open.remove(&group);
        st.recovered.remove(&group);
        drop(st);
        self.wakeup.wake();
        Ok(())
    }

    /// Whether the log holds any record of `group` (replayed and not yet taken, or open).
    pub fn has_records(&self, group: u64) -> bool {
        let st = self.state.lock();
        st.open.contains_key(&group) || st.recovered.contains_key(&group)
    }

    /// Groups replayed at open whose replica has not opened (yet).
    pub fn unopened_groups(&self) -> Vec<u64> {
        let mut groups: Vec<u64> = self.state.lock().recovered.keys().copied().collect();
        groups.sort_unstable();
        groups
    }

    /// In every lane: rewrites the groups that pin old segments when there are too many
    /// (see the module docs), then deletes the segments no group needs. Returns how many
    /// were deleted.
    pub fn collect(&self) -> Result<usize, StorageError> {
        let mut deleted = 0;
        for lane in 0..self.lanes.len() {
            deleted += self.collect_lane(lane)?;
        }
        Ok(deleted)
    }

    fn collect_lane(&self, lane: usize) -> Result<usize, StorageError> {
        let wal = &self.lanes[lane];
        let lanes = self.lanes.len();
        let segments = wal.segments();
        if segments.len() > self.max_segments {
            let keep = (self.max_segments / 2).max(1);
            let target = segments[segments.len() - keep];
            // Upgraded under the lock, measured and rewritten outside it: a group's
            // storage takes its own locks, and appends take this one.
            let open: Vec<(u64, u64, Arc<dyn Rewrite>)> = {
                let st = self.state.lock();
                st.open
                    .iter()
                    .filter(|(&group, _)| lane_of(group, lanes) == lane)
                    .filter_map(|(&group, g)| Some((group, g.needed_from, g.storage.upgrade()?)))
                    .collect()
            };
            let needed: u64 = open.iter().map(|(_, _, s)| s.log_bytes()).sum();
            let held = segments.len() as u64 * self.segment_bytes;
            let worth_it = held > 2 * needed;
            let pinning = open
                .into_iter()
                .filter(|&(_, from, _)| worth_it && from < target);
            for (group, _, storage) in pinning {
                // Under the group's own writer lock; a concurrent discard makes it fail,
                // which is fine: the group needs nothing then.
                match storage.rewrite() {
                    Ok(from) => self.release(group, from),
                    Err(e) => {
                        tracing::warn!(group, error = %e, "node log: cannot rewrite a group")
                    }
                }
            }
        }
        let floor = self.state.lock().floor(lane, lanes);
        let floor = floor.unwrap_or_else(|| wal.active_segment());
        wal.purge_before(floor)
    }

    /// The segments of every lane, lane by lane (each ascending).
    pub fn segments(&self) -> Vec<u64> {
        self.lanes.iter().flat_map(|w| w.segments()).collect()
    }

    /// The segments of `group`'s lane, ascending.
    pub fn segments_of(&self, group: u64) -> Vec<u64> {
        self.lane(group).segments()
    }

    /// The active segment of `group`'s lane.
    pub fn active_segment_of(&self, group: u64) -> u64 {
        self.lane(group).active_segment()
    }

    /// The lanes' counters, summed.
    pub fn stats(&self) -> WalStats {
        self.lanes
            .iter()
            .map(|w| w.stats())
            .fold(WalStats::default(), WalStats::sum)
    }

    /// What recovery found in `group`'s lane when the log was opened.
    pub fn recovery_report(&self, group: u64) -> &RecoveryReport {
        &self.recovery[lane_of(group, self.lanes.len())]
    }
}

/// Sorts one replayed record of lane `lane` into its group's replay state.
fn replay_record(
    recovered: &mut HashMap<u64, Recovered>,
    lane: usize,
    lanes: usize,
    at: FramePos,
    record: Record,
) -> Result<(), StorageError> {
    match record {
        Record::Group { group, .. } | Record::Discard { group }
            if lane_of(group, lanes) != lane =>
        {
            Err(StorageError::Inconsistent(format!(
                "group {group}'s record in lane {lane} of {lanes} (segment {} offset {})",
                at.segment, at.offset
            )))
        }
        Record::Group { group, record } => {
            recovered
                .entry(group)
                .or_insert_with(|| Recovered {
                    replay: Replay::default(),
                    first_segment: at.segment,
                })
                .replay
                .apply(at, *record);
            Ok(())
        }
        Record::Discard { group } => {
            recovered.remove(&group);
            Ok(())
        }
        other => Err(StorageError::Inconsistent(format!(
            "a record of no group in the node log at segment {} offset {} ({} entries): is \
             this a replica's own WAL?",
            at.segment,
            at.offset,
            other.entry_count()
        ))),
    }
}

/// The lane directories in `dir`, with their numbers.
fn lane_dirs(dir: &Path) -> impl Iterator<Item = (usize, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n: usize = e
                .file_name()
                .to_str()?
                .strip_prefix("lane-")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
}

/// A lane directory at or past `lanes` that holds records, if any.
fn extra_lane(dir: &Path, lanes: usize) -> Option<PathBuf> {
    lane_dirs(dir)
        .filter(|&(n, _)| n >= lanes)
        .map(|(_, d)| d)
        .find(|d| segment::any_records(d))
}

/// Whether a node log in `dir` holds any record (in any lane).
pub fn holds_records(dir: &Path) -> bool {
    lane_dirs(dir).any(|(_, d)| segment::any_records(&d))
}

/// Deletes segments as groups release them, and rewrites groups that pin old ones.
fn collector(log: Weak<NodeLog>, wakeup: Arc<Wakeup>) {
    loop {
        wakeup.wait(COLLECT_EVERY);
        let Some(log) = log.upgrade() else {
            return;
        };
        if let Err(e) = log.collect() {
            tracing::error!(error = %e, "node log: collecting segments failed");
        }
    }
}
