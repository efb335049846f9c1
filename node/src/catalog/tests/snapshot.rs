//! Snapshot round trips, determinism, corruption, and the digest.

use common::catalog::{
    CatalogCommand, CatalogRead, CatalogReadValue, SpannConfiguration, DEFAULT_DATABASE,
    DEFAULT_TENANT,
};
use common::record::MetadataValue;

use super::super::{CatalogSnapshotError, CatalogStateMachine};
use super::{create, create_default, metadata, uuid, Harness};

/// A catalogue with a bit of everything.
fn populated() -> Harness {
    let mut h = Harness::new();
    h.ok(CatalogCommand::CreateTenant {
        name: "acme".into(),
    });
    h.ok(CatalogCommand::CreateDatabase {
        tenant: "acme".into(),
        name: "prod".into(),
        id: uuid(1),
    });
    let mut c = create("acme", "prod", &uuid(0x10), "docs");
    if let CatalogCommand::CreateCollection { metadata: m, .. } = &mut c {
        let mut md = metadata(&[("n", 1)]);
        md.insert("f".into(), MetadataValue::Float(0.25));
        md.insert(
            "l".into(),
            MetadataValue::StrList(vec!["x".into(), "y".into()]),
        );
        *m = Some(md);
    }
    h.created(c);
    h.created(create_default(&uuid(0x20), "notes"));
    h.ok(CatalogCommand::SetDimension {
        id: uuid(0x20),
        dimension: 8,
    });
    h.apply_with_id(
        77,
        CatalogCommand::DeleteCollection {
            tenant: DEFAULT_TENANT.into(),
            database: DEFAULT_DATABASE.into(),
            name: "missing".into(),
        },
    )
    .unwrap_err();
    h.ok(CatalogCommand::RegisterNode {
        id: 4,
        addr: "127.0.0.1:9004".into(),
        incarnation: 44,
    });
    h.ok(CatalogCommand::SetGroupReplicas {
        group: 2,
        replicas: vec![1, 4, 3],
    });
    h
}

fn all_reads() -> Vec<CatalogRead> {
    let mut reads = vec![CatalogRead::Version, CatalogRead::ClusterMap];
    for tenant in [DEFAULT_TENANT, "acme"] {
        reads.push(CatalogRead::GetTenant {
            name: tenant.into(),
        });
        reads.push(CatalogRead::ListDatabases {
            tenant: tenant.into(),
            limit: None,
            offset: 0,
        });
        for database in [DEFAULT_DATABASE, "prod"] {
            reads.push(CatalogRead::GetDatabase {
                tenant: tenant.into(),
                name: database.into(),
            });
            reads.push(CatalogRead::ListCollections {
                tenant: tenant.into(),
                database: database.into(),
                limit: None,
                offset: 0,
            });
            reads.push(CatalogRead::CountCollections {
                tenant: tenant.into(),
                database: database.into(),
            });
        }
    }
    for id in [0x10, 0x20] {
        reads.push(CatalogRead::GetCollectionById { id: uuid(id) });
    }
    reads
}

#[test]
fn round_trip_through_a_file_keeps_everything() {
    let h = populated();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.snap");
    h.sm.write_snapshot(&path).unwrap();
    assert!(!dir.path().join("catalog.snap.tmp").exists());

    let restored = CatalogStateMachine::read_snapshot(&path).unwrap();
    assert_eq!(restored.digest(), h.sm.digest());
    assert_eq!(restored.applied, h.sm.applied);
    assert_eq!(restored.version(), h.sm.version());
    for read in all_reads() {
        assert_eq!(restored.read(&read), h.sm.read(&read), "{read:?}");
    }
    assert_eq!(restored, h.sm, "state, applied position and request window");

    // The request window came along: a retry after restore gets the first reply.
    let mut h2 = Harness {
        sm: restored,
        index: h.index,
        ..Harness::new()
    };
    let retry = h2.apply_with_id(
        77,
        CatalogCommand::DeleteCollection {
            tenant: DEFAULT_TENANT.into(),
            database: DEFAULT_DATABASE.into(),
            name: "missing".into(),
        },
    );
    assert!(retry.is_err());
    assert_eq!(h2.sm.version(), h.sm.version());

    // And the name index was rebuilt.
    assert_eq!(h2.names("acme", "prod"), ["docs"]);
    assert!(h2
        .apply_with_id(999, create("acme", "prod", &uuid(0x30), "docs"))
        .is_err());
}

