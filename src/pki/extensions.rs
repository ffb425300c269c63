//! Certificate extensions of the qualified profiles, each with the clause
//! that asks for it.

use const_oid::db::rfc5280;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5String, Null, OctetString, PrintableString};
use der::{Any, Encode, Sequence};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;

use super::oid;

/// Wraps an encodable value as an `Extension` (RFC 5280 §4.1).
pub fn extension(
    id: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> der::Result<Extension> {
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn associated<T: AssociatedOid + Encode>(critical: bool, value: &T) -> der::Result<Extension> {
    extension(T::OID, critical, value)
}

/// RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 of the
/// subjectPublicKey BIT STRING value.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> der::Result<OctetString> {
    let digest = Sha256::digest(spki.subject_public_key.raw_bytes());
    OctetString::new(&digest[..20])
}

/// RFC 5280 §4.2.1.2.
pub fn subject_key_identifier(id: &OctetString) -> der::Result<Extension> {
    associated(false, &SubjectKeyIdentifier(id.clone()))
}

/// RFC 5280 §4.2.1.1: the issuer's subjectKeyIdentifier.
pub fn authority_key_identifier(issuer_key_id: &OctetString) -> der::Result<Extension> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(issuer_key_id.clone()),
        ..Default::default()
    };
    associated(false, &aki)
}

/// EN 319 412-2 §4.3.2: nonRepudiation (contentCommitment) only, critical
/// ("type A" in the ETSI table of key usages).
pub fn key_usage_non_repudiation() -> der::Result<Extension> {
    associated(true, &KeyUsage(KeyUsages::NonRepudiation.into()))
}

/// RFC 5280 §4.2.1.3 for CA certificates: keyCertSign and cRLSign, critical.
pub fn key_usage_ca() -> der::Result<Extension> {
    associated(true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))
}

/// keyUsage of a TSA: digitalSignature and nonRepudiation, critical.
/// RFC 3161 leaves it open; relying parties (OpenSSL's timestamp-signing
/// purpose) refuse a TSA certificate with any other bit.
pub fn key_usage_time_stamping() -> der::Result<Extension> {
    associated(
        true,
        &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation),
    )
}

/// RFC 3161 §2.3: "only one instance of the extended key usage field
/// extension ... with KeyPurposeID having value id-kp-timeStamping. This
/// extension MUST be critical."
pub fn extended_key_usage_time_stamping() -> der::Result<Extension> {
    associated(
        true,
        &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_TIME_STAMPING]),
    )
}

/// keyUsage of an OCSP responder: digitalSignature only, critical.
pub fn key_usage_digital_signature() -> der::Result<Extension> {
    associated(true, &KeyUsage(KeyUsages::DigitalSignature.into()))
}

/// RFC 6960 §4.2.2.2: a delegated responder's certificate "MUST" name
/// id-kp-OCSPSigning in extendedKeyUsage.
pub fn extended_key_usage_ocsp_signing() -> der::Result<Extension> {
    associated(
        false,
        &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_OCSP_SIGNING]),
    )
}

/// RFC 6960 §4.2.2.2.1 id-pkix-ocsp-nocheck, `NULL`: relying parties trust
/// the responder for the certificate's lifetime without checking it.
pub fn ocsp_nocheck() -> der::Result<Extension> {
    extension(const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK, false, &Null)
}

/// RFC 5280 §4.2.2.1 authorityInfoAccess, non-critical: id-ad-caIssuers
/// with the issuing CA's certificate over http (EN 319 412-2 §4.4.1
/// GEN-4.4.1-3/-4), and with `ocsp` an id-ad-ocsp location (RFC 6960 §3.1,
/// EN 319 412-2 §4.4.1 GEN-4.4.1-2). caIssuers is no revocation pointer, so
/// a noRevAvail certificate may carry it (RFC 9608 §3 bars only CRL DPs and
/// OCSP).
pub fn authority_info_access(ca_issuers: &str, ocsp: Option<&str>) -> der::Result<Extension> {
    let location = |method, url: &str| -> der::Result<AccessDescription> {
        Ok(AccessDescription {
            access_method: method,
            access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
        })
    };
    let mut access = Vec::with_capacity(2);
    if let Some(url) = ocsp {
        access.push(location(rfc5280::ID_AD_OCSP, url)?);
    }
    access.push(location(rfc5280::ID_AD_CA_ISSUERS, ca_issuers)?);
    associated(false, &AuthorityInfoAccessSyntax(access))
}

/// RFC 5280 §4.2.1.13 cRLDistributionPoints, non-critical: one
/// distribution point whose fullName is the http URL of the issuer's CRL
/// (EN 319 412-2 §4.3.11 GEN-4.3.11-4: http or ldap).
pub fn crl_distribution_points(url: &str) -> der::Result<Extension> {
    let point = DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
        ])),
        reasons: None,
        crl_issuer: None,
    };
    associated(false, &CrlDistributionPoints(vec![point]))
}

