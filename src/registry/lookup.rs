//! SPEC §10 public certificate lookup, independent of HTTP: what anyone may
//! see of the registry. Only issued certificates with `publish`; a
//! [`PublicCertificate`] has no field for the contact person, the user's
//! `sub` or a key, so no front door can show them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use der::Decode;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::model::{unix, Kind, Reason, Record, Status};
use super::Registry;
use crate::limits::{Caller, CallerLimits};
use crate::{Error, ErrorKind};

/// A query longer than this is refused: no name, e-mail or serial is.
pub const MAX_QUERY_CHARS: usize = 200;
/// Results per page.
pub const PAGE_SIZE: usize = 20;
/// Requests a second (and at once) per client address: a person never
/// needs more, a scraper gets HTTP 429.
const PER_SECOND: u32 = 10;
const CONCURRENT: usize = 4;

/// The lookup service: the registry read through its public view, and the
/// per-address rate.
pub struct Lookup {
    registry: Arc<Registry>,
    limits: CallerLimits,
}

/// What the public sees of one certificate.
#[derive(Clone, Debug)]
pub struct PublicCertificate {
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub system_name: String,
    pub certificate_email: String,
    pub status: Status,
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<Reason>,
    /// E.g. "RSA 3072" or "ECDSA P-256".
    pub key: String,
    pub sha1: String,
    pub sha256: String,
    pub der: Vec<u8>,
}

/// One page of results and the token of the next (empty at the end).
pub struct Page {
    pub certificates: Vec<PublicCertificate>,
    pub next: String,
}

/// The organisation CA's and the root's certificates and the revocation
/// addresses (RFC 5280 §4.2.1.13, §4.2.2.1).
pub struct Chain {
    /// RFC 4514 subjects of the organisation CA and the root.
    pub organization_ca: String,
    pub root: String,
    pub crl: String,
    pub ocsp: String,
    pub ca_issuers: String,
    /// Where the listener serves the root (`GET /ca/root-ca.cer`).
    pub root_url: String,
}

impl Lookup {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self::with_rate(registry, PER_SECOND)
    }

    /// [`Lookup::new`] with `per_second` requests per client address.
    pub fn with_rate(registry: Arc<Registry>, per_second: u32) -> Self {
        Self {
            registry,
            limits: CallerLimits::new(CONCURRENT, per_second),
        }
    }

    /// One request of `peer` within its rate, or RESOURCE_EXHAUSTED.
    pub fn admit(&self, peer: IpAddr) -> Result<crate::limits::Admission, Error> {
        self.limits.admit(Caller::from_address(peer))
    }

    /// Searches with one query (id, CVR, serial, or part of a name or
    /// e-mail); `page_token` continues a search. An empty query finds none.
    pub async fn search(&self, query: &str, page_token: &str) -> Result<Page, Error> {
        let query = validated(query)?;
        if query.is_empty() {
            return Ok(Page {
                certificates: Vec::new(),
                next: String::new(),
            });
        }
        let after = match page_token {
            "" => None,
            token => Some(
                uuid::Uuid::try_parse(token)
                    .map_err(|_| Error::invalid_argument("bad page_token"))?
                    .to_string(),
            ),
        };
        let exact = exact_form(query);
        let limit = i64::try_from(PAGE_SIZE + 1).unwrap_or(i64::MAX);
        let mut rows = self
            .registry
            .store
            .lookup(exact, query.to_owned(), after, limit)
            .await?;
        let next = if rows.len() > PAGE_SIZE {
            rows.truncate(PAGE_SIZE);
            rows.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        let now = unix(SystemTime::now());
        let certificates = rows
            .into_iter()
            .map(|r| public(r, now))
            .collect::<Result<_, _>>()?;
        Ok(Page { certificates, next })
    }

    /// One published certificate, NOT_FOUND for any other id.
    pub async fn get(&self, id: &str) -> Result<PublicCertificate, Error> {
        let not_found = || Error::new(ErrorKind::NotFound, "no published certificate has this id");
        let id = uuid::Uuid::try_parse(id).map_err(|_| not_found())?;
        let record = self.registry.store.lookup_one(id).await?;
        public(record.ok_or_else(not_found)?, unix(SystemTime::now()))
    }

    pub fn chain(&self) -> Chain {
        let locations = self.registry.settings().locations();
        Chain {
            organization_ca: subject_of(&self.registry.chain[0]),
            root: subject_of(&self.registry.chain[1]),
            crl: locations.crl,
            ocsp: locations.ocsp,
            ca_issuers: locations.ca_issuers,
            root_url: format!("{}/ca/root-ca.cer", self.registry.settings().base_url),
        }
    }
}

