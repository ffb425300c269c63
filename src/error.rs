//! Errors: a small [`ErrorKind`] decides the gRPC status (SPEC §7) in one place
//! (`service::status`); [`Error`] carries a message a person can act on and,
//! for the logs only, the underlying cause.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, from the caller's point of view. Maps one-to-one to a
/// gRPC code in `service::status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Missing, malformed, expired, not-yet-valid or replayed activation token.
    Unauthenticated,
    /// The token does not cover the documents, or the profile is not allowed.
    PermissionDenied,
    /// Malformed input: PDF, digest length, unknown profile, empty batch.
    InvalidArgument,
    /// Valid input that qsign does not sign (encrypted PDF, DocMDP lock).
    FailedPrecondition,
    /// SPEC §9: no such certificate or profile (of the caller's organisation).
    NotFound,
    /// SPEC §9: the name is taken within the organisation.
    AlreadyExists,
    /// Input over a configured limit.
    ResourceExhausted,
    /// The HSM (or a TSA) cannot be reached or refuses to work.
    Unavailable,
    /// A broken invariant inside qsign. Never the caller's fault.
    Internal,
}

impl ErrorKind {
    /// The gRPC status code's name (as `service::status` maps it), for
    /// records and logs that must not depend on the gRPC crate.
    pub fn grpc_code_name(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
        }
    }
}

/// An error with a stable, public message and an optional private cause.
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the cause; it reaches the logs, never the wire.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message meant for the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// A signer's failure keeps the kind its source chose: the HSM adapters
/// (`hsm::KeySigner`, `hsm::EphemeralKey`) wrap an [`Error`] in the
/// `signature::Error`, so a lost token stays UNAVAILABLE and a broken key
/// INTERNAL. Any other signer failure is INTERNAL.
impl From<signature::Error> for Error {
    fn from(e: signature::Error) -> Self {
        let inner = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<Error>());
        let (kind, message) = match inner {
            Some(inner) => (inner.kind(), inner.message().to_owned()),
            None => (ErrorKind::Internal, "the signer failed".to_owned()),
        };
        Error::new(kind, message).with_source(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signer_failure_keeps_its_kind() {
        let lost = Error::new(ErrorKind::Unavailable, "the HSM is unavailable");
        let e = Error::from(signature::Error::from_source(lost));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.message(), "the HSM is unavailable");
        assert_eq!(
            Error::from(signature::Error::new()).kind(),
            ErrorKind::Internal
        );
    }
}
