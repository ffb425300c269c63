//! The organisation CA's end-entity profile (SPEC §9): NCP (EN 319 411-1
//! `0.4.0.2042.1.1`), not qualified (no QC statements), 3 years.

use std::time::{Duration, SystemTime};

use const_oid::db::rfc4519;
use der::asn1::Ia5String;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, CrlDistributionPoints, ExtendedKeyUsage,
    KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::name::Name;
use x509_cert::time::Validity;

use super::model::{unix, IssuedCertificate, Kind, Record};
use crate::pki::name::{organization_identifier, NameBuilder};
use crate::pki::{encoding, extensions, oid, rfc5280_time, sign, Issuer, Unsigned};
use crate::signer::Signer;
use crate::Error;

/// EN 319 411-1 §5.3 NCP: normalized certificate policy.
pub const NCP: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("0.4.0.2042.1.1");
/// SPEC §9: three years.
pub const LIFETIME: Duration = Duration::from_secs(3 * 365 * 24 * 3600);

/// Where relying parties find status and the issuer (the HTTP listener).
#[derive(Clone, Debug)]
pub struct Locations {
    pub crl: String,
    pub ocsp: String,
    pub ca_issuers: String,
}

/// The subject of `record` (EN 319 412-3 §4.2.1 for organisation and
/// system certificates, EN 319 412-2 §4.2.4 for user certificates).
pub fn subject(record: &Record, organization_name: &str) -> Result<Name, Error> {
    let builder = NameBuilder::default()
        .printable(rfc4519::C, "DK")
        .and_then(|b| b.utf8(rfc4519::O, organization_name))
        .and_then(|b| {
            b.utf8(
                oid::AT_ORGANIZATION_IDENTIFIER,
                &organization_identifier(&record.cvr),
            )
        });
    let builder = match record.kind {
        Kind::Organization => builder.and_then(|b| b.utf8(rfc4519::CN, &record.name)),
        Kind::System => builder.and_then(|b| b.utf8(rfc4519::CN, &record.system_name)),
        // EN 319 412-1 §5.1.3 serialNumber: the employee's IdP subject.
        // EN 319 412-2 §4.2.4 NAT-4.2.4-1: a natural person's subject has
        // givenName and/or surname (or a pseudonym) besides C and CN: the
        // last word of the name is the surname, the words before it the
        // given names.
        Kind::User => {
            let (given, surname) = split_name(&record.name);
            builder
                .and_then(|b| match given {
                    Some(given) => b.utf8(rfc4519::GIVEN_NAME, given),
                    None => Ok(b),
                })
                .and_then(|b| b.utf8(rfc4519::SURNAME, surname))
                .and_then(|b| {
                    b.printable(
                        rfc4519::SERIAL_NUMBER,
                        &format!("UI:DK-{}", record.user_sub),
                    )
                })
                .and_then(|b| b.utf8(rfc4519::CN, &record.name))
        }
    };
    builder
        .map(NameBuilder::build)
        .map_err(|e| Error::invalid_argument("a name does not fit in a certificate").with_source(e))
}

/// (given names, surname) of a person's full name: the surname is the last
/// word; a one-word name is a surname alone.
fn split_name(name: &str) -> (Option<&str>, &str) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((given, surname)) => (Some(given.trim_end()), surname),
        None => (None, name),
    }
}

/// Signs the certificate of `record` for `public_key` with the organisation
/// CA (`ca`, `issuer`), valid from `now` for [`LIFETIME`].
pub fn issue(
    record: &Record,
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    (issuer, ca): (&Issuer, &impl Signer),
    locations: &Locations,
    now: SystemTime,
) -> Result<IssuedCertificate, Error> {
    let key_id = extensions::key_identifier(&public_key).map_err(encoding)?;
    let rsa = public_key.algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION;
    let mut list = vec![
        // RFC 5280 §4.2.1.3: signing and key establishment (TLS client,
        // S/MIME): keyEncipherment for RSA, keyAgreement for EC.
        extensions::extension(
            <KeyUsage as const_oid::AssociatedOid>::OID,
            true,
            &KeyUsage(if rsa {
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
            } else {
                KeyUsages::DigitalSignature | KeyUsages::KeyAgreement
            }),
        ),
        extensions::extension(
            <ExtendedKeyUsage as const_oid::AssociatedOid>::OID,
            false,
            &ExtendedKeyUsage(vec![
                const_oid::db::rfc5280::ID_KP_CLIENT_AUTH,
                const_oid::db::rfc5280::ID_KP_EMAIL_PROTECTION,
            ]),
        ),
        extensions::authority_key_identifier(issuer.key_id()),
        extensions::subject_key_identifier(&key_id),
        extensions::certificate_policies(NCP),
        crl_distribution_point(&locations.crl),
        authority_info_access(locations),
    ];
    if !record.certificate_email.is_empty() {
        // RFC 5280 §4.2.1.6: the e-mail as rfc822Name, never in the DN.
        list.push(extensions::extension(
            <SubjectAltName as const_oid::AssociatedOid>::OID,
            false,
            &SubjectAltName(vec![GeneralName::Rfc822Name(
                Ia5String::new(&record.certificate_email).map_err(encoding)?,
            )]),
        ));
    }
    let extensions = list
        .into_iter()
        .collect::<der::Result<Vec<_>>>()
        .map_err(encoding)?;
    let (not_before, not_after) = (now, now + LIFETIME);
    let issued = sign(
        Unsigned {
            issuer: issuer.name().clone(),
            subject: subject.clone(),
            validity: Validity {
                not_before: rfc5280_time(not_before)?,
                not_after: rfc5280_time(not_after)?,
            },
            public_key,
            extensions,
        },
        ca,
    )?;
    Ok(IssuedCertificate {
        serial: serial_hex(issued.certificate.tbs_certificate.serial_number.as_bytes()),
        subject: rfc4514(&subject),
        not_before: unix(not_before),
        not_after: unix(not_after),
        der: issued.der,
    })
}

