//! Random command sequences (valid and invalid, with repeated request ids)
//! applied to two state machines, one of them snapshotted to a file and
//! restored midway: every reply, every read and the digest must agree, and
//! the catalogue's invariants hold after every step. `PROPTEST_CASES` sets
//! the number of sequences (default 256).

use std::collections::BTreeSet;

use common::catalog::{CatalogCommand, CatalogProposal, CatalogRead};
use common::record::Metadata;
use proptest::prelude::*;

use super::super::{AppliedPosition, CatalogStateMachine};
use super::{config, ef_search, metadata, uuid};
use crate::raft::StateMachine;

const TENANTS: &[&str] = &["default_tenant", "acme", "ab"];
const DATABASES: &[&str] = &["default_database", "prod", "xy"];
const NAMES: &[&str] = &["alpha", "beta", "gamma", "a..b", "-no"];
/// Collection and database ids: 0..6 are UUIDs, 6 is not.
const IDS: u8 = 7;

fn id(n: u8) -> String {
    if n < 6 {
        uuid(n as u128 + 1)
    } else {
        "not-a-uuid".into()
    }
}

/// `Some(0)` is the empty metadata Chroma refuses.
fn meta(m: Option<i64>) -> Option<Metadata> {
    m.map(|v| {
        if v == 0 {
            Metadata::new()
        } else {
            metadata(&[("k", v)])
        }
    })
}

/// Indexes into TENANTS / DATABASES / NAMES, biased toward the valid ones so
/// most sequences build a catalogue worth snapshotting.
fn biased(len: usize) -> impl Strategy<Value = usize> + Clone {
    prop_oneof![6 => Just(0), 3 => 1..len - 1, 1 => Just(len - 1)]
}

fn command() -> impl Strategy<Value = CatalogCommand> {
    let t = biased(TENANTS.len());
    let d = biased(DATABASES.len());
    let n = prop_oneof![4 => 0..3usize, 1 => 3..NAMES.len()];
    prop_oneof![
        4 => t.clone().prop_map(|t| CatalogCommand::CreateTenant { name: TENANTS[t].into() }),
        6 => (t.clone(), d.clone(), 0..IDS).prop_map(|(t, d, i)| CatalogCommand::CreateDatabase {
            tenant: TENANTS[t].into(),
            name: DATABASES[d].into(),
            id: id(i),
        }),
        2 => (t.clone(), d.clone()).prop_map(|(t, d)| CatalogCommand::DeleteDatabase {
            tenant: TENANTS[t].into(),
            name: DATABASES[d].into(),
        }),
        16 => (t.clone(), d.clone(), 0..IDS, n.clone(), proptest::option::of(0..3i64), any::<bool>(), 1..4u64)
            .prop_map(|(t, d, i, n, m, get_or_create, shards)| CatalogCommand::CreateCollection {
                tenant: TENANTS[t].into(),
                database: DATABASES[d].into(),
                id: id(i),
                name: NAMES[n].into(),
                metadata: meta(m),
                configuration: config(),
                shards: (0..shards).collect(),
                get_or_create,
            }),
        8 => (0..IDS, proptest::option::of(n.clone()), proptest::option::of(0..3i64), proptest::option::of(0..3u64))
            .prop_map(|(i, n, m, ef)| CatalogCommand::ModifyCollection {
                id: id(i),
                new_name: n.map(|n| NAMES[n].into()),
                new_metadata: meta(m),
                new_configuration: ef.map(ef_search),
            }),
        4 => (t, d, n.clone()).prop_map(|(t, d, n)| CatalogCommand::DeleteCollection {
            tenant: TENANTS[t].into(),
            database: DATABASES[d].into(),
            name: NAMES[n].into(),
        }),
        8 => (0..IDS, 0..4u32).prop_map(|(i, dimension)| CatalogCommand::SetDimension { id: id(i), dimension }),
        1 => Just(CatalogCommand::Reset),
    ]
}

