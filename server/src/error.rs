//! Errors of the core, each mapped to the gRPC status a client can act on.

use crate::store::StoreError;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Missing, malformed or expired credentials: UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated but not allowed: PERMISSION_DENIED.
    #[error("{0}")]
    PermissionDenied(String),
    /// Bad input (too long, not UTF-8, unknown topic ...): INVALID_ARGUMENT.
    #[error("{0}")]
    InvalidArgument(String),
    /// Unknown record: NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// Already exists: ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// Wrong state for the action: FAILED_PRECONDITION.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was hit (rate, streams): RESOURCE_EXHAUSTED.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The server is shutting down: UNAVAILABLE (retry elsewhere / later).
    #[error("{0}")]
    Unavailable(String),
    /// Our fault: INTERNAL. The cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] crate::store::Cause),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => CoreError::NotFound(format!("{what} not found")),
            StoreError::Conflict(msg) => CoreError::AlreadyExists(msg),
            StoreError::Precondition(msg) => CoreError::FailedPrecondition(msg),
            StoreError::Exhausted(msg) => CoreError::ResourceExhausted(msg),
            StoreError::Busy(msg) => CoreError::Unavailable(format!("database busy, retry: {msg}")),
            StoreError::Internal(msg) => CoreError::Internal(msg),
        }
    }
}

impl CoreError {
    /// An internal failure with its cause (an error, or a message).
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CoreError::Internal(crate::store::Cause::from(cause.into()))
    }

    /// The gRPC code.
    pub fn code(&self) -> tonic::Code {
        match self {
            CoreError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            CoreError::PermissionDenied(_) => tonic::Code::PermissionDenied,
            CoreError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            CoreError::NotFound(_) => tonic::Code::NotFound,
            CoreError::AlreadyExists(_) => tonic::Code::AlreadyExists,
            CoreError::FailedPrecondition(_) => tonic::Code::FailedPrecondition,
            CoreError::ResourceExhausted(_) => tonic::Code::ResourceExhausted,
            CoreError::Unavailable(_) => tonic::Code::Unavailable,
            CoreError::Internal(_) => tonic::Code::Internal,
        }
    }
}

impl From<CoreError> for tonic::Status {
    fn from(e: CoreError) -> Self {
        if let CoreError::Internal(cause) = &e {
            tracing::error!(error = %cause, "Internal error");
        }
        tonic::Status::new(e.code(), e.to_string())
    }
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        CoreError::from(e).into()
    }
}
