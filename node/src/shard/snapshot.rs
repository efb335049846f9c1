//! Snapshots of a shard state machine: one self-checking file holding the
//! records (with the applied position and the request-id window) and each
//! collection's persisted HNSW index, so a restart or a lagging replica does
//! not rebuild indexes from scratch when the saved ones are valid
//! (architecture.md, promise 6).
//!
//! File layout: `MAGIC`, then sections `[name_len u16][name][len u64][crc32 u32][bytes]`,
//! then the end marker section named `END`. The file is written under a
//! temporary name, fsynced, renamed into place, and the directory fsynced, so
//! a crash leaves either the old snapshot or the new one, never half of one.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::command::CollectionId;
use common::fs::AtomicFile;
use serde::{Deserialize, Serialize};

use super::collection::{CollectionShard, CollectionState};
use super::error::ShardError;
use super::index::{Vector, VectorIndex};
use super::indexer::IndexCell;
use super::state_machine::{AppliedPosition, ShardStateMachine};
use crate::raft::dedup::RequestDedup;
use common::command::ApplyOutcome;

const MAGIC: &[u8; 8] = b"VDBSNAP1";
const STATE_SECTION: &str = "state";
const END_SECTION: &str = "END";
/// `indexed/{i}`: the watermark of collection `i`'s graph (u64 LE); a graph
/// without one (written before the background indexer) holds every record.
const INDEXED_PREFIX: &str = "indexed/";

#[derive(Serialize, Deserialize)]
struct SnapshotState {
    applied: AppliedPosition,
    dedup: RequestDedup<ApplyOutcome>,
    collections: Vec<(CollectionId, CollectionState)>,
    dropped: Vec<CollectionId>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ShardError + '_ {
    move |source| ShardError::SnapshotIo {
        path: path.display().to_string(),
        source,
    }
}

fn corrupt(msg: impl Into<String>) -> ShardError {
    ShardError::SnapshotCorrupt(msg.into())
}

/// What a written snapshot covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub applied: AppliedPosition,
    pub bytes: u64,
}

fn write_section(out: &mut impl Write, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(name.len() as u16).to_le_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(&crc32fast::hash(bytes).to_le_bytes())?;
    out.write_all(bytes)
}

fn scratch_dir(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn fresh_dir(dir: &Path) -> Result<(), ShardError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_err(dir))?;
    }
    fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Writes a snapshot of `sm` to `path` atomically and durably.
pub fn write_snapshot(sm: &ShardStateMachine, path: &Path) -> Result<SnapshotInfo, ShardError> {
    capture(sm)?.write(path)
}

/// A snapshot between its capture and its file: the encoded records (the state at
/// one applied position) and a handle on each collection's graph.
///
/// The capture is taken under the state machine's read lock and costs one encoding
/// of the records; the file, with every graph's dump, is written afterwards without
/// that lock, while applies go on. Writing the file under the lock made every apply
/// (and every linearizable read waiting for its apply index) wait 0.3-2.5 s per
/// snapshot during a bulk load (`scripts/bench-router --query-during-load`).
///
/// The graphs keep changing meanwhile: the indexer may have indexed past the
/// captured records, tombstoned versions the captured records still hold, or skipped
/// them as dead. Each graph is saved with its own watermark under one hold of its
/// lock, and [`read_snapshot`] reconciles it with the records (see
/// `load_matching_index`).
pub struct CapturedSnapshot {
    applied: AppliedPosition,
    state_bytes: Vec<u8>,
    graphs: Vec<Arc<IndexCell>>,
}

/// The state section's content, borrowed: encodes exactly as [`SnapshotState`].
#[derive(Serialize)]
struct SnapshotStateRef<'a> {
    applied: AppliedPosition,
    dedup: &'a RequestDedup<ApplyOutcome>,
    collections: Vec<(&'a CollectionId, &'a CollectionState)>,
    dropped: &'a BTreeSet<CollectionId>,
}

/// Captures `sm` for a snapshot (see [`CapturedSnapshot`]).
pub fn capture(sm: &ShardStateMachine) -> Result<CapturedSnapshot, ShardError> {
    let state = SnapshotStateRef {
        applied: sm.applied,
        dedup: &sm.dedup,
        collections: sm
            .collections
            .iter()
            .map(|(id, c)| (id, c.state()))
            .collect(),
        dropped: &sm.dropped,
    };
    let state_bytes =
        bincode::serialize(&state).map_err(|e| corrupt(format!("encoding state: {e}")))?;
    Ok(CapturedSnapshot {
        applied: sm.applied,
        state_bytes,
        // In the order of the state's collections: section `index/{i}` is collection i's.
        graphs: sm.collections.values().map(|c| c.index.clone()).collect(),
    })
}

impl CapturedSnapshot {
    /// The applied position the snapshot is of.
    pub fn applied(&self) -> AppliedPosition {
        self.applied
    }