#[test]
fn snapshot_bytes_are_deterministic() {
    let a = populated();
    let b = populated();
    assert_eq!(
        a.sm.snapshot_bytes().unwrap(),
        b.sm.snapshot_bytes().unwrap()
    );
    assert_eq!(
        a.sm.snapshot_bytes().unwrap(),
        a.sm.snapshot_bytes().unwrap()
    );
    let restored =
        CatalogStateMachine::from_snapshot_bytes(&a.sm.snapshot_bytes().unwrap()).unwrap();
    assert_eq!(
        restored.snapshot_bytes().unwrap(),
        a.sm.snapshot_bytes().unwrap()
    );
}

fn corrupt(bytes: &[u8]) -> String {
    match CatalogStateMachine::from_snapshot_bytes(bytes) {
        Err(CatalogSnapshotError::Corrupt(m)) => m,
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn corrupt_snapshots_are_errors_not_panics() {
    let bytes = populated().sm.snapshot_bytes().unwrap();
    // Every single-byte change and every truncation is caught.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x41;
        corrupt(&bad);
        corrupt(&bytes[..i]);
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(corrupt(&longer).contains("header says"));
    assert_eq!(corrupt(b"VDBCAT99\0\0\0\0\0\0\0\0\0\0\0\0"), "bad magic");

    // A payload that passes the CRC but is not a catalogue.
    for payload in [
        vec![0xffu8; 64],
        vec![0u8; 3],
        vec![0xff; 8],
        u64::MAX.to_le_bytes().repeat(4),
    ] {
        let mut framed = b"VDBCAT01".to_vec();
        framed.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        framed.extend_from_slice(&payload);
        assert!(
            corrupt(&framed).starts_with("decoding state"),
            "{payload:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.snap");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        CatalogStateMachine::read_snapshot(&path),
        Err(CatalogSnapshotError::Corrupt(_))
    ));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        CatalogStateMachine::read_snapshot(&path),
        Err(CatalogSnapshotError::Corrupt(_))
    ));
    assert!(matches!(
        CatalogStateMachine::read_snapshot(&dir.path().join("absent")),
        Err(CatalogSnapshotError::Io { .. })
    ));
}

#[test]
fn well_formed_snapshots_of_impossible_catalogues_are_refused() {
    // Two collections with one name in one database.
    let mut h = populated();
    let mut twin = h.sm.state.collections[&uuid(0x20)].clone();
    twin.id = uuid(0x21);
    h.sm.state.collections.insert(twin.id.clone(), twin);
    assert!(corrupt(&h.sm.snapshot_bytes().unwrap()).starts_with("duplicate collection name"));

    // A collection in a database that does not exist.
    let mut h = populated();
    h.sm.state
        .databases
        .remove(&("acme".to_owned(), "prod".to_owned()));
    assert!(corrupt(&h.sm.snapshot_bytes().unwrap()).contains("unknown database"));

    // A database of a tenant that does not exist.
    let mut h = populated();
    h.sm.state.tenants.remove("acme");
    assert!(corrupt(&h.sm.snapshot_bytes().unwrap()).contains("unknown tenant"));

    // A collection with a name the catalogue would never accept.
    let mut h = populated();
    h.sm.state.collections.get_mut(&uuid(0x20)).unwrap().name = "x".into();
    assert!(corrupt(&h.sm.snapshot_bytes().unwrap()).contains("Expected a name"));
}

