//! Persistence of a segment: hnsw_rs's own dump plus a manifest of ours.
//!
//! Layout of the index directory:
//! - `graph-<random>.hnsw.graph`, `graph-<random>.hnsw.data`: hnsw_rs's dump of
//!   the graph (points are keyed by slot, the data file holds the vectors).
//! - `MANIFEST`: the commit point. `magic "VXIDXMF1" | format u32 | payload
//!   length u64 | crc32(payload) u32 | payload` (header little-endian, payload
//!   bincode fixint little-endian) where the payload names the dump files with
//!   their length and CRC32, and holds the dimension, space, graph parameters,
//!   point count, the slot to `PointId` mapping and the tombstoned slots.
//!
//! Saving dumps under a fresh name, fsyncs the dump files, writes
//! `MANIFEST.tmp`, fsyncs it, renames it over `MANIFEST` and fsyncs the
//! directory (`common::fs::write_atomic`); only then are older dump files
//! deleted. A crash at any point leaves either the old or the new index,
//! never a mix.
//!
//! hnsw_rs's loader asserts (and on a short data file even calls
//! `process::exit`) on bad input, so loading hands it nothing unverified: the
//! manifest checksum and structure, the platform and hnsw_rs version, the
//! configuration, each dump file's exact length and CRC32, the data file's
//! expected size and the dump headers are all checked first; the load itself
//! runs under `catch_unwind`, and the loaded graph is checked point by point
//! against the manifest. Any failure is an [`IndexError`]; the caller then
//! rebuilds the index from its records. (The files are re-read by hnsw_rs after
//! verification; nothing but this code writes the index directory.)

use std::fs::{self, File};
use std::io::{BufReader, ErrorKind, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use bincode::Options;
use common::fs::write_atomic;
use common::Space;
use serde::{Deserialize, Serialize};

use super::distance::dist_type_name;
use super::error::IndexError;
use super::graph::{Graph, GraphParams};
use super::segment::Segment;
use super::store::VectorStore;
use super::{PointId, Vector};

const MANIFEST: &str = "MANIFEST";
const MAGIC: [u8; 8] = *b"VXIDXMF1";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
const DUMP_PREFIX: &str = "graph-";
const GRAPH_SUFFIX: &str = ".hnsw.graph";
const DATA_SUFFIX: &str = ".hnsw.data";
/// The dump format is hnsw_rs's, native-endian with `usize` fields.
const HNSW_RS_VERSION: &str = "0.3.5";
/// hnsw_rs's magic at the head of the data file and of each vector (crate-private there).
const HNSW_DATA_MAGIC: u32 = 0xa67f_0000;
/// Layers hnsw_rs records in a dump.
const HNSW_LAYERS: u8 = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    len: u64,
    crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    hnsw_rs: String,
    pointer_bits: u32,
    little_endian: bool,
    dim: u64,
    space: Space,
    max_neighbors: u64,
    ef_construction: u64,
    /// Points in the graph, live and tombstoned (= slots).
    slots: u64,
    live: u64,
    /// Basename of the dump files; `None` for an empty graph (hnsw_rs cannot dump one).
    basename: Option<String>,
    files: Vec<FileEntry>,
    /// Slot to point id.
    ids: Vec<PointId>,
    /// Tombstoned slots, strictly ascending.
    dead: Vec<u64>,
}

fn manifest_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(u32::MAX as u64)
}

fn corrupt(msg: impl Into<String>) -> IndexError {
    IndexError::Corrupt(msg.into())
}

fn mismatch(msg: impl Into<String>) -> IndexError {
    IndexError::Mismatch(msg.into())
}

