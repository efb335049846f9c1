//! The write-ahead log: CRC-framed records in size-rolled segment files, made durable
//! with fsync before `append` returns, with group commit.
//!
//! Group commit works on two levels:
//! - one `append` call writes all its records with one `write` and one fsync (the Raft
//!   ready loop hands over a batch of entries plus the hard state at once);
//! - concurrent `append` calls are coalesced (leader/follower): records are queued in a
//!   shared buffer; whichever caller finds no flush in progress becomes the leader, takes
//!   everything queued, writes it with one `write` + one fsync, and wakes the followers
//!   whose records it carried. While it syncs, new callers queue up for the next flush.
//!
//! A write or fsync failure poisons the WAL (every later call fails): after a failed fsync
//! the kernel may have dropped the dirty pages, so retrying could acknowledge lost data.
//! Reopening runs recovery, which cuts any partial frame.

pub mod codec;
pub mod recovery;
pub mod segment;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::synced_file::SyncedFile;
use parking_lot::{Condvar, Mutex, MutexGuard};

pub use codec::{Record, SnapshotKind};
pub use recovery::{Damage, RecoveryReport};

use crate::storage::StorageError;

/// Whether appends are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `File::sync_data` before an append returns; directory fsync on segment create/delete.
    Fsync,
    /// No fsync at all. Only for benchmark baselines and tests.
    NoSync,
}

/// WAL configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is started when the next write would take the active one past this
    /// size (a single batch larger than this still goes into one segment).
    pub segment_bytes: u64,
    pub sync: SyncMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            sync: SyncMode::Fsync,
        }
    }
}

/// Counters, for tests, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// `append` calls with at least one record.
    pub appends: u64,
    /// Records appended.
    pub records: u64,
    /// Group flushes (one `write` each).
    pub flushes: u64,
    /// `sync_data` calls on segment files for flushes.
    pub fsyncs: u64,
    /// Directory fsyncs (segment created or deleted).
    pub dir_syncs: u64,
    /// Frame bytes written by flushes.
    pub bytes: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
}

impl WalStats {
    /// The counters of two WALs together.
    pub fn sum(self, b: WalStats) -> WalStats {
        WalStats {
            appends: self.appends + b.appends,
            records: self.records + b.records,
            flushes: self.flushes + b.flushes,
            fsyncs: self.fsyncs + b.fsyncs,
            dir_syncs: self.dir_syncs + b.dir_syncs,
            bytes: self.bytes + b.bytes,
            segments_created: self.segments_created + b.segments_created,
            segments_deleted: self.segments_deleted + b.segments_deleted,
        }
    }
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    records: AtomicU64,
    flushes: AtomicU64,
    fsyncs: AtomicU64,
    dir_syncs: AtomicU64,
    bytes: AtomicU64,
    segments_created: AtomicU64,
    segments_deleted: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// Where a frame starts: its segment and its byte offset in that segment's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FramePos {
    pub segment: u64,
    pub offset: u64,
}

/// Where a flushed batch went, until each caller whose records it carried has taken
/// its own position from it.
struct WrittenBatch {
    at: FramePos,
    /// Callers that have not yet looked it up.
    waiters: usize,
}

/// Shared state of the group commit, under `Wal::group`.
struct GroupState {
    /// Encoded frames queued for the next flush (batch `open_batch`).
    pending: Vec<u8>,
    open_batch: u64,
    /// Callers whose frames are in `pending`.
    open_waiters: usize,
    /// Every batch `<=` this is durable.
    durable_batch: u64,
    /// A leader is writing; followers wait on `Wal::flushed`.
    flushing: bool,
    failed: Option<String>,
    /// Durable batches some caller has not yet taken its position from.
    written: BTreeMap<u64, WrittenBatch>,
}

