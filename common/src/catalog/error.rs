//! Errors of catalogue commands and reads, worded as Chroma 1.5.9 words them
//! (`rust/types/src/api_types.rs`: `CreateTenantError`, `GetTenantError`,
//! `CreateDatabaseError`, `GetDatabaseError`, `DeleteDatabaseError`,
//! `CreateCollectionError`, `GetCollectionError`, `UpdateCollectionError`,
//! `DeleteCollectionError`), so the router can pass the message through.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a catalogue command or read was refused. The catalogue is unchanged.
///
/// Each kind maps to one of Chroma's error names ([`CatalogError::name`]) and
/// HTTP statuses ([`CatalogError::status`]); the payload is the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum CatalogError {
    /// `UniqueConstraintError`, 409.
    #[error("{0}")]
    UniqueConstraint(String),
    /// `NotFoundError`, 404.
    #[error("{0}")]
    NotFound(String),
    /// `InvalidArgumentError`, 400.
    #[error("{0}")]
    InvalidArgument(String),
}

impl CatalogError {
    /// The `"error"` field of Chroma's error body.
    pub fn name(&self) -> &'static str {
        match self {
            CatalogError::UniqueConstraint(_) => "UniqueConstraintError",
            CatalogError::NotFound(_) => "NotFoundError",
            CatalogError::InvalidArgument(_) => "InvalidArgumentError",
        }
    }

    /// The HTTP status Chroma answers with.
    pub fn status(&self) -> u16 {
        match self {
            CatalogError::UniqueConstraint(_) => 409,
            CatalogError::NotFound(_) => 404,
            CatalogError::InvalidArgument(_) => 400,
        }
    }

    /// The `"message"` field of Chroma's error body.
    pub fn message(&self) -> &str {
        match self {
            CatalogError::UniqueConstraint(m)
            | CatalogError::NotFound(m)
            | CatalogError::InvalidArgument(m) => m,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        CatalogError::InvalidArgument(msg.into())
    }

    /// `CreateTenantError::AlreadyExists`.
    pub fn tenant_exists(name: &str) -> Self {
        CatalogError::UniqueConstraint(format!("Tenant [{name}] already exists"))
    }

    /// `GetTenantError::NotFound`.
    pub fn tenant_not_found(name: &str) -> Self {
        CatalogError::NotFound(format!("Tenant [{name}] not found"))
    }

    /// `CreateDatabaseError::AlreadyExists`.
    pub fn database_exists(name: &str) -> Self {
        CatalogError::UniqueConstraint(format!("Database [{name}] already exists"))
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

    /// `CreateCollectionError::DatabaseNotFound`: Chroma answers a collection
    /// created in a missing database with 400 `InvalidArgumentError`.
    pub fn database_missing_for_collection(name: &str) -> Self {
        CatalogError::InvalidArgument(format!("Database [{name}] does not exist"))
    }

    /// `CreateCollectionError::AlreadyExists`.
    pub fn collection_exists(name: &str) -> Self {
        CatalogError::UniqueConstraint(format!("Collection [{name}] already exists"))
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