/// Saves `seg` into `dir` (created if missing), replacing any index there.
pub(crate) fn save(seg: &Segment, dir: &Path) -> Result<(), IndexError> {
    fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    let store = &seg.store;
    if seg.graph.len() != store.slots() {
        return Err(IndexError::Hnsw(format!(
            "graph holds {} points, store {}",
            seg.graph.len(),
            store.slots()
        )));
    }
    let (basename, files) = if store.slots() == 0 {
        (None, Vec::new())
    } else {
        let wanted = format!("{DUMP_PREFIX}{:016x}", rand::random::<u64>());
        let used = match seg.graph.dump(dir, &wanted) {
            Ok(used) => used,
            Err(e) => {
                remove_dump_files(dir, &wanted);
                return Err(e);
            }
        };
        let mut files = Vec::with_capacity(2);
        for suffix in [GRAPH_SUFFIX, DATA_SUFFIX] {
            let name = format!("{used}{suffix}");
            let (len, crc32) = sync_and_checksum(&dir.join(&name))?;
            files.push(FileEntry { name, len, crc32 });
        }
        (Some(used), files)
    };
    let manifest = Manifest {
        hnsw_rs: HNSW_RS_VERSION.to_string(),
        pointer_bits: usize::BITS,
        little_endian: cfg!(target_endian = "little"),
        dim: store.dim() as u64,
        space: seg.params.space,
        max_neighbors: seg.params.max_neighbors as u64,
        ef_construction: seg.params.ef_construction as u64,
        slots: store.slots() as u64,
        live: store.live_count() as u64,
        basename,
        files,
        ids: store.ids().to_vec(),
        dead: store.dead_slots(),
    };
    let bytes = encode_manifest(&manifest)?;
    let target = dir.join(MANIFEST);
    write_atomic(&target, &bytes).map_err(|e| IndexError::io(&target, e))?;
    remove_stale_dumps(dir, &manifest.files);
    Ok(())
}

/// Loads the segment saved in `dir`, built with `params`. `share(point)` may
/// offer the vector a point's record already holds: when it equals the saved
/// one, the store and the graph use it instead of a copy of their own.
pub(crate) fn load(
    dir: &Path,
    params: GraphParams,
    share: &dyn Fn(PointId) -> Option<Vector>,
) -> Result<Segment, IndexError> {
    let path = dir.join(MANIFEST);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(IndexError::Missing(dir.to_path_buf()))
        }
        Err(e) => return Err(IndexError::io(&path, e)),
    };
    let m = decode_manifest(&bytes)?;
    check_compatible(&m, params)?;
    let (dim, slots) = check_structure(&m)?;
    let Some(basename) = m.basename.as_deref() else {
        return Ok(Segment::new(dim, params, 0));
    };
    for f in &m.files {
        verify_file(dir, f)?;
    }
    check_data_size(&m.files[1], dim, slots)?;
    check_dump_headers(dir, &m, dim, slots, params)?;

    let offered: Vec<Option<Vector>> = m.ids.iter().map(|&p| share(p)).collect();
    let graph = Graph::load(dir, basename, params.space, &offered)?;
    if graph.len() != slots {
        return Err(corrupt(format!(
            "graph holds {} points, manifest {slots}",
            graph.len()
        )));
    }
    let mut data: Vec<Option<Vector>> = vec![None; slots];
    let mut bad: Option<String> = None;
    graph.for_each_point(|slot, v| {
        if bad.is_some() {
            return;
        }
        if slot >= slots || data[slot].is_some() || v.len() != dim {
            bad = Some(format!(
                "unexpected point {slot} (dimension {}) in graph",
                v.len()
            ));
            return;
        }
        // The graph's point borrowed the offered vector, or owns a copy.
        data[slot] = Some(match &offered[slot] {
            Some(shared) if std::ptr::eq(shared.as_ptr(), v.as_ptr()) => Vector::clone(shared),
            _ => Vector::from(v),
        });
    });
    if let Some(msg) = bad {
        return Err(corrupt(msg));
    }
    if let Some(missing) = data.iter().position(Option::is_none) {
        return Err(corrupt(format!("slot {missing} missing from graph")));
    }
    let data: Vec<Vector> = data.into_iter().flatten().collect();
    let store = VectorStore::from_parts(dim, data, m.ids, &m.dead).map_err(corrupt)?;
    Ok(Segment {
        store,
        graph,
        params,
    })
}

