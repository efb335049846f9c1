//! Recovery on open: replay every record, cut only what a crash can have torn, refuse
//! everything else.
//!
//! # What a crash can leave behind
//! Appends go only to the last (active) segment, as one `write` of whole frames followed
//! by `sync_data` before the append returns; the next write starts only after that fsync
//! (the writer lock is held across both). A new segment is created with its header,
//! fsynced, and the directory fsynced, before any frame is written to it; the previous
//! segment's last write was fsynced before the roll. Segments are deleted only from the
//! front (oldest first, after a snapshot record carrying the full hard and conf state was
//! fsynced). So after a crash (process or power):
//! - every segment but the last is complete and was fsynced;
//! - the last segment holds fsynced frames, then at most the region of the one write that
//!   was not yet fsynced: any prefix of it, or (after a power loss) any subset of its
//!   pages, with the missing ones reading as zeroes or the file shorter;
//! - a segment whose creation was interrupted is the last one and holds at most its
//!   16-byte header (possibly short or zeroed), never a frame.
//!
//! # Rules
//! 1. The *torn tail*: in the last segment, from the first frame that is short, has a bad
//!    length, fails its CRC or does not decode, to the end of the file, **provided no
//!    intact frame starts anywhere after it**. It was never acknowledged (its fsync did not
//!    return), so it is cut: the file is truncated there and fsynced. A last segment whose
//!    header is damaged and that is no longer than a header is an interrupted creation and
//!    is deleted (directory fsynced).
//! 2. Everything else is damage a crash cannot produce (bit rot, a lost or overwritten
//!    block, a file removed by hand) and may hold acknowledged entries or the node's vote:
//!    recovery fails with [`StorageError::Damaged`] naming the file and the byte offset,
//!    and changes nothing. That is: a bad header or bad frame in any segment but the last,
//!    a bad header on a last segment longer than a header, a missing sequence number
//!    between two segments, and a bad frame in the last segment followed by an intact one.
//!
//! The last case has one false alarm: a power loss that persisted a later page of the
//! unsynced write but not an earlier one. Telling that apart from rot in fsynced data is
//! impossible from the bytes, so recovery refuses rather than guess; the operator sees the
//! file and offset (see SECURITY-NOTES).

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::codec::{decode_frame, Record, FRAME_HEADER_LEN};
use super::{segment, FramePos};
use crate::storage::StorageError;

/// The torn tail recovery cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The (last) segment the torn tail was in.
    pub segment: u64,
    /// Byte offset in that segment where the torn region starts (0: the segment's header
    /// was torn and the segment was deleted).
    pub offset: u64,
    /// Why the frame (or header) at `offset` was rejected.
    pub reason: String,
    /// Bytes removed.
    pub dropped_bytes: u64,
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
    /// The torn tail cut, if any.
    pub damage: Option<Damage>,
}

pub(crate) struct Recovered {
    pub report: RecoveryReport,
    /// Length of the last remaining segment (the one to append to), if any remains.
    pub active_len: Option<u64>,
}

