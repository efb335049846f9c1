//! `raft::Storage` over the WAL.
//!
//! Entries since the last snapshot are kept in memory for reads, except applied ones past
//! a byte budget ([`RaftLogStorage::evict_applied`]), which are read back from the WAL
//! when asked for (a leader catching up a slow follower); the WAL is for durability and
//! rebuilds that state on open. Every mutation is serialized by one mutex (so WAL order
//! equals memory order), written to the WAL with one fsync, and only then published to
//! readers, who take a read lock that is never held across I/O.
//!
//! Invariant: `entries` is contiguous and starts at `snapshot.index + 1`, so
//! `first_index = snapshot.index + 1` and `last_index = snapshot.index + entries.len()`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage};

use super::backend::Backend;
use super::log_entries::{ColdEntry, LogEntries};
use super::node_log::{NodeLog, Rewrite};
use super::wal::{FramePos, Record, RecoveryReport, SnapshotKind, Wal, WalOptions, WalStats};
use super::StorageError;

/// Bytes of applied entries a replica keeps in memory by default
/// (`raft.entry_cache_bytes`).
pub const DEFAULT_ENTRY_CACHE_BYTES: u64 = 8 << 20;

/// Produces the bytes of a snapshot (the state machine's packed snapshot), or `None` if
/// they are not available right now.
pub type SnapshotSource = Arc<dyn Fn(&SnapshotMetadata) -> Option<Vec<u8>> + Send + Sync>;

/// The in-memory view served to readers.
#[derive(Default)]
struct Core {
    hard_state: HardState,
    /// The snapshot's metadata: its conf state is the configuration *at its index*.
    snapshot: SnapshotMetadata,
    /// Configurations that took effect after the snapshot, by the index of the entry that
    /// made each (ascending). Keeping the index is what lets a snapshot carry the
    /// configuration at its own index, and a restart rewind to the configuration at the
    /// applied index, so no conf change is ever applied twice.
    conf_changes: Vec<(u64, ConfState)>,
    entries: LogEntries,
}

impl Core {
    /// The newest configuration.
    fn conf_state(&self) -> ConfState {
        match self.conf_changes.last() {
            Some((_, cs)) => cs.clone(),
            None => self.snapshot.get_conf_state().clone(),
        }
    }

    /// The configuration in force once entry `index` is applied.
    fn conf_state_at(&self, index: u64) -> ConfState {
        match self.conf_changes.iter().rev().find(|(i, _)| *i <= index) {
            Some((_, cs)) => cs.clone(),
            None => self.snapshot.get_conf_state().clone(),
        }
    }

    /// After a compaction to `snapshot` (already set): forgets the configurations it
    /// covers, keeping `newest` the newest (a caller whose snapshot metadata names
    /// another configuration than the one at its index does not lose the newest). One
    /// made by the entry at the snapshot's own index stays: it is the snapshot's own
    /// configuration, except for the bootstrap one at index 0, whose "snapshot" (none)
    /// names no configuration, and which a node log's rewrite restates before it.
    fn compact_conf_changes(&mut self, newest: ConfState) {
        let index = self.snapshot.index;
        self.conf_changes.retain(|(i, _)| *i >= index);
        if self.conf_state() != newest {
            self.conf_changes.push((index, newest));
        }
    }

    /// Records the configuration made by entry `index`; one recorded at or after it is
    /// replaced (the same change applied again after a restart rewound to before it).
    fn record_conf_state(&mut self, index: u64, cs: ConfState) {
        self.conf_changes.retain(|(i, _)| *i < index);
        self.conf_changes.push((index, cs));
    }

    fn first_index(&self) -> u64 {
        self.snapshot.index.saturating_add(1)
    }

    fn log_recovered(&self, from: &str) {
        tracing::info!(
            from,
            first_index = self.first_index(),
            last_index = self.last_index(),
            term = self.hard_state.term,
            commit = self.hard_state.commit,
            snapshot_index = self.snapshot.index,
            "raft log recovered"
        );
    }

    fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    /// The offset of entry `idx` in `entries`.
    fn offset(&self, idx: u64) -> Option<usize> {
        usize::try_from(idx.checked_sub(self.first_index())?).ok()
    }

    fn term(&self, idx: u64) -> Result<u64, raft::StorageError> {
        if idx == self.snapshot.index {
            return Ok(self.snapshot.term);
        }
        if idx < self.first_index() {
            return Err(raft::StorageError::Compacted);
        }
        self.offset(idx)
            .and_then(|o| self.entries.term(o))
            .ok_or(raft::StorageError::Unavailable)
    }

    /// Appends `ents` (consecutive, `ents[0].index` in `first..=last+1`), written in the
    /// WAL frame at `at`, dropping any conflicting suffix.
    fn splice(&mut self, ents: Vec<Entry>, at: FramePos) {
        if let Some(first) = ents.first() {
            let keep = (first.index - self.first_index()) as usize;
            self.entries.truncate(keep);
            self.entries.extend(ents, at);
        }
    }

    fn forget_through(&mut self, meta: &SnapshotMetadata) {
        let drop =
            (meta.index.saturating_sub(self.snapshot.index) as usize).min(self.entries.len());
        self.entries.drain_front(drop);
        self.snapshot = meta.clone();
    }
}

/// The writer side, under one mutex: serializes mutations and tracks, per segment, the
/// highest entry index written to it (to know which segments a compaction frees).
#[derive(Default)]
struct Segments {
    max_index: BTreeMap<u64, u64>,
}

impl Segments {
    fn note(&mut self, seq: u64, last_index: u64) {
        let m = self.max_index.entry(seq).or_insert(0);
        *m = (*m).max(last_index);
    }
}

struct Inner {
    log: Backend,
    writes: Mutex<Segments>,
    core: RwLock<Core>,
    snapshot_source: RwLock<Option<SnapshotSource>>,
    /// Raft asked for a snapshot for a peer the latest one does not hold (a replica added
    /// after it was taken): the replica should write a newer one.
    snapshot_wanted: AtomicBool,
    /// Bytes of applied entries a replica keeps in memory ([`RaftLogStorage::evict_applied`]).
    entry_cache_bytes: AtomicU64,
    recovery: RecoveryReport,
}

/// Durable Raft log storage for one replica. Cheap to clone (shared state).
#[derive(Clone)]
pub struct RaftLogStorage {
    inner: Arc<Inner>,
}