fn all_reads() -> Vec<CatalogRead> {
    let mut reads = vec![CatalogRead::Version];
    for t in TENANTS {
        reads.push(CatalogRead::GetTenant { name: (*t).into() });
        reads.push(CatalogRead::ListDatabases {
            tenant: (*t).into(),
            limit: None,
            offset: 0,
        });
        reads.push(CatalogRead::ListDatabases {
            tenant: (*t).into(),
            limit: Some(1),
            offset: 1,
        });
        for d in DATABASES {
            reads.push(CatalogRead::GetDatabase {
                tenant: (*t).into(),
                name: (*d).into(),
            });
            reads.push(CatalogRead::ListCollections {
                tenant: (*t).into(),
                database: (*d).into(),
                limit: None,
                offset: 0,
            });
            reads.push(CatalogRead::ListCollections {
                tenant: (*t).into(),
                database: (*d).into(),
                limit: Some(2),
                offset: 1,
            });
            reads.push(CatalogRead::CountCollections {
                tenant: (*t).into(),
                database: (*d).into(),
            });
            for n in NAMES {
                reads.push(CatalogRead::GetCollectionByName {
                    tenant: (*t).into(),
                    database: (*d).into(),
                    name: (*n).into(),
                });
            }
        }
    }
    for i in 0..IDS {
        reads.push(CatalogRead::GetCollectionById { id: id(i) });
    }
    reads
}

/// What the catalogue must always satisfy.
fn check_invariants(sm: &CatalogStateMachine) -> Result<(), TestCaseError> {
    let s = &sm.state;
    prop_assert_eq!(s.names.len(), s.collections.len());
    for (key, id) in &s.names {
        let c = &s.collections[id];
        prop_assert_eq!(key, &(c.tenant.clone(), c.database.clone(), c.name.clone()));
    }
    for c in s.collections.values() {
        prop_assert!(s
            .databases
            .contains_key(&(c.tenant.clone(), c.database.clone())));
        prop_assert!(common::catalog::validate_collection_name("name", &c.name).is_ok());
        prop_assert!(c.metadata.as_ref().is_none_or(|m| !m.is_empty()));
    }
    let ids: BTreeSet<&String> = s.databases.values().collect();
    prop_assert_eq!(ids.len(), s.databases.len());
    for (tenant, name) in s.databases.keys() {
        prop_assert!(s.tenants.contains(tenant));
        prop_assert!(name.chars().count() >= 3);
    }
    Ok(())
}

proptest! {
    #[test]
    fn replicas_converge_across_a_snapshot_restore(
        steps in proptest::collection::vec((0u128..200, command()), 0..60),
        split in any::<proptest::sample::Index>(),
    ) {
        let proposals: Vec<CatalogProposal> =
            steps.into_iter().map(|(request_id, command)| CatalogProposal { request_id, deadline_ms: 0, command }).collect();
        let split = split.index(proposals.len() + 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.snap");

        let mut a = CatalogStateMachine::new();
        let mut b = CatalogStateMachine::new();
        let mut version = 0;
        for (i, proposal) in proposals.iter().enumerate() {
            if i == split {
                b.write_snapshot(&path).unwrap();
                b = CatalogStateMachine::read_snapshot(&path).unwrap();
                prop_assert_eq!(&a, &b);
            }
            let index = i as u64 + 1;
            let at = AppliedPosition { index, term: 1 };
            let out_a = a.apply(at, 0, proposal);
            let out_b = b.apply(at, 0, proposal);
            prop_assert_eq!(&out_a, &out_b, "step {}: {:?}", i, proposal);
            check_invariants(&a)?;
            prop_assert!(a.version() >= version, "the version never goes back");
            version = a.version();
        }
        if split == proposals.len() {
            b = CatalogStateMachine::from_snapshot_bytes(&b.snapshot_bytes().unwrap()).unwrap();
        }
        prop_assert_eq!(a.digest(), b.digest());
        for read in all_reads() {
            prop_assert_eq!(a.read(&read), b.read(&read), "{:?}", read);
        }
        prop_assert_eq!(&a, &b);
    }
}
