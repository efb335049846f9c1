//! Every read, its order and paging, and its not-found message.

use common::catalog::{
    CatalogCommand, CatalogError, CatalogRead, CatalogReadValue, DatabaseModel, TenantModel,
    DEFAULT_DATABASE, DEFAULT_TENANT,
};

use super::{create, create_default, uuid, Harness};

fn databases(h: &Harness, tenant: &str, limit: Option<u32>, offset: u32) -> Vec<String> {
    match h.read(CatalogRead::ListDatabases {
        tenant: tenant.into(),
        limit,
        offset,
    }) {
        Ok(CatalogReadValue::Databases(ds)) => ds.into_iter().map(|d| d.name).collect(),
        other => panic!("{other:?}"),
    }
}

fn collections(h: &Harness, database: &str, limit: Option<u32>, offset: u32) -> Vec<String> {
    match h.read(CatalogRead::ListCollections {
        tenant: DEFAULT_TENANT.into(),
        database: database.into(),
        limit,
        offset,
    }) {
        Ok(CatalogReadValue::Collections(cs)) => cs.into_iter().map(|c| c.name).collect(),
        other => panic!("{other:?}"),
    }
}

fn count(h: &Harness, tenant: &str, database: &str) -> u64 {
    match h.read(CatalogRead::CountCollections {
        tenant: tenant.into(),
        database: database.into(),
    }) {
        Ok(CatalogReadValue::Count(n)) => n,
        other => panic!("{other:?}"),
    }
}

#[test]
fn get_tenant() {
    let mut h = Harness::new();
    h.ok(CatalogCommand::CreateTenant {
        name: "acme".into(),
    });
    assert_eq!(
        h.read(CatalogRead::GetTenant {
            name: "acme".into()
        }),
        Ok(CatalogReadValue::Tenant(TenantModel {
            name: "acme".into()
        }))
    );
    assert_eq!(
        h.read(CatalogRead::GetTenant {
            name: "nobody".into()
        }),
        Err(CatalogError::NotFound("Tenant [nobody] not found".into()))
    );
}

#[test]
fn get_database() {
    let mut h = Harness::new();
    h.ok(CatalogCommand::CreateTenant {
        name: "acme".into(),
    });
    h.ok(CatalogCommand::CreateDatabase {
        tenant: "acme".into(),
        name: "prod".into(),
        id: uuid(3),
    });
    assert_eq!(
        h.read(CatalogRead::GetDatabase {
            tenant: "acme".into(),
            name: "prod".into()
        }),
        Ok(CatalogReadValue::Database(DatabaseModel {
            id: uuid(3),
            name: "prod".into(),
            tenant: "acme".into()
        }))
    );
    let not_found = Err(CatalogError::NotFound(
        "Database [prod] not found. Are you sure it exists?".into(),
    ));
    assert_eq!(
        h.read(CatalogRead::GetDatabase {
            tenant: DEFAULT_TENANT.into(),
            name: "prod".into()
        }),
        not_found
    );
    assert_eq!(
        h.read(CatalogRead::GetDatabase {
            tenant: "nobody".into(),
            name: "prod".into()
        }),
        not_found
    );
}

#[test]
fn list_databases_by_name_with_paging() {
    let mut h = Harness::new();
    h.ok(CatalogCommand::CreateTenant {
        name: "acme".into(),
    });
    for (i, name) in ["delta", "alpha", "charlie", "bravo"].iter().enumerate() {
        h.ok(CatalogCommand::CreateDatabase {
            tenant: "acme".into(),
            name: (*name).into(),
            id: uuid(i as u128 + 1),
        });
    }
    h.ok(CatalogCommand::CreateDatabase {
        tenant: DEFAULT_TENANT.into(),
        name: "zulu".into(),
        id: uuid(9),
    });

    assert_eq!(
        databases(&h, "acme", None, 0),
        ["alpha", "bravo", "charlie", "delta"]
    );
    assert_eq!(databases(&h, "acme", Some(2), 1), ["bravo", "charlie"]);
    assert_eq!(databases(&h, "acme", Some(10), 3), ["delta"]);
    assert_eq!(databases(&h, "acme", None, 4), Vec::<String>::new());
    assert_eq!(databases(&h, "acme", Some(0), 0), Vec::<String>::new());
    assert_eq!(
        databases(&h, DEFAULT_TENANT, None, 0),
        [DEFAULT_DATABASE, "zulu"]
    );
    assert_eq!(databases(&h, "nobody", None, 0), Vec::<String>::new());
}

