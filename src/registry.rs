//! The registry of SPEC §9: organisation, system and user certificates of
//! the organisation CA, e-mail validation, and the administered profiles
//! of SPEC §4 — the administration flow beside `signing`, independent of
//! gRPC. Records live in the shared database (`store::RegistryStore`, the
//! only SQL); keys never do: the organisation CA's is in the token, a
//! caller's stays with the caller or leaves once in a PKCS#12.
//!
//! ```text
//! bearer ──auth::admin::verify──► Administrator ──require_admin_of / own sub──►
//!   order ─► PENDING ─issue─► VALID ─renew─► VALID (new serial) ─revoke─► REVOKED
//!                 (CSR or generated key; HSM signs; guarded UPDATE decides the race)
//! ```

pub mod certificate;
pub mod csr;
pub mod csv;
pub mod flow;

mod lifecycle;
pub mod lookup;
pub mod mail;
pub mod model;
mod notices;
pub mod pkcs12;
pub mod profiles;
pub mod settings;
pub mod status;

pub use flow::{IssueResult, KeySource, Registry};
pub use settings::RegistrySettings;

/// Paths on the HTTP listener (SPEC §9): the organisation CA's CRL (RFC
/// 5280 §4.2.1.13) and certificate (AIA caIssuers, RFC 5280 §4.2.2.1,
/// DER as RFC 2585 §4.1 `application/pkix-cert`).
pub const CRL_PATH: &str = "/crl/organization-ca.crl";
pub const CA_CERTIFICATE_PATH: &str = "/ca/organization-ca.crt";
