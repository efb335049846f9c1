use thiserror::Error;

/// Errors raised while validating or parsing user input in `common`.
///
/// The message is what the user sees (the router answers it as an invalid
/// argument), so it names what is wrong.
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
