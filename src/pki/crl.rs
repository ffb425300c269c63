//! Certificate revocation lists of the qsign CAs (RFC 5280 §5), signed by
//! the CA key in the token. qsign revokes nothing: end-entity certificates
//! are short-lived (RFC 9608 noRevAvail), so the CRLs are empty and exist
//! as the validation data PAdES B-LT puts in the /DSS (EN 319 142-1 §5.4).

use std::time::SystemTime;

use der::asn1::{BitString, Uint};
use der::Encode;
use x509_cert::crl::{CertificateList, TbsCertList};
use x509_cert::ext::pkix::CrlNumber;
use x509_cert::Version;

use super::{encoding, extensions, rfc5280_time, Issuer};
use crate::signer::Signer;
use crate::Error;

/// Which qsign CA a CRL is of (RFC 5280 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlOf {
    IssuingCa,
    Root,
}

/// An RFC 5280 §5.1 v2 CRL of `issuer` with no revoked certificates,
/// signed by `signer` (the issuer's key): §5.2.1 authorityKeyIdentifier and
/// §5.2.3 cRLNumber, both of which the profile requires of conforming CAs.
pub fn issue_crl(
    issuer: &Issuer,
    signer: &impl Signer,
    this_update: SystemTime,
    next_update: SystemTime,
    number: u64,
) -> Result<Vec<u8>, Error> {
    issue_crl_with(
        issuer,
        signer,
        (this_update, next_update),
        number,
        Vec::new(),
    )
}

/// [`issue_crl`] listing `revoked` (§5.1.2.6; the organisation CA's
/// registry certificates, each with its §5.3.1 reasonCode).
pub fn issue_crl_with(
    issuer: &Issuer,
    signer: &impl Signer,
    (this_update, next_update): (SystemTime, SystemTime),
    number: u64,
    revoked: Vec<x509_cert::crl::RevokedCert>,
) -> Result<Vec<u8>, Error> {
    if next_update <= this_update {
        return Err(Error::internal(
            "a CRL's nextUpdate must follow its thisUpdate",
        ));
    }
    let algorithm = signer
        .signature_algorithm_identifier()
        .map_err(|e| Error::internal("CA key has no signature algorithm").with_source(e))?;
    let number = Uint::new(&number.to_be_bytes()).map_err(encoding)?;
    let crl_extensions = vec![
        extensions::authority_key_identifier(&issuer.key_id).map_err(encoding)?,
        extensions::extension(
            <CrlNumber as const_oid::AssociatedOid>::OID,
            false,
            &CrlNumber(number),
        )
        .map_err(encoding)?,
    ];
    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer: issuer.name().clone(),
        // §5.1.2.4, §5.1.2.5: the same time rules as certificate validity.
        this_update: rfc5280_time(this_update)?,
        next_update: Some(rfc5280_time(next_update)?),
        // §5.1.2.6: absent when nothing is revoked.
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(crl_extensions),
    };
    let tbs_der = tbs.to_der().map_err(encoding)?;
    let signature = signer.try_sign(&tbs_der)?;
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(signature.as_bytes()).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}