/// Scans `dir`, handing every intact record (with where its frame starts) to `visit`, and cuts a torn
/// tail of the last segment. Any other damage, or an error from `visit`, fails recovery
/// without changing files.
pub(crate) fn recover(
    dir: &Path,
    sync: bool,
    mut visit: impl FnMut(FramePos, Record) -> Result<(), StorageError>,
) -> Result<Recovered, StorageError> {
    let all = segment::list(dir)?;
    let mut report = RecoveryReport::default();
    let mut last_len = None;
    let mut torn: Option<Damage> = None;

    for (i, &seq) in all.iter().enumerate() {
        let is_last = i + 1 == all.len();
        if i > 0 && all[i - 1].checked_add(1) != Some(seq) {
            let missing = all[i - 1].saturating_add(1);
            return Err(StorageError::Damaged {
                path: segment::path(dir, missing),
                offset: 0,
                reason: format!(
                    "segment {missing} is missing between {} and {seq}",
                    all[i - 1]
                ),
            });
        }
        let p = segment::path(dir, seq);
        let bytes = fs::read(&p).map_err(StorageError::io(&p))?;
        let len = bytes.len() as u64;
        if let Err(reason) = segment::check_header(&bytes, seq) {
            if is_last && len <= segment::HEADER_LEN {
                torn = Some(Damage {
                    segment: seq,
                    offset: 0,
                    reason,
                    dropped_bytes: len,
                });
                break;
            }
            return Err(StorageError::Damaged {
                path: p,
                offset: 0,
                reason,
            });
        }
        let mut pos = segment::HEADER_LEN as usize;
        loop {
            let rest = bytes.get(pos..).unwrap_or_default();
            match decode_frame(rest) {
                Ok(None) => break,
                Ok(Some((record, used))) => {
                    report.records += 1;
                    report.entries += record.entry_count() as u64;
                    let at = FramePos {
                        segment: seq,
                        offset: pos as u64,
                    };
                    visit(at, record)?;
                    pos += used;
                }
                Err(e) => {
                    let offset = pos as u64;
                    if !is_last {
                        return Err(StorageError::Damaged {
                            path: p,
                            offset,
                            reason: format!("{e} (not the last segment)"),
                        });
                    }
                    if let Some(next) = next_intact_frame(&bytes, pos + 1) {
                        return Err(StorageError::Damaged {
                            path: p,
                            offset,
                            reason: format!(
                                "{e}, and an intact frame follows at offset {next}: not a torn tail"
                            ),
                        });
                    }
                    torn = Some(Damage {
                        segment: seq,
                        offset,
                        reason: e.to_string(),
                        dropped_bytes: len - offset,
                    });
                    break;
                }
            }
        }
        last_len = Some(len);
    }

    let mut kept = all;
    if let Some(d) = &torn {
        cut(dir, sync, d)?;
        if d.offset == 0 {
            kept.pop();
            // The segment before the deleted one (complete, since it was rolled from).
            last_len = match kept.last() {
                Some(&seq) => Some(file_len(dir, seq)?),
                None => None,
            };
        } else {
            last_len = Some(d.offset);
        }
        tracing::warn!(
            dir = %dir.display(),
            segment = d.segment,
            offset = d.offset,
            reason = %d.reason,
            dropped_bytes = d.dropped_bytes,
            kept_records = report.records,
            kept_entries = report.entries,
            "WAL: cut the torn tail of the last segment (an append that was never acknowledged)"
        );
    }
    let mut bytes = 0;
    for &seq in &kept {
        bytes += file_len(dir, seq)?;
    }
    report.bytes = bytes;
    report.segments = kept;
    report.damage = torn;
    Ok(Recovered {
        report,
        active_len: last_len,
    })
}

/// Removes the torn tail described by `d` durably.
fn cut(dir: &Path, sync: bool, d: &Damage) -> Result<(), StorageError> {
    let p = segment::path(dir, d.segment);
    if d.offset == 0 {
        fs::remove_file(&p).map_err(StorageError::io(&p))?;
        if sync {
            segment::sync_dir(dir)?;
        }
        return Ok(());
    }
    let f = OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(StorageError::io(&p))?;
    f.set_len(d.offset).map_err(StorageError::io(&p))?;
    if sync {
        f.sync_all().map_err(StorageError::io(&p))?;
    }
    Ok(())
}

fn file_len(dir: &Path, seq: u64) -> Result<u64, StorageError> {
    let p = segment::path(dir, seq);
    Ok(fs::metadata(&p).map_err(StorageError::io(&p))?.len())
}

/// The first offset at or after `from` where an intact frame (length, CRC and payload all
/// good) starts, if any. Frame boundaries after damage are unknown, so every offset is
/// tried; a candidate whose length field points past the end is rejected without reading
/// it, so the cost is the CRC of the few candidates whose length fits.
fn next_intact_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let end = bytes.len().checked_sub(FRAME_HEADER_LEN + 1)?;
    (from..=end).find(|&q| matches!(decode_frame(&bytes[q..]), Ok(Some(_))))
}