/// The trimmed query, or INVALID_ARGUMENT when it is too long or has
/// control characters (e.g. `%00`): no name has them.
fn validated(query: &str) -> Result<&str, Error> {
    let query = query.trim();
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid_argument(format!(
            "a query is at most {MAX_QUERY_CHARS} characters"
        )));
    }
    if query.chars().any(char::is_control) {
        return Err(Error::invalid_argument("a query has no control characters"));
    }
    Ok(query)
}

/// The query as an id, CVR or serial is spelt in the registry: a UUID in
/// its hyphenated lowercase form, hex without colons or spaces in
/// lowercase with leading zeros dropped (`certificate::serial_hex`).
fn exact_form(query: &str) -> String {
    // Only the hyphenated form: 32 hex digits are a serial, not an id.
    if let Some(id) = uuid::Uuid::try_parse(query)
        .ok()
        .filter(|_| query.len() == 36)
    {
        return id.to_string();
    }
    let compact: String = query
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_lowercase();
    if compact.chars().all(|c| c.is_ascii_digit()) {
        return compact; // a CVR, or a decimal-looking serial: both compared as is
    }
    if compact.chars().all(|c| c.is_ascii_hexdigit()) {
        return compact.trim_start_matches('0').to_owned();
    }
    compact
}

fn public(record: Record, now: i64) -> Result<PublicCertificate, Error> {
    let certificate =
        x509_cert::Certificate::from_der(&record.der).map_err(crate::pki::encoding)?;
    let tbs = &certificate.tbs_certificate;
    Ok(PublicCertificate {
        id: record.id.to_string(),
        kind: record.kind,
        status: record.status(now),
        issuer: super::certificate::rfc4514(&tbs.issuer),
        key: key_description(&tbs.subject_public_key_info),
        sha1: colon_hex(&Sha1::digest(&record.der)),
        sha256: colon_hex(&Sha256::digest(&record.der)),
        not_before: record.not_before.unwrap_or_default(),
        not_after: record.not_after.unwrap_or_default(),
        name: record.name,
        system_name: record.system_name,
        certificate_email: record.certificate_email,
        serial: record.serial,
        subject: record.subject,
        revoked_at: record.revoked_at,
        revocation_reason: record.revocation_reason,
        der: record.der,
    })
}

fn subject_of(der: &[u8]) -> String {
    x509_cert::Certificate::from_der(der)
        .map(|c| super::certificate::rfc4514(&c.tbs_certificate.subject))
        .unwrap_or_default()
}

/// Uppercase hex with colons, as certificate viewers print fingerprints.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 3279 §2.3.1 (RSA modulus bits), RFC 5480 §2.1.1.1 (named curve),
/// RFC 8410 (Ed25519).
fn key_description(spki: &spki::SubjectPublicKeyInfoOwned) -> String {
    use const_oid::db::{rfc5912, rfc8410};
    let oid = spki.algorithm.oid;
    if oid == rfc5912::RSA_ENCRYPTION {
        let bits = spki
            .subject_public_key
            .as_bytes()
            .and_then(|b| RsaKey::from_der(b).ok())
            .map(|k| {
                let n = k.modulus.as_bytes();
                n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize)
            });
        return bits.map_or("RSA".to_owned(), |b| format!("RSA {b}"));
    }
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == rfc5912::SECP_256_R_1 => "ECDSA P-256".to_owned(),
            Some(c) if c == rfc5912::SECP_384_R_1 => "ECDSA P-384".to_owned(),
            Some(c) if c == rfc5912::SECP_521_R_1 => "ECDSA P-521".to_owned(),
            _ => "ECDSA".to_owned(),
        };
    }
    if oid == rfc8410::ID_ED_25519 {
        return "Ed25519".to_owned();
    }
    oid.to_string()
}

/// RFC 8017 §A.1.1 RSAPublicKey.
#[derive(der::Sequence)]
struct RsaKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    exponent: der::asn1::UintRef<'a>,
}

/// PEM (RFC 7468 §5) of a DER certificate.
pub fn pem(der: &[u8]) -> Result<String, Error> {
    crate::state::pem_certificate(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_forms() {
        let id = "4702a07a-1e83-4ac1-ae21-fcb968033c27";
        assert_eq!(exact_form(&id.to_uppercase()), id);
        assert_eq!(exact_form("11223344"), "11223344");
        assert_eq!(exact_form("00:6F:41:85"), "6f4185");
        // 32 hex digits parse as a UUID too, but are a serial.
        let serial = "6F418532C801336246E122B1956647F9";
        assert_eq!(exact_form(serial), serial.to_lowercase());
        assert_eq!(exact_form("Acme A/S"), "acmea/s");
    }

    #[test]
    fn queries_are_bounded_and_printable() {
        assert_eq!(validated("  acme ").unwrap(), "acme");
        assert!(validated(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(validated("a\0b").is_err());
        assert!(validated("<script>'\"%_").is_ok());
    }
}
