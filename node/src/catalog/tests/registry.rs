//! The cluster map in the catalogue: registrations, node states and group replicas are
//! applied in log order, refused ones change nothing, and neither they nor a reset touch
//! what the other side owns (the catalogue version / the map).

use common::catalog::{
    CatalogCommand, CatalogError, CatalogRead, CatalogReadValue, CatalogSuccess,
};
use common::registry::{ClusterMap, NodeState, Registration};

use super::{create_default, uuid, Harness};
use crate::catalog::state_machine::CatalogStateMachine;

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

#[test]
fn a_group_created_at_run_time_is_in_the_map_and_survives_a_snapshot() {
    let mut h = Harness::new();
    for id in 1..=3 {
        h.ok(register(id, 10 + id));
    }
    let version = h.version();
    let created = h.ok(CatalogCommand::CreateShardGroup {
        first_free: 4,
        voters: vec![3, 1, 2],
        leader: 2,
    });
    let CatalogSuccess::ShardGroupCreated { group, .. } = created else {
        panic!("unexpected {created:?}");
    };
    assert_eq!(group, 4);
    h.err(CatalogCommand::ShardGroupReady { group: 9 });
    h.err(CatalogCommand::CreateShardGroup {
        first_free: 4,
        voters: vec![1, 7],
        leader: 1,
    });
    h.ok(CatalogCommand::ShardGroupReady { group });
    h.ok(CatalogCommand::SetPlacementPaused { paused: true });
    assert_eq!(h.version(), version, "routers' catalogue caches stay valid");
    let m = map(&h);
    assert!(m.placement_paused);
    assert_eq!(m.shard_pool(1..=3), vec![1, 2, 3, 4]);
    assert_eq!(m.born[&4].voters, vec![(1, 11), (2, 12), (3, 13)]);

    let restored =
        CatalogStateMachine::from_snapshot_bytes(&h.sm.snapshot_bytes().unwrap()).unwrap();
    assert_eq!(restored.state.cluster_map(), &m);
}

/// A collection on shard groups `shards`.
fn create_on(id: &str, name: &str, shards: Vec<u64>) -> CatalogCommand {
    let mut command = create_default(id, name);
    if let CatalogCommand::CreateCollection { shards: s, .. } = &mut command {
        *s = shards;
    }
    command
}

#[test]
fn a_group_is_retired_only_while_no_collection_uses_it_and_then_no_collection_may() {
    let mut h = Harness::new();
    for id in 1..=3 {
        h.ok(register(id, 10 + id));
    }
    for group in [4, 5] {
        h.ok(CatalogCommand::CreateShardGroup {
            first_free: 4,
            voters: vec![1, 2, 3],
            leader: 1,
        });
        h.ok(CatalogCommand::ShardGroupReady { group });
    }
    h.ok(create_on(&uuid(1), "on-four", vec![1, 4]));
    h.err(CatalogCommand::RetireShardGroup { group: 4 });
    h.err(CatalogCommand::RetireShardGroup { group: 2 });
    assert_eq!(
        h.read(CatalogRead::ShardGroupsInUse),
        Ok(CatalogReadValue::Groups(vec![1, 4]))
    );
    h.ok(CatalogCommand::RetireShardGroup { group: 5 });
    assert_eq!(
        h.apply(create_on(&uuid(2), "on-five", vec![2, 5])),
        Err(CatalogError::ShardGroupRetired(5)),
        "a router that did not see the retirement yet is told to retry"
    );
    h.ok(CatalogCommand::DeleteCollection {
        tenant: common::catalog::DEFAULT_TENANT.into(),
        database: common::catalog::DEFAULT_DATABASE.into(),
        name: "on-four".into(),
    });
    h.ok(CatalogCommand::RetireShardGroup { group: 4 });
    let m = map(&h);
    assert_eq!(m.shard_pool(1..=3), vec![1, 2, 3]);
    assert_eq!(m.retired, [4, 5].into());
    let restored =
        CatalogStateMachine::from_snapshot_bytes(&h.sm.snapshot_bytes().unwrap()).unwrap();
    assert_eq!(restored.state.cluster_map(), &m);
}
