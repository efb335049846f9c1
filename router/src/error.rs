//! The router's one error type, and its mapping to Chroma's error JSON
//! (`{"error": "<Name>", "message": "..."}`) with Chroma's status codes.
//! Every handler returns `Result<_, ApiError>`; the HTTP form is made here
//! and nowhere else.

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::catalog::CatalogError;
use common::CommonError;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

/// What an overloaded router tells clients to wait before retrying: requests
/// are short, so a slot is usually free within a second.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Chroma's error JSON, the body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ErrorResponse)]
pub struct ErrorBody {
    /// The error's name, which Chroma's clients map to an exception class
    /// (e.g. `InvalidArgumentError`, `NotFoundError`).
    pub error: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// 400 `InvalidArgumentError`: malformed JSON, wrong types, failed validation.
    #[error("{0}")]
    InvalidArgument(String),
    /// 400 `DuplicateID`: the same id twice in one request. http-api.md
    /// writes `DuplicateIDError`, but the key the Python client maps to its
    /// `chromadb.errors.DuplicateIDError` class is `DuplicateID`
    /// (`chromadb/errors.py`, `error_types`), so that is what we send.
    #[error("{0}")]
    DuplicateId(String),
    /// 409 `IDAlreadyExists`: `add` of ids that exist (reject mode).
    #[error("{0}")]
    IdAlreadyExists(String),
    /// 409 `UniqueConstraintError`.
    #[error("{0}")]
    UniqueConstraint(String),
    /// 404 `NotFoundError`.
    #[error("{0}")]
    NotFound(String),
    /// 413 `BatchSizeExceededError`.
    #[error("{0}")]
    BatchSizeExceeded(String),
    /// 401 `AuthError` (the Python client raises `ChromaAuthError`): no
    /// valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403 `AuthorizationError`: a valid token used on a tenant or database
    /// its user may not use.
    #[error("{0}")]
    Forbidden(String),
    /// 415 `InvalidArgumentError`: a non-empty body whose Content-Type is not
    /// `application/json` (so a web page cannot send a CORS-free "simple"
    /// request that the API would act on).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 `RateLimitError` with `Retry-After`: the router already serves as
    /// many requests as it is configured to.
    #[error("{0}")]
    Overloaded(String),
    /// 403 `ChromaError`: POST /reset on a router configured without reset.
    #[error("Reset is disabled by config")]
    ResetDisabled,
    /// 503: a shard (or the metadata group) has no leader with a quorum
    /// before the request's deadline. The message names the group.
    #[error("{0}")]
    Unavailable(String),
    /// 500 `InternalError`.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        ApiError::InvalidArgument(msg.into())
    }

    /// The `"error"` field: a name the Chroma clients map to an exception
    /// class. 503 uses `InternalError` so the Python client raises
    /// `chromadb.errors.InternalError` carrying our message (it has no
    /// class for "unavailable").
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) | ApiError::UnsupportedMediaType(_) => {
                "InvalidArgumentError"
            }
            ApiError::Unauthenticated(_) => "AuthError",
            ApiError::Forbidden(_) => "AuthorizationError",
            ApiError::Overloaded(_) => "RateLimitError",
            ApiError::DuplicateId(_) => "DuplicateID",
            ApiError::IdAlreadyExists(_) => "IDAlreadyExists",
            ApiError::UniqueConstraint(_) => "UniqueConstraintError",
            ApiError::NotFound(_) => "NotFoundError",
            ApiError::BatchSizeExceeded(_) => "BatchSizeExceededError",
            ApiError::ResetDisabled => "ChromaError",
            ApiError::Unavailable(_) | ApiError::Internal(_) => "InternalError",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidArgument(_) | ApiError::DuplicateId(_) => StatusCode::BAD_REQUEST,
            ApiError::IdAlreadyExists(_) | ApiError::UniqueConstraint(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BatchSizeExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ResetDisabled => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if let ApiError::Overloaded(_) = self {
            response.insert_header((RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
        }
        response.json(ErrorBody {
            error: self.name(),
            message: self.to_string(),
        })
    }
}

impl From<CommonError> for ApiError {
    fn from(e: CommonError) -> Self {
        match e {
            CommonError::InvalidArgument(m) => ApiError::InvalidArgument(m),
        }
    }
}

/// The catalogue's refusals as Chroma answers them: a name or id taken is
/// 409 `UniqueConstraintError`, a missing one 404 `NotFoundError`, anything
/// else 400 `InvalidArgumentError`.
impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::AlreadyExists(m) => ApiError::UniqueConstraint(m),
            CatalogError::NotFound(m) => ApiError::NotFound(m),
            CatalogError::InvalidArgument(m) => ApiError::InvalidArgument(m),
            // Retried once by the create handler with a fresh pool; this far only
            // when the pool changed twice meanwhile.
            e @ CatalogError::ShardGroupRetired(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses_are_the_contracts() {
        let cases = [
            (ApiError::invalid("x"), "InvalidArgumentError", 400),
            (ApiError::DuplicateId("x".into()), "DuplicateID", 400),
            (
                ApiError::IdAlreadyExists("x".into()),
                "IDAlreadyExists",
                409,
            ),
            (
                ApiError::UniqueConstraint("x".into()),
                "UniqueConstraintError",
                409,
            ),
            (ApiError::NotFound("x".into()), "NotFoundError", 404),
            (
                ApiError::BatchSizeExceeded("x".into()),
                "BatchSizeExceededError",
                413,
            ),
            (ApiError::ResetDisabled, "ChromaError", 403),
            (ApiError::Unauthenticated("x".into()), "AuthError", 401),
            (ApiError::Forbidden("x".into()), "AuthorizationError", 403),
            (
                ApiError::UnsupportedMediaType("x".into()),
                "InvalidArgumentError",
                415,
            ),
            (ApiError::Overloaded("x".into()), "RateLimitError", 429),
            (ApiError::Unavailable("x".into()), "InternalError", 503),
            (ApiError::Internal("x".into()), "InternalError", 500),
        ];
        for (e, name, status) in cases {
            assert_eq!((e.name(), e.status().as_u16()), (name, status), "{e:?}");
        }
        assert_eq!(
            ApiError::ResetDisabled.to_string(),
            "Reset is disabled by config"
        );
        // Catalogue refusals: Chroma's name and status, the message as is.
        for (e, name, status) in [
            (
                CatalogError::collection_exists("c"),
                "UniqueConstraintError",
                409,
            ),
            (
                CatalogError::collection_not_found("c"),
                "NotFoundError",
                404,
            ),
            (
                CatalogError::dimension_mismatch(3, 2),
                "InvalidArgumentError",
                400,
            ),
            (
                CatalogError::database_missing_for_collection("d"),
                "InvalidArgumentError",
                400,
            ),
        ] {
            let message = e.message().to_owned();
            let api = ApiError::from(e);
            assert_eq!(
                (api.name(), api.status().as_u16(), api.to_string()),
                (name, status, message)
            );
        }
    }
}