impl RaftLogStorage {
    /// Opens (or creates) the log in `dir`, recovering it from the WAL.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Self, StorageError> {
        let mut replay = Replay::default();
        let (wal, recovery) = Wal::open(dir, opts, |at, record| {
            if let Record::Group { .. } | Record::Discard { .. } = record {
                return Err(StorageError::Inconsistent(format!(
                    "a node log record in a replica's own WAL at segment {} offset {}",
                    at.segment, at.offset
                )));
            }
            replay.apply(at, record);
            Ok(())
        })?;
        // Only compaction and snapshot installs delete leading segments, and both first
        // fsync a snapshot record carrying the full hard and conf state. Leading segments
        // gone without one means the vote and the membership went with them.
        if let Some(&first) = recovery.segments.first() {
            if first > 1 && !replay.saw_snapshot {
                return Err(StorageError::Inconsistent(format!(
                    "segments before {first} are missing and no snapshot record covers them \
                     (the hard state and conf state they held are lost)"
                )));
            }
        }
        let (core, segments) = replay.finish()?;
        core.log_recovered(&dir.display().to_string());
        Ok(Self::new(Backend::Own(wal), core, segments, recovery))
    }

    /// Opens group `group`'s log in the node's shared log (see [`NodeLog`]) from the
    /// records replayed when it was opened.
    pub fn open_in(log: &Arc<NodeLog>, group: u64) -> Result<Self, StorageError> {
        let recovered = log.attach(group)?;
        let first_segment = recovered.as_ref().map(|r| r.first_segment);
        // Unlike a WAL of its own, a group's first records here may be gone without a
        // snapshot record of it: segments deleted before the group existed.
        let (core, segments) = recovered.map(|r| r.replay).unwrap_or_default().finish()?;
        core.log_recovered(&format!("group {group} in the node log"));
        let backend = Backend::Node {
            log: log.clone(),
            group,
        };
        let storage = Self::new(backend, core, segments, log.recovery_report(group).clone());
        let weak: Weak<dyn Rewrite> = Arc::downgrade(&storage.inner) as Weak<dyn Rewrite>;
        log.register(group, first_segment, weak);
        Ok(storage)
    }

    fn new(log: Backend, core: Core, segments: Segments, recovery: RecoveryReport) -> Self {
        RaftLogStorage {
            inner: Arc::new(Inner {
                log,
                writes: Mutex::new(segments),
                core: RwLock::new(core),
                snapshot_source: RwLock::new(None),
                snapshot_wanted: AtomicBool::new(false),
                entry_cache_bytes: AtomicU64::new(DEFAULT_ENTRY_CACHE_BYTES),
                recovery,
            }),
        }
    }

    /// The replica is gone for good (removed, or replaced by an empty one): in the node's
    /// shared log, everything of it is forgotten durably and later appends are refused;
    /// a WAL of its own goes with the replica's directory.
    pub fn discard(&self) -> Result<(), StorageError> {
        let _w = self.inner.writes.lock();
        match &self.inner.log {
            Backend::Own(_) => Ok(()),
            Backend::Node { log, group } => log.discard(*group),
        }
    }

    /// Appends entries (truncating any conflicting suffix as Raft requires) and optionally a
    /// new hard state, durably, with one fsync.
    ///
    /// Entries at or below the snapshot index are skipped (they are committed and already
    /// covered by the snapshot), as etcd's `MemoryStorage` does. Entries must be consecutive
    /// and start at most at `last_index + 1`.
    pub fn append(
        &self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StorageError> {
        for w in entries.windows(2) {
            if Some(w[1].index) != w[0].index.checked_add(1) {
                return Err(StorageError::NonConsecutive {
                    prev: w[0].index,
                    got: w[1].index,
                });
            }
        }
        let mut segments = self.inner.writes.lock();
        let (first, last) = {
            let core = self.inner.core.read();
            (core.first_index(), core.last_index())
        };
        let skip = match entries.first() {
            Some(e) if e.index < first => ((first - e.index) as usize).min(entries.len()),
            _ => 0,
        };
        let ents = &entries[skip..];
        if let Some(e) = ents.first() {
            if e.index > last.saturating_add(1) {
                return Err(StorageError::LogGap {
                    last,
                    first: e.index,
                });
            }
        }
        if ents.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        // Cloning an Entry is cheap: its payload is reference-counted `Bytes`.
        let ents = ents.to_vec();
        let record = Record::Entries {
            entries: ents.clone(),
            hard_state: hard_state.cloned(),
        };
        let at = self.inner.log.append_at(vec![record])?;
        if let Some(e) = ents.last() {
            segments.note(at.segment, e.index);
        }
        let mut core = self.inner.core.write();
        core.splice(ents, at);
        if let Some(hs) = hard_state {
            core.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Persists a new hard state.
    pub fn set_hard_state(&self, hs: &HardState) -> Result<(), StorageError> {
        let _w = self.inner.writes.lock();
        self.inner
            .log
            .append_at(vec![Record::HardState(hs.clone())])?;
        self.inner.core.write().hard_state = hs.clone();
        Ok(())
    }

    /// Persists a new commit index (the rest of the hard state unchanged).
    pub fn set_commit(&self, commit: u64) -> Result<(), StorageError> {
        let _w = self.inner.writes.lock();
        let mut hs = self.inner.core.read().hard_state.clone();
        if hs.commit == commit {
            return Ok(());
        }
        hs.commit = commit;
        self.inner
            .log
            .append_at(vec![Record::HardState(hs.clone())])?;
        self.inner.core.write().hard_state = hs;
        Ok(())
    }

    /// Persists a configuration that takes effect from the last entry on (how a fresh
    /// replica is bootstrapped: at index 0).
    pub fn set_conf_state(&self, cs: &ConfState) -> Result<(), StorageError> {
        let index = self.inner.core.read().last_index();
        self.set_conf_state_at(index, cs)
    }

    /// Persists the configuration made by the conf change entry at `index` (applied in
    /// log order: every later one recorded before is replaced).
    pub fn set_conf_state_at(&self, index: u64, cs: &ConfState) -> Result<(), StorageError> {
        let _w = self.inner.writes.lock();
        self.inner.log.append_at(vec![Record::ConfState {
            index,
            conf_state: cs.clone(),
        }])?;
        self.inner.core.write().record_conf_state(index, cs.clone());
        Ok(())
    }

    /// Forgets (in memory) the configurations made by entries after `applied`: a restarted
    /// replica starts from the configuration at its state machine's applied index, and
    /// raft-rs hands it the later committed entries again, conf changes among them, which
    /// are then applied (and recorded) once more, in order. Without this, a joint
    /// configuration would be entered twice. Never rewinds below the snapshot.
    pub fn rewind_conf_state(&self, applied: u64) {
        let _w = self.inner.writes.lock();
        self.inner
            .core
            .write()
            .conf_changes
            .retain(|(i, _)| *i <= applied);
    }

    /// A snapshot received from the leader was applied to the state machine: drop all
    /// entries, first_index = meta.index + 1, conf state from meta, commit raised to
    /// meta.index (term raised to meta.term). Written to a fresh segment; every older
    /// segment is then deleted.
    pub fn install_snapshot(&self, meta: &SnapshotMetadata) -> Result<(), StorageError> {
        let mut segments = self.inner.writes.lock();
        let (mut hs, current) = {
            let core = self.inner.core.read();
            (core.hard_state.clone(), core.snapshot.index)
        };
        if meta.index <= current {
            return Err(StorageError::SnapshotOutOfDate {
                index: meta.index,
                current,
            });
        }
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        let cs = meta.get_conf_state().clone();
        let record = Record::Snapshot {
            kind: SnapshotKind::Install,
            meta: meta.clone(),
            hard_state: hs.clone(),
            conf_state: cs.clone(),
        };
        self.inner.log.roll()?;
        let seq = self.inner.log.append_at(vec![record])?.segment;
        {
            let mut core = self.inner.core.write();
            core.entries.clear();
            core.snapshot = meta.clone();
            core.hard_state = hs;
            core.conf_changes.clear();
        }
        segments.max_index.clear();
        self.inner.log.release_before(seq)?;
        Ok(())
    }

    /// A local snapshot at `meta.index` is durable: forget entries <= meta.index and delete
    /// whole segments below it. A no-op if `meta.index` is not above the current snapshot.
    /// `meta.term` must be the term of entry `meta.index`, and its conf state the one at
    /// that index ([`Self::conf_state_at`]). Commit is raised to `meta.index` if lower (a
    /// snapshot only contains committed entries).
    pub fn compact(&self, meta: &SnapshotMetadata) -> Result<(), StorageError> {
        let mut segments = self.inner.writes.lock();
        let (hs, newest) = {
            let core = self.inner.core.read();
            if meta.index <= core.snapshot.index {
                return Ok(());
            }
            if meta.index > core.last_index() {
                return Err(StorageError::CompactBeyondLast {
                    index: meta.index,
                    last: core.last_index(),
                });
            }
            let log_term = core.term(meta.index).unwrap_or(0);
            if log_term != meta.term {
                return Err(StorageError::SnapshotTermMismatch {
                    index: meta.index,
                    meta_term: meta.term,
                    log_term,
                });
            }
            let mut hs = core.hard_state.clone();
            hs.commit = hs.commit.max(meta.index);
            (hs, core.conf_state())
        };
        let record = Record::Snapshot {
            kind: SnapshotKind::Compact,
            meta: meta.clone(),
            hard_state: hs.clone(),
            conf_state: newest.clone(),
        };
        self.inner.log.append_at(vec![record])?;
        {
            let mut core = self.inner.core.write();
            core.forget_through(meta);
            core.compact_conf_changes(newest);
            core.hard_state = hs;
        }
        // Delete the longest prefix of non-active segments whose entries are all covered.
        let active = self.inner.log.active_segment();
        let keep_from = self
            .inner
            .log
            .segments()
            .into_iter()
            .find(|&s| s >= active || segments.max_index.get(&s).copied().unwrap_or(0) > meta.index)
            .unwrap_or(active);
        self.inner.log.release_before(keep_from)?;
        segments.max_index = segments.max_index.split_off(&keep_from);
        tracing::debug!(index = meta.index, keep_from, "raft log compacted");
        Ok(())
    }

    /// Where `Storage::snapshot` gets the bytes of the latest snapshot. Returning `None`
    /// makes raft retry later (`SnapshotTemporarilyUnavailable`).
    ///
    /// `source` is an `Arc<dyn Fn(&SnapshotMetadata) -> Option<Vec<u8>> + Send + Sync>`.
    pub fn set_snapshot_source(&self, source: SnapshotSource) {
        *self.inner.snapshot_source.write() = Some(source);
    }

    /// Whether raft-rs asked for a snapshot the latest one could not serve (see
    /// [`Storage::snapshot`]); clears the request.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.inner.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// Metadata of the latest snapshot (installed or compacted to); index 0 if none.
    pub fn latest_snapshot_metadata(&self) -> SnapshotMetadata {
        self.inner.core.read().snapshot.clone()
    }

    pub fn hard_state(&self) -> HardState {
        self.inner.core.read().hard_state.clone()
    }

    /// The newest configuration (what raft-rs runs with).
    pub fn conf_state(&self) -> ConfState {
        self.inner.core.read().conf_state()
    }

    /// The index of the entry (or snapshot) that made the newest configuration.
    pub fn conf_index(&self) -> u64 {
        let core = self.inner.core.read();
        core.conf_changes
            .last()
            .map_or(core.snapshot.index, |(i, _)| *i)
    }

    /// The configuration in force once entry `index` is applied: what a snapshot at
    /// `index` must carry.
    pub fn conf_state_at(&self, index: u64) -> ConfState {
        self.inner.core.read().conf_state_at(index)
    }

    /// What recovery found when this storage was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    pub fn wal_stats(&self) -> WalStats {
        self.inner.log.stats()
    }

    /// WAL segments on disk, ascending (the node log's, for a group in it).
    pub fn segments(&self) -> Vec<u64> {
        self.inner.log.segments()
    }

    /// Drops from memory the oldest entries at or below `applied` (what raft-rs counts
    /// applied) while the entries held take more than the budget
    /// ([`Self::set_entry_cache_bytes`]); they stay readable from the WAL (see
    /// `log_entries`). Entries after `applied` always stay.
    pub fn evict_applied(&self, applied: u64) {
        let budget = self.inner.entry_cache_bytes.load(Ordering::Relaxed);
        if self.inner.core.read().entries.hot_bytes() <= budget {
            return;
        }
        let mut core = self.inner.core.write();
        let limit = applied
            .saturating_add(1)
            .saturating_sub(core.first_index())
            .min(core.entries.len() as u64) as usize;
        core.entries.evict(limit, budget);
    }

    /// Sets the byte budget of [`Self::evict_applied`] (default
    /// [`DEFAULT_ENTRY_CACHE_BYTES`]).
    pub fn set_entry_cache_bytes(&self, bytes: u64) {
        self.inner.entry_cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Bytes of entries held in memory (payloads plus a fixed overhead each).
    pub fn cached_entry_bytes(&self) -> u64 {
        self.inner.core.read().entries.hot_bytes()
    }
}

impl Inner {
    /// Reads the cold entries `wanted` (ascending, consecutive indexes) back from their
    /// WAL frames, stopping once `max_size` bytes are read (at least one entry). Every
    /// entry read must carry the index and term it was evicted with.
    fn read_cold(
        &self,
        wanted: &[(u64, ColdEntry)],
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut out: Vec<Entry> = Vec::with_capacity(wanted.len());
        let mut size = 0u64;
        let mut frame: Option<(FramePos, Vec<Entry>)> = None;
        for &(index, cold) in wanted {
            if frame.as_ref().map(|(at, _)| *at) != Some(cold.at) {
                let entries = match self.log.read_frame(cold.at)? {
                    Record::Entries { entries, .. } => entries,
                    _ => Vec::new(),
                };
                frame = Some((cold.at, entries));
            }
            let found = frame
                .as_ref()
                .and_then(|(_, ents)| ents.iter().find(|e| e.index == index));
            let Some(e) = found.filter(|e| e.term == cold.term) else {
                return Err(StorageError::Inconsistent(format!(
                    "entry {index} (term {}) is not in its WAL frame at segment {} offset {}",
                    cold.term, cold.at.segment, cold.at.offset
                )));
            };
            size += u64::from(protobuf::Message::compute_size(e));
            out.push(e.clone());
            if max_size.is_some_and(|m| size > m) {
                break;
            }
        }
        Ok(out)
    }

    /// Everything the group holds, as records that replay to it: the configurations after
    /// the snapshot, then the snapshot record (metadata, hard state, newest configuration;
    /// configurations first, see `Core::compact_conf_changes`), then the entries. Returns
    /// the entries read back or cloned.
    fn restatement(&self) -> Result<(Vec<Record>, Vec<Entry>), StorageError> {
        let core = self.core.read();
        let mut records: Vec<Record> = core
            .conf_changes
            .iter()
            .map(|(index, cs)| Record::ConfState {
                index: *index,
                conf_state: cs.clone(),
            })
            .collect();
        records.push(Record::Snapshot {
            kind: SnapshotKind::Compact,
            meta: core.snapshot.clone(),
            hard_state: core.hard_state.clone(),
            conf_state: core.conf_state(),
        });
        let first = core.first_index();
        let len = core.entries.len();
        let cold: Vec<(u64, ColdEntry)> = core
            .entries
            .cold_range(0, len)
            .enumerate()
            .map(|(i, c)| (first + i as u64, *c))
            .collect();
        let hot: Vec<Entry> = core.entries.hot_range(0, len).cloned().collect();
        drop(core);
        let mut entries = self.read_cold(&cold, None)?;
        entries.extend(hot);
        Ok((records, entries))
    }
}

/// Entries per record when a group's log is rewritten, by payload bytes.
const REWRITE_CHUNK_BYTES: usize = 16 << 20;

impl Rewrite for Inner {
    fn rewrite(&self) -> Result<u64, StorageError> {
        let mut segments = self.writes.lock();
        let (records, entries) = self.restatement()?;
        let start = self.log.append_at(records)?;
        let mut written = Segments::default();
        let mut chunks: Vec<(Vec<Entry>, FramePos)> = Vec::new();
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|e| {
                    bytes += e.data.len() + e.context.len() + 32;
                    bytes <= REWRITE_CHUNK_BYTES
                })
                .count()
                .max(1);
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let at = self.log.append_at(vec![Record::Entries {
                entries: chunk.to_vec(),
                hard_state: None,
            }])?;
            if let Some(e) = chunk.last() {
                written.note(at.segment, e.index);
            }
            chunks.push((chunk.to_vec(), at));
        }
        // The same entries, now at their new frames (held in memory again until the next
        // eviction).
        let mut core = self.core.write();
        for (chunk, at) in chunks {
            core.splice(chunk, at);
        }
        *segments = written;
        Ok(start.segment)
    }

    fn log_bytes(&self) -> u64 {
        self.core.read().entries.bytes()
    }
}

