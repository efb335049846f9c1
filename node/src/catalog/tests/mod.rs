//! Catalogue state machine tests: every command and read with its errors,
//! dedup, snapshots, and a property test of snapshot/restore convergence.

mod commands;
mod proptest;
mod reads;
mod registry;
mod snapshot;

use common::catalog::{
    CatalogCommand, CatalogError, CatalogOutcome, CatalogProposal, CatalogRead, CatalogReadValue,
    CatalogSuccess, CollectionConfiguration, CollectionModel, ConfigurationUpdate,
    EmbeddingFunction, HnswUpdate, DEFAULT_DATABASE, DEFAULT_TENANT,
};
use common::command::IndexConfig;
use common::record::{Metadata, MetadataValue};

use super::{AppliedPosition, CatalogStateMachine};
use crate::raft::StateMachine;

/// A canonical UUID made from a number, so tests can control id order.
pub(super) fn uuid(n: u128) -> String {
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(super) fn metadata(pairs: &[(&str, i64)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), MetadataValue::Int(*v)))
        .collect()
}

/// A collection's configuration: Chroma's defaults with a legacy embedding function.
pub(super) fn config() -> CollectionConfiguration {
    CollectionConfiguration {
        embedding_function: Some(EmbeddingFunction(r#"{"type":"legacy"}"#.into())),
        ..CollectionConfiguration::new(IndexConfig::default())
    }
}

/// A configuration update setting the HNSW `ef_search`.
pub(super) fn ef_search(n: u64) -> ConfigurationUpdate {
    ConfigurationUpdate {
        hnsw: Some(HnswUpdate {
            ef_search: Some(n),
            ..HnswUpdate::default()
        }),
        ..ConfigurationUpdate::default()
    }
}

/// A CreateCollection in `tenant/database` with defaults for the rest.
pub(super) fn create(tenant: &str, database: &str, id: &str, name: &str) -> CatalogCommand {
    CatalogCommand::CreateCollection {
        tenant: tenant.into(),
        database: database.into(),
        id: id.into(),
        name: name.into(),
        metadata: None,
        configuration: config(),
        shards: vec![10, 11],
        get_or_create: false,
    }
}

/// A CreateCollection in the default tenant and database.
pub(super) fn create_default(id: &str, name: &str) -> CatalogCommand {
    create(DEFAULT_TENANT, DEFAULT_DATABASE, id, name)
}

/// Drives a state machine with consecutive log indexes and fresh request ids.
pub(super) struct Harness {
    pub sm: CatalogStateMachine,
    pub index: u64,
    next_request: u128,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            sm: CatalogStateMachine::new(),
            index: 0,
            next_request: 1 << 100,
        }
    }

    pub fn apply(&mut self, command: CatalogCommand) -> CatalogOutcome {
        let id = self.next_request;
        self.next_request += 1;
        self.apply_with_id(id, command)
    }

    /// Applies `command` as a proposal whose deadline is long past (stamp 10 s after it),
    /// so the dedup window counts only.
    pub fn apply_with_id(&mut self, request_id: u128, command: CatalogCommand) -> CatalogOutcome {
        self.index += 1;
        self.sm.apply(
            AppliedPosition {
                index: self.index,
                term: 1,
            },
            10_000,
            &CatalogProposal {
                request_id,
                deadline_ms: 0,
                command,
            },
        )
    }

    pub fn ok(&mut self, command: CatalogCommand) -> CatalogSuccess {
        let outcome = self.apply(command.clone());
        outcome.unwrap_or_else(|e| panic!("{command:?} failed: {e}"))
    }

    pub fn err(&mut self, command: CatalogCommand) -> CatalogError {
        let before = self.sm.clone();
        let e = self
            .apply(command.clone())
            .expect_err(&format!("{command:?} should fail"));
        // A refused command changes nothing but the applied position and the window.
        assert_eq!(
            self.sm.state, before.state,
            "{command:?} changed the catalogue"
        );
        e
    }

    pub fn created(&mut self, command: CatalogCommand) -> CollectionModel {
        match self.ok(command) {
            CatalogSuccess::CollectionCreated {
                collection,
                created: true,
            } => collection,
            other => panic!("expected a new collection, got {other:?}"),
        }
    }

    pub fn read(&self, read: CatalogRead) -> Result<CatalogReadValue, CatalogError> {
        self.sm.read(&read)
    }

    pub fn collection(&self, name: &str) -> Result<CollectionModel, CatalogError> {
        match self.read(CatalogRead::GetCollectionByName {
            tenant: DEFAULT_TENANT.into(),
            database: DEFAULT_DATABASE.into(),
            name: name.into(),
        })? {
            CatalogReadValue::Collection(c) => Ok(*c),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn names(&self, tenant: &str, database: &str) -> Vec<String> {
        match self.read(CatalogRead::ListCollections {
            tenant: tenant.into(),
            database: database.into(),
            limit: None,
            offset: 0,
        }) {
            Ok(CatalogReadValue::Collections(cs)) => cs.into_iter().map(|c| c.name).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub fn version(&self) -> u64 {
        self.sm.version()
    }
}