    /// Writes the snapshot file to `path` atomically and durably.
    pub fn write(self, path: &Path) -> Result<SnapshotInfo, ShardError> {
        let staging = scratch_dir(path, ".staging");
        fresh_dir(&staging)?;
        let result = self.write_file(path, &staging);
        // The staging directory only held index dumps on their way into the file.
        let _ = fs::remove_dir_all(&staging);
        Ok(SnapshotInfo {
            applied: self.applied,
            bytes: result?,
        })
    }

    /// Writes the snapshot file; returns its length.
    fn write_file(&self, path: &Path, staging: &Path) -> Result<u64, ShardError> {
        let mut out = AtomicFile::create(path).map_err(io_err(path))?;
        out.write_all(MAGIC).map_err(io_err(path))?;
        write_section(&mut out, STATE_SECTION, &self.state_bytes).map_err(io_err(path))?;
        for (i, cell) in self.graphs.iter().enumerate() {
            // The graph and its watermark of one hold of its lock, between two
            // indexer jobs: the live points below the watermark, no chunk half in.
            let (Some(index), through) = cell.read() else {
                continue;
            };
            write_section(
                &mut out,
                &format!("{INDEXED_PREFIX}{i}"),
                &through.to_le_bytes(),
            )
            .map_err(io_err(path))?;
            let dir = staging.join(i.to_string());
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            index.save(&dir)?;
            drop(index);
            let mut files: Vec<_> = fs::read_dir(&dir)
                .map_err(io_err(&dir))?
                .collect::<Result<_, _>>()
                .map_err(io_err(&dir))?;
            files.sort_by_key(|e| e.file_name());
            for entry in files {
                let name = entry.file_name().to_string_lossy().into_owned();
                let bytes = fs::read(entry.path()).map_err(io_err(&entry.path()))?;
                write_section(&mut out, &format!("index/{i}/{name}"), &bytes)
                    .map_err(io_err(path))?;
            }
        }
        write_section(&mut out, END_SECTION, &[]).map_err(io_err(path))?;
        out.commit().map_err(io_err(path))
    }
}

/// Takes the next `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], ShardError> {
    if rest.len() < n {
        return Err(corrupt("truncated"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

/// Splits a snapshot file's bytes into verified (name, bytes) sections.
fn parse_sections(bytes: &[u8]) -> Result<Vec<(String, &[u8])>, ShardError> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| corrupt("bad magic"))?;
    let mut rest = rest;
    let mut sections = Vec::new();
    loop {
        let name_len = u16::from_le_bytes(
            take(&mut rest, 2)?
                .try_into()
                .map_err(|_| corrupt("name length"))?,
        );
        let name = std::str::from_utf8(take(&mut rest, name_len as usize)?)
            .map_err(|_| corrupt("section name is not UTF-8"))?
            .to_owned();
        let len = u64::from_le_bytes(
            take(&mut rest, 8)?
                .try_into()
                .map_err(|_| corrupt("length"))?,
        );
        let crc = u32::from_le_bytes(take(&mut rest, 4)?.try_into().map_err(|_| corrupt("crc"))?);
        let len = usize::try_from(len).map_err(|_| corrupt("section too large"))?;
        let body = take(&mut rest, len)?;
        if crc32fast::hash(body) != crc {
            return Err(corrupt(format!("checksum mismatch in section {name}")));
        }
        if name == END_SECTION {
            return if rest.is_empty() {
                Ok(sections)
            } else {
                Err(corrupt("data after end marker"))
            };
        }
        sections.push((name, body));
    }
}

/// Reads and verifies a snapshot file and rebuilds the state machine from it.
/// A saved index is used when it loads and matches the records; otherwise
/// that collection's index is rebuilt from its records.
pub fn read_snapshot(path: &Path) -> Result<ShardStateMachine, ShardError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let sections = parse_sections(&bytes)?;
    let (_, state_bytes) = sections
        .iter()
        .find(|(n, _)| n == STATE_SECTION)
        .ok_or_else(|| corrupt("no state section"))?;
    let state = decode_state(state_bytes)?;

    let unpack = scratch_dir(path, ".unpack");
    fresh_dir(&unpack)?;
    let result = restore_collections(state.collections, &sections, &unpack);
    let _ = fs::remove_dir_all(&unpack);
    Ok(ShardStateMachine {
        collections: result?,
        dropped: state.dropped.into_iter().collect(),
        applied: state.applied,
        dedup: state.dedup,
    })
}

/// The state section: bincode with the legacy options `write_snapshot` uses (fixed-width
/// integers, trailing bytes allowed), bounded by the section's size so no length field
/// can make the decoder allocate more than the bytes could hold.
fn decode_state(bytes: &[u8]) -> Result<SnapshotState, ShardError> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| corrupt(format!("decoding state: {e}")))
}

