//! Certificates made at set-up: a self-signed root, an issuing CA (RFC 5280
//! §4.2.1.9, §4.2.1.3), the time-stamping authority (RFC 3161 §2.3) and the
//! OCSP responder (RFC 6960 §4.2.2.2).
//! Their keys stay in the token.

use std::time::{Duration, SystemTime};

use spki::SubjectPublicKeyInfoOwned;
use x509_cert::name::Name;

use super::{encoding, extensions, rfc5280_time, sign, Issued, Issuer, Unsigned};
use crate::signer::Signer;
use crate::Error;
use x509_cert::time::Validity;

/// A self-signed root: cA, keyCertSign + cRLSign, SKI (RFC 5280 §4.2.1.2:
/// a self-signed certificate may omit the AKI).
pub fn root(
    name: Name,
    public_key: SubjectPublicKeyInfoOwned,
    signer: &impl Signer,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Issued, Error> {
    let key_id = extensions::key_identifier(&public_key).map_err(encoding)?;
    let extensions = [
        extensions::basic_constraints_ca(None),
        extensions::key_usage_ca(),
        extensions::subject_key_identifier(&key_id),
    ];
    certificate(
        name.clone(),
        name,
        public_key,
        extensions,
        signer,
        now,
        lifetime,
    )
}

/// An issuing CA under `parent`: cA with pathLenConstraint 0 — it issues
/// end-entity certificates only; `parent_crl` is the http URL of the
/// parent's CRL (RFC 5280 §4.2.1.13), which relying parties check it with.
pub fn issuing(
    name: Name,
    public_key: SubjectPublicKeyInfoOwned,
    parent: (&Issuer, &str),
    signer: &impl Signer,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Issued, Error> {
    let (parent, parent_crl) = parent;
    let key_id = extensions::key_identifier(&public_key).map_err(encoding)?;
    let extensions = [
        extensions::basic_constraints_ca(Some(0)),
        extensions::key_usage_ca(),
        extensions::subject_key_identifier(&key_id),
        extensions::authority_key_identifier(&parent.key_id),
        extensions::crl_distribution_points(parent_crl),
    ];
    certificate(
        parent.name().clone(),
        name,
        public_key,
        extensions,
        signer,
        now,
        lifetime,
    )
}

/// A time-stamping authority's certificate under `parent` (the root):
/// RFC 3161 §2.3 extendedKeyUsage id-kp-timeStamping only, critical;
/// keyUsage digitalSignature + nonRepudiation, critical; AKI and SKI; not a
/// CA (no basicConstraints, RFC 5280 §4.2.1.9 lets an end entity omit it).
pub fn time_stamping(
    name: Name,
    public_key: SubjectPublicKeyInfoOwned,
    parent: (&Issuer, &str),
    signer: &impl Signer,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Issued, Error> {
    let usage = [
        extensions::key_usage_time_stamping(),
        extensions::extended_key_usage_time_stamping(),
    ];
    delegate(name, public_key, parent, usage, signer, (now, lifetime))
}

/// The issuing CA's delegated OCSP responder (RFC 6960 §4.2.2.2): issued
/// by `parent` (the CA whose certificates it answers for), id-kp-OCSPSigning,
/// keyUsage digitalSignature, and id-pkix-ocsp-nocheck (§4.2.2.2.1) so that
/// its own responses need no revocation data; AKI and SKI; not a CA.
pub fn ocsp_signing(
    name: Name,
    public_key: SubjectPublicKeyInfoOwned,
    parent: (&Issuer, &str),
    signer: &impl Signer,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Issued, Error> {
    let usage = [
        extensions::key_usage_digital_signature(),
        extensions::extended_key_usage_ocsp_signing(),
        extensions::ocsp_nocheck(),
    ];
    delegate(name, public_key, parent, usage, signer, (now, lifetime))
}

/// A certificate under `parent` (the issuer and the http URL of its CRL)
/// for a service key that is no CA: `usage` extensions, then SKI, AKI and
/// the RFC 5280 §4.2.1.13 CRL distribution point of the issuer's CRL.
fn delegate<const N: usize>(
    name: Name,
    public_key: SubjectPublicKeyInfoOwned,
    (parent, parent_crl): (&Issuer, &str),
    usage: [der::Result<x509_cert::ext::Extension>; N],
    signer: &impl Signer,
    (now, lifetime): (SystemTime, Duration),
) -> Result<Issued, Error> {
    let key_id = extensions::key_identifier(&public_key).map_err(encoding)?;
    let identifiers = [
        extensions::subject_key_identifier(&key_id),
        extensions::authority_key_identifier(&parent.key_id),
        extensions::crl_distribution_points(parent_crl),
    ];
    certificate(
        parent.name().clone(),
        name,
        public_key,
        usage.into_iter().chain(identifiers),
        signer,
        now,
        lifetime,
    )
}

/// Encodes and signs a CA-made certificate with `extensions`, valid from an
/// hour ago (clock skew) for `lifetime`.
fn certificate(
    issuer: Name,
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    extensions: impl IntoIterator<Item = der::Result<x509_cert::ext::Extension>>,
    signer: &impl Signer,
    now: SystemTime,
    lifetime: Duration,
) -> Result<Issued, Error> {
    let unsigned = Unsigned {
        issuer,
        subject,
        validity: validity(now, lifetime)?,
        public_key,
        extensions: extensions
            .into_iter()
            .collect::<der::Result<_>>()
            .map_err(encoding)?,
    };
    sign(unsigned, signer)
}

fn validity(now: SystemTime, lifetime: Duration) -> Result<Validity, Error> {
    Ok(Validity {
        not_before: rfc5280_time(now - Duration::from_secs(3600))?,
        not_after: rfc5280_time(now + lifetime)?,
    })
}
