//! The backup of one Raft group: what a node streams from
//! `POST /internal/{group}/backup` and what the backup CLI keeps as one file per group.
//!
//! # Format
//! [`BACKUP_MAGIC`], then frames `[len u32 LE][crc32 u32 LE][bincode of a BackupItem]`
//! until the end of the file:
//! 1. [`BackupItem::Header`]: the group, its kind and the applied position the content
//!    is taken at (one position: the node writes the whole group under one hold of the
//!    state machine's read lock);
//! 2. the content: for the catalogue, `Tenant`, `Database` and `Collection` items; for a
//!    shard group, per collection a `ShardCollection` item followed by its `Records`
//!    items (at most [`RECORDS_PER_FRAME`] records each, in id order);
//! 3. [`BackupItem::Summary`]: per collection the record count and digest the node
//!    computed; [`Verifier`] recomputes them from the records and refuses a file whose
//!    summary disagrees, that ends early, or that has items out of place.
//!
//! Every length is checked before anything is allocated ([`MAX_FRAME_BYTES`]), every frame
//! carries a CRC, and bincode decodes each frame with its length as the limit: a damaged
//! or hostile file is an error, never a panic or an unbounded allocation.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::catalog::{CollectionModel, DatabaseModel};
use crate::command::IndexConfig;
use crate::digest::{combine, record_hash};
use crate::placement::GroupKind;
use crate::record::Metadata;

/// The first bytes of a backup stream and file.
pub const BACKUP_MAGIC: &[u8; 8] = b"VDBBAK01";

/// The version of this format, in the header and the manifest.
pub const FORMAT_VERSION: u32 = 1;

/// The largest frame: one record can be as large as a Raft entry (64 MiB,
/// `limits::MAX_PROPOSAL_BYTES`), plus room for the frame's other fields.
pub const MAX_FRAME_BYTES: u32 = 80 << 20;

/// Records per `Records` frame.
pub const RECORDS_PER_FRAME: usize = 256;

/// The body of `POST /internal/{group}/backup` (bincode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// With `false` the stream has the header, the collections and the summary but no
    /// records: what `restore` reads to check the digests it wrote.
    pub include_records: bool,
}

/// Which group a backup holds and at which log position it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub format: u32,
    pub group: u64,
    pub kind: GroupKind,
    pub applied_index: u64,
    pub applied_term: u64,
}

/// One record of a collection, as stored on its shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub id: String,
    pub embedding: Vec<f32>,
    pub metadata: Option<Metadata>,
    pub document: Option<String>,
    pub uri: Option<String>,
}

impl BackupRecord {
    /// This record's contribution to its collection's digest (the same as on a shard).
    pub fn digest(&self, collection: &str) -> u64 {
        record_hash(
            collection,
            &self.id,
            &self.embedding,
            self.metadata.as_ref(),
            self.document.as_deref(),
            self.uri.as_deref(),
        )
    }
}

/// Records and digest of one collection in one group (a catalogue collection has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionCount {
    pub records: u64,
    pub digest: u64,
}

impl CollectionCount {
    /// Both counts together (a collection spread over several groups).
    pub fn add(&mut self, other: CollectionCount) {
        self.records += other.records;
        self.digest = combine(self.digest, other.digest);
    }
}

/// One frame of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BackupItem {
    Header(BackupHeader),
    /// Catalogue: a tenant.
    Tenant {
        name: String,
    },
    /// Catalogue: a database.
    Database(DatabaseModel),
    /// Catalogue: a collection (its shard list is the backed-up cluster's).
    Collection(Box<CollectionModel>),
    /// Shard: a collection's part on this shard; its records follow.
    ShardCollection {
        id: String,
        config: IndexConfig,
        dimension: Option<u32>,
    },
    /// Shard: records of the last `ShardCollection`, in id order.
    Records(Vec<BackupRecord>),
    /// The last frame: what the node counted, per collection id.
    Summary(BTreeMap<String, CollectionCount>),
}

