use thiserror::Error;

/// Errors raised while validating or parsing user input in `common`.
///
/// Every variant maps to Chroma's `InvalidArgumentError` at the HTTP edge; the
/// message is what the user sees, so it names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommonError {
    #[error("{0}")]
    InvalidArgument(String),
}

impl CommonError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        CommonError::InvalidArgument(msg.into())
    }
}
