//! Errors of catalogue commands and reads. The messages are worded as
//! Chroma 1.5.9 words them (`rust/types/src/api_types.rs`: `CreateTenantError`,
//! `GetTenantError`, `CreateDatabaseError`, `GetDatabaseError`,
//! `DeleteDatabaseError`, `CreateCollectionError`, `GetCollectionError`,
//! `UpdateCollectionError`, `DeleteCollectionError`), so the router can pass
//! them through; the HTTP status and error name are the router's
//! (`router/src/error.rs`).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a catalogue command or read was refused. The catalogue is unchanged.
/// The payload is the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum CatalogError {
    /// A tenant, database or collection of that name (or id) exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// What the command or read names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The command itself is invalid (name, metadata, configuration, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A new collection named a shard group retired since its router last read the
    /// cluster map (the router reads it again and retries).
    #[error("shard group {0} was retired")]
    ShardGroupRetired(u64),
}

impl CatalogError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            CatalogError::AlreadyExists(m)
            | CatalogError::NotFound(m)
            | CatalogError::InvalidArgument(m) => m,
            CatalogError::ShardGroupRetired(_) => {
                "a shard group of the new collection was retired; retry"
            }
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        CatalogError::InvalidArgument(msg.into())
    }

    /// A collection configuration (or update) that breaks a rule.
    pub fn config(msg: impl std::fmt::Display) -> Self {
        CatalogError::InvalidArgument(format!("Could not parse config: {msg}"))
    }

    /// `CreateTenantError::AlreadyExists`.
    pub fn tenant_exists(name: &str) -> Self {
        CatalogError::AlreadyExists(format!("Tenant [{name}] already exists"))
    }

    /// `GetTenantError::NotFound`.
    pub fn tenant_not_found(name: &str) -> Self {
        CatalogError::NotFound(format!("Tenant [{name}] not found"))
    }

    /// `CreateDatabaseError::AlreadyExists`.
    pub fn database_exists(name: &str) -> Self {
        CatalogError::AlreadyExists(format!("Database [{name}] already exists"))
    }

    /// `GetDatabaseError::NotFound` (GET of a database).
    pub fn database_not_found(name: &str) -> Self {
        CatalogError::NotFound(format!(
            "Database [{name}] not found. Are you sure it exists?"
        ))
    }

    /// `DeleteDatabaseError::NotFound` (DELETE of a database).
    pub fn database_to_delete_not_found(name: &str) -> Self {
        CatalogError::NotFound(format!("Database [{name}] not found"))
    }

    /// `CreateCollectionError::DatabaseNotFound`: an invalid argument, not a
    /// missing resource, as Chroma has it.
    pub fn database_missing_for_collection(name: &str) -> Self {
        CatalogError::InvalidArgument(format!("Database [{name}] does not exist"))
    }

    /// `CreateCollectionError::AlreadyExists`.
    pub fn collection_exists(name: &str) -> Self {
        CatalogError::AlreadyExists(format!("Collection [{name}] already exists"))
    }

    /// `GetCollectionError::NotFound` / `DeleteCollectionError::NotFound` (by
    /// name) and `UpdateCollectionError::NotFound` (by id).
    pub fn collection_not_found(name_or_id: &str) -> Self {
        CatalogError::NotFound(format!("Collection [{name_or_id}] does not exist"))
    }

    /// The frontend's `ValidationError::DimensionMismatch`.
    pub fn dimension_mismatch(expected: u32, got: u32) -> Self {
        CatalogError::InvalidArgument(format!(
            "Collection expecting embedding with dimension of {expected}, got {got}"
        ))
    }
}

impl From<crate::error::CommonError> for CatalogError {
    fn from(e: crate::error::CommonError) -> Self {
        match e {
            crate::error::CommonError::InvalidArgument(m) => CatalogError::InvalidArgument(m),
        }
    }
}