/// RFC 5280 §4.2.1.9, critical for CAs.
pub fn basic_constraints_ca(path_len: Option<u8>) -> der::Result<Extension> {
    associated(
        true,
        &BasicConstraints {
            ca: true,
            path_len_constraint: path_len,
        },
    )
}

/// EN 319 411-2 §5.3 / EN 319 412-2 §4.3.3: exactly one QCP policy.
pub fn certificate_policies(policy: ObjectIdentifier) -> der::Result<Extension> {
    let policies = CertificatePolicies(vec![PolicyInformation {
        policy_identifier: policy,
        policy_qualifiers: None,
    }]);
    associated(false, &policies)
}

/// RFC 9608 §2: noRevAvail, `NULL`, non-critical. Such a certificate carries
/// no CRL distribution point and no OCSP pointer (RFC 9608 §3).
pub fn no_rev_avail() -> der::Result<Extension> {
    extension(oid::CE_NO_REV_AVAIL, false, &Null)
}

/// EN 319 412-1 §5.2: ext-etsi-valassured-ST-certs, `NULL`, non-critical.
pub fn valassured_st_certs() -> der::Result<Extension> {
    extension(oid::ETSI_EXT_VALASSURED_ST_CERTS, false, &Null)
}

/// RFC 3739 §3.2.6 `QCStatement ::= SEQUENCE { statementId, statementInfo OPTIONAL }`.
#[derive(Sequence)]
struct QcStatement {
    statement_id: ObjectIdentifier,
    statement_info: Option<Any>,
}

/// EN 319 412-5 §4.3.4 `PdsLocation ::= SEQUENCE { url IA5String, language PrintableString }`.
#[derive(Sequence)]
struct PdsLocation {
    url: Ia5String,
    language: PrintableString,
}

/// RFC 3739 §3.2.6.1 `SemanticsInformation ::= SEQUENCE {
/// semanticsIdentifier OBJECT IDENTIFIER OPTIONAL, nameRegistrationAuthorities
/// SEQUENCE SIZE (1..MAX) OF GeneralName OPTIONAL }`.
#[derive(Sequence)]
struct SemanticsInformation {
    semantics_identifier: Option<ObjectIdentifier>,
    name_registration_authorities: Option<Vec<GeneralName>>,
}

/// Which QcType and semantics identifier the subject gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QcKind {
    /// Natural person, qualified electronic signature.
    ESign,
    /// Legal person, qualified electronic seal.
    ESeal,
}

/// EN 319 412-5 §4.2: qcStatements, non-critical (QCS-4.1-01), with
/// QcCompliance, QcSSCD, QcType, QcPDS and the EN 319 412-1 semantics
/// identifier; never QcCClegislation (an EU qualified certificate).
///
/// `registration_authority`: EN 319 412-1 §5.1.3 NAT-5.1.3-05/-06 — a
/// serialNumber with a locally defined two-letter type (`UI:`) needs
/// nameRegistrationAuthorities with at least one URI, the registration
/// authority of that scheme. The seal's `NTR` type is one of the standard
/// ones (§5.1.4) and needs none.
pub fn qc_statements(
    kind: QcKind,
    pds_url: &str,
    registration_authority: Option<&str>,
) -> der::Result<Extension> {
    let (qc_type, semantics) = match kind {
        QcKind::ESign => (oid::ETSI_QCT_ESIGN, oid::ETSI_QCS_SEMANTICS_ID_NATURAL),
        QcKind::ESeal => (oid::ETSI_QCT_ESEAL, oid::ETSI_QCS_SEMANTICS_ID_LEGAL),
    };
    let pds = vec![PdsLocation {
        url: Ia5String::new(pds_url)?,
        language: PrintableString::new("en")?,
    }];
    let statements = vec![
        QcStatement {
            statement_id: oid::ETSI_QCS_QC_COMPLIANCE,
            statement_info: None,
        },
        QcStatement {
            statement_id: oid::ETSI_QCS_QC_SSCD,
            statement_info: None,
        },
        QcStatement {
            statement_id: oid::ETSI_QCS_QC_TYPE,
            statement_info: Some(Any::encode_from(&vec![qc_type])?),
        },
        QcStatement {
            statement_id: oid::ETSI_QCS_QC_PDS,
            statement_info: Some(Any::encode_from(&pds)?),
        },
        QcStatement {
            statement_id: oid::QCS_PKIX_QC_SYNTAX_V2,
            statement_info: Some(Any::encode_from(&SemanticsInformation {
                semantics_identifier: Some(semantics),
                name_registration_authorities: registration_authority
                    .map(|uri| {
                        Ia5String::new(uri).map(|u| vec![GeneralName::UniformResourceIdentifier(u)])
                    })
                    .transpose()?,
            })?),
        },
    ];
    extension(oid::PE_QC_STATEMENTS, false, &statements)
}