/// Why a backup stream or file is unusable.
#[derive(Debug, Error)]
pub enum BackupFormatError {
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("not a backup file (bad magic)")]
    BadMagic,
    #[error("frame {frame}: length {len} over the limit of {MAX_FRAME_BYTES} bytes")]
    FrameTooLarge { frame: u64, len: u32 },
    #[error("frame {frame}: truncated")]
    Truncated { frame: u64 },
    #[error("frame {frame}: checksum mismatch")]
    Checksum { frame: u64 },
    #[error("frame {frame}: undecodable: {reason}")]
    Undecodable { frame: u64, reason: String },
    #[error("frame {frame}: {reason}")]
    Structure { frame: u64, reason: String },
    #[error("the backup ends without its summary (cut short)")]
    NoSummary,
    #[error("collection {collection}: the summary says {expected:?}, the records give {found:?}")]
    SummaryMismatch {
        collection: String,
        expected: CollectionCount,
        found: CollectionCount,
    },
}

/// Writes [`BackupItem`]s as frames.
pub struct FrameWriter<W: Write> {
    out: W,
    frames: u64,
}

impl<W: Write> FrameWriter<W> {
    /// Starts a stream: writes the magic.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(BACKUP_MAGIC)?;
        Ok(FrameWriter { out, frames: 0 })
    }

    pub fn write(&mut self, item: &BackupItem) -> io::Result<()> {
        let bytes = bincode::serialize(item).map_err(io::Error::other)?;
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME_BYTES)
            .ok_or_else(|| io::Error::other(format!("a frame of {} bytes", bytes.len())))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&crc32fast::hash(&bytes).to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.frames += 1;
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads the frames of a stream written by [`FrameWriter`].
pub struct FrameReader<R: Read> {
    input: R,
    frame: u64,
}

/// Fills `buf`; `Ok(false)` when the input ended before the first byte.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<R: Read> FrameReader<R> {
    /// Checks the magic.
    pub fn new(mut input: R) -> Result<Self, BackupFormatError> {
        let mut magic = [0u8; 8];
        match read_full(&mut input, &mut magic) {
            Ok(true) if &magic == BACKUP_MAGIC => Ok(FrameReader { input, frame: 0 }),
            Ok(_) => Err(BackupFormatError::BadMagic),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(BackupFormatError::BadMagic),
            Err(e) => Err(e.into()),
        }
    }

    /// The next item; `None` at the end of the input (between frames).
    pub fn next_item(&mut self) -> Result<Option<BackupItem>, BackupFormatError> {
        let frame = self.frame;
        let truncated = |e: io::Error| match e.kind() {
            io::ErrorKind::UnexpectedEof => BackupFormatError::Truncated { frame },
            _ => BackupFormatError::Io(e),
        };
        let mut head = [0u8; 8];
        if !read_full(&mut self.input, &mut head).map_err(truncated)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_FRAME_BYTES {
            return Err(BackupFormatError::FrameTooLarge { frame, len });
        }
        // Bounded by MAX_FRAME_BYTES, checked above.
        let mut body = vec![0u8; len as usize];
        if !read_full(&mut self.input, &mut body).map_err(truncated)? && len > 0 {
            return Err(BackupFormatError::Truncated { frame });
        }
        if crc32fast::hash(&body) != crc {
            return Err(BackupFormatError::Checksum { frame });
        }
        self.frame += 1;
        decode_item(&body)
            .map(Some)
            .map_err(|reason| BackupFormatError::Undecodable { frame, reason })
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }
}

/// One frame's item; the decoder may allocate no more than the frame holds.
fn decode_item(bytes: &[u8]) -> Result<BackupItem, String> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(bytes.len() as u64)
        .deserialize(bytes)
        .map_err(|e| e.to_string())
}

/// What a complete, checked backup of one group holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedGroup {
    pub header: BackupHeader,
    /// Records and digest per collection, recomputed from the records (equal to the
    /// node's summary).
    pub collections: BTreeMap<String, CollectionCount>,
    pub frames: u64,
}