impl Storage for RaftLogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.inner.core.read();
        Ok(RaftState::new(core.hard_state.clone(), core.conf_state()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        let core = self.inner.core.read();
        if low < core.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > core.last_index().saturating_add(1) || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let lo = (low - core.first_index()) as usize;
        let hi = (high - core.first_index()) as usize;
        if lo >= core.entries.cold_len() {
            let mut ents: Vec<Entry> = core.entries.hot_range(lo, hi).cloned().collect();
            drop(core);
            raft::util::limit_size(&mut ents, max_size);
            return Ok(ents);
        }
        // Some are on disk only: read them without holding the lock (appends go on).
        let cold: Vec<(u64, ColdEntry)> = core
            .entries
            .cold_range(lo, hi)
            .enumerate()
            .map(|(i, c)| (low + i as u64, *c))
            .collect();
        let hot: Vec<Entry> = core.entries.hot_range(lo, hi).cloned().collect();
        drop(core);
        let read = self.inner.read_cold(&cold, max_size);
        crate::metrics::get()
            .entries_read_back(read.is_ok(), read.as_ref().map_or(cold.len(), Vec::len));
        let mut ents = match read {
            Ok(ents) => ents,
            Err(e) => {
                // Segments deleted by a compaction since (the entries are gone: true), or
                // a WAL that cannot be read back. Either way a newer snapshot is what the
                // peer needs: raft-rs sends one on `Compacted`, and the replica is asked
                // to write one that covers these entries.
                if low >= self.inner.core.read().first_index() {
                    tracing::error!(error = %e, low, high, "raft log: cannot read entries back from the WAL; asking for a snapshot");
                    self.inner.snapshot_wanted.store(true, Ordering::Relaxed);
                }
                return Err(raft::Error::Store(raft::StorageError::Compacted));
            }
        };
        if ents.len() == cold.len() {
            ents.extend(hot);
        }
        raft::util::limit_size(&mut ents, max_size);
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.inner.core.read().term(idx).map_err(raft::Error::Store)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.inner.core.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.inner.core.read().last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let core = self.inner.core.read();
        let meta = core.snapshot.clone();
        let unavailable = raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable);
        if meta.index == 0 || meta.index < request_index {
            return Err(unavailable);
        }
        // A snapshot from before `to` joined cannot make it a member: it would refuse it.
        // Nor can one from an earlier membership of the same node (removed, then added
        // again): its configuration is not the group's any more and may not hold the
        // current leader. So `to` must be a member at the snapshot's index and in every
        // configuration since.
        let holds = |cs: &ConfState| crate::raft::inbound::is_member(cs, to);
        let current = holds(meta.get_conf_state())
            && core
                .conf_changes
                .iter()
                .filter(|(i, _)| *i > meta.index)
                .all(|(_, cs)| holds(cs));
        drop(core);
        if !current {
            self.inner.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(unavailable);
        }
        let Some(source) = self.inner.snapshot_source.read().clone() else {
            return Err(unavailable);
        };
        let Some(data) = source(&meta) else {
            return Err(unavailable);
        };
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        snap.set_metadata(meta);
        Ok(snap)
    }
}