fn restore_collections(
    states: Vec<(CollectionId, CollectionState)>,
    sections: &[(String, &[u8])],
    unpack: &Path,
) -> Result<std::collections::BTreeMap<CollectionId, CollectionShard>, ShardError> {
    let mut collections = std::collections::BTreeMap::new();
    for (i, (id, mut state)) in states.into_iter().enumerate() {
        // Stored before the HNSW ranges existed: capped as apply caps them.
        state.config = state.config.capped();
        let prefix = format!("index/{i}/");
        let dir = unpack.join(i.to_string());
        let mut has_index = false;
        for (name, body) in sections.iter().filter(|(n, _)| n.starts_with(&prefix)) {
            let file = &name[prefix.len()..];
            if file.is_empty() || file.contains('/') || file.contains("..") {
                return Err(corrupt(format!("bad section name {name}")));
            }
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            fs::write(dir.join(file), body).map_err(io_err(&dir))?;
            has_index = true;
        }
        let index = if has_index {
            let through = match sections
                .iter()
                .find(|(n, _)| *n == format!("{INDEXED_PREFIX}{i}"))
            {
                Some((_, bytes)) => u64::from_le_bytes(
                    (*bytes)
                        .try_into()
                        .map_err(|_| corrupt(format!("bad section {INDEXED_PREFIX}{i}")))?,
                ),
                None => state.next_point,
            };
            load_matching_index(&dir, &state, through)
        } else {
            None
        };
        collections.insert(id, CollectionShard::from_state(state, index));
    }
    Ok(collections)
}

/// Loads a persisted index if it is valid and brings it in line with the records:
/// afterwards its live points are exactly the records' points below the returned
/// watermark.
///
/// The graph was saved after the records were captured ([`CapturedSnapshot`]), so it
/// may be ahead of them: points of versions the records do not hold (written later,
/// or replaced or deleted before the capture with their tombstones still queued) are
/// tombstoned; the watermark is cut to the records' `next_point`; and versions the
/// records hold but the graph lacks (replaced or deleted after the capture, so
/// tombstoned, or skipped by the indexer as dead) are inserted again. A graph that
/// does not load, or of another dimension, is rebuilt from the records.
fn load_matching_index(
    dir: &Path,
    state: &CollectionState,
    through: u64,
) -> Option<(VectorIndex, u64)> {
    // The records' current points with their vectors: offered to the graph and
    // the index store so a restored shard holds one copy of each vector, not
    // three, and what the loaded graph's live points are checked against.
    let current: HashMap<u64, &Vector> = state
        .records
        .values()
        .map(|r| (r.point, &r.embedding))
        .collect();
    let share = |p: u64| current.get(&p).map(|v| Vector::clone(v));
    let loaded = VectorIndex::load_sharing(dir, &state.config, &share);
    let mut index = match loaded {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(error = %e, "persisted index is unusable; rebuilding");
            return None;
        }
    };
    if Some(index.dim()) != state.dimension {
        tracing::warn!(
            dim = index.dim(),
            "persisted index has another dimension than the records; rebuilding"
        );
        return None;
    }
    let through = through.min(state.next_point);
    for p in index.live_points() {
        if p >= through || !current.contains_key(&p) {
            index.remove(p);
        }
    }
    let missing: Vec<(u64, Vector)> = state
        .records
        .values()
        .filter(|r| r.point < through && !index.contains(r.point))
        .map(|r| (r.point, r.embedding.clone()))
        .collect();
    if let Err(e) = index.try_insert_batch(&missing) {
        tracing::warn!(error = %e, "persisted index does not take the records; rebuilding");
        return None;
    }
    let below = state.records.values().filter(|r| r.point < through).count();
    if index.len_live() != below {
        tracing::warn!(
            live = index.len_live(),
            records_below_watermark = below,
            "persisted index does not match the records; rebuilding"
        );
        return None;
    }
    Some((index, through))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn section(name: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_section(&mut out, name, body).unwrap();
        out
    }

    fn read_bytes(bytes: &[u8]) -> Result<ShardStateMachine, ShardError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        fs::write(&path, bytes).unwrap();
        read_snapshot(&path)
    }

    #[test]
    fn a_huge_length_in_the_state_is_an_error_not_an_allocation() {
        // A collection list claiming 2^60 entries, in a well-formed file.
        let mut state = Vec::new();
        state.extend_from_slice(&[0u8; 24]);
        state.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let mut file = MAGIC.to_vec();
        file.extend(section(STATE_SECTION, &state));
        file.extend(section(END_SECTION, &[]));
        assert!(read_bytes(&file).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Arbitrary bytes, bytes after the magic, and an arbitrary (checksummed) state
        /// section in a well-formed file: an error (or a state), never a panic.
        #[test]
        fn arbitrary_snapshot_bytes_never_panic(
            raw in proptest::collection::vec(any::<u8>(), 0..256),
            state in proptest::collection::vec(any::<u8>(), 0..512),
            name in "[a-z/.]{0,12}",
        ) {
            let _ = read_bytes(&raw);
            let mut after_magic = MAGIC.to_vec();
            after_magic.extend_from_slice(&raw);
            let _ = read_bytes(&after_magic);
            let mut file = MAGIC.to_vec();
            file.extend(section(STATE_SECTION, &state));
            file.extend(section(&name, &raw));
            file.extend(section(END_SECTION, &[]));
            let _ = read_bytes(&file);
        }
    }
}
