//! OCSP (RFC 6960) for the configurable alternative to noRevAvail (SPEC §5,
//! issue 4): the issuing CA's delegated responder, a key in the token and a
//! certificate from the issuing CA (`ca::ocsp_signing`), says "good" about
//! an ephemeral certificate at signing time; B-LT embeds that response.
//!
//! qsign revokes nothing (a key is destroyed before its certificate could be
//! misused), so every certificate of the issuing CA is "good"; CertIDs of
//! other issuers get "unknown" (§2.2).

use std::time::SystemTime;

use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Any, Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, SingleResponse, Version,
};

use super::{encoding, Issuer};
use crate::signer::Signer;
use crate::{Error, ErrorKind};

/// The delegated responder: its certificate and what every CertID of the
/// issuing CA hashes to (§4.1.1 issuerNameHash, issuerKeyHash).
#[derive(Clone, Debug)]
pub struct Responder {
    /// Label of the responder's persistent private key in the token.
    key_label: String,
    certificate: Certificate,
    der: Vec<u8>,
    sha1: IssuerHashes,
    sha256: IssuerHashes,
}

#[derive(Clone, Debug)]
struct IssuerHashes {
    name: Vec<u8>,
    key: Vec<u8>,
}

impl IssuerHashes {
    fn of<D: Digest>(issuer: &Issuer) -> Result<Self, Error> {
        let tbs = &issuer.certificate.tbs_certificate;
        Ok(Self {
            name: D::digest(tbs.subject.to_der().map_err(encoding)?).to_vec(),
            key: D::digest(tbs.subject_public_key_info.subject_public_key.raw_bytes()).to_vec(),
        })
    }
}

