//! Every command: what it does, each way it is refused (with Chroma's
//! message), and what it does to the catalogue version.

use common::catalog::{
    CatalogCommand, CatalogError, CatalogProposal, CatalogRead, CatalogReadValue, CatalogSuccess,
    CollectionConfiguration, ConfigurationUpdate, DatabaseModel, EmbeddingFunction, TenantModel,
    DEFAULT_DATABASE, DEFAULT_DATABASE_ID, DEFAULT_TENANT,
};
use common::record::{Metadata, MetadataValue};
use common::Space;

use super::super::{AppliedPosition, CatalogStateMachine};
use super::{config, create, create_default, ef_search, metadata, uuid, Harness};
use crate::raft::StateMachine;

fn tenant(name: &str) -> CatalogCommand {
    CatalogCommand::CreateTenant { name: name.into() }
}

fn database(tenant: &str, name: &str, id: u128) -> CatalogCommand {
    CatalogCommand::CreateDatabase {
        tenant: tenant.into(),
        name: name.into(),
        id: uuid(id),
    }
}

fn modify(id: &str) -> CatalogCommand {
    modify_with(id, None, None, None)
}

fn modify_with(
    id: &str,
    name: Option<&str>,
    metadata: Option<Metadata>,
    configuration: Option<ConfigurationUpdate>,
) -> CatalogCommand {
    CatalogCommand::ModifyCollection {
        id: id.into(),
        new_name: name.map(Into::into),
        new_metadata: metadata,
        new_configuration: configuration,
    }
}

fn set_dimension(id: &str, dimension: u32) -> CatalogCommand {
    CatalogCommand::SetDimension {
        id: id.into(),
        dimension,
    }
}

fn delete(name: &str) -> CatalogCommand {
    CatalogCommand::DeleteCollection {
        tenant: DEFAULT_TENANT.into(),
        database: DEFAULT_DATABASE.into(),
        name: name.into(),
    }
}

fn invalid(msg: &str) -> CatalogError {
    CatalogError::InvalidArgument(msg.into())
}

#[test]
fn bootstrap_has_the_default_tenant_and_database() {
    let h = Harness::new();
    assert_eq!(h.version(), 0);
    assert_eq!(
        h.read(CatalogRead::GetTenant {
            name: DEFAULT_TENANT.into()
        }),
        Ok(CatalogReadValue::Tenant(TenantModel {
            name: DEFAULT_TENANT.into()
        }))
    );
    assert_eq!(
        h.read(CatalogRead::GetDatabase {
            tenant: DEFAULT_TENANT.into(),
            name: DEFAULT_DATABASE.into()
        }),
        Ok(CatalogReadValue::Database(DatabaseModel {
            id: DEFAULT_DATABASE_ID.into(),
            name: DEFAULT_DATABASE.into(),
            tenant: DEFAULT_TENANT.into()
        }))
    );
    assert_eq!(h.sm.applied(), AppliedPosition::default());
}

#[test]
fn create_tenant() {
    let mut h = Harness::new();
    assert_eq!(
        h.ok(tenant("acme")),
        CatalogSuccess::TenantCreated(TenantModel {
            name: "acme".into()
        })
    );
    assert_eq!(h.version(), 1);
    assert_eq!(
        h.err(tenant("acme")),
        CatalogError::AlreadyExists("Tenant [acme] already exists".into())
    );
    assert_eq!(
        h.err(tenant(DEFAULT_TENANT)),
        CatalogError::tenant_exists(DEFAULT_TENANT)
    );
    assert_eq!(
        h.err(tenant("ab")),
        invalid("Validation error: name: Tenant name must be at least 3 characters long. Got ab")
    );
    assert_eq!(h.version(), 1, "refused commands do not bump the version");
}