impl VerifiedGroup {
    pub fn records(&self) -> u64 {
        self.collections.values().map(|c| c.records).sum()
    }

    pub fn digest(&self) -> u64 {
        self.collections
            .values()
            .fold(0, |acc, c| combine(acc, c.digest))
    }
}

/// Checks a stream item by item: the header first, records only inside a shard
/// collection, in strictly ascending id order, the summary last and equal to what the
/// records give.
#[derive(Debug, Default)]
pub struct Verifier {
    header: Option<BackupHeader>,
    /// The shard collection whose records may follow, and its last record id.
    current: Option<(String, Option<String>)>,
    computed: BTreeMap<String, CollectionCount>,
    summary: Option<BTreeMap<String, CollectionCount>>,
    frames: u64,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, item: &BackupItem) -> Result<(), BackupFormatError> {
        let frame = self.frames;
        self.frames += 1;
        let bad = |reason: &str| BackupFormatError::Structure {
            frame,
            reason: reason.to_owned(),
        };
        if self.summary.is_some() {
            return Err(bad("an item after the summary"));
        }
        let kind = match (&self.header, item) {
            (None, BackupItem::Header(h)) if h.format == FORMAT_VERSION => {
                self.header = Some(h.clone());
                return Ok(());
            }
            (None, BackupItem::Header(h)) => {
                return Err(bad(&format!(
                    "format version {} (this build reads {FORMAT_VERSION})",
                    h.format
                )))
            }
            (None, _) => return Err(bad("the first item is not the header")),
            (Some(_), BackupItem::Header(_)) => return Err(bad("a second header")),
            (Some(h), _) => h.kind,
        };
        match (kind, item) {
            (_, BackupItem::Summary(summary)) => self.summary = Some(summary.clone()),
            (GroupKind::Metadata, BackupItem::Collection(c)) => {
                if self
                    .computed
                    .insert(c.id.clone(), CollectionCount::default())
                    .is_some()
                {
                    return Err(bad(&format!("collection {} twice", c.id)));
                }
            }
            (GroupKind::Metadata, BackupItem::Tenant { .. } | BackupItem::Database(_)) => {}
            (GroupKind::Shard, BackupItem::ShardCollection { id, .. }) => {
                if self
                    .computed
                    .insert(id.clone(), CollectionCount::default())
                    .is_some()
                {
                    return Err(bad(&format!("collection {id} twice")));
                }
                self.current = Some((id.clone(), None));
            }
            (GroupKind::Shard, BackupItem::Records(records)) => {
                let (collection, last) = self
                    .current
                    .as_mut()
                    .ok_or_else(|| bad("records before any collection"))?;
                let count = self.computed.entry(collection.clone()).or_default();
                for r in records {
                    if last.as_deref().is_some_and(|l| l >= r.id.as_str()) {
                        return Err(bad(&format!("record {} out of order", r.id)));
                    }
                    count.add(CollectionCount {
                        records: 1,
                        digest: r.digest(collection),
                    });
                    *last = Some(r.id.clone());
                }
            }
            _ => return Err(bad("an item of the wrong group kind")),
        }
        Ok(())
    }

    /// The checked content; an error unless the stream ended with a summary that matches.
    pub fn finish(self) -> Result<VerifiedGroup, BackupFormatError> {
        let header = self.header.ok_or(BackupFormatError::NoSummary)?;
        let summary = self.summary.ok_or(BackupFormatError::NoSummary)?;
        let ids = summary.keys().chain(self.computed.keys());
        for id in ids {
            let expected = summary.get(id).copied().unwrap_or_default();
            let found = self.computed.get(id).copied().unwrap_or_default();
            // Records only: a summary without records (include_records = false) is
            // checked by its counts alone, by the caller.
            if expected != found {
                return Err(BackupFormatError::SummaryMismatch {
                    collection: id.clone(),
                    expected,
                    found,
                });
            }
        }
        Ok(VerifiedGroup {
            header,
            collections: self.computed,
            frames: self.frames,
        })
    }

    /// The node's summary, unchecked against records (for a stream without records).
    pub fn finish_summary_only(
        self,
    ) -> Result<(BackupHeader, BTreeMap<String, CollectionCount>), BackupFormatError> {
        let header = self.header.ok_or(BackupFormatError::NoSummary)?;
        let summary = self.summary.ok_or(BackupFormatError::NoSummary)?;
        Ok((header, summary))
    }
}

