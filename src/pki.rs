//! Certificates: the short-lived qualified certificate of every request
//! (SPEC §5) and the CA certificates made at set-up (`ca`).
//!
//! `issue(subject, public key, &issuer, &ca_signer)`: one small function per
//! certificate profile, the ETSI clause above each extension.

pub mod ca;
pub mod crl;
pub mod extensions;
pub mod name;
pub mod ocsp;
pub mod oid;

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use der::asn1::{BitString, GeneralizedTime, OctetString, UtcTime};
use der::{Decode, Encode};
use rand::RngCore;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use crate::signer::Signer;
use crate::Error;
use extensions::QcKind;

/// Upper bound of a certificate's lifetime (SPEC §5).
pub const MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// RFC 5280 Appendix A.1 ub-common-name and ub-organization-name: the
/// longest name, in characters, qsign puts into a CN or O.
pub const MAX_NAME_CHARS: usize = 64;

/// Upper bound of an ephemeral certificate's DER length, given names within
/// [`MAX_NAME_CHARS`], PDS, OCSP, caIssuers and registration authority URLs
/// within [`MAX_PDS_URL_LEN`], an issuer name within [`MAX_ISSUER_NAME_LEN`]
/// and any key algorithm (RSA-3072 at most; 3665 bytes measured). PDF
/// signatures reserve room from it before the certificate exists.
pub const MAX_END_ENTITY_LEN: usize = 4096;
/// Longest QcPDS (also OCSP, caIssuers, CRL and registration authority) URL
/// accepted in the configuration.
pub const MAX_PDS_URL_LEN: usize = 256;
/// Longest issuing CA subject name (DER) accepted at start.
pub const MAX_ISSUER_NAME_LEN: usize = 512;

/// The certificate policy of the service (configuration).
#[derive(Clone, Debug)]
pub struct CertificatePolicy {
    /// Lifetime of an ephemeral certificate: default 10 minutes, at most 60.
    pub lifetime: Duration,
    /// How far `notBefore` lies before now, for relying parties' clock skew.
    pub backdate: Duration,
    /// EN 319 412-5 §4.3.4 PKI disclosure statement URL (https).
    pub pds_url: String,
    /// EN 319 412-1 §5.1.3 national scheme prefix of the person's
    /// serialNumber, e.g. `UI` gives `UI:DK-<uuid>`.
    pub serial_number_prefix: String,
    /// EN 319 412-1 §5.1.3 NAT-5.1.3-05: URI of the registration authority
    /// of a two-letter (locally defined) `serial_number_prefix` scheme, put
    /// in the semantics identifier's nameRegistrationAuthorities.
    pub name_registration_authority: String,
    /// EN 319 412-2 §4.4.1: http URL of the issuing CA's certificate
    /// (DER), the caIssuers of every end-entity certificate.
    pub ca_issuers_url: String,
    /// The alternative to RFC 9608 noRevAvail (`[ocsp]`): the certificate
    /// names this OCSP responder, and B-LT embeds its response.
    pub ocsp_url: Option<String>,
}

impl CertificatePolicy {
    /// `notAfter` of a certificate issued at `now` (RFC 5280 §4.1.2.5).
    pub fn not_after(&self, now: SystemTime) -> SystemTime {
        now + self.lifetime.min(MAX_LIFETIME)
    }
}

/// Who the ephemeral certificate names.
#[derive(Clone, Debug)]
pub enum Subject<'a> {
    /// EN 319 412-2: an employee signing in person.
    NaturalPerson {
        given_name: &'a str,
        surname: &'a str,
        subject_id: uuid::Uuid,
        organization_name: &'a str,
        cvr: &'a str,
    },
    /// EN 319 412-3: an organisation's seal; no personal name anywhere.
    LegalPerson {
        organization_name: &'a str,
        cvr: &'a str,
        common_name: &'a str,
    },
}

/// The issuing CA as the certificates it signs need it; built once.
#[derive(Clone, Debug)]
pub struct Issuer {
    pub certificate: Certificate,
    pub der: Vec<u8>,
    key_id: OctetString,
}

impl Issuer {
    pub fn from_der(der: Vec<u8>) -> Result<Self, Error> {
        let certificate = Certificate::from_der(&der).map_err(|e| {
            Error::internal("issuing CA certificate is not valid DER").with_source(e)
        })?;
        let key_id =
            extensions::key_identifier(&certificate.tbs_certificate.subject_public_key_info)
                .map_err(encoding)?;
        Ok(Self {
            certificate,
            der,
            key_id,
        })
    }

    pub fn name(&self) -> &Name {
        &self.certificate.tbs_certificate.subject
    }

    /// RFC 5280 §4.2.1.1: what the certificates it issues name as AKI.
    pub fn key_id(&self) -> &OctetString {
        &self.key_id
    }
}

/// A freshly issued certificate and its DER encoding.
#[derive(Clone, Debug)]
pub struct Issued {
    pub certificate: Certificate,
    pub der: Vec<u8>,
}

