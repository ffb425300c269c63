//! Who may sign what: the signature activation token (SPEC §3) and the
//! organisation profiles (SPEC §4).
//!
//! Per request, the service:
//!
//! ```text
//! token ──Verifier::verify──▶ Activation        UNAUTHENTICATED if not authentic
//!        Activation::covers(document digests)   PERMISSION_DENIED if not approved
//!        Profiles::authorize(seal_profile,      PERMISSION_DENIED / INVALID_ARGUMENT
//!                            calling system) ──▶ Signatory
//!        … every other check of the request …
//!        Verifier::reserve(&activation) ──▶ Reservation   UNAUTHENTICATED if spent or in use
//!        (HSM task: key, certificate, CMS)
//!        Reservation::commit                    when the signature leaves
//! ```
//!
//! The reservation comes after every other check, so that a refused request
//! does not burn the signer's single-use token, and before any HSM work, so
//! that a replay costs no key (`single_use`). A failure of the service's
//! own releases the token.

pub mod admin;
mod calling_system;
mod claims;
mod error;
mod jwks;
mod profile;
mod replay;
mod single_use;
mod token;

pub mod dev;

#[cfg(test)]
mod fixtures;

use std::collections::HashSet;
use std::time::SystemTime;

pub use calling_system::{AllowedClient, CallingSystem};
pub use claims::MAX_JTI_LEN;
pub use error::AuthError;
pub use profile::{Cvr, Profile, ProfileId, Profiles, Right};
pub use single_use::{
    token_id, Claim, Epoch, LedgerError, LedgerFuture, Reservation, SpentLedger, TokenId,
};
pub use token::{TokenPolicy, Verifier, MAX_TOKEN_LEN};

/// An authentic, well-formed activation token: the signer's approval of a
/// set of documents (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    /// Token id; single use.
    pub jti: String,
    /// The signer's stable id (`sub`).
    pub subject: uuid::Uuid,
    /// Trimmed; `None` when absent or empty.
    pub given_name: Option<String>,
    /// Trimmed; `None` when absent or empty.
    pub family_name: Option<String>,
    pub org_cvr: Cvr,
    /// As the IdP says; certificates use the profile's name instead.
    pub org_name: String,
    pub seal_profiles: Vec<ProfileId>,
    /// SHA-256 digests the signer approved; never empty.
    pub digests: Vec<[u8; 32]>,
    /// `exp`.
    pub expires_at: SystemTime,
}

impl Activation {
    /// SPEC §3: every document's digest must be approved by the token.
    /// Fails with [`AuthError::NotCovered`] naming the first document (by
    /// index) that is not. An empty slice is covered; refusing an empty batch
    /// (INVALID_ARGUMENT) is the service's call.
    pub fn covers(&self, documents: &[[u8; 32]]) -> Result<(), AuthError> {
        let approved: HashSet<&[u8; 32]> = self.digests.iter().collect();
        match documents.iter().position(|d| !approved.contains(d)) {
            Some(index) => Err(AuthError::NotCovered { index }),
            None => Ok(()),
        }
    }
}

/// Who signs (SPEC §4, §5): the subject of the ephemeral certificate.
/// Organisation name and CVR come from the configured profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signatory {
    /// A personal signature (ETSI EN 319 412-2).
    Person {
        given_name: String,
        family_name: String,
        subject: uuid::Uuid,
        organization_name: String,
        cvr: Cvr,
    },
    /// An organisation seal (ETSI EN 319 412-3): no personal name anywhere.
    Seal {
        organization_name: String,
        cvr: Cvr,
        profile: ProfileId,
    },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn activation(digests: &[[u8; 32]]) -> Activation {
        Activation {
            jti: "j".into(),
            subject: uuid::Uuid::nil(),
            given_name: None,
            family_name: None,
            org_cvr: "12345678".parse().unwrap(),
            org_name: "Acme".into(),
            seal_profiles: vec![],
            digests: digests.to_vec(),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
        }
    }

    #[test]
    fn covers_only_approved_documents() {
        let a = activation(&[[1; 32], [2; 32], [3; 32]]);
        a.covers(&[[3; 32], [1; 32]]).unwrap();
        a.covers(&[[2; 32], [2; 32]]).unwrap();
        let err = a.covers(&[[1; 32], [4; 32], [5; 32]]).unwrap_err();
        assert!(matches!(err, AuthError::NotCovered { index: 1 }));
        assert_eq!(err.kind(), crate::ErrorKind::PermissionDenied);
    }

    #[test]
    fn verifier_is_shareable() {
        fn shared<T: Send + Sync>() {}
        shared::<Verifier>();
        shared::<Profiles>();
    }
}
