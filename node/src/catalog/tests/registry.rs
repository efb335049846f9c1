//! The cluster map in the catalogue: registrations, node states and group replicas are
//! applied in log order, refused ones change nothing, and neither they nor a reset touch
//! what the other side owns (the catalogue version / the map).

use common::catalog::{CatalogCommand, CatalogRead, CatalogReadValue, CatalogSuccess};
use common::registry::{ClusterMap, NodeState, Registration};

use super::{create_default, uuid, Harness};

fn map(h: &Harness) -> ClusterMap {
    match h.read(CatalogRead::ClusterMap) {
        Ok(CatalogReadValue::ClusterMap(m)) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

fn register(id: u64, incarnation: u64) -> CatalogCommand {
    CatalogCommand::RegisterNode {
        id,
        addr: format!("127.0.0.1:{}", 9000 + id),
        incarnation,
    }
}

#[test]
fn registrations_change_the_map_and_not_the_catalogue_version() {
    let mut h = Harness::new();
    let version = h.version();
    assert_eq!(
        h.ok(register(1, 11)),
        CatalogSuccess::NodeRegistered(Registration::New)
    );
    assert_eq!(
        h.ok(register(1, 12)),
        CatalogSuccess::NodeRegistered(Registration::NewIncarnation { previous: 11 })
    );
    h.ok(CatalogCommand::SetGroupReplicas {
        group: 3,
        replicas: vec![2, 1],
    });
    h.ok(CatalogCommand::SetNodeState {
        id: 1,
        state: NodeState::Draining,
    });
    assert_eq!(h.version(), version, "routers' catalogue caches stay valid");
    let m = map(&h);
    assert_eq!(m.nodes[&1].incarnation, 12);
    assert_eq!(m.nodes[&1].state, NodeState::Draining);
    assert_eq!(m.groups[&3], vec![1, 2]);
}

#[test]
fn refused_changes_leave_the_map_as_it_was() {
    let mut h = Harness::new();
    h.ok(register(1, 11));
    h.err(CatalogCommand::RegisterNode {
        id: 2,
        addr: "no port".into(),
        incarnation: 1,
    });
    h.err(CatalogCommand::SetNodeState {
        id: 9,
        state: NodeState::Draining,
    });
    h.ok(CatalogCommand::SetNodeState {
        id: 1,
        state: NodeState::Removed,
    });
    h.err(register(1, 13));
    assert_eq!(map(&h).nodes.len(), 1);
}

#[test]
fn a_reset_keeps_the_cluster_map() {
    let mut h = Harness::new();
    h.ok(register(1, 11));
    h.created(create_default(&uuid(5), "col"));
    let before = map(&h);
    h.ok(CatalogCommand::Reset);
    assert_eq!(map(&h), before);
    assert!(h.collection("col").is_err());
}