/// What the registry records of a certificate it issued (DER).
pub fn described(der: Vec<u8>) -> Result<IssuedCertificate, Error> {
    use der::Decode;
    let certificate = x509_cert::Certificate::from_der(&der).map_err(encoding)?;
    let tbs = &certificate.tbs_certificate;
    let time = |t: &x509_cert::time::Time| unix(t.to_system_time());
    Ok(IssuedCertificate {
        serial: serial_hex(tbs.serial_number.as_bytes()),
        subject: rfc4514(&tbs.subject),
        not_before: time(&tbs.validity.not_before),
        not_after: time(&tbs.validity.not_after),
        der,
    })
}

/// RFC 4514 string of a name qsign built (most specific RDN first), with
/// the EN 319 412-1 attribute names OpenSSL prints (`organizationIdentifier`)
/// instead of a dotted OID and hex.
pub fn rfc4514(name: &Name) -> String {
    let label = |oid: &const_oid::ObjectIdentifier| match *oid {
        rfc4519::C => "C".to_owned(),
        rfc4519::O => "O".to_owned(),
        rfc4519::CN => "CN".to_owned(),
        rfc4519::SERIAL_NUMBER => "serialNumber".to_owned(),
        rfc4519::GIVEN_NAME => "givenName".to_owned(),
        rfc4519::SURNAME => "surname".to_owned(),
        oid::AT_ORGANIZATION_IDENTIFIER => "organizationIdentifier".to_owned(),
        other => other.to_string(),
    };
    let value = |any: &der::Any| {
        let text = der::asn1::Utf8StringRef::try_from(any)
            .map(|s| s.as_str().to_owned())
            .or_else(|_| {
                der::asn1::PrintableStringRef::try_from(any).map(|s| s.as_str().to_owned())
            })
            .unwrap_or_default();
        // RFC 4514 §2.4: escape the specials, a leading # or space, a trailing space.
        let mut out = String::new();
        for (i, c) in text.chars().enumerate() {
            let edge =
                (i == 0 && (c == '#' || c == ' ')) || (i + 1 == text.chars().count() && c == ' ');
            if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    name.0
        .iter()
        .rev()
        .map(|rdn| {
            rdn.0
                .iter()
                .map(|atv| format!("{}={}", label(&atv.oid), value(&atv.value)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The registry's spelling of a serial: lowercase hex of the INTEGER's
/// content octets, leading zero octets dropped.
pub fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    hex::encode(&bytes[start..])
}

/// RFC 5280 §4.2.1.13: the organisation CA's CRL over HTTP.
fn crl_distribution_point(url: &str) -> der::Result<x509_cert::ext::Extension> {
    let point = DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::UniformResourceIdentifier(Ia5String::new(url)?),
        ])),
        reasons: None,
        crl_issuer: None,
    };
    extensions::extension(
        <CrlDistributionPoints as const_oid::AssociatedOid>::OID,
        false,
        &CrlDistributionPoints(vec![point]),
    )
}

/// RFC 5280 §4.2.2.1: id-ad-ocsp (RFC 6960 §3.1) and id-ad-caIssuers (the
/// organisation CA's certificate, DER over HTTP).
fn authority_info_access(locations: &Locations) -> der::Result<x509_cert::ext::Extension> {
    let uri = |url: &str| Ia5String::new(url).map(GeneralName::UniformResourceIdentifier);
    extensions::extension(
        <AuthorityInfoAccessSyntax as const_oid::AssociatedOid>::OID,
        false,
        &AuthorityInfoAccessSyntax(vec![
            AccessDescription {
                access_method: const_oid::db::rfc5280::ID_AD_OCSP,
                access_location: uri(&locations.ocsp)?,
            },
            AccessDescription {
                access_method: const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
                access_location: uri(&locations.ca_issuers)?,
            },
        ]),
    )
}
