//! Record types and their framing.
//!
//! A frame is `[len: u32 LE][crc32: u32 LE][payload: len bytes]`, the CRC (crc32fast,
//! IEEE) taken over the payload. The payload is a bincode-encoded [`WireRecord`] whose
//! Raft messages are carried as protobuf bytes (`protobuf::Message::write_to_bytes`).
//! Decoding never panics on arbitrary input: every failure is a [`FrameError`].

use bincode::Options;
use protobuf::Message;
use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::storage::StorageError;

/// Bytes of the `[len][crc]` header in front of every payload.
pub const FRAME_HEADER_LEN: usize = 8;

/// Largest payload a frame may carry. A length field above this is treated as damage.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// What a snapshot record means for the entries before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// A local snapshot became durable: entries up to `meta.index` are forgotten.
    Compact,
    /// A snapshot from the leader was applied: every entry is dropped and the log
    /// restarts after `meta.index`.
    Install,
}

/// One logical WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A batch of Raft entries, appended after truncating any conflicting suffix, with the
    /// hard state persisted in the same ready (atomic with the entries: one frame).
    Entries {
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    /// A new hard state (term, vote, commit).
    HardState(HardState),
    /// The configuration made by the conf change entry at `index` (0: the bootstrap one).
    ConfState { index: u64, conf_state: ConfState },
    /// Snapshot metadata / compaction marker, carrying the full current hard and conf
    /// state, so that segments before it can be deleted without losing state.
    Snapshot {
        kind: SnapshotKind,
        meta: SnapshotMetadata,
        hard_state: HardState,
        conf_state: ConfState,
    },
    /// A record of group `group` in a node's shared log (`node_log`); never nested.
    Group { group: u64, record: Box<Record> },
    /// A node's shared log forgets everything written for `group` before this record
    /// (its replica was removed, or replaced by an empty one).
    Discard { group: u64 },
}

impl Record {
    /// Number of Raft entries the record carries (for reporting).
    pub fn entry_count(&self) -> usize {
        match self {
            Record::Entries { entries, .. } => entries.len(),
            Record::Group { record, .. } => record.entry_count(),
            _ => 0,
        }
    }
}

/// The serialized shape of a [`Record`]: protobuf messages as opaque bytes.
#[derive(Serialize, Deserialize)]
enum WireRecord {
    Entries {
        entries: Vec<ByteBuf>,
        hard_state: Option<ByteBuf>,
    },
    HardState(ByteBuf),
    ConfState {
        index: u64,
        conf_state: ByteBuf,
    },
    Snapshot {
        kind: SnapshotKind,
        meta: ByteBuf,
        hard_state: ByteBuf,
        conf_state: ByteBuf,
    },
    // Appended after the per-group variants: bincode numbers variants in order, so
    // per-group logs written before these existed decode as they did. The group's record
    // is carried encoded (one level, decoded on its own) rather than as a nested
    // `WireRecord`: serde would recurse into hostile nesting without bound.
    Group {
        group: u64,
        record: ByteBuf,
    },
    Discard {
        group: u64,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes remain than the frame header or its announced payload needs.
    Torn { needed: usize, available: usize },
    /// The length field is zero or above [`MAX_RECORD_BYTES`].
    BadLength(u32),
    /// The payload does not match its checksum.
    Crc { stored: u32, actual: u32 },
    /// The checksum matched but the payload does not decode.
    Undecodable(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Torn { needed, available } => {
                write!(f, "torn frame: needs {needed} bytes, {available} remain")
            }
            FrameError::BadLength(len) => write!(f, "bad frame length {len}"),
            FrameError::Crc { stored, actual } => {
                write!(
                    f,
                    "crc mismatch: stored {stored:#010x}, computed {actual:#010x}"
                )
            }
            FrameError::Undecodable(e) => write!(f, "undecodable payload: {e}"),
        }
    }
}

fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new()
}

fn pb<M: Message>(m: &M) -> Result<ByteBuf, StorageError> {
    m.write_to_bytes()
        .map(ByteBuf::from)
        .map_err(|e| StorageError::Encode(e.to_string()))
}

fn from_pb<M: Message>(bytes: &[u8]) -> Result<M, String> {
    M::parse_from_bytes(bytes).map_err(|e| e.to_string())
}

