//! Recovery on open: replay every intact record, cut the log at the first damage.
//!
//! Rules:
//! 1. Segments are read in sequence order. A missing sequence number in the middle counts
//!    as damage at the end of the segment before the hole.
//! 2. In a segment, a bad header, or the first frame that is torn (short), has a bad length,
//!    fails its CRC or does not decode, is the damage point. Everything before it is
//!    replayed (handed to the visitor); nothing at or after it is.
//! 3. At the damage point the log is cut: every later segment is deleted (highest first, so
//!    that a crash part-way leaves a prefix, and the next recovery finishes the job), the
//!    directory is fsynced, then the damaged segment is truncated at the damage offset and
//!    fsynced (or deleted, when its header itself is damaged). Later appends therefore never
//!    follow garbage.
//! 4. What was dropped (bytes, segments, and a best-effort count of the intact records and
//!    Raft entries in the deleted segments) is logged with `tracing::warn!` and returned in
//!    the [`RecoveryReport`].

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::codec::{decode_frame, Record};
use super::segment;
use crate::storage::StorageError;

/// Where recovery found damage and what it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment the damage is in.
    pub segment: u64,
    /// Byte offset in that segment where the first damaged frame (or header) starts.
    pub offset: u64,
    /// Why the frame at `offset` was rejected.
    pub reason: String,
    /// Bytes removed: the tail of the damaged segment plus every later segment.
    pub dropped_bytes: u64,
    /// Later segments deleted.
    pub dropped_segments: Vec<u64>,
    /// Intact records found in the deleted later segments (the torn tail is not counted).
    pub dropped_records: u64,
    /// Raft entries in those records.
    pub dropped_entries: u64,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments left after recovery, ascending.
    pub segments: Vec<u64>,
    /// Records replayed.
    pub records: u64,
    /// Raft entries in the replayed records.
    pub entries: u64,
    /// Bytes of the segments left (headers included).
    pub bytes: u64,
    /// The damage found, if any.
    pub damage: Option<Damage>,
}

pub(crate) struct Recovered {
    pub report: RecoveryReport,
    /// Length of the last remaining segment (the one to append to), if any remains.
    pub active_len: Option<u64>,
}

/// Scans `dir`, handing every intact record (with its segment) to `visit`, and cuts the
/// log at the first damage. An error from `visit` aborts recovery without changing files.
pub(crate) fn recover(
    dir: &Path,
    sync: bool,
    mut visit: impl FnMut(u64, Record) -> Result<(), StorageError>,
) -> Result<Recovered, StorageError> {
    let all = segment::list(dir)?;
    let mut report = RecoveryReport::default();
    let mut last_len = None;
    // (index into `all` of the damaged segment, offset, reason, segment length)
    let mut damage: Option<(usize, u64, String, u64)> = None;

    for (i, &seq) in all.iter().enumerate() {
        if i > 0 && all[i - 1].checked_add(1) != Some(seq) {
            let prev_len = last_len.unwrap_or(0);
            damage = Some((
                i - 1,
                prev_len,
                format!("segment {} is missing", all[i - 1].saturating_add(1)),
                prev_len,
            ));
            break;
        }
        let p = segment::path(dir, seq);
        let bytes = fs::read(&p).map_err(StorageError::io(&p))?;
        let len = bytes.len() as u64;
        if let Err(reason) = segment::check_header(&bytes, seq) {
            damage = Some((i, 0, reason, len));
            break;
        }
        let mut pos = segment::HEADER_LEN as usize;
        let mut failed = None;
        loop {
            let rest = bytes.get(pos..).unwrap_or_default();
            match decode_frame(rest) {
                Ok(None) => break,
                Ok(Some((record, used))) => {
                    report.records += 1;
                    report.entries += record.entry_count() as u64;
                    visit(seq, record)?;
                    pos += used;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(reason) = failed {
            damage = Some((i, pos as u64, reason, len));
            break;
        }
        last_len = Some(len);
    }

    let Some((at, offset, reason, seg_len)) = damage else {
        report.bytes = total_len(dir, &all)?;
        report.segments = all;
        return Ok(Recovered {
            report,
            active_len: last_len,
        });
    };

    let damaged_seq = all[at];
    let later = &all[at + 1..];
    let mut dropped_bytes = seg_len - offset.min(seg_len);
    let mut dropped_records = 0;
    let mut dropped_entries = 0;
    for &seq in later {
        let p = segment::path(dir, seq);
        let bytes = fs::read(&p).map_err(StorageError::io(&p))?;
        dropped_bytes += bytes.len() as u64;
        let (records, entries) = count_intact(&bytes, seq);
        dropped_records += records;
        dropped_entries += entries;
    }
    for &seq in later.iter().rev() {
        let p = segment::path(dir, seq);
        fs::remove_file(&p).map_err(StorageError::io(&p))?;
    }
    let mut dropped_segments = later.to_vec();
    let mut kept = all[..at].to_vec();
    let p = segment::path(dir, damaged_seq);
    if offset == 0 {
        // The header itself is damaged: nothing in this segment is usable.
        fs::remove_file(&p).map_err(StorageError::io(&p))?;
        dropped_segments.insert(0, damaged_seq);
        if sync {
            segment::sync_dir(dir)?;
        }
        last_len = kept.last().map(|_| last_len.unwrap_or(0));
    } else {
        if sync && !later.is_empty() {
            segment::sync_dir(dir)?;
        }
        let f = OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(StorageError::io(&p))?;
        f.set_len(offset).map_err(StorageError::io(&p))?;
        if sync {
            f.sync_all().map_err(StorageError::io(&p))?;
        }
        kept.push(damaged_seq);
        last_len = Some(offset);
    }

    tracing::warn!(
        dir = %dir.display(),
        segment = damaged_seq,
        offset,
        %reason,
        dropped_bytes,
        dropped_segments = dropped_segments.len(),
        dropped_records,
        dropped_entries,
        kept_records = report.records,
        kept_entries = report.entries,
        "WAL damaged: cut the log at the first bad frame"
    );
    report.bytes = total_len(dir, &kept)?;
    report.segments = kept;
    report.damage = Some(Damage {
        segment: damaged_seq,
        offset,
        reason,
        dropped_bytes,
        dropped_segments,
        dropped_records,
        dropped_entries,
    });
    Ok(Recovered {
        report,
        active_len: last_len,
    })
}

fn total_len(dir: &Path, seqs: &[u64]) -> Result<u64, StorageError> {
    let mut total = 0;
    for &seq in seqs {
        let p = segment::path(dir, seq);
        total += fs::metadata(&p).map_err(StorageError::io(&p))?.len();
    }
    Ok(total)
}

/// Intact records (and their Raft entries) at the start of a segment, for reporting.
fn count_intact(bytes: &[u8], seq: u64) -> (u64, u64) {
    if segment::check_header(bytes, seq).is_err() {
        return (0, 0);
    }
    let mut pos = segment::HEADER_LEN as usize;
    let (mut records, mut entries) = (0, 0);
    while let Ok(Some((record, used))) = decode_frame(bytes.get(pos..).unwrap_or_default()) {
        records += 1;
        entries += record.entry_count() as u64;
        pos += used;
    }
    (records, entries)
}