#[test]
fn digest_is_order_independent_and_content_sensitive() {
    let build = |order: &[usize]| {
        let mut h = Harness::new();
        let commands = [
            CatalogCommand::CreateTenant {
                name: "acme".into(),
            },
            CatalogCommand::CreateTenant {
                name: "bolt".into(),
            },
            create_default(&uuid(1), "one"),
            create_default(&uuid(2), "two"),
        ];
        for &i in order {
            h.ok(commands[i].clone());
        }
        h
    };
    let a = build(&[0, 1, 2, 3]);
    let b = build(&[3, 1, 2, 0]);
    assert_eq!(a.sm.digest(), b.sm.digest());

    let mut c = build(&[0, 1, 2, 3]);
    c.ok(CatalogCommand::SetDimension {
        id: uuid(1),
        dimension: 2,
    });
    assert_ne!(c.sm.digest(), a.sm.digest());
    let mut d = build(&[0, 1, 2, 3]);
    d.ok(CatalogCommand::SetDimension {
        id: uuid(1),
        dimension: 3,
    });
    assert_ne!(c.sm.digest(), d.sm.digest());

    // Same content, different version: different digest (routers cache by it).
    let mut e = build(&[0, 1, 2, 3]);
    e.ok(create_default(&uuid(3), "three"));
    e.ok(CatalogCommand::DeleteCollection {
        tenant: DEFAULT_TENANT.into(),
        database: DEFAULT_DATABASE.into(),
        name: "three".into(),
    });
    assert_ne!(e.sm.digest(), a.sm.digest());
    let list = CatalogRead::ListCollections {
        tenant: DEFAULT_TENANT.into(),
        database: DEFAULT_DATABASE.into(),
        limit: None,
        offset: 0,
    };
    assert_eq!(e.read(list.clone()), a.read(list));
    assert_eq!(
        e.read(CatalogRead::Version),
        Ok(CatalogReadValue::Version(6))
    );
}

mod arbitrary {
    use proptest::prelude::*;

    use crate::catalog::CatalogStateMachine;

    /// A valid header (magic from a real snapshot, payload length, payload CRC) over
    /// `payload`, so decoding reaches the payload.
    fn wrap(payload: &[u8]) -> Vec<u8> {
        let good = CatalogStateMachine::new().snapshot_bytes().unwrap();
        let mut out = good[..8].to_vec();
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Arbitrary bytes, and arbitrary payloads behind a valid header and checksum:
        /// an error (or a catalogue), never a panic or a huge allocation.
        #[test]
        fn arbitrary_catalog_snapshot_bytes_never_panic(
            raw in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = CatalogStateMachine::from_snapshot_bytes(&raw);
            let _ = CatalogStateMachine::from_snapshot_bytes(&wrap(&raw));
        }
    }
}

/// A snapshot written before the HNSW ranges existed may hold a collection
/// configured above them: it is capped as it is loaded.
#[test]
fn over_range_configurations_in_a_snapshot_are_capped_when_loaded() {
    let mut h = populated();
    let id = h.sm.state.collections.keys().next().unwrap().clone();
    let c = h.sm.state.collections.get_mut(&id).unwrap();
    c.index_config.ef_search = 4611686018427387904;
    c.configuration.hnsw.index.ef_search = 4611686018427387904;
    c.configuration.spann = Some(SpannConfiguration {
        ef_search: Some(u64::MAX),
        search_nprobe: Some(3),
    });
    let restored =
        CatalogStateMachine::from_snapshot_bytes(&h.sm.snapshot_bytes().unwrap()).unwrap();
    let c = &restored.state.collections[&id];
    assert_eq!(c.index_config.ef_search, 10_000);
    assert_eq!(c.configuration.hnsw.index.ef_search, 10_000);
    assert_eq!(
        c.configuration.spann,
        Some(SpannConfiguration {
            ef_search: Some(10_000),
            search_nprobe: Some(3),
        })
    );
}