fn to_wire(record: &Record) -> Result<WireRecord, StorageError> {
    Ok(match record {
        Record::Entries {
            entries,
            hard_state,
        } => WireRecord::Entries {
            entries: entries.iter().map(pb).collect::<Result<_, _>>()?,
            hard_state: hard_state.as_ref().map(pb).transpose()?,
        },
        Record::HardState(hs) => WireRecord::HardState(pb(hs)?),
        Record::ConfState { index, conf_state } => WireRecord::ConfState {
            index: *index,
            conf_state: pb(conf_state)?,
        },
        Record::Snapshot {
            kind,
            meta,
            hard_state,
            conf_state,
        } => WireRecord::Snapshot {
            kind: *kind,
            meta: pb(meta)?,
            hard_state: pb(hard_state)?,
            conf_state: pb(conf_state)?,
        },
        Record::Group { group, record } => match **record {
            Record::Group { .. } | Record::Discard { .. } => {
                return Err(StorageError::Encode("nested group record".into()))
            }
            ref inner => WireRecord::Group {
                group: *group,
                record: ByteBuf::from(
                    bincode_options()
                        .serialize(&to_wire(inner)?)
                        .map_err(|e| StorageError::Encode(e.to_string()))?,
                ),
            },
        },
        Record::Discard { group } => WireRecord::Discard { group: *group },
    })
}

fn from_wire(wire: WireRecord) -> Result<Record, String> {
    Ok(match wire {
        WireRecord::Entries {
            entries,
            hard_state,
        } => Record::Entries {
            entries: entries
                .iter()
                .map(|b| from_pb(b))
                .collect::<Result<_, _>>()?,
            hard_state: hard_state.map(|b| from_pb(&b)).transpose()?,
        },
        WireRecord::HardState(b) => Record::HardState(from_pb(&b)?),
        WireRecord::ConfState { index, conf_state } => Record::ConfState {
            index,
            conf_state: from_pb(&conf_state)?,
        },
        WireRecord::Snapshot {
            kind,
            meta,
            hard_state,
            conf_state,
        } => Record::Snapshot {
            kind,
            meta: from_pb(&meta)?,
            hard_state: from_pb(&hard_state)?,
            conf_state: from_pb(&conf_state)?,
        },
        WireRecord::Group { group, record } => {
            let inner: WireRecord = bincode_options()
                .with_limit(record.len() as u64)
                .deserialize(&record)
                .map_err(|e| e.to_string())?;
            match inner {
                WireRecord::Group { .. } | WireRecord::Discard { .. } => {
                    return Err("nested group record".into())
                }
                inner => Record::Group {
                    group,
                    record: Box::new(from_wire(inner)?),
                },
            }
        }
        WireRecord::Discard { group } => Record::Discard { group },
    })
}

