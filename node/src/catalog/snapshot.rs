//! Snapshots of the catalogue state machine: the whole state (catalogue,
//! applied position, request-id window) as bincode, behind a header with a
//! CRC, so a lagging replica or a restart gets exactly the catalogue it had.
//!
//! Layout: `MAGIC` (8 bytes), payload length (u64 LE), CRC-32 of the payload
//! (u32 LE, crc32fast), payload. The payload is deterministic: every map is
//! ordered. Decoding checks the magic, the length, the CRC, decodes with a
//! size limit, then checks the catalogue's invariants, so bad bytes give an
//! error and never a panic or a half-restored state.
//!
//! Files are written under a temporary name, fsynced, renamed into place and
//! the directory fsynced: a crash leaves the old snapshot or the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use bincode::Options;
use common::catalog::{
    is_canonical_uuid, validate_collection_name, CollectionModel, DatabaseModel,
};
use serde::{Deserialize, Serialize};

use super::error::CatalogSnapshotError;
use super::state::{name_key, CatalogState};
use super::state_machine::{AppliedPosition, CatalogStateMachine};
use crate::raft::dedup::RequestDedup;
use common::catalog::CatalogOutcome;
use common::registry::{ClusterMap, ClusterMapV1};

/// Written since shard groups can be created at run time (the cluster map gained
/// `born` and `next_group`).
const MAGIC: &[u8; 8] = b"VDBCAT02";
/// Written before: decoded into [`SnapshotDataV1`] and converted.
const MAGIC_V1: &[u8; 8] = b"VDBCAT01";
const HEADER_LEN: usize = 8 + 8 + 4;

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    applied: AppliedPosition,
    version: u64,
    tenants: Vec<String>,
    databases: Vec<DatabaseModel>,
    collections: Vec<CollectionModel>,
    dedup: RequestDedup<CatalogOutcome>,
    map: ClusterMap,
}

/// [`SnapshotData`] as `VDBCAT01` snapshots hold it.
#[derive(Serialize, Deserialize)]
struct SnapshotDataV1 {
    applied: AppliedPosition,
    version: u64,
    tenants: Vec<String>,
    databases: Vec<DatabaseModel>,
    collections: Vec<CollectionModel>,
    dedup: RequestDedup<CatalogOutcome>,
    map: ClusterMapV1,
}

impl From<SnapshotDataV1> for SnapshotData {
    fn from(v1: SnapshotDataV1) -> Self {
        SnapshotData {
            applied: v1.applied,
            version: v1.version,
            tenants: v1.tenants,
            databases: v1.databases,
            collections: v1.collections,
            dedup: v1.dedup,
            map: v1.map.into(),
        }
    }
}

