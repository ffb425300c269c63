//! CSC errors (v1.0.4.0 §10.1, v2.0 §10.1): an OAuth-style code and a
//! description a person can act on; the front door picks the HTTP status.

use crate::{Error, ErrorKind};

/// CSC v1.0.4.0 §10.1 / v2.0 §10.1 error codes (the HTTP status is the
/// front door's choice from the kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CscErrorKind {
    InvalidRequest,
    InvalidToken,
    AccessDenied,
    /// No such method or version.
    NotFound,
    /// The request body is over the limit.
    TooLarge,
    TooManyRequests,
    ServerError,
    TemporarilyUnavailable,
}

#[derive(Debug)]
pub struct CscError {
    pub kind: CscErrorKind,
    pub description: String,
}

impl CscErrorKind {
    /// The `error` code of CSC §10.1 (OAuth style) that the answer carries.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::NotFound | Self::TooLarge => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::AccessDenied => "access_denied",
            Self::TooManyRequests => "too_many_requests",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

impl CscError {
    pub fn new(kind: CscErrorKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(CscErrorKind::InvalidRequest, description)
    }
}

/// A core error: the caller's faults are `invalid_request` (a SAD is the
/// request's), rights `access_denied`, the service's own 5xx.
impl From<Error> for CscError {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Unauthenticated
            | ErrorKind::InvalidArgument
            | ErrorKind::FailedPrecondition => CscErrorKind::InvalidRequest,
            ErrorKind::PermissionDenied => CscErrorKind::AccessDenied,
            ErrorKind::NotFound | ErrorKind::AlreadyExists => CscErrorKind::InvalidRequest,
            ErrorKind::ResourceExhausted => CscErrorKind::TooManyRequests,
            ErrorKind::Unavailable => CscErrorKind::TemporarilyUnavailable,
            ErrorKind::Internal => {
                tracing::error!(error = %e, "CSC: internal error");
                CscErrorKind::ServerError
            }
        };
        Self::new(kind, e.message())
    }
}

impl From<crate::auth::AuthError> for CscError {
    fn from(e: crate::auth::AuthError) -> Self {
        Error::from(e).into()
    }
}