impl Responder {
    /// Checks RFC 6960 §4.2.2.2: `issuer` issued the certificate, which
    /// names id-kp-OCSPSigning. (The key is checked against the token at
    /// start, by the caller.)
    pub fn new(
        key_label: String,
        certificate_der: Vec<u8>,
        issuer: &Issuer,
    ) -> Result<Self, Error> {
        let certificate = Certificate::from_der(&certificate_der).map_err(|e| {
            Error::internal("the OCSP responder certificate is not valid DER").with_source(e)
        })?;
        let refuse = |why: &str| {
            Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("the OCSP responder certificate {why} (RFC 6960 §4.2.2.2)"),
            ))
        };
        if &certificate.tbs_certificate.issuer != issuer.name() {
            return refuse("is not issued by the issuing CA");
        }
        let signs_ocsp = certificate
            .tbs_certificate
            .get::<ExtendedKeyUsage>()
            .ok()
            .flatten()
            .is_some_and(|(_, eku)| eku.0.contains(&const_oid::db::rfc5280::ID_KP_OCSP_SIGNING));
        if !signs_ocsp {
            return refuse("does not name id-kp-OCSPSigning");
        }
        Ok(Self {
            key_label,
            certificate,
            der: certificate_der,
            sha1: IssuerHashes::of::<Sha1>(issuer)?,
            sha256: IssuerHashes::of::<Sha256>(issuer)?,
        })
    }

    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.der
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The §4.1.1 CertID of the issuing CA's certificate `serial`, SHA-256.
    pub fn cert_id(&self, serial: &SerialNumber) -> Result<CertId, Error> {
        Ok(CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA_256,
                parameters: Some(Any::from(Null)),
            },
            issuer_name_hash: OctetString::new(self.sha256.name.clone()).map_err(encoding)?,
            issuer_key_hash: OctetString::new(self.sha256.key.clone()).map_err(encoding)?,
            serial_number: serial.clone(),
        })
    }

    /// Whether `id` names a certificate of the issuing CA: both hashes
    /// match under its algorithm (SHA-1, what most clients send — RFC 5019
    /// §2.1.1 — or SHA-256).
    pub fn answers_for(&self, id: &CertId) -> bool {
        let hashes = match id.hash_algorithm.oid {
            ID_SHA_1 => &self.sha1,
            ID_SHA_256 => &self.sha256,
            _ => return false,
        };
        id.issuer_name_hash.as_bytes() == hashes.name && id.issuer_key_hash.as_bytes() == hashes.key
    }

    /// A successful §4.2.1 OCSPResponse with a BasicOCSPResponse about
    /// `ids`, signed by the responder key `signer`: "good" for the issuing
    /// CA's certificates, "unknown" for others; thisUpdate `now`,
    /// nextUpdate `next_update`. The responder certificate travels in
    /// `certs`, so a relying party can verify the response on its own.
    pub fn respond(
        &self,
        ids: Vec<CertId>,
        now: SystemTime,
        next_update: SystemTime,
        signer: &impl Signer,
    ) -> Result<Vec<u8>, Error> {
        self.respond_with(ids, None, now, next_update, signer)
    }

    /// [`Self::respond`] to a request: `extensions` are the response's
    /// (the request's nonce echoed, §4.4.1).
    pub fn respond_with(
        &self,
        ids: Vec<CertId>,
        extensions: Option<Vec<Extension>>,
        now: SystemTime,
        next_update: SystemTime,
        signer: &impl Signer,
    ) -> Result<Vec<u8>, Error> {
        let time = |t: SystemTime| -> Result<OcspGeneralizedTime, Error> {
            Ok(GeneralizedTime::from_system_time(t)
                .map_err(encoding)?
                .into())
        };
        let responses = ids
            .into_iter()
            .map(|cert_id| {
                Ok(SingleResponse {
                    cert_status: if self.answers_for(&cert_id) {
                        CertStatus::good()
                    } else {
                        CertStatus::unknown()
                    },
                    cert_id,
                    this_update: time(now)?,
                    next_update: Some(time(next_update)?),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let tbs_response_data = ResponseData {
            version: Version::V1,
            // §4.2.2.3: byName needs no SHA-1 of the responder's key.
            responder_id: ResponderId::ByName(self.certificate.tbs_certificate.subject.clone()),
            produced_at: time(now)?,
            responses,
            response_extensions: extensions,
        };
        let tbs = tbs_response_data.to_der().map_err(encoding)?;
        let signature_algorithm = signer.signature_algorithm_identifier().map_err(|e| {
            Error::internal("responder key has no signature algorithm").with_source(e)
        })?;
        let signature = signer.try_sign(&tbs)?;
        let basic = BasicOcspResponse {
            tbs_response_data,
            signature_algorithm,
            signature: BitString::from_bytes(signature.as_bytes()).map_err(encoding)?,
            certs: Some(vec![self.certificate.clone()]),
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(encoding)
    }
}

/// Requests a response may answer at once; an OCSPRequest lists a handful.
pub const MAX_REQUESTED: usize = 16;

/// What a DER OCSPRequest (§4.1.1) asks about, and its nonce extension to
/// echo (§4.4.1); `None` when it is not one we answer: malformed, empty, or
/// longer than [`MAX_REQUESTED`] (signed requests are answered like others;
/// §4.1.2 makes their signature optional to check).
pub fn parse_request(der: &[u8]) -> Option<(Vec<CertId>, Option<Vec<Extension>>)> {
    let request = OcspRequest::from_der(der).ok()?;
    let tbs = request.tbs_request;
    if tbs.request_list.is_empty() || tbs.request_list.len() > MAX_REQUESTED {
        return None;
    }
    let nonce = tbs
        .request_extensions
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE)
        .map(|nonce| vec![nonce]);
    let ids = tbs.request_list.into_iter().map(|r| r.req_cert).collect();
    Some((ids, nonce))
}

/// §4.2.1 OCSPResponse with responseStatus malformedRequest, DER.
pub fn malformed_request() -> Result<Vec<u8>, Error> {
    OcspResponse::malformed_request().to_der().map_err(encoding)
}