fn corrupt(msg: impl Into<String>) -> CatalogSnapshotError {
    CatalogSnapshotError::Corrupt(msg.into())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CatalogSnapshotError + '_ {
    move |source| CatalogSnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// The snapshot of `sm` as bytes (header and payload).
pub(super) fn encode(sm: &CatalogStateMachine) -> Result<Vec<u8>, CatalogSnapshotError> {
    let state = &sm.state;
    let data = SnapshotData {
        applied: sm.applied,
        version: state.version,
        tenants: state.tenants.iter().cloned().collect(),
        databases: state
            .databases
            .iter()
            .map(|((tenant, name), id)| DatabaseModel {
                id: id.clone(),
                name: name.clone(),
                tenant: tenant.clone(),
            })
            .collect(),
        collections: state.collections.values().cloned().collect(),
        dedup: sm.dedup.clone(),
        map: state.map.clone(),
    };
    framed(MAGIC, &data)
}

/// `data` encoded behind the header.
fn framed(magic: &[u8; 8], data: &impl Serialize) -> Result<Vec<u8>, CatalogSnapshotError> {
    let payload = codec()
        .serialize(data)
        .map_err(|e| corrupt(format!("encoding state: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Verifies snapshot bytes and rebuilds the state machine from them.
pub(super) fn decode(bytes: &[u8]) -> Result<CatalogStateMachine, CatalogSnapshotError> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "{} bytes is shorter than the header",
            bytes.len()
        )));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    let v1 = &header[..8] == MAGIC_V1;
    if &header[..8] != MAGIC && !v1 {
        return Err(corrupt("bad magic"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[8..16]);
    let len = u64::from_le_bytes(len);
    if len != payload.len() as u64 {
        return Err(corrupt(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        )));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[16..20]);
    if crc32fast::hash(payload) != u32::from_le_bytes(crc) {
        return Err(corrupt("checksum mismatch"));
    }
    let limited = codec().with_limit(payload.len() as u64);
    let data: SnapshotData = if v1 {
        limited
            .deserialize::<SnapshotDataV1>(payload)
            .map(SnapshotData::from)
    } else {
        limited.deserialize(payload)
    }
    .map_err(|e| corrupt(format!("decoding state: {e}")))?;
    rebuild(data)
}

/// Rebuilds the maps and the name index, refusing anything the state
/// machine could never have produced.
fn rebuild(data: SnapshotData) -> Result<CatalogStateMachine, CatalogSnapshotError> {
    let tenants: BTreeSet<String> = data.tenants.iter().cloned().collect();
    if tenants.len() != data.tenants.len() {
        return Err(corrupt("duplicate tenant"));
    }
    let mut databases = BTreeMap::new();
    let mut database_ids = BTreeSet::new();
    for db in data.databases {
        if !tenants.contains(&db.tenant) {
            return Err(corrupt(format!(
                "database {} of unknown tenant {}",
                db.name, db.tenant
            )));
        }
        if !is_canonical_uuid(&db.id) || !database_ids.insert(db.id.clone()) {
            return Err(corrupt(format!("bad or duplicate database id {}", db.id)));
        }
        if databases
            .insert((db.tenant, db.name.clone()), db.id)
            .is_some()
        {
            return Err(corrupt(format!("duplicate database {}", db.name)));
        }
    }
    let mut state = CatalogState {
        tenants,
        databases,
        collections: BTreeMap::new(),
        names: BTreeMap::new(),
        version: data.version,
        map: data.map,
    };
    if !state.map.is_consistent() {
        return Err(corrupt("inconsistent cluster map"));
    }
    for mut c in data.collections {
        // Stored before the HNSW ranges existed: capped as apply caps them.
        c.index_config = c.index_config.capped();
        c.configuration = c.configuration.capped();
        if !is_canonical_uuid(&c.id) || state.collections.contains_key(&c.id) {
            return Err(corrupt(format!("bad or duplicate collection id {}", c.id)));
        }
        if !state
            .databases
            .contains_key(&(c.tenant.clone(), c.database.clone()))
        {
            return Err(corrupt(format!(
                "collection {} in unknown database {}",
                c.id, c.database
            )));
        }
        if state.names.contains_key(&name_key(&c)) {
            return Err(corrupt(format!("duplicate collection name {}", c.name)));
        }
        validate_collection_name("name", &c.name)
            .and_then(|()| c.configuration.validate())
            .map_err(|e| corrupt(format!("collection {}: {e}", c.id)))?;
        state.insert_collection(c);
    }
    if !data.dedup.is_consistent() {
        return Err(corrupt("inconsistent request-id window"));
    }
    Ok(CatalogStateMachine {
        state,
        applied: data.applied,
        dedup: data.dedup,
    })
}

/// Writes the snapshot of `sm` to `path` atomically and durably.
pub(super) fn write_file(
    sm: &CatalogStateMachine,
    path: &Path,
) -> Result<(), CatalogSnapshotError> {
    let bytes = encode(sm)?;
    common::fs::write_atomic(path, &bytes).map_err(io_err(path))
}

/// Reads and verifies a snapshot file.
pub(super) fn read_file(path: &Path) -> Result<CatalogStateMachine, CatalogSnapshotError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    decode(&bytes)
}

#[cfg(test)]
mod tests {
    use common::catalog::{CatalogCommand, CatalogProposal};

    use crate::raft::state_machine::StateMachine;

    use super::*;

    /// A catalogue snapshot written before groups could be created at run time (stop 21
    /// and earlier) still opens: its cluster map gets no run-time groups.
    #[test]
    fn a_version_1_snapshot_is_read() {
        let mut sm = CatalogStateMachine::new();
        let register = CatalogCommand::RegisterNode {
            id: 1,
            addr: "127.0.0.1:9001".into(),
            incarnation: 5,
        };
        let position = AppliedPosition { index: 1, term: 1 };
        let proposal = CatalogProposal {
            request_id: 1,
            deadline_ms: 0,
            command: register,
        };
        sm.apply(position, 10_000, &proposal).unwrap();
        let map = sm.state.map.clone();
        let v1 = SnapshotDataV1 {
            applied: sm.applied,
            version: sm.state.version,
            tenants: sm.state.tenants.iter().cloned().collect(),
            databases: Vec::new(),
            collections: Vec::new(),
            dedup: sm.dedup.clone(),
            map: ClusterMapV1 {
                nodes: map.nodes.clone(),
                groups: map.groups.clone(),
                version: map.version,
            },
        };
        let bytes = framed(MAGIC_V1, &v1).unwrap();
        let restored = decode(&bytes).unwrap();
        assert_eq!(restored.state.map, map);
        assert_eq!(restored.applied, sm.applied);
        assert!(decode(&framed(b"VDBCAT09", &v1).unwrap()).is_err());
    }
}