#[test]
fn list_and_count_collections_by_id_with_paging() {
    let mut h = Harness::new();
    // Created in an order unlike both id order and name order.
    for (id, name) in [(5, "eee"), (1, "zzz"), (3, "aaa"), (2, "mmm"), (4, "bbb")] {
        h.created(create_default(&uuid(id), name));
    }
    h.ok(CatalogCommand::CreateDatabase {
        tenant: DEFAULT_TENANT.into(),
        name: "other".into(),
        id: uuid(100),
    });
    h.created(create(DEFAULT_TENANT, "other", &uuid(0), "elsewhere"));

    let all = collections(&h, DEFAULT_DATABASE, None, 0);
    assert_eq!(
        all,
        ["zzz", "mmm", "aaa", "bbb", "eee"],
        "ordered by id, as Chroma's sysdb"
    );
    // Pages cover the listing without gaps or repeats.
    let paged: Vec<String> = (0..3)
        .flat_map(|p| collections(&h, DEFAULT_DATABASE, Some(2), p * 2))
        .collect();
    assert_eq!(paged, all);
    assert_eq!(collections(&h, DEFAULT_DATABASE, Some(3), 4), ["eee"]);
    assert_eq!(
        collections(&h, DEFAULT_DATABASE, None, 9),
        Vec::<String>::new()
    );
    assert_eq!(collections(&h, "other", None, 0), ["elsewhere"]);
    assert_eq!(collections(&h, "missing", None, 0), Vec::<String>::new());

    assert_eq!(count(&h, DEFAULT_TENANT, DEFAULT_DATABASE), 5);
    assert_eq!(count(&h, DEFAULT_TENANT, "other"), 1);
    assert_eq!(count(&h, DEFAULT_TENANT, "missing"), 0);
    assert_eq!(count(&h, "nobody", DEFAULT_DATABASE), 0);

    // Every tenant and database at once (the router's dashboard), by id, up to the limit.
    let every = |limit| match h.read(CatalogRead::AllCollections { limit }) {
        Ok(CatalogReadValue::Collections(cs)) => cs.into_iter().map(|c| c.name).collect(),
        other => panic!("{other:?}"),
    };
    let every_one: Vec<String> = every(10);
    assert_eq!(every_one, ["elsewhere", "zzz", "mmm", "aaa", "bbb", "eee"]);
    assert_eq!(every(2), ["elsewhere", "zzz"]);
}

#[test]
fn get_collection_by_name_and_by_id() {
    let mut h = Harness::new();
    let c = h.created(create_default(&uuid(0xabc), "docs"));
    assert_eq!(
        h.read(CatalogRead::GetCollectionByName {
            tenant: DEFAULT_TENANT.into(),
            database: DEFAULT_DATABASE.into(),
            name: "docs".into()
        }),
        Ok(CatalogReadValue::Collection(Box::new(c.clone())))
    );
    assert_eq!(
        h.read(CatalogRead::GetCollectionByName {
            tenant: DEFAULT_TENANT.into(),
            database: "other".into(),
            name: "docs".into()
        }),
        Err(CatalogError::NotFound(
            "Collection [docs] does not exist".into()
        ))
    );
    assert_eq!(
        h.read(CatalogRead::GetCollectionById { id: c.id.clone() }),
        Ok(CatalogReadValue::Collection(Box::new(c.clone())))
    );
    // Any UUID text form finds it.
    assert_eq!(
        h.read(CatalogRead::GetCollectionById {
            id: c.id.to_uppercase()
        }),
        Ok(CatalogReadValue::Collection(Box::new(c.clone())))
    );
    assert_eq!(
        h.read(CatalogRead::GetCollectionById {
            id: c.id.replace('-', "")
        }),
        Ok(CatalogReadValue::Collection(Box::new(c)))
    );
    assert_eq!(
        h.read(CatalogRead::GetCollectionById { id: "junk".into() }),
        Err(CatalogError::NotFound(
            "Collection [junk] does not exist".into()
        ))
    );
}

#[test]
fn version_read_follows_changes() {
    let mut h = Harness::new();
    assert_eq!(
        h.read(CatalogRead::Version),
        Ok(CatalogReadValue::Version(0))
    );
    h.created(create_default(&uuid(1), "docs"));
    h.ok(CatalogCommand::SetDimension {
        id: uuid(1),
        dimension: 4,
    });
    assert_eq!(
        h.read(CatalogRead::Version),
        Ok(CatalogReadValue::Version(2))
    );
}
