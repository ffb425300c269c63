//! What can go wrong while authorising a signature, and how it reaches the
//! caller (SPEC §7).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ProfileId;
use crate::{Error, ErrorKind};

/// An activation or authorisation failure. `Display` is for the logs; the
/// caller sees [`Error::message`] after `Error::from`, which adds what to do.
#[derive(thiserror::Error, Debug)]
pub enum AuthError {
    #[error("no activation token")]
    Missing,
    #[error("activation token is malformed: {0}")]
    Malformed(String),
    #[error("activation token algorithm '{0}' is not accepted")]
    Algorithm(String),
    #[error("activation token names key '{0}', which qsign does not trust for its algorithm")]
    UnknownKey(String),
    #[error("activation token signature does not verify")]
    BadSignature,
    #[error("activation token issuer is not '{expected}'")]
    WrongIssuer { expected: String },
    #[error("activation token audience does not include '{expected}'")]
    WrongAudience { expected: String },
    #[error("activation token expired at {}", Timestamp(*.at))]
    Expired { at: SystemTime },
    #[error("activation token is not valid before {}", Timestamp(*.from))]
    NotYetValid { from: SystemTime },
    #[error(
        "activation token lives {} s (exp - iat), more than the {} s allowed",
        .lifetime.as_secs(), .max.as_secs()
    )]
    TooLongLived { lifetime: Duration, max: Duration },
    #[error("activation token has already been used")]
    Replayed,
    #[error("document at index {index} is not among the digests approved by the activation token")]
    NotCovered { index: usize },
    #[error("a CVR number is exactly 8 digits")]
    BadCvr,
    #[error("a seal profile id is 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadProfileId,
    #[error("unknown seal profile '{0}'")]
    UnknownProfile(ProfileId),
    #[error("{0}")]
    NotAllowed(String),
    #[error(
        "allowed_clients entry {0:?} is neither a SHA-256 fingerprint (64 hex digits, colons \
         allowed) nor a subject DN such as \"CN=Invoicing,O=Acme A/S,C=DK\" (RFC 4514)"
    )]
    BadAllowedClient(String),
    #[error("the TLS client certificate cannot be read: {0}")]
    ClientCertificate(#[source] der::Error),
    #[error("activation configuration: {0}")]
    Config(String),
    #[error("cannot record the activation token's use: {0}")]
    Journal(#[source] std::io::Error),
    #[error(
        "the journal of spent tokens {} is in use by another qsign server (its lock file {}.lock is held)",
        .0.display(), .0.display()
    )]
    JournalLocked(std::path::PathBuf),
    #[error("cannot record the activation token's use in the database")]
    Ledger(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthError {
    /// SPEC §7: token problems are UNAUTHENTICATED; coverage and rights are
    /// PERMISSION_DENIED; a bad or unknown profile name is INVALID_ARGUMENT;
    /// broken configuration is INTERNAL.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Missing
            | AuthError::Malformed(_)
            | AuthError::Algorithm(_)
            | AuthError::UnknownKey(_)
            | AuthError::BadSignature
            | AuthError::WrongIssuer { .. }
            | AuthError::WrongAudience { .. }
            | AuthError::Expired { .. }
            | AuthError::NotYetValid { .. }
            | AuthError::TooLongLived { .. }
            | AuthError::Replayed
            | AuthError::ClientCertificate(_) => ErrorKind::Unauthenticated,
            AuthError::NotCovered { .. } | AuthError::NotAllowed(_) => ErrorKind::PermissionDenied,
            AuthError::BadCvr
            | AuthError::BadProfileId
            | AuthError::UnknownProfile(_)
            | AuthError::BadAllowedClient(_) => ErrorKind::InvalidArgument,
            AuthError::Config(_) => ErrorKind::Internal,
            // Nothing is signed unless its single use is on record.
            AuthError::Journal(_) | AuthError::Ledger(_) => ErrorKind::Unavailable,
            AuthError::JournalLocked(_) => ErrorKind::FailedPrecondition,
        }
    }

    /// What the caller can do about it, appended to the message.
    fn advice(&self) -> &'static str {
        match self {
            AuthError::Missing => {
                "; send the signature activation token from the identity provider"
            }
            AuthError::Malformed(_) | AuthError::BadSignature | AuthError::Expired { .. } => {
                "; ask the identity provider for a new one"
            }
            AuthError::Algorithm(_) | AuthError::UnknownKey(_) => {
                "; the identity provider's key must be in qsign's JWKS (ES256, RS256 or EdDSA)"
            }
            AuthError::WrongIssuer { .. } | AuthError::WrongAudience { .. } => {
                "; qsign accepts tokens issued for it by its configured identity provider"
            }
            AuthError::NotYetValid { .. } => {
                "; check the clocks of the identity provider and of qsign"
            }
            AuthError::TooLongLived { .. } => {
                "; the identity provider must issue shorter-lived tokens"
            }
            AuthError::Replayed => "; each activation signs once, ask for a new one",
            AuthError::NotCovered { .. } => "; activate again with the digests of these documents",
            AuthError::BadCvr
            | AuthError::BadProfileId
            | AuthError::UnknownProfile(_)
            | AuthError::BadAllowedClient(_)
            | AuthError::NotAllowed(_)
            | AuthError::Config(_) => "",
            AuthError::ClientCertificate(_) => {
                "; connect with an X.509 client certificate from the configured client CA"
            }
            AuthError::Journal(_) | AuthError::Ledger(_) => "; try again later",
            AuthError::JournalLocked(_) => {
                "; give every server its own [token] replay_journal, or let replicas share a \
                 [database]"
            }
        }
    }
}

