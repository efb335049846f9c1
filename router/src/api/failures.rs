//! The error answers each kind of route can give, as the OpenAPI document lists them.
//! Statuses and Chroma names come from [`ApiError`] itself, so the document cannot
//! promise a status or a name the code does not answer with; which errors a route can
//! give is said once per kind of route below, next to why.

use std::collections::BTreeMap;

use utoipa::openapi::header::Header;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{IntoResponses, ToSchema};

use crate::error::{ApiError, ErrorBody, RETRY_AFTER_SECONDS};

/// One kind of [`ApiError`], without its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    InvalidArgument,
    DuplicateId,
    IdAlreadyExists,
    UniqueConstraint,
    NotFound,
    BatchSizeExceeded,
    Unauthenticated,
    Forbidden,
    UnsupportedMediaType,
    Overloaded,
    ResetDisabled,
    Unavailable,
    Internal,
}

impl Failure {
    fn error(self) -> ApiError {
        let m = String::new;
        match self {
            Failure::InvalidArgument => ApiError::InvalidArgument(m()),
            Failure::DuplicateId => ApiError::DuplicateId(m()),
            Failure::IdAlreadyExists => ApiError::IdAlreadyExists(m()),
            Failure::UniqueConstraint => ApiError::UniqueConstraint(m()),
            Failure::NotFound => ApiError::NotFound(m()),
            Failure::BatchSizeExceeded => ApiError::BatchSizeExceeded(m()),
            Failure::Unauthenticated => ApiError::Unauthenticated(m()),
            Failure::Forbidden => ApiError::Forbidden(m()),
            Failure::UnsupportedMediaType => ApiError::UnsupportedMediaType(m()),
            Failure::Overloaded => ApiError::Overloaded(m()),
            Failure::ResetDisabled => ApiError::ResetDisabled,
            Failure::Unavailable => ApiError::Unavailable(m()),
            Failure::Internal => ApiError::Internal(m()),
        }
    }
}

/// When an error happens, for the document's readers. A match on every variant, so a
/// new error has to say here when it is answered.
fn when(e: &ApiError) -> &'static str {
    match e {
        ApiError::InvalidArgument(_) => {
            "malformed JSON, a wrong type, a value out of range, an invalid filter or id"
        }
        ApiError::DuplicateId(_) => "the same id twice in one request",
        ApiError::IdAlreadyExists(_) => {
            "add of ids that exist, with the router's add_existing = reject (the default; \
             nothing of the request is written)"
        }
        ApiError::UniqueConstraint(_) => "the name is taken",
        ApiError::NotFound(_) => "the tenant, database or collection does not exist",
        ApiError::BatchSizeExceeded(_) => {
            "more records than pre-flight's max_batch_size, a body over the router's \
             max_body_bytes, or a shard's part of the write over its entry limit"
        }
        ApiError::Unauthenticated(_) => "token auth is on and the request has no valid token",
        ApiError::Forbidden(_) => "the token's user may not use this tenant or database",
        ApiError::UnsupportedMediaType(_) => "a body whose Content-Type is not application/json",
        ApiError::Overloaded(_) => {
            "the router already serves its max_in_flight requests; retry after Retry-After"
        }
        ApiError::ResetDisabled => "reset is disabled by the router's allow_reset option",
        ApiError::Unavailable(_) => {
            "a shard or the metadata group has no leader with a quorum before the deadline; \
             the message names it"
        }
        ApiError::Internal(_) => {
            "a bug, or a collection that needs the embedding model when it is not there"
        }
    }
}

/// The responses of `failures`, one per status, every one Chroma's error JSON.
fn responses(failures: &[Failure]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ApiError>> = BTreeMap::new();
    for f in failures {
        let e = f.error();
        by_status.entry(e.status().as_u16()).or_default().push(e);
    }
    by_status
        .into_iter()
        .map(|(status, errors)| {
            let description: Vec<String> = errors
                .iter()
                .map(|e| format!("`{}`: {}", e.name(), when(e)))
                .collect();
            let body = Content::new(Some(Ref::from_schema_name(ErrorBody::name())));
            let mut response = Response::builder()
                .description(description.join("; "))
                .content("application/json", body);
            if errors.iter().any(|e| matches!(e, ApiError::Overloaded(_))) {
                let seconds = ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .examples([RETRY_AFTER_SECONDS]);
                response = response.header(
                    "Retry-After",
                    Header::builder()
                        .schema(seconds)
                        .description(Some("seconds to wait before retrying"))
                        .build(),
                );
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// A set of error answers for `#[utoipa::path(responses(...))]`.
macro_rules! failure_set {
    ($(#[$doc:meta])* $name:ident = [$($failure:ident),* $(,)?]) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            pub const FAILURES: &'static [Failure] = &[$(Failure::$failure),*];
        }

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                responses(Self::FAILURES)
            }
        }
    };
}

failure_set!(
    /// healthcheck: open and not counted in flight; it reads the metadata group.
    Health = [Unavailable, Internal]
);

failure_set!(
    /// A route that needs any valid token and touches no group (identity,
    /// pre-flight, /metrics, /openapi.json).
    Token = [Unauthenticated, Overloaded]
);

failure_set!(
    /// A route whose input is its path and query string: a read of the catalogue or of a
    /// collection's shards, or a delete of a database or collection (answered once every
    /// shard dropped its part, else 503 naming the parts). The token must cover the
    /// path's tenant or database.
    PathOnly = [
        InvalidArgument,
        Unauthenticated,
        Forbidden,
        NotFound,
        Overloaded,
        Unavailable,
        Internal,
    ]
);

failure_set!(
    /// A catalogue change with a JSON body (create a tenant, database or collection,
    /// modify a collection).
    CatalogueWrite = [
        InvalidArgument,
        Unauthenticated,
        Forbidden,
        NotFound,
        UniqueConstraint,
        BatchSizeExceeded,
        UnsupportedMediaType,
        Overloaded,
        Unavailable,
        Internal,
    ]
);

failure_set!(
    /// A read of records with a JSON body (get, query), and delete.
    RecordRead = [
        InvalidArgument,
        Unauthenticated,
        Forbidden,
        NotFound,
        BatchSizeExceeded,
        UnsupportedMediaType,
        Overloaded,
        Unavailable,
        Internal,
    ]
);

failure_set!(
    /// upsert and update of records.
    RecordWrite = [
        InvalidArgument,
        DuplicateId,
        Unauthenticated,
        Forbidden,
        NotFound,
        BatchSizeExceeded,
        UnsupportedMediaType,
        Overloaded,
        Unavailable,
        Internal,
    ]
);

failure_set!(
    /// add: a write that may find its ids taken (409 in reject mode).
    RecordAdd = [
        InvalidArgument,
        DuplicateId,
        Unauthenticated,
        Forbidden,
        NotFound,
        IdAlreadyExists,
        BatchSizeExceeded,
        UnsupportedMediaType,
        Overloaded,
        Unavailable,
        Internal,
    ]
);

failure_set!(
    /// reset: needs a token for every tenant and database, and allow_reset.
    Reset = [
        Unauthenticated,
        Forbidden,
        ResetDisabled,
        Overloaded,
        Unavailable,
        Internal,
    ]
);

failure_set!(
    /// The live cluster page: a token for every tenant and database.
    Dashboard = [Unauthenticated, Forbidden, Overloaded]
);
