//! True status of the organisation CA's certificates (SPEC §9): OCSP
//! (RFC 6960) answered from the registry, and the CA's CRL (RFC 5280 §5)
//! listing every revoked, unexpired certificate.
//!
//! The organisation CA signs its own responses (RFC 6960 §4.2.2.2: "the CA
//! who issued the certificate in question"), so no delegated responder
//! certificate is needed.

use std::time::{Duration, SystemTime};

use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use der::asn1::{BitString, GeneralizedTime};
use der::Encode;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::certificate::serial_hex;
use super::model::{from_unix, Reason, RevokedSerial, SerialStatus};
use crate::pki::{encoding, rfc5280_time, Issuer};
use crate::signer::Signer;
use crate::Error;

/// How long a response or CRL may be cached (RFC 5019 §4: short).
pub const NEXT_UPDATE: Duration = Duration::from_secs(3600);

/// What every CertID of the organisation CA hashes to (§4.1.1).
#[derive(Clone, Debug)]
pub struct CaHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

impl CaHashes {
    pub fn of(ca: &Issuer) -> Result<Self, Error> {
        let tbs = &ca.certificate.tbs_certificate;
        let name = tbs.subject.to_der().map_err(encoding)?;
        let key = tbs.subject_public_key_info.subject_public_key.raw_bytes();
        Ok(Self {
            sha1: (Sha1::digest(&name).to_vec(), Sha1::digest(key).to_vec()),
            sha256: (Sha256::digest(&name).to_vec(), Sha256::digest(key).to_vec()),
        })
    }

    /// Whether `id` names a certificate of the organisation CA.
    pub fn matches(&self, id: &CertId) -> bool {
        let (name, key) = match id.hash_algorithm.oid {
            ID_SHA_1 => &self.sha1,
            ID_SHA_256 => &self.sha256,
            _ => return false,
        };
        id.issuer_name_hash.as_bytes() == name && id.issuer_key_hash.as_bytes() == key
    }
}

/// The registry's spelling of a CertID's serial.
pub fn serial_of(id: &CertId) -> String {
    serial_hex(id.serial_number.as_bytes())
}

/// A signed §4.2.1 response: `statuses` in the order of `ids`.
pub fn respond(
    ca: &Issuer,
    answers: Vec<(CertId, SerialStatus)>,
    nonce: Option<Vec<x509_cert::ext::Extension>>,
    now: SystemTime,
    signer: &impl Signer,
) -> Result<Vec<u8>, Error> {
    let time = |t: SystemTime| -> Result<OcspGeneralizedTime, Error> {
        Ok(GeneralizedTime::from_system_time(t)
            .map_err(encoding)?
            .into())
    };
    let responses = answers
        .into_iter()
        .map(|(cert_id, status)| {
            let cert_status = match status {
                SerialStatus::Good => CertStatus::good(),
                SerialStatus::Unknown => CertStatus::unknown(),
                SerialStatus::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                    revocation_time: time(from_unix(at))?,
                    revocation_reason: Some(crl_reason(reason)),
                }),
            };
            Ok(SingleResponse {
                cert_id,
                cert_status,
                this_update: time(now)?,
                next_update: Some(time(now + NEXT_UPDATE)?),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByName(ca.name().clone()),
        produced_at: time(now)?,
        responses,
        response_extensions: nonce,
    };
    let tbs = data.to_der().map_err(encoding)?;
    let signature_algorithm = signer
        .signature_algorithm_identifier()
        .map_err(|e| Error::internal("CA key has no signature algorithm").with_source(e))?;
    let signature = signer.try_sign(&tbs).map_err(|e| {
        Error::new(
            crate::ErrorKind::Unavailable,
            "the HSM could not sign the OCSP response",
        )
        .with_source(e)
    })?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm,
        signature: BitString::from_bytes(signature.as_bytes()).map_err(encoding)?,
        certs: None,
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(encoding)
}

/// The organisation CA's CRL at `now` (RFC 5280 §5.1.2.6 entries with
/// §5.3.1 reasonCode); the cRLNumber is the time, so it only grows.
pub fn crl(
    ca: &Issuer,
    revoked: Vec<RevokedSerial>,
    now: SystemTime,
    signer: &impl Signer,
) -> Result<Vec<u8>, Error> {
    let entries = revoked
        .into_iter()
        .map(|r| {
            let serial = hex::decode(&r.serial)
                .map_err(|_| Error::internal("a stored serial is not hex"))?;
            Ok(RevokedCert {
                serial_number: SerialNumber::new(&serial).map_err(encoding)?,
                revocation_date: rfc5280_time(from_unix(r.revoked_at))?,
                crl_entry_extensions: Some(vec![crate::pki::extensions::extension(
                    <CrlReason as const_oid::AssociatedOid>::OID,
                    false,
                    &crl_reason(r.reason),
                )
                .map_err(encoding)?]),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let number = super::model::unix(now).unsigned_abs();
    crate::pki::crl::issue_crl_with(ca, signer, (now, now + NEXT_UPDATE), number, entries)
}

fn crl_reason(reason: Reason) -> CrlReason {
    match reason {
        Reason::Unspecified => CrlReason::Unspecified,
        Reason::KeyCompromise => CrlReason::KeyCompromise,
        Reason::CaCompromise => CrlReason::CaCompromise,
        Reason::AffiliationChanged => CrlReason::AffiliationChanged,
        Reason::Superseded => CrlReason::Superseded,
        Reason::CessationOfOperation => CrlReason::CessationOfOperation,
        Reason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
    }
}