impl From<AuthError> for Error {
    fn from(err: AuthError) -> Self {
        let message = match &err {
            // Configuration details are for the operator's log only.
            AuthError::Config(_) => {
                "qsign's activation settings are broken; see the server log".to_owned()
            }
            AuthError::Journal(_) | AuthError::Ledger(_) => {
                "qsign cannot record the activation token's use right now; try again later"
                    .to_owned()
            }
            _ => format!("{err}{}", err.advice()),
        };
        Error::new(err.kind(), message).with_source(err)
    }
}

/// A time as RFC 3339 UTC (`2026-01-31T12:00:00Z`), or Unix seconds when out
/// of the four-digit-year range.
pub(crate) struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match der::DateTime::from_system_time(self.0) {
            Ok(time) => time.fmt(f),
            Err(_) => match self.0.duration_since(UNIX_EPOCH) {
                Ok(d) => write!(f, "{} s after 1970", d.as_secs()),
                Err(_) => f.write_str("a time before 1970"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<(AuthError, ErrorKind)> {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let u = ErrorKind::Unauthenticated;
        let p = ErrorKind::PermissionDenied;
        let i = ErrorKind::InvalidArgument;
        vec![
            (AuthError::Missing, u),
            (AuthError::Malformed("x".into()), u),
            (AuthError::Algorithm("none".into()), u),
            (AuthError::UnknownKey("k".into()), u),
            (AuthError::BadSignature, u),
            (
                AuthError::WrongIssuer {
                    expected: "i".into(),
                },
                u,
            ),
            (
                AuthError::WrongAudience {
                    expected: "a".into(),
                },
                u,
            ),
            (AuthError::Expired { at: t }, u),
            (AuthError::NotYetValid { from: t }, u),
            (
                AuthError::TooLongLived {
                    lifetime: Duration::from_secs(3600),
                    max: Duration::from_secs(900),
                },
                u,
            ),
            (AuthError::Replayed, u),
            (AuthError::NotCovered { index: 2 }, p),
            (AuthError::NotAllowed("rule".into()), p),
            (AuthError::BadCvr, i),
            (AuthError::BadProfileId, i),
            (AuthError::UnknownProfile("x".parse().unwrap()), i),
            (
                AuthError::Config("secret detail".into()),
                ErrorKind::Internal,
            ),
            (
                AuthError::JournalLocked("spent-tokens".into()),
                ErrorKind::FailedPrecondition,
            ),
            (AuthError::Ledger("db down".into()), ErrorKind::Unavailable),
        ]
    }

    #[test]
    fn every_error_maps_to_its_spec_kind() {
        for (err, kind) in all() {
            assert_eq!(err.kind(), kind, "{err:?}");
            let public = Error::from(err);
            assert_eq!(public.kind(), kind);
            assert!(!public.message().is_empty());
            assert!(std::error::Error::source(&public).is_some(), "source kept");
        }
    }

    #[test]
    fn messages_are_actionable_and_hide_configuration() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let expired = Error::from(AuthError::Expired { at: t });
        assert_eq!(
            expired.message(),
            "activation token expired at 2027-01-15T08:00:00Z; \
             ask the identity provider for a new one"
        );
        let config = Error::from(AuthError::Config("secret detail".into()));
        assert!(!config.message().contains("secret"));
        let not_covered = Error::from(AuthError::NotCovered { index: 2 });
        assert!(not_covered.message().contains("index 2"));
    }

    #[test]
    fn timestamp_out_of_range_does_not_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(Timestamp(far).to_string().contains("after 1970"));
    }
}