/// Rebuilds the in-memory state from the WAL records, in order.
///
/// Whole segments may have been deleted by compaction before the first one replayed, so
/// the first entry batch can start after a gap; `finish` checks that a snapshot record
/// later covered it.
#[derive(Default)]
pub(super) struct Replay {
    core: Core,
    /// Index of the first entry in `core.entries` while replaying (after a gap it is not
    /// yet `snapshot.index + 1`).
    start: u64,
    segments: Segments,
    /// A snapshot record (full hard and conf state) was replayed.
    saw_snapshot: bool,
}

impl Replay {
    fn last(&self) -> u64 {
        (self.start + self.core.entries.len() as u64).saturating_sub(1)
    }

    pub(super) fn apply(&mut self, at: FramePos, record: Record) {
        match record {
            Record::Entries {
                entries,
                hard_state,
            } => {
                self.apply_entries(at, entries);
                if let Some(hs) = hard_state {
                    self.core.hard_state = hs;
                }
            }
            Record::HardState(hs) => self.core.hard_state = hs,
            Record::ConfState { index, conf_state } => {
                self.core.record_conf_state(index, conf_state)
            }
            Record::Snapshot {
                kind,
                meta,
                hard_state,
                conf_state,
            } => {
                self.saw_snapshot = true;
                match kind {
                    SnapshotKind::Install => {
                        self.core.entries.clear();
                        self.core.conf_changes.clear();
                        self.segments.max_index.clear();
                    }
                    SnapshotKind::Compact => {
                        let drop = meta.index.saturating_add(1).saturating_sub(self.start);
                        let drop = usize::try_from(drop)
                            .unwrap_or(usize::MAX)
                            .min(self.core.entries.len());
                        self.core.entries.drain_front(drop);
                    }
                }
                // After a gap the retained entries may still start above the snapshot.
                self.start = if self.core.entries.is_empty() {
                    meta.index.saturating_add(1)
                } else {
                    self.start.max(meta.index.saturating_add(1))
                };
                self.core.snapshot = meta;
                self.core.hard_state = hard_state;
                // The record carries the newest configuration (an install's is its own).
                self.core.compact_conf_changes(conf_state);
            }
            // Only the node log's own replay sees these, and never hands them on.
            Record::Group { .. } | Record::Discard { .. } => {}
        }
    }