#[test]
fn create_database() {
    let mut h = Harness::new();
    h.ok(tenant("acme"));
    assert_eq!(
        h.ok(database("acme", "prod", 7)),
        CatalogSuccess::DatabaseCreated(DatabaseModel {
            id: uuid(7),
            name: "prod".into(),
            tenant: "acme".into()
        })
    );
    assert_eq!(h.version(), 2);
    // The same name under another tenant is another database.
    h.ok(database(DEFAULT_TENANT, "prod", 8));

    assert_eq!(
        h.err(database("acme", "prod", 9)),
        CatalogError::AlreadyExists("Database [prod] already exists".into())
    );
    assert_eq!(
        h.err(database("nobody", "prod", 9)),
        CatalogError::NotFound("Tenant [nobody] not found".into())
    );
    assert_eq!(
        h.err(database("acme", "pr", 9)),
        invalid("Validation error: database_name: Database name must be at least 3 characters long. Got pr")
    );
    assert_eq!(
        h.err(database("acme", "other", 7)),
        CatalogError::AlreadyExists(format!("Database id [{}] already exists", uuid(7)))
    );
    let bad_id = CatalogCommand::CreateDatabase {
        tenant: "acme".into(),
        name: "other".into(),
        id: "not-a-uuid".into(),
    };
    assert_eq!(h.err(bad_id), invalid("Invalid database id [not-a-uuid]"));
    let upper = CatalogCommand::CreateDatabase {
        tenant: "acme".into(),
        name: "other".into(),
        id: uuid(0xab).to_uppercase(),
    };
    assert!(
        matches!(h.err(upper), CatalogError::InvalidArgument(_)),
        "ids are stored in canonical form only"
    );
    assert_eq!(h.version(), 3);
}

#[test]
fn delete_database_cascades_to_its_collections() {
    let mut h = Harness::new();
    h.ok(database(DEFAULT_TENANT, "first", 1));
    h.ok(database(DEFAULT_TENANT, "second", 2));
    let b = h.created(create(DEFAULT_TENANT, "first", &uuid(0xb), "bbb"));
    let a = h.created(create(DEFAULT_TENANT, "first", &uuid(0xa), "aaa"));
    let kept = h.created(create(DEFAULT_TENANT, "second", &uuid(0xc), "aaa"));
    let version = h.version();

    let delete = CatalogCommand::DeleteDatabase {
        tenant: DEFAULT_TENANT.into(),
        name: "first".into(),
    };
    assert_eq!(
        h.ok(delete.clone()),
        CatalogSuccess::DatabaseDeleted {
            database: DatabaseModel {
                id: uuid(1),
                name: "first".into(),
                tenant: DEFAULT_TENANT.into()
            },
            dropped: vec![a.clone(), b.clone()],
        }
    );
    assert_eq!(h.version(), version + 1);
    assert_eq!(
        h.read(CatalogRead::GetDatabase {
            tenant: DEFAULT_TENANT.into(),
            name: "first".into()
        }),
        Err(CatalogError::NotFound(
            "Database [first] not found. Are you sure it exists?".into()
        ))
    );
    assert_eq!(
        h.read(CatalogRead::GetCollectionById { id: a.id.clone() }),
        Err(CatalogError::collection_not_found(&a.id))
    );
    assert_eq!(h.names(DEFAULT_TENANT, "first"), Vec::<String>::new());
    assert_eq!(h.names(DEFAULT_TENANT, "second"), vec!["aaa"]);
    assert_eq!(
        h.read(CatalogRead::GetCollectionById {
            id: kept.id.clone()
        }),
        Ok(CatalogReadValue::Collection(Box::new(kept)))
    );

    assert_eq!(
        h.err(delete),
        CatalogError::NotFound("Database [first] not found".into())
    );
    // A database of that name can be created again, empty.
    h.ok(database(DEFAULT_TENANT, "first", 3));
    assert_eq!(h.names(DEFAULT_TENANT, "first"), Vec::<String>::new());
    // The default database can be deleted too (Chroma allows it).
    h.ok(CatalogCommand::DeleteDatabase {
        tenant: DEFAULT_TENANT.into(),
        name: DEFAULT_DATABASE.into(),
    });
}

