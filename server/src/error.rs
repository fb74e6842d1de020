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
    /// A refusal a client acts on by its reason (`wsmschat::errors`): the status carries a
    /// `google.rpc.ErrorInfo` with it in `grpc-status-details-bin`.
    #[error("{message}")]
    Refused {
        code: tonic::Code,
        reason: &'static str,
        message: String,
        /// Seconds until a quota passes, when known (metadata `retry_after_s`).
        retry_after_s: Option<u64>,
    },
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
            StoreError::Quota(reason, message, retry_after_s) => CoreError::Refused {
                code: tonic::Code::ResourceExhausted,
                reason,
                message,
                retry_after_s,
            },
            StoreError::Busy(msg) => CoreError::Unavailable(format!("database busy, retry: {msg}")),
            StoreError::Internal(msg) => CoreError::Internal(msg),
        }
    }
}

impl CoreError {
    /// The neutral refusal of a blocked visitor (reason CHAT_UNAVAILABLE): it says no more than
    /// the widget shows.
    pub fn chat_unavailable() -> Self {
        CoreError::Refused {
            code: tonic::Code::PermissionDenied,
            reason: wsmschat::errors::CHAT_UNAVAILABLE,
            message: "the chat is not available".into(),
            retry_after_s: None,
        }
    }

    /// The machine-readable reason, if the refusal has one.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            CoreError::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }

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
            CoreError::Refused { code, .. } => *code,
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
        if let CoreError::Refused {
            code,
            reason,
            message,
            retry_after_s,
        } = &e
        {
            let meta: Vec<(&str, String)> = retry_after_s
                .iter()
                .map(|s| ("retry_after_s", s.to_string()))
                .collect();
            let details = wsmschat::errors::details(*code as i32, message, reason, &meta);
            return tonic::Status::with_details(*code, message.clone(), details.into());
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