/// Appends one complete frame for `record` to `out`.
pub fn encode_frame(record: &Record, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let wire = to_wire(record)?;
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    if let Err(e) = bincode_options().serialize_into(&mut *out, &wire) {
        out.truncate(start);
        return Err(StorageError::Encode(e.to_string()));
    }
    let payload_len = out.len() - start - FRAME_HEADER_LEN;
    if payload_len > MAX_RECORD_BYTES {
        out.truncate(start);
        return Err(StorageError::RecordTooLarge {
            size: payload_len,
            limit: MAX_RECORD_BYTES,
        });
    }
    let crc = crc32fast::hash(&out[start + FRAME_HEADER_LEN..]);
    // payload_len <= MAX_RECORD_BYTES < u32::MAX, checked above.
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The payload length a frame header announces, if it is one a frame may have.
pub fn payload_len(header: &[u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    match len as usize {
        n if n == 0 || n > MAX_RECORD_BYTES => Err(FrameError::BadLength(len)),
        n => Ok(n),
    }
}

/// Decodes the frame at the start of `buf`. `Ok(None)` when `buf` is empty; otherwise the
/// record and the number of bytes the frame occupies.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Record, usize)>, FrameError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let Some(header) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(FrameError::Torn {
            needed: FRAME_HEADER_LEN,
            available: buf.len(),
        });
    };
    let payload_len = payload_len(header)?;
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&header[4..FRAME_HEADER_LEN]);
    let stored = u32::from_le_bytes(crc_bytes);
    let total = FRAME_HEADER_LEN + payload_len;
    let Some(payload) = buf.get(FRAME_HEADER_LEN..total) else {
        return Err(FrameError::Torn {
            needed: total,
            available: buf.len(),
        });
    };
    let actual = crc32fast::hash(payload);
    if actual != stored {
        return Err(FrameError::Crc { stored, actual });
    }
    let wire: WireRecord = bincode_options()
        .with_limit(payload_len as u64)
        .deserialize(payload)
        .map_err(|e| FrameError::Undecodable(e.to_string()))?;
    let record = from_wire(wire).map_err(FrameError::Undecodable)?;
    Ok(Some((record, total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn sample_records() -> Vec<Record> {
        let hs = HardState {
            term: 3,
            vote: 2,
            commit: 7,
            ..Default::default()
        };
        let cs = ConfState {
            voters: vec![1, 2, 3],
            learners: vec![4],
            ..Default::default()
        };
        let mut meta = SnapshotMetadata {
            index: 5,
            term: 2,
            ..Default::default()
        };
        meta.set_conf_state(cs.clone());
        vec![
            Record::Entries {
                entries: vec![entry(1, 1, b"a"), entry(2, 1, &[0u8; 1000])],
                hard_state: Some(hs.clone()),
            },
            Record::Entries {
                entries: vec![],
                hard_state: None,
            },
            Record::HardState(hs.clone()),
            Record::ConfState {
                index: 4,
                conf_state: cs.clone(),
            },
            Record::Snapshot {
                kind: SnapshotKind::Compact,
                meta: meta.clone(),
                hard_state: hs.clone(),
                conf_state: cs.clone(),
            },
            Record::Snapshot {
                kind: SnapshotKind::Install,
                meta,
                hard_state: hs,
                conf_state: cs,
            },
        ]
    }

    #[test]
    fn frames_round_trip() {
        let records = sample_records();
        let mut buf = Vec::new();
        for r in &records {
            encode_frame(r, &mut buf).unwrap();
        }
        let mut pos = 0;
        let mut decoded = Vec::new();
        while let Some((r, used)) = decode_frame(&buf[pos..]).unwrap() {
            decoded.push(r);
            pos += used;
        }
        assert_eq!(decoded, records);
    }

    /// A frame with a valid length and CRC around any payload.
    fn frame_of(payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn group_records_round_trip_and_refuse_nesting() {
        let mut buf = Vec::new();
        let tagged = Record::Group {
            group: 7,
            record: Box::new(sample_records()[0].clone()),
        };
        encode_frame(&tagged, &mut buf).unwrap();
        encode_frame(&Record::Discard { group: 7 }, &mut buf).unwrap();
        let (first, used) = decode_frame(&buf).unwrap().unwrap();
        assert_eq!(first, tagged);
        assert_eq!(first.entry_count(), 2);
        let (second, _) = decode_frame(&buf[used..]).unwrap().unwrap();
        assert_eq!(second, Record::Discard { group: 7 });

        // A writer never nests; a nesting built by hand (or by hostile bytes) is refused.
        let nested = Record::Group {
            group: 1,
            record: Box::new(Record::Discard { group: 2 }),
        };
        assert!(encode_frame(&nested, &mut Vec::new()).is_err());
        let inner = bincode_options()
            .serialize(&WireRecord::Discard { group: 2 })
            .unwrap();
        let payload = bincode_options()
            .serialize(&WireRecord::Group {
                group: 1,
                record: ByteBuf::from(inner),
            })
            .unwrap();
        assert!(matches!(
            decode_frame(&frame_of(&payload)),
            Err(FrameError::Undecodable(_))
        ));
    }

    #[test]
    fn zeroed_tail_is_bad_length_not_an_empty_record() {
        assert_eq!(
            decode_frame(&[0u8; 64]).unwrap_err(),
            FrameError::BadLength(0)
        );
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let mut buf = Vec::new();
        encode_frame(&sample_records()[0], &mut buf).unwrap();
        for i in 0..buf.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut damaged = buf.clone();
                damaged[i] ^= mask;
                assert!(decode_frame(&damaged).is_err(), "byte {i} mask {mask:#x}");
            }
        }
    }

    #[test]
    fn every_truncation_is_torn() {
        let mut buf = Vec::new();
        encode_frame(&sample_records()[4], &mut buf).unwrap();
        for cut in 1..buf.len() {
            assert!(matches!(
                decode_frame(&buf[..cut]),
                Err(FrameError::Torn { .. })
            ));
        }
    }

    #[test]
    fn crc_valid_garbage_is_undecodable() {
        let payload = [0xffu8; 32];
        assert!(matches!(
            decode_frame(&frame_of(&payload)),
            Err(FrameError::Undecodable(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn arbitrary_payload_with_valid_crc_never_panics(payload in proptest::collection::vec(any::<u8>(), 1..512)) {
            let _ = decode_frame(&frame_of(&payload));
        }
    }
}