#[test]
fn create_collection() {
    let mut h = Harness::new();
    let mut command = create_default(&uuid(1), "docs");
    if let CatalogCommand::CreateCollection {
        metadata,
        configuration,
        ..
    } = &mut command
    {
        *metadata = Some(metadata_of("hnsw:space", "cosine"));
        configuration.hnsw.index.space = Space::Cosine;
    }
    let c = h.created(command);
    assert_eq!(c.id, uuid(1));
    assert_eq!(
        (c.name.as_str(), c.tenant.as_str(), c.database.as_str()),
        ("docs", DEFAULT_TENANT, DEFAULT_DATABASE)
    );
    assert_eq!(c.metadata, Some(metadata_of("hnsw:space", "cosine")));
    let mut expected = config();
    expected.hnsw.index.space = Space::Cosine;
    assert_eq!(c.configuration, expected);
    assert_eq!(c.index_config, expected.hnsw.index);
    assert_eq!(
        (c.dimension, c.version, c.shards.clone()),
        (None, 0, vec![10, 11])
    );
    assert_eq!(h.version(), 1);
    assert_eq!(h.collection("docs"), Ok(c.clone()));

    assert_eq!(
        h.err(create_default(&uuid(2), "docs")),
        CatalogError::AlreadyExists("Collection [docs] already exists".into())
    );
    // The same name in another database is another collection.
    h.ok(database(DEFAULT_TENANT, "other", 5));
    h.created(create(DEFAULT_TENANT, "other", &uuid(2), "docs"));
    assert_eq!(
        h.err(create(DEFAULT_TENANT, "nowhere", &uuid(3), "docs")),
        invalid("Database [nowhere] does not exist")
    );
    assert_eq!(
        h.err(create("nobody", DEFAULT_DATABASE, &uuid(3), "docs")),
        invalid("Database [default_database] does not exist")
    );
    assert_eq!(
        h.err(create_default(&uuid(1), "fresh")),
        CatalogError::AlreadyExists(format!("Collection id [{}] already exists", uuid(1)))
    );
}

fn metadata_of(key: &str, value: &str) -> Metadata {
    [(key.to_owned(), MetadataValue::Str(value.to_owned()))].into()
}

#[test]
fn create_collection_refuses_bad_input_whatever_the_state() {
    let mut h = Harness::new();
    let name_rule = |n: &str| {
        invalid(&format!("Validation error: name: Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: {n}"))
    };
    for bad in ["ab", "-abc", "abc.", "a b c", "ça va"] {
        assert_eq!(h.err(create_default(&uuid(1), bad)), name_rule(bad));
    }
    assert_eq!(
        h.err(create_default(&uuid(1), "a..b")),
        invalid("Validation error: name: Expected a name that does not contains two consecutive periods (..). Got a..b")
    );
    assert_eq!(
        h.err(create_default(&uuid(1), "10.0.0.1")),
        invalid(
            "Validation error: name: Expected a name that is not a valid ip address. Got 10.0.0.1"
        )
    );

    let with = |f: &dyn Fn(&mut CatalogCommand)| {
        let mut c = create_default(&uuid(1), "docs");
        f(&mut c);
        c
    };
    let set_metadata = |m: Metadata| {
        with(&move |c| {
            if let CatalogCommand::CreateCollection { metadata, .. } = c {
                *metadata = Some(m.clone());
            }
        })
    };
    assert_eq!(
        h.err(set_metadata(Metadata::new())),
        invalid("Validation error: metadata: Metadata cannot be empty")
    );
    assert!(matches!(
        h.err(set_metadata(metadata(&[("#doc", 1)]))),
        CatalogError::InvalidArgument(_)
    ));
    let nan: Metadata = [("x".to_owned(), MetadataValue::Float(f64::NAN))].into();
    assert!(matches!(
        h.err(set_metadata(nan)),
        CatalogError::InvalidArgument(_)
    ));

    let bad_id = with(&|c| {
        if let CatalogCommand::CreateCollection { id, .. } = c {
            *id = "1234".into();
        }
    });
    assert_eq!(h.err(bad_id), invalid("Invalid collection id [1234]"));
    let bad_config = with(&|c| {
        if let CatalogCommand::CreateCollection { configuration, .. } = c {
            configuration.embedding_function = Some(EmbeddingFunction("[1]".into()));
        }
    });
    assert_eq!(
        h.err(bad_config),
        invalid("Could not parse config: embedding_function must be an object, got [1]")
    );
    let bad_index = with(&|c| {
        if let CatalogCommand::CreateCollection { configuration, .. } = c {
            configuration.hnsw.index.max_neighbors = 0;
        }
    });
    assert_eq!(
        h.err(bad_index),
        invalid("Invalid HNSW parameters: max_neighbors must be at least 1, got 0")
    );
    let no_shards = with(&|c| {
        if let CatalogCommand::CreateCollection { shards, .. } = c {
            shards.clear();
        }
    });
    assert_eq!(
        h.err(no_shards),
        invalid("A collection needs at least one shard")
    );
    let same_shard = with(&|c| {
        if let CatalogCommand::CreateCollection { shards, .. } = c {
            *shards = vec![4, 4];
        }
    });
    assert_eq!(
        h.err(same_shard),
        invalid("Shard groups of a collection must be distinct, got [4, 4]")
    );
    assert_eq!(h.version(), 0);
}

