//! The one place where an [`Error`] becomes a gRPC status (SPEC §7). The
//! wire gets the error's public message; its cause goes to the log.

use tonic::{Code, Status};

use crate::{Error, ErrorKind};

pub fn status(error: Error) -> Status {
    let code = match error.kind() {
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    match error.kind() {
        ErrorKind::Internal | ErrorKind::Unavailable => {
            tracing::error!(code = ?code, error = %error, "request failed")
        }
        _ => tracing::info!(code = ?code, error = %error, "request refused"),
    }
    Status::new(code, error.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code_and_keeps_only_the_public_message() {
        let cases = [
            (ErrorKind::Unauthenticated, Code::Unauthenticated),
            (ErrorKind::PermissionDenied, Code::PermissionDenied),
            (ErrorKind::InvalidArgument, Code::InvalidArgument),
            (ErrorKind::FailedPrecondition, Code::FailedPrecondition),
            (ErrorKind::NotFound, Code::NotFound),
            (ErrorKind::AlreadyExists, Code::AlreadyExists),
            (ErrorKind::ResourceExhausted, Code::ResourceExhausted),
            (ErrorKind::Unavailable, Code::Unavailable),
            (ErrorKind::Internal, Code::Internal),
        ];
        for (kind, code) in cases {
            let cause = std::io::Error::other("secret detail");
            let s = status(Error::new(kind, "public message").with_source(cause));
            assert_eq!(s.code(), code);
            assert_eq!(s.message(), "public message");
        }
    }
}
