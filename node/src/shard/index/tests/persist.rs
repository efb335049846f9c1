//! Save / load: identical results after a round trip, errors (never panics)
//! on damaged or mismatched files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::command::IndexConfig;
use common::Space;

use super::{config, Mixture, SPACES};
use crate::shard::index::{IndexError, PointId, VectorIndex};

fn build(space: Space, n: usize, dim: usize, seed: u64) -> (VectorIndex, Mixture) {
    let mut mix = Mixture::new(dim, 10, 0.5, seed);
    let live: BTreeMap<PointId, Vec<f32>> = mix
        .samples(n)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as PointId + 100, v))
        .collect();
    let mut index = VectorIndex::new(dim, &config(space), n);
    let points: Vec<(PointId, &[f32])> = live.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    index.insert_batch(&points);
    for id in (100..100 + n as PointId).step_by(7) {
        index.remove(id);
    }
    (index, mix)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn save_then_load_gives_identical_results() {
    for space in SPACES {
        let (mut index, mut mix) = build(space, 3000, 24, 91);
        let dir = tempfile::tempdir().unwrap();
        index.save(dir.path()).unwrap();
        let mut loaded = VectorIndex::load(dir.path(), &config(space)).unwrap();
        assert_eq!(
            (loaded.dim(), loaded.len_live(), loaded.tombstones()),
            (24, index.len_live(), index.tombstones())
        );
        let odd = |id: PointId| id % 2 == 1;
        for _ in 0..50 {
            let q = mix.sample();
            assert_eq!(loaded.search(&q, 10, None), index.search(&q, 10, None));
            assert_eq!(
                loaded.search(&q, 10, Some(&odd)),
                index.search(&q, 10, Some(&odd))
            );
        }
        // Both keep working the same way afterwards.
        let v = mix.sample();
        index.insert_batch(&[(1, &v)]);
        loaded.insert_batch(&[(1, &v)]);
        index.remove(101);
        loaded.remove(101);
        assert_eq!(loaded.search(&v, 5, None), index.search(&v, 5, None));
        // A loaded index saves again (hnsw_rs treats reloaded graphs specially).
        loaded.save(dir.path()).unwrap();
        let again = VectorIndex::load(dir.path(), &config(space)).unwrap();
        assert_eq!(again.search(&v, 5, None), index.search(&v, 5, None));
    }
}

#[test]
fn saving_twice_keeps_one_generation_of_files() {
    let (mut index, mut mix) = build(Space::L2, 500, 8, 92);
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    let first = files(dir.path());
    assert_eq!(first.len(), 3, "{first:?}");
    let v = mix.sample();
    index.insert_batch(&[(7, &v)]);
    index.save(dir.path()).unwrap();
    let second = files(dir.path());
    assert_eq!(second.len(), 3, "{second:?}");
    assert_ne!(first, second);
    let loaded = VectorIndex::load(dir.path(), &config(Space::L2)).unwrap();
    assert!(loaded.contains(7));
}

#[test]
fn empty_index_roundtrips() {
    let index = VectorIndex::new(5, &config(Space::Ip), 0);
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    let mut loaded = VectorIndex::load(dir.path(), &config(Space::Ip)).unwrap();
    assert_eq!((loaded.dim(), loaded.len_live()), (5, 0));
    loaded.insert_batch(&[(1, &[1.0, 0.0, 0.0, 0.0, 0.0][..])]);
    assert_eq!(
        loaded.search(&[1.0, 0.0, 0.0, 0.0, 0.0], 1, None),
        vec![(1, 0.0)]
    );
}

#[test]
fn missing_index_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        VectorIndex::load(dir.path(), &config(Space::L2)),
        Err(IndexError::Missing(_))
    ));
    assert!(matches!(
        VectorIndex::load(&dir.path().join("nope"), &config(Space::L2)),
        Err(IndexError::Missing(_))
    ));
}

#[test]
fn other_configuration_is_a_mismatch() {
    let (index, _) = build(Space::Cosine, 200, 4, 93);
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    let other_space = config(Space::L2);
    let other_m = IndexConfig {
        max_neighbors: 32,
        ..config(Space::Cosine)
    };
    let other_ef = IndexConfig {
        ef_construction: 200,
        ..config(Space::Cosine)
    };
    for c in [other_space, other_m, other_ef] {
        assert!(
            matches!(
                VectorIndex::load(dir.path(), &c),
                Err(IndexError::Mismatch(_))
            ),
            "{c:?}"
        );
    }
    let searching_differently = IndexConfig {
        ef_search: 7,
        ..config(Space::Cosine)
    };
    assert_eq!(
        VectorIndex::load(dir.path(), &searching_differently)
            .unwrap()
            .ef_search(),
        7
    );
}

/// Damages one file in a copy of a saved index and loads it.
fn load_damaged(
    src: &Path,
    file: &Path,
    damage: impl FnOnce(&mut Vec<u8>),
) -> Result<VectorIndex, IndexError> {
    let dir = tempfile::tempdir().unwrap();
    for f in files(src) {
        fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let target = dir.path().join(file.file_name().unwrap());
    let mut bytes = fs::read(&target).unwrap();
    damage(&mut bytes);
    fs::write(&target, bytes).unwrap();
    VectorIndex::load(dir.path(), &config(Space::L2))
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let (index, _) = build(Space::L2, 300, 6, 94);
    let src = tempfile::tempdir().unwrap();
    index.save(src.path()).unwrap();
    assert!(VectorIndex::load(src.path(), &config(Space::L2)).is_ok());
    for file in files(src.path()) {
        let len = fs::read(&file).unwrap().len();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        // Truncations, including to nothing and by a single byte.
        for cut in [0, 1, 3, 16, len / 3, len / 2, len - 1] {
            let res = load_damaged(src.path(), &file, |b| b.truncate(cut));
            assert!(res.is_err(), "{name} truncated to {cut} loaded");
        }
        // An appended byte.
        assert!(
            load_damaged(src.path(), &file, |b| b.push(0)).is_err(),
            "{name} extended"
        );
        // Single bit flips all over the file.
        for pos in (0..len).step_by((len / 40).max(1)).chain([len - 1]) {
            let res = load_damaged(src.path(), &file, |b| b[pos] ^= 0x04);
            assert!(res.is_err(), "{name} with bit flipped at {pos} loaded");
        }
    }
    // A dump file deleted outright.
    let dir = tempfile::tempdir().unwrap();
    for f in files(src.path()) {
        if !f.to_string_lossy().ends_with(".hnsw.data") {
            fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    assert!(matches!(
        VectorIndex::load(dir.path(), &config(Space::L2)),
        Err(IndexError::Io { .. })
    ));
}

#[test]
fn interrupted_save_leaves_previous_index_loadable() {
    let (index, _) = build(Space::L2, 300, 6, 95);
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    // A crash after the dump files and a partial MANIFEST.tmp were written.
    fs::write(dir.path().join("graph-deadbeef.hnsw.graph"), b"partial").unwrap();
    fs::write(dir.path().join("MANIFEST.tmp"), b"partial").unwrap();
    let loaded = VectorIndex::load(dir.path(), &config(Space::L2)).unwrap();
    assert_eq!(loaded.len_live(), index.len_live());
    // The next save cleans the leftover dump up.
    loaded.save(dir.path()).unwrap();
    assert!(!dir.path().join("graph-deadbeef.hnsw.graph").exists());
    assert!(VectorIndex::load(dir.path(), &config(Space::L2)).is_ok());
}