#[test]
fn get_or_create_returns_the_existing_collection_unchanged() {
    let mut h = Harness::new();
    let mut first = create_default(&uuid(1), "docs");
    if let CatalogCommand::CreateCollection { metadata, .. } = &mut first {
        *metadata = Some(super::metadata(&[("a", 1)]));
    }
    let original = h.created(first);
    let version = h.version();

    // Chroma's sqlite sysdb returns the stored collection as it is: the new
    // id, metadata, configuration and shards of the command are ignored.
    let mut again = create_default(&uuid(2), "docs");
    if let CatalogCommand::CreateCollection {
        metadata,
        configuration,
        shards,
        get_or_create,
        ..
    } = &mut again
    {
        *metadata = Some(super::metadata(&[("b", 2)]));
        *configuration = CollectionConfiguration::new(Default::default());
        *shards = vec![99];
        *get_or_create = true;
    }
    assert_eq!(
        h.ok(again.clone()),
        CatalogSuccess::CollectionCreated {
            collection: original.clone(),
            created: false
        }
    );
    assert_eq!(h.version(), version, "nothing changed");
    assert_eq!(h.collection("docs"), Ok(original));

    // Request validation still comes first: empty metadata is refused even
    // though the collection exists.
    if let CatalogCommand::CreateCollection { metadata, .. } = &mut again {
        *metadata = Some(Metadata::new());
    }
    assert_eq!(
        h.err(again),
        invalid("Validation error: metadata: Metadata cannot be empty")
    );

    // A missing collection is created.
    let mut fresh = create_default(&uuid(3), "fresh");
    if let CatalogCommand::CreateCollection { get_or_create, .. } = &mut fresh {
        *get_or_create = true;
    }
    assert!(matches!(
        h.ok(fresh),
        CatalogSuccess::CollectionCreated { created: true, .. }
    ));
}