/// Issues the ephemeral qualified certificate (SPEC §5).
pub fn issue(
    subject: &Subject<'_>,
    public_key: SubjectPublicKeyInfoOwned,
    policy: &CertificatePolicy,
    issuer: &Issuer,
    ca: &impl Signer,
    now: SystemTime,
) -> Result<Issued, Error> {
    let (name, kind, certificate_policy, registration_authority) = match subject {
        Subject::NaturalPerson {
            given_name,
            surname,
            subject_id,
            organization_name,
            cvr,
        } => {
            // EN 319 412-1 §5.1.3: scheme prefix, country, hyphen, identifier.
            let serial = format!("{}:DK-{subject_id}", policy.serial_number_prefix);
            let name = name::natural_person(given_name, surname, &serial, organization_name, cvr);
            // NAT-5.1.3-05: only a locally defined (two-letter) type needs it.
            let authority = (policy.serial_number_prefix.len() == 2)
                .then_some(policy.name_registration_authority.as_str());
            (name, QcKind::ESign, oid::QCP_N_QSCD, authority)
        }
        Subject::LegalPerson {
            organization_name,
            cvr,
            common_name,
        } => {
            let name = name::legal_person(organization_name, cvr, common_name);
            (name, QcKind::ESeal, oid::QCP_L_QSCD, None)
        }
    };
    check_name_lengths(subject)?;
    let name = name.map_err(|e| {
        Error::invalid_argument("a name does not fit in a certificate").with_source(e)
    })?;
    let validity = Validity {
        not_before: rfc5280_time(now - policy.backdate)?,
        not_after: rfc5280_time(policy.not_after(now))?,
    };
    let key_id = extensions::key_identifier(&public_key).map_err(encoding)?;
    let mut extensions = vec![
        extensions::key_usage_non_repudiation(),
        extensions::authority_key_identifier(&issuer.key_id),
        extensions::subject_key_identifier(&key_id),
        extensions::certificate_policies(certificate_policy),
        extensions::qc_statements(kind, &policy.pds_url, registration_authority),
        // EN 319 412-2 §4.4.1: caIssuers always; the OCSP responder with `[ocsp]`.
        extensions::authority_info_access(&policy.ca_issuers_url, policy.ocsp_url.as_deref()),
    ];
    if policy.ocsp_url.is_none() {
        // RFC 9608 §3: no revocation pointer at all. EN 319 412-2 asks for a
        // CRL DP or OCSP (GEN-4.3.11-2, GEN-4.4.1-8): pkilint's remaining
        // findings, which a short-term certificate keeps on purpose.
        extensions.push(extensions::no_rev_avail());
    }
    // EN 319 412-1 §5.2: a short-term certificate.
    extensions.push(extensions::valassured_st_certs());
    let extensions = extensions
        .into_iter()
        .collect::<der::Result<Vec<_>>>()
        .map_err(encoding)?;
    sign(
        Unsigned {
            issuer: issuer.name().clone(),
            subject: name,
            validity,
            public_key,
            extensions,
        },
        ca,
    )
}

/// RFC 5280 Appendix A.1 upper bounds, so that [`MAX_END_ENTITY_LEN`] holds.
fn check_name_lengths(subject: &Subject<'_>) -> Result<(), Error> {
    let (common_name, organization) = match subject {
        Subject::NaturalPerson {
            given_name,
            surname,
            organization_name,
            ..
        } => (
            given_name.chars().count() + 1 + surname.chars().count(),
            organization_name,
        ),
        Subject::LegalPerson {
            organization_name,
            common_name,
            ..
        } => (common_name.chars().count(), organization_name),
    };
    if common_name > MAX_NAME_CHARS || organization.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid_argument(format!(
            "a name is longer than {MAX_NAME_CHARS} characters, the limit of a certificate's \
             common name and organization (RFC 5280 ub-common-name)"
        )));
    }
    Ok(())
}

/// The parts of a TBSCertificate that differ between profiles.
pub(crate) struct Unsigned {
    pub issuer: Name,
    pub subject: Name,
    pub validity: Validity,
    pub public_key: SubjectPublicKeyInfoOwned,
    pub extensions: Vec<Extension>,
}

/// RFC 5280 §4.1: encodes the TBSCertificate once, signs it, and assembles
/// the certificate from the encoded parts.
pub(crate) fn sign(unsigned: Unsigned, ca: &impl Signer) -> Result<Issued, Error> {
    let algorithm = ca
        .signature_algorithm_identifier()
        .map_err(|e| Error::internal("CA key has no signature algorithm").with_source(e))?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: random_serial()?,
        signature: algorithm.clone(),
        issuer: unsigned.issuer,
        validity: unsigned.validity,
        subject: unsigned.subject,
        subject_public_key_info: unsigned.public_key,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(unsigned.extensions),
    };
    let tbs_der = tbs.to_der().map_err(encoding)?;
    let signature = ca.try_sign(&tbs_der)?;
    let signature = BitString::from_bytes(signature.as_bytes()).map_err(encoding)?;
    // RFC 5280 §4.1 Certificate: the TBSCertificate goes in as the bytes
    // that were signed, not encoded a second time.
    let mut body = tbs_der;
    algorithm.encode_to_vec(&mut body).map_err(encoding)?;
    signature.encode_to_vec(&mut body).map_err(encoding)?;
    let length = der::Length::try_from(body.len()).map_err(encoding)?;
    let mut der = Vec::with_capacity(body.len() + 5);
    der::Header::new(der::Tag::Sequence, length)
        .and_then(|header| header.encode_to_vec(&mut der))
        .map_err(encoding)?;
    der.extend_from_slice(&body);
    let certificate = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature,
    };
    Ok(Issued { certificate, der })
}

/// RFC 5280 §4.1.2.2: positive, at most 20 octets; 127 random bits here
/// (CA/B BR §7.1 asks for at least 64).
pub(crate) fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(encoding)
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
pub(crate) fn rfc5280_time(time: SystemTime) -> Result<Time, Error> {
    let generalized = GeneralizedTime::from_system_time(time).map_err(encoding)?;
    if generalized.to_date_time().year() < 2050 {
        let utc = UtcTime::from_system_time(time).map_err(encoding)?;
        Ok(Time::UtcTime(utc))
    } else {
        Ok(Time::GeneralTime(generalized))
    }
}

pub(crate) fn encoding(e: der::Error) -> Error {
    Error::internal("certificate encoding failed").with_source(e)
}