/// Reads and checks a whole stream.
pub fn verify(input: impl Read) -> Result<VerifiedGroup, BackupFormatError> {
    let mut reader = FrameReader::new(input)?;
    let mut verifier = Verifier::new();
    while let Some(item) = reader.next_item()? {
        verifier.observe(&item)?;
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(id: &str) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            embedding: vec![1.0, 2.0],
            metadata: Some([("k".to_owned(), crate::MetadataValue::Int(3))].into()),
            document: Some("doc".into()),
            uri: None,
        }
    }

    fn shard_stream(summary_digest_delta: u64) -> Vec<u8> {
        let records = vec![record("a"), record("b")];
        let digest = records
            .iter()
            .fold(0, |acc, r| combine(acc, r.digest("c1")));
        let mut w = FrameWriter::new(Vec::new()).unwrap();
        w.write(&BackupItem::Header(BackupHeader {
            format: FORMAT_VERSION,
            group: 2,
            kind: GroupKind::Shard,
            applied_index: 10,
            applied_term: 2,
        }))
        .unwrap();
        w.write(&BackupItem::ShardCollection {
            id: "c1".into(),
            config: IndexConfig::default(),
            dimension: Some(2),
        })
        .unwrap();
        w.write(&BackupItem::Records(records)).unwrap();
        w.write(&BackupItem::Summary(
            [(
                "c1".to_owned(),
                CollectionCount {
                    records: 2,
                    digest: digest.wrapping_add(summary_digest_delta),
                },
            )]
            .into(),
        ))
        .unwrap();
        w.into_inner()
    }

    #[test]
    fn a_stream_round_trips_and_its_summary_is_checked() {
        let bytes = shard_stream(0);
        let group = verify(bytes.as_slice()).unwrap();
        assert_eq!(group.header.group, 2);
        assert_eq!(group.records(), 2);
        assert!(matches!(
            verify(shard_stream(1).as_slice()),
            Err(BackupFormatError::SummaryMismatch { .. })
        ));
    }

    #[test]
    fn damage_is_an_error() {
        let bytes = shard_stream(0);
        // Cut anywhere: truncated or no summary.
        for cut in [0, 5, 8, 12, bytes.len() / 2, bytes.len() - 1] {
            assert!(verify(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A flipped byte in a body fails its CRC.
        let mut flipped = bytes.clone();
        let at = bytes.len() - 3;
        flipped[at] ^= 0x40;
        assert!(verify(flipped.as_slice()).is_err());
        // A huge length is refused before allocating.
        let mut huge = BACKUP_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(matches!(
            verify(huge.as_slice()),
            Err(BackupFormatError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn records_out_of_place_are_refused() {
        let mut w = FrameWriter::new(Vec::new()).unwrap();
        w.write(&BackupItem::Header(BackupHeader {
            format: FORMAT_VERSION,
            group: 1,
            kind: GroupKind::Shard,
            applied_index: 1,
            applied_term: 1,
        }))
        .unwrap();
        w.write(&BackupItem::Records(vec![record("a")])).unwrap();
        assert!(matches!(
            verify(w.into_inner().as_slice()),
            Err(BackupFormatError::Structure { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Arbitrary bytes after the magic, and a valid stream with bytes changed:
        /// an error or a value, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            raw in prop::collection::vec(any::<u8>(), 0..512),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        ) {
            let mut bytes = BACKUP_MAGIC.to_vec();
            bytes.extend_from_slice(&raw);
            let _ = verify(bytes.as_slice());
            let mut stream = shard_stream(0);
            for (at, value) in flips {
                let i = at.index(stream.len());
                stream[i] = value;
            }
            let _ = verify(stream.as_slice());
        }
    }
}