fn encode_manifest(m: &Manifest) -> Result<Vec<u8>, IndexError> {
    let payload = manifest_options()
        .serialize(m)
        .map_err(|e| IndexError::Hnsw(format!("cannot encode manifest: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode_manifest(bytes: &[u8]) -> Result<Manifest, IndexError> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "manifest is {} bytes, shorter than its header",
            bytes.len()
        )));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    let (magic, rest) = header.split_at(8);
    let (version, rest) = rest.split_at(4);
    let (len, crc) = rest.split_at(8);
    if magic != MAGIC {
        return Err(corrupt("bad manifest magic"));
    }
    let version = u32::from_le_bytes(version.try_into().map_err(|_| corrupt("manifest header"))?);
    if version != FORMAT_VERSION {
        return Err(mismatch(format!(
            "manifest format {version}, expected {FORMAT_VERSION}"
        )));
    }
    let len = u64::from_le_bytes(len.try_into().map_err(|_| corrupt("manifest header"))?);
    if len != payload.len() as u64 {
        return Err(corrupt(format!(
            "manifest payload is {} bytes, header says {len}",
            payload.len()
        )));
    }
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| corrupt("manifest header"))?);
    if crc32fast::hash(payload) != crc {
        return Err(corrupt("manifest checksum mismatch"));
    }
    manifest_options()
        .deserialize(payload)
        .map_err(|e| corrupt(format!("manifest does not decode: {e}")))
}

fn check_compatible(m: &Manifest, params: GraphParams) -> Result<(), IndexError> {
    if m.hnsw_rs != HNSW_RS_VERSION
        || m.pointer_bits != usize::BITS
        || m.little_endian != cfg!(target_endian = "little")
    {
        return Err(mismatch(format!(
            "dump written by hnsw_rs {} on a {}-bit {} platform",
            m.hnsw_rs,
            m.pointer_bits,
            if m.little_endian {
                "little-endian"
            } else {
                "big-endian"
            }
        )));
    }
    if m.space != params.space
        || m.max_neighbors != params.max_neighbors as u64
        || m.ef_construction != params.ef_construction as u64
    {
        return Err(mismatch(format!(
            "index built with space {} M {} ef_construction {}, configuration asks for {} {} {}",
            m.space.as_str(),
            m.max_neighbors,
            m.ef_construction,
            params.space.as_str(),
            params.max_neighbors,
            params.ef_construction
        )));
    }
    Ok(())
}

/// Internal consistency of the manifest; returns (dim, slots).
fn check_structure(m: &Manifest) -> Result<(usize, usize), IndexError> {
    let dim = usize::try_from(m.dim).map_err(|_| corrupt("dimension out of range"))?;
    let slots = usize::try_from(m.slots).map_err(|_| corrupt("point count out of range"))?;
    if m.ids.len() != slots {
        return Err(corrupt(format!("{} ids for {slots} points", m.ids.len())));
    }
    if m.dead.windows(2).any(|w| w[0] >= w[1]) || m.dead.last().is_some_and(|&d| d >= m.slots) {
        return Err(corrupt("tombstone list is not ascending within the points"));
    }
    if m.live != m.slots - m.dead.len() as u64 {
        return Err(corrupt(format!(
            "{} live of {slots} points with {} tombstones",
            m.live,
            m.dead.len()
        )));
    }
    match (&m.basename, slots) {
        (None, 0) if m.files.is_empty() => Ok((dim, slots)),
        (Some(base), n) if n > 0 => {
            let plain = base.starts_with(DUMP_PREFIX)
                && base
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            let expected = [
                format!("{base}{GRAPH_SUFFIX}"),
                format!("{base}{DATA_SUFFIX}"),
            ];
            let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
            if !plain || names != expected {
                return Err(corrupt(format!("unexpected dump files {names:?}")));
            }
            Ok((dim, slots))
        }
        _ => Err(corrupt("dump files do not match the point count")),
    }
}