#[test]
fn modify_collection_renames_replaces_metadata_and_merges_configuration() {
    let mut h = Harness::new();
    let c = h.created(create_default(&uuid(1), "docs"));
    h.created(create_default(&uuid(2), "taken"));
    let version = h.version();

    let renamed = match h.ok(modify_with(&c.id, Some("papers"), None, None)) {
        CatalogSuccess::CollectionModified(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!((renamed.name.as_str(), renamed.version), ("papers", 1));
    assert_eq!(
        h.collection("docs"),
        Err(CatalogError::NotFound(
            "Collection [docs] does not exist".into()
        ))
    );
    assert_eq!(h.collection("papers"), Ok(renamed));
    assert_eq!(h.version(), version + 1);

    // Metadata is replaced, not merged (Chroma deletes then inserts).
    h.ok(modify_with(
        &c.id,
        None,
        Some(metadata(&[("a", 1), ("b", 2)])),
        None,
    ));
    h.ok(modify_with(&c.id, None, Some(metadata(&[("c", 3)])), None));
    assert_eq!(
        h.collection("papers").unwrap().metadata,
        Some(metadata(&[("c", 3)]))
    );

    // Configuration updates merge into the stored configuration and the index settings.
    let m = h.collection("papers").unwrap();
    h.ok(modify_with(&c.id, None, None, Some(ef_search(321))));
    let after = h.collection("papers").unwrap();
    assert_eq!(after.index_config.ef_search, 321);
    assert_eq!(
        after.index_config.ef_construction,
        m.index_config.ef_construction
    );
    assert_eq!(after.configuration.hnsw.index.ef_search, 321);
    assert_eq!(after.configuration.hnsw.index.space, Space::L2);
    assert_eq!(after.version, 4);

    // Renaming to its own name is fine; to another collection's is not.
    h.ok(modify_with(&c.id, Some("papers"), None, None));
    assert_eq!(
        h.err(modify_with(&c.id, Some("taken"), None, None)),
        CatalogError::AlreadyExists("Collection [taken] already exists".into())
    );
}

#[test]
fn modify_collection_refusals() {
    let mut h = Harness::new();
    let c = h.created(create_default(&uuid(1), "docs"));
    let missing = uuid(9);
    assert_eq!(
        h.err(modify(&missing)),
        CatalogError::NotFound(format!("Collection [{missing}] does not exist"))
    );
    assert_eq!(
        h.err(modify_with(&c.id, Some("x"), None, None)),
        invalid("Validation error: new_name: Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: x")
    );
    assert_eq!(
        h.err(modify_with(&c.id, None, Some(Metadata::new()), None)),
        invalid("Validation error: new_metadata: Metadata cannot be empty")
    );
    assert_eq!(
        h.err(modify_with(&c.id, None, None, Some(ef_search(0)))),
        invalid("Could not parse config: hnsw.ef_search must be an integer of at least 1, got 0")
    );
    // A valid rename together with a refused configuration changes nothing.
    h.err(modify_with(
        &c.id,
        Some("renamed"),
        None,
        Some(ef_search(0)),
    ));
    assert_eq!(h.collection("docs"), Ok(c.clone()));

    // Nothing to change: success, no version bump.
    let version = h.version();
    assert_eq!(h.ok(modify(&c.id)), CatalogSuccess::CollectionModified(c));
    assert_eq!(h.version(), version);
}

#[test]
fn delete_collection() {
    let mut h = Harness::new();
    let c = h.created(create_default(&uuid(1), "docs"));
    let version = h.version();
    assert_eq!(
        h.ok(delete("docs")),
        CatalogSuccess::CollectionDeleted(c.clone())
    );
    assert_eq!(h.version(), version + 1);
    assert_eq!(
        h.collection("docs"),
        Err(CatalogError::collection_not_found("docs"))
    );
    assert_eq!(
        h.read(CatalogRead::GetCollectionById { id: c.id.clone() }),
        Err(CatalogError::collection_not_found(&c.id))
    );
    assert_eq!(
        h.err(delete("docs")),
        CatalogError::NotFound("Collection [docs] does not exist".into())
    );
    // The name is free again.
    h.created(create_default(&uuid(2), "docs"));
}

#[test]
fn set_dimension_is_compare_and_set() {
    let mut h = Harness::new();
    let c = h.created(create_default(&uuid(1), "docs"));
    let version = h.version();

    let set = match h.ok(set_dimension(&c.id, 3)) {
        CatalogSuccess::DimensionSet(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!((set.dimension, set.version), (Some(3), 1));
    assert_eq!(h.version(), version + 1);
    assert_eq!(h.collection("docs"), Ok(set.clone()));

    // Equal: success, nothing changes.
    assert_eq!(
        h.ok(set_dimension(&c.id, 3)),
        CatalogSuccess::DimensionSet(set)
    );
    assert_eq!(h.version(), version + 1);

    // Different: refused, naming both.
    assert_eq!(
        h.err(set_dimension(&c.id, 2)),
        invalid("Collection expecting embedding with dimension of 3, got 2")
    );
    assert_eq!(
        h.err(set_dimension(&c.id, 0)),
        invalid("Embedding dimension must be at least 1, got 0")
    );
    let missing = uuid(5);
    assert_eq!(
        h.err(set_dimension(&missing, 3)),
        CatalogError::collection_not_found(&missing)
    );
}

#[test]
fn reset_restores_the_bootstrap_catalogue() {
    let mut h = Harness::new();
    h.ok(tenant("acme"));
    h.ok(database("acme", "prod", 1));
    let a = h.created(create("acme", "prod", &uuid(0xa), "aaa"));
    let b = h.created(create_default(&uuid(0xb), "bbb"));
    let version = h.version();

    assert_eq!(
        h.ok(CatalogCommand::Reset),
        CatalogSuccess::Reset {
            dropped: vec![a, b]
        }
    );
    assert_eq!(h.version(), version + 1, "the version never goes back");
    assert_eq!(h.sm.state, {
        let mut fresh = CatalogStateMachine::new().state;
        fresh.version = version + 1;
        fresh
    });
    assert_eq!(
        h.read(CatalogRead::GetTenant {
            name: "acme".into()
        }),
        Err(CatalogError::tenant_not_found("acme"))
    );
    assert!(h
        .read(CatalogRead::GetDatabase {
            tenant: DEFAULT_TENANT.into(),
            name: DEFAULT_DATABASE.into()
        })
        .is_ok());
    assert_eq!(
        h.names(DEFAULT_TENANT, DEFAULT_DATABASE),
        Vec::<String>::new()
    );
    // And it is usable at once.
    h.created(create_default(&uuid(0xb), "bbb"));
    // Reset of an empty catalogue still counts as a change.
    h.ok(CatalogCommand::Reset);
    h.ok(CatalogCommand::Reset);
    assert_eq!(h.version(), version + 4);
}

#[test]
fn a_retried_request_applies_once_and_gets_the_same_outcome() {
    let mut h = Harness::new();
    let first = h.apply_with_id(42, create_default(&uuid(1), "docs"));
    let version = h.version();
    // The retry (after a leader change, say) lands at a later index.
    let retry = h.apply_with_id(42, create_default(&uuid(1), "docs"));
    assert_eq!(
        retry, first,
        "not 'already exists': the first attempt's reply"
    );
    assert_eq!(h.version(), version);
    assert_eq!(h.names(DEFAULT_TENANT, DEFAULT_DATABASE), vec!["docs"]);

    // A refusal is remembered too, even after the state changed.
    let refused = h.apply_with_id(43, delete("later"));
    assert!(refused.is_err());
    h.ok(create_default(&uuid(2), "later"));
    assert_eq!(h.apply_with_id(43, delete("later")), refused);
    assert_eq!(
        h.names(DEFAULT_TENANT, DEFAULT_DATABASE),
        vec!["docs", "later"]
    );

    // A different request id is a different request.
    assert_eq!(
        h.apply_with_id(44, create_default(&uuid(1), "docs")),
        Err(CatalogError::collection_exists("docs"))
    );
}

#[test]
fn the_request_window_forgets_the_oldest_ids() {
    let mut h = Harness {
        sm: CatalogStateMachine::with_dedup_window(2),
        ..Harness::new()
    };
    for (request_id, name) in [(1, "one"), (2, "two"), (3, "three")] {
        h.apply_with_id(request_id, tenant(name)).unwrap();
    }
    assert_eq!(h.sm.dedup.len(), 2);
    // Request 1 is forgotten: applied again, it is a new request.
    assert_eq!(
        h.apply_with_id(1, tenant("one")),
        Err(CatalogError::tenant_exists("one"))
    );
    // Request 3 is remembered.
    assert_eq!(
        h.apply_with_id(3, tenant("three")),
        Ok(CatalogSuccess::TenantCreated(TenantModel {
            name: "three".into()
        }))
    );
}

#[test]
fn applied_position_follows_the_log() {
    let mut sm = CatalogStateMachine::new();
    let p = CatalogProposal {
        request_id: 1,
        deadline_ms: 0,
        command: tenant("acme"),
    };
    sm.apply(AppliedPosition { index: 5, term: 2 }, 0, &p)
        .unwrap();
    assert_eq!(sm.applied(), AppliedPosition { index: 5, term: 2 });
    sm.advance(AppliedPosition { index: 6, term: 3 });
    assert_eq!(sm.applied(), AppliedPosition { index: 6, term: 3 });
    // A duplicate still advances the position.
    sm.apply(AppliedPosition { index: 7, term: 3 }, 0, &p)
        .unwrap();
    assert_eq!(sm.applied(), AppliedPosition { index: 7, term: 3 });
}

/// HNSW parameters above their ranges (`common::limits`) can sit in logs
/// written before the ranges existed, or come from a command that never went
/// through a router: they are capped where applied, the same on every
/// replica, so the index never sees them.
#[test]
fn hnsw_parameters_above_their_ranges_are_capped_where_applied() {
    let mut h = Harness::new();
    let mut command = create_default(&uuid(0x70), "poison");
    if let CatalogCommand::CreateCollection { configuration, .. } = &mut command {
        configuration.hnsw.index.ef_construction = 4611686018427387904;
        configuration.hnsw.index.max_neighbors = usize::MAX;
    }
    let c = h.created(command);
    assert_eq!(c.index_config.ef_construction, 10_000);
    assert_eq!(c.index_config.max_neighbors, 1024);
    assert_eq!(c.configuration.hnsw.index, c.index_config);

    h.ok(modify_with(
        &c.id,
        None,
        None,
        Some(ef_search(4611686018427387904)),
    ));
    let after = h.collection("poison").unwrap();
    assert_eq!(after.index_config.ef_search, 10_000);
    assert_eq!(after.configuration.hnsw.index.ef_search, 10_000);

    // Below the range is still refused, as it always was.
    assert_eq!(
        h.err(modify_with(&c.id, None, None, Some(ef_search(0)))),
        invalid("Could not parse config: hnsw.ef_search must be an integer of at least 1, got 0")
    );
}