impl GroupState {
    /// The position of the frames queued at `offset` into batch `batch`, which is
    /// durable: one caller's lookup (the batch is forgotten after its last).
    fn take_position(&mut self, batch: u64, offset: u64) -> FramePos {
        let Some(w) = self.written.get_mut(&batch) else {
            // Unreachable: every caller of a durable batch finds it; a wrong offset
            // only costs a later read of the entries from disk (a checked failure).
            return FramePos {
                segment: 0,
                offset: 0,
            };
        };
        let at = FramePos {
            segment: w.at.segment,
            offset: w.at.offset + offset,
        };
        w.waiters = w.waiters.saturating_sub(1);
        if w.waiters == 0 {
            self.written.remove(&batch);
        }
        at
    }
}

/// The file side, under `Wal::writer`; held only while writing, rolling or purging.
struct Writer {
    file: SyncedFile,
    active_seq: u64,
    active_len: u64,
    /// Segments on disk, ascending; the last is the active one.
    segments: Vec<u64>,
}

/// A write-ahead log in one directory. `Sync`: share it by reference or `Arc`.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    group: Mutex<GroupState>,
    flushed: Condvar,
    writer: Mutex<Writer>,
    counters: Counters,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, runs recovery and hands every intact
    /// record, in order, with where its frame starts, to `visit`. See [`recovery`] for the
    /// rules. An error from `visit` aborts the open.
    pub fn open(
        dir: &Path,
        opts: WalOptions,
        visit: impl FnMut(FramePos, Record) -> Result<(), StorageError>,
    ) -> Result<(Wal, RecoveryReport), StorageError> {
        let sync = opts.sync == SyncMode::Fsync;
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
            // Make the new directory's own entry durable.
            if let (true, Some(parent)) = (sync, dir.parent()) {
                if !parent.as_os_str().is_empty() {
                    segment::sync_dir(parent)?;
                }
            }
        }
        let recovered = recovery::recover(dir, sync, visit)?;
        let counters = Counters::default();
        let mut segments = recovered.report.segments.clone();
        let (file, active_seq, active_len) = match (segments.last(), recovered.active_len) {
            (Some(&seq), Some(len)) => (segment::open_for_append(dir, seq, len)?, seq, len),
            _ => {
                // Empty directory (or the only segment's creation was torn): start a
                // fresh segment, reusing the sequence number recovery deleted.
                let seq = recovered
                    .report
                    .damage
                    .as_ref()
                    .map_or(1, |d| d.segment.max(1));
                let file = segment::create(dir, seq, sync)?;
                bump(&counters.segments_created, 1);
                if sync {
                    bump(&counters.dir_syncs, 1);
                }
                segments.push(seq);
                (file, seq, segment::HEADER_LEN)
            }
        };
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            records = recovered.report.records,
            entries = recovered.report.entries,
            bytes = recovered.report.bytes,
            damaged = recovered.report.damage.is_some(),
            "WAL opened"
        );
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            group: Mutex::new(GroupState {
                pending: Vec::new(),
                open_batch: 1,
                open_waiters: 0,
                durable_batch: 0,
                flushing: false,
                failed: None,
                written: BTreeMap::new(),
            }),
            flushed: Condvar::new(),
            writer: Mutex::new(Writer {
                file,
                active_seq,
                active_len,
                segments,
            }),
            counters,
        };
        Ok((wal, recovered.report))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> WalOptions {
        self.opts
    }

    /// Appends `records` durably (with [`SyncMode::Fsync`]): when this returns `Ok`, they
    /// are on disk, written with one `write` and one fsync shared with any concurrent
    /// callers. Records of one call are contiguous and in order. Returns the segment they
    /// were written to.
    pub fn append(&self, records: &[Record]) -> Result<u64, StorageError> {
        self.append_at(records).map(|at| at.segment)
    }

    /// [`Self::append`], returning where the first record's frame starts (the rest follow
    /// it in the same segment), so it can be read back ([`Self::read_frame`]).
    pub fn append_at(&self, records: &[Record]) -> Result<FramePos, StorageError> {
        let mut frames = Vec::new();
        for r in records {
            codec::encode_frame(r, &mut frames)?;
        }
        if frames.is_empty() {
            let w = self.writer.lock();
            return Ok(FramePos {
                segment: w.active_seq,
                offset: w.active_len,
            });
        }
        bump(&self.counters.appends, 1);
        bump(&self.counters.records, records.len() as u64);
        self.append_frames(frames)
    }

    fn append_frames(&self, frames: Vec<u8>) -> Result<FramePos, StorageError> {
        let mut g = self.group.lock();
        if let Some(e) = &g.failed {
            return Err(StorageError::Poisoned(e.clone()));
        }
        let my_batch = g.open_batch;
        let my_offset = g.pending.len() as u64;
        if g.pending.is_empty() {
            g.pending = frames;
        } else {
            g.pending.extend_from_slice(&frames);
        }
        g.open_waiters += 1;
        loop {
            if g.durable_batch >= my_batch {
                return Ok(g.take_position(my_batch, my_offset));
            }
            if let Some(e) = &g.failed {
                return Err(StorageError::Poisoned(e.clone()));
            }
            if g.flushing {
                self.flushed.wait(&mut g);
                continue;
            }
            // Become the leader for everything queued so far.
            let batch = g.open_batch;
            let buf = std::mem::take(&mut g.pending);
            let waiters = std::mem::take(&mut g.open_waiters);
            g.open_batch += 1;
            g.flushing = true;
            let result = MutexGuard::unlocked(&mut g, || self.write_batch(&buf));
            g.flushing = false;
            match result {
                Ok(at) => {
                    g.durable_batch = batch;
                    g.written.insert(batch, WrittenBatch { at, waiters });
                }
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "WAL write failed; poisoning the WAL");
                    g.failed = Some(e.to_string());
                    self.flushed.notify_all();
                    return Err(e);
                }
            }
            self.flushed.notify_all();
        }
    }

    /// Reads back the record whose frame starts at `at` (as [`Self::append_at`] returned
    /// it), checking its length and CRC. Segments deleted since are an error, as is any
    /// damage: the file is as hostile as any other input.
    pub fn read_frame(&self, at: FramePos) -> Result<Record, StorageError> {
        use std::io::{Read, Seek, SeekFrom};
        let p = segment::path(&self.dir, at.segment);
        let damaged = |reason: String| StorageError::Damaged {
            path: p.clone(),
            offset: at.offset,
            reason,
        };
        let mut f = fs::File::open(&p).map_err(StorageError::io(&p))?;
        f.seek(SeekFrom::Start(at.offset))
            .map_err(StorageError::io(&p))?;
        let mut header = [0u8; codec::FRAME_HEADER_LEN];
        f.read_exact(&mut header).map_err(StorageError::io(&p))?;
        let len = codec::payload_len(&header).map_err(|e| damaged(e.to_string()))?;
        let mut frame = header.to_vec();
        frame.resize(codec::FRAME_HEADER_LEN + len, 0);
        f.read_exact(&mut frame[codec::FRAME_HEADER_LEN..])
            .map_err(StorageError::io(&p))?;
        match codec::decode_frame(&frame) {
            Ok(Some((record, _))) => Ok(record),
            Ok(None) => Err(damaged("empty frame".into())),
            Err(e) => Err(damaged(e.to_string())),
        }
    }

    /// Writes one batch of frames to the active segment (rolling first if it would
    /// overflow) and fsyncs it. Returns where the batch starts.
    fn write_batch(&self, buf: &[u8]) -> Result<FramePos, StorageError> {
        let mut w = self.writer.lock();
        if w.active_len > segment::HEADER_LEN
            && w.active_len + buf.len() as u64 > self.opts.segment_bytes
        {
            self.roll_locked(&mut w)?;
        }
        let p = segment::path(&self.dir, w.active_seq);
        let at = FramePos {
            segment: w.active_seq,
            offset: w.active_len,
        };
        if let Err(e) = w.file.write_all(buf) {
            // Best effort: do not leave a partial frame behind (recovery would cut it anyway).
            let len = w.active_len;
            let _ = w.file.set_len(len);
            return Err(StorageError::io(p)(e));
        }
        w.active_len += buf.len() as u64;
        bump(&self.counters.flushes, 1);
        bump(&self.counters.bytes, buf.len() as u64);
        let mut fsync = None;
        if self.opts.sync == SyncMode::Fsync {
            let started = Instant::now();
            w.file.sync_data().map_err(StorageError::io(p))?;
            fsync = Some(started.elapsed());
            bump(&self.counters.fsyncs, 1);
        }
        crate::metrics::get().wal_flush(buf.len(), fsync);
        Ok(at)
    }

    fn roll_locked(&self, w: &mut Writer) -> Result<(), StorageError> {
        let seq = w.active_seq + 1;
        let sync = self.opts.sync == SyncMode::Fsync;
        let file = segment::create(&self.dir, seq, sync)?;
        bump(&self.counters.segments_created, 1);
        if sync {
            bump(&self.counters.dir_syncs, 1);
        }
        w.file = file;
        w.active_seq = seq;
        w.active_len = segment::HEADER_LEN;
        w.segments.push(seq);
        tracing::debug!(dir = %self.dir.display(), segment = seq, "WAL rolled to a new segment");
        Ok(())
    }

    /// Starts a new segment now, unless the active one holds no record yet. Returns the
    /// active segment afterwards. Records appended later go to it or a later one.
    pub fn roll(&self) -> Result<u64, StorageError> {
        self.check_failed()?;
        let mut w = self.writer.lock();
        if w.active_len > segment::HEADER_LEN {
            if let Err(e) = self.roll_locked(&mut w) {
                self.group.lock().failed = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(w.active_seq)
    }

    /// Deletes every segment with a sequence number below `seq` (never the active one),
    /// oldest first, then fsyncs the directory. Returns how many were deleted.
    pub fn purge_before(&self, seq: u64) -> Result<usize, StorageError> {
        self.check_failed()?;
        let mut w = self.writer.lock();
        let limit = seq.min(w.active_seq);
        let doomed: Vec<u64> = w.segments.iter().copied().filter(|&s| s < limit).collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        for &s in &doomed {
            let p = segment::path(&self.dir, s);
            fs::remove_file(&p).map_err(StorageError::io(&p))?;
            w.segments.retain(|&x| x != s);
            bump(&self.counters.segments_deleted, 1);
        }
        if self.opts.sync == SyncMode::Fsync {
            segment::sync_dir(&self.dir)?;
            bump(&self.counters.dir_syncs, 1);
        }
        tracing::debug!(dir = %self.dir.display(), deleted = doomed.len(), below = limit, "WAL segments purged");
        Ok(doomed.len())
    }

    fn check_failed(&self) -> Result<(), StorageError> {
        match &self.group.lock().failed {
            Some(e) => Err(StorageError::Poisoned(e.clone())),
            None => Ok(()),
        }
    }

    /// Segments on disk, ascending; the last is the active one.
    pub fn segments(&self) -> Vec<u64> {
        self.writer.lock().segments.clone()
    }

    pub fn active_segment(&self) -> u64 {
        self.writer.lock().active_seq
    }

    pub fn stats(&self) -> WalStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WalStats {
            appends: get(&c.appends),
            records: get(&c.records),
            flushes: get(&c.flushes),
            fsyncs: get(&c.fsyncs),
            dir_syncs: get(&c.dir_syncs),
            bytes: get(&c.bytes),
            segments_created: get(&c.segments_created),
            segments_deleted: get(&c.segments_deleted),
        }
    }
}