fn verify_file(dir: &Path, f: &FileEntry) -> Result<(), IndexError> {
    let path = dir.join(&f.name);
    let (len, crc) = checksum(&path)?;
    if len != f.len {
        return Err(corrupt(format!(
            "{} is {len} bytes, expected {}",
            f.name, f.len
        )));
    }
    if crc != f.crc32 {
        return Err(corrupt(format!("{} checksum mismatch", f.name)));
    }
    Ok(())
}

/// The data file is a header (magic u32, dimension usize) and per point a magic
/// u32, an id u64, a byte length u64 and the f32s.
fn check_data_size(data: &FileEntry, dim: usize, slots: usize) -> Result<(), IndexError> {
    let word = std::mem::size_of::<usize>() as u128;
    let expected = 4 + word + slots as u128 * (4 + 8 + 8 + 4 * dim as u128);
    if u128::from(data.len) != expected {
        return Err(corrupt(format!(
            "data file is {} bytes, {slots} points of dimension {dim} need {expected}",
            data.len
        )));
    }
    Ok(())
}

fn check_dump_headers(
    dir: &Path,
    m: &Manifest,
    dim: usize,
    slots: usize,
    params: GraphParams,
) -> Result<(), IndexError> {
    let data_path = dir.join(&m.files[1].name);
    let mut head = [0u8; 4 + std::mem::size_of::<usize>()];
    File::open(&data_path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| IndexError::io(&data_path, e))?;
    let (magic, dim_bytes) = head.split_at(4);
    let magic = u32::from_ne_bytes(magic.try_into().map_err(|_| corrupt("data header"))?);
    let data_dim = usize::from_ne_bytes(dim_bytes.try_into().map_err(|_| corrupt("data header"))?);
    if magic != HNSW_DATA_MAGIC || data_dim != dim {
        return Err(corrupt(format!(
            "data file header: magic {magic:#x}, dimension {data_dim}"
        )));
    }

    let graph_path = dir.join(&m.files[0].name);
    let file = File::open(&graph_path).map_err(|e| IndexError::io(&graph_path, e))?;
    let mut reader = BufReader::new(file);
    let descr = catch_unwind(AssertUnwindSafe(|| {
        hnsw_rs::hnswio::load_description(&mut reader)
    }))
    .map_err(|_| corrupt("graph file description panicked hnsw_rs"))?
    .map_err(|e| corrupt(format!("graph file description: {e}")))?;
    let dist_short = descr.distname.rsplit("::").next().unwrap_or("");
    if descr.nb_point != slots
        || descr.dimension != dim
        || descr.dumpmode != 1
        || descr.nb_layer != HNSW_LAYERS
        || usize::from(descr.max_nb_connection) != params.max_neighbors
        || dist_short != dist_type_name(params.space)
        || descr.t_name != "f32"
    {
        return Err(corrupt(format!(
            "graph file description: {} points, dimension {}, mode {}, {} layers, M {}, distance {}, type {}",
            descr.nb_point,
            descr.dimension,
            descr.dumpmode,
            descr.nb_layer,
            descr.max_nb_connection,
            descr.distname,
            descr.t_name
        )));
    }
    Ok(())
}

/// Length and CRC32 of a file.
fn checksum(path: &Path) -> Result<(u64, u32), IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

fn sync_and_checksum(path: &Path) -> Result<(u64, u32), IndexError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| IndexError::io(path, e))?;
    checksum(path)
}

fn remove_dump_files(dir: &Path, basename: &str) {
    for suffix in [GRAPH_SUFFIX, DATA_SUFFIX] {
        let _ = fs::remove_file(dir.join(format!("{basename}{suffix}")));
    }
}