    fn apply_entries(&mut self, at: FramePos, entries: Vec<Entry>) {
        let floor = self.core.snapshot.index;
        let ents: Vec<Entry> = entries.into_iter().filter(|e| e.index > floor).collect();
        let Some(first) = ents.first().map(|e| e.index) else {
            return;
        };
        if let Some(last) = ents.last() {
            self.segments.note(at.segment, last.index);
        }
        if self.core.entries.is_empty()
            || first < self.start
            || first > self.last().saturating_add(1)
        {
            // First batch, or a batch after a gap left by deleted segments: start over here.
            self.core.entries.clear();
            self.start = first;
        } else {
            self.core.entries.truncate((first - self.start) as usize);
        }
        self.core.entries.extend(ents, at);
    }

    fn finish(mut self) -> Result<(Core, Segments), StorageError> {
        if self.core.entries.is_empty() {
            self.start = self.core.snapshot.index.saturating_add(1);
        }
        if self.start != self.core.first_index() {
            return Err(StorageError::Inconsistent(format!(
                "entries resume at {} but the latest snapshot is at {}: entries are missing",
                self.start, self.core.snapshot.index
            )));
        }
        let last = self.core.last_index();
        // Nothing is evicted while replaying: every entry is in memory.
        for (i, e) in self.core.entries.hot_iter().enumerate() {
            if e.index != self.start + i as u64 {
                return Err(StorageError::Inconsistent(format!(
                    "entry {} found where {} was expected",
                    e.index,
                    self.start + i as u64
                )));
            }
        }
        if self.core.hard_state.commit > last {
            return Err(StorageError::Inconsistent(format!(
                "commit {} is beyond the last index {last}",
                self.core.hard_state.commit
            )));
        }
        Ok((self.core, self.segments))
    }
}