/// Deletes dump files the current manifest does not name (older generations,
/// leftovers of a crashed save). Failures only leave garbage behind.
fn remove_stale_dumps(dir: &Path, keep: &[FileEntry]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(DUMP_PREFIX) && !keep.iter().any(|f| f.name == name) {
            if let Err(e) = fs::remove_file(entry.path()) {
                tracing::warn!(file = name, error = %e, "could not remove stale index dump");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            hnsw_rs: HNSW_RS_VERSION.into(),
            pointer_bits: usize::BITS,
            little_endian: cfg!(target_endian = "little"),
            dim: 3,
            space: Space::Ip,
            max_neighbors: 16,
            ef_construction: 100,
            slots: 2,
            live: 1,
            basename: Some("graph-00ff".into()),
            files: vec![
                FileEntry {
                    name: "graph-00ff.hnsw.graph".into(),
                    len: 10,
                    crc32: 1,
                },
                FileEntry {
                    name: "graph-00ff.hnsw.data".into(),
                    len: 20,
                    crc32: 2,
                },
            ],
            ids: vec![4, 9],
            dead: vec![0],
        }
    }

    #[test]
    fn manifest_roundtrips_and_detects_damage() {
        let m = sample();
        let bytes = encode_manifest(&m).unwrap();
        assert_eq!(decode_manifest(&bytes).unwrap(), m);
        assert_eq!(check_structure(&m).unwrap(), (3, 2));
        for cut in 0..bytes.len() {
            assert!(
                decode_manifest(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode_manifest(&b).is_err(), "bit flip at {i}");
        }
    }

    /// Checksums only catch accidents. A graph file whose checksum was forged
    /// so that it passes verification, with an entry point on a layer that does
    /// not exist, makes hnsw_rs panic; the panic becomes an error.
    #[test]
    fn loader_panic_is_caught() {
        let mut index = crate::shard::index::VectorIndex::new(4, &Default::default(), 0);
        let points: Vec<(PointId, Vec<f32>)> = (0..50)
            .map(|i| (i, vec![i as f32, 1.0, 2.0, 3.0]))
            .collect();
        let batch: Vec<(PointId, &[f32])> =
            points.iter().map(|(id, v)| (*id, v.as_slice())).collect();
        index.insert_batch(&batch);
        let dir = tempfile::tempdir().unwrap();
        index.save(dir.path()).unwrap();
        let mut m = decode_manifest(&fs::read(dir.path().join(MANIFEST)).unwrap()).unwrap();
        let graph = dir.path().join(&m.files[0].name);
        let mut bytes = fs::read(&graph).unwrap();
        // The dump ends with the entry point: id usize, layer u8, rank i32.
        let layer = bytes.len() - 5;
        bytes[layer] = 200;
        fs::write(&graph, &bytes).unwrap();
        m.files[0].crc32 = crc32fast::hash(&bytes);
        fs::write(dir.path().join(MANIFEST), encode_manifest(&m).unwrap()).unwrap();
        let res = crate::shard::index::VectorIndex::load(dir.path(), &Default::default());
        assert!(matches!(res, Err(IndexError::Hnsw(_))), "{:?}", res.err());
    }

    #[test]
    fn structure_checks() {
        let mut m = sample();
        m.dead = vec![2];
        assert!(check_structure(&m).is_err());
        let mut m = sample();
        m.files[0].name = "../x.hnsw.graph".into();
        assert!(check_structure(&m).is_err());
        let mut m = sample();
        m.basename = Some("graph-/..".into());
        assert!(check_structure(&m).is_err());
        let mut m = sample();
        m.live = 2;
        assert!(check_structure(&m).is_err());
        let mut m = sample();
        m.ids.pop();
        assert!(check_structure(&m).is_err());
    }
}
