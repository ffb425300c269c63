//! The ephemeral certificate carries every field and extension of SPEC §5,
//! checked one by one on certificates the server issued.

use std::time::{Duration, SystemTime};

use const_oid::db::rfc4519;
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Ia5String, PrintableString};
use der::{Any, Decode, Sequence};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, CertificatePolicies, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use crate::detached::{content, request};
use crate::support::{env, server, sha256, Who};

#[derive(Sequence)]
struct QcStatement {
    id: Oid,
    info: Option<Any>,
}

#[derive(Sequence)]
struct PdsLocation {
    url: Ia5String,
    language: PrintableString,
}

#[derive(Sequence)]
struct SemanticsInformation {
    identifier: Option<Oid>,
    name_registration_authorities: Option<Vec<GeneralName>>,
}

const QC_STATEMENTS: &str = "1.3.6.1.5.5.7.1.3";

fn oid(s: &str) -> Oid {
    Oid::new_unwrap(s)
}

async fn issue(label: &str, who: Who, seal: &str) -> (Certificate, Vec<u8>, Vec<u8>) {
    let server = server(label).await;
    let data = b"certificate profile".to_vec();
    let response = server
        .client()
        .await
        .sign_detached(request(
            vec![content(&data)],
            env().token(&who, &[sha256(&data)]),
            seal,
        ))
        .await
        .expect("signed")
        .into_inner();
    let certificate = Certificate::from_der(&response.certificate).expect("certificate");
    (certificate, response.certificate, response.cms[0].clone())
}

/// Subject attributes as (oid, string) in order.
fn subject(certificate: &Certificate) -> Vec<(Oid, String)> {
    certificate
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .map(|atv| {
            let text = std::str::from_utf8(atv.value.value())
                .expect("text")
                .to_owned();
            (atv.oid, text)
        })
        .collect()
}

fn value(subject: &[(Oid, String)], oid: Oid) -> Option<&str> {
    subject
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, v)| v.as_str())
}

fn extension(certificate: &Certificate, id: &str) -> Option<(bool, Vec<u8>)> {
    certificate
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid(id))
        .map(|e| (e.critical, e.extn_value.as_bytes().to_vec()))
}

/// A URI GeneralName.
fn uri(text: &str) -> GeneralName {
    GeneralName::UniformResourceIdentifier(Ia5String::new(text).unwrap())
}

/// Checks common to both profiles; `registration_authority` is the
/// semantics identifier's nameRegistrationAuthorities (EN 319 412-1 §5.1.3).
fn common_checks(
    certificate: &Certificate,
    qc_type: &str,
    policy: &str,
    (semantics, registration_authority): (&str, Option<&str>),
) {
    let tbs = &certificate.tbs_certificate;
    assert_eq!(tbs.version, x509_cert::certificate::Version::V3);
    let serial = tbs.serial_number.as_bytes();
    assert!(
        serial.len() >= 8 && serial[0] & 0x80 == 0,
        "positive serial with >= 64 bits"
    );

    let not_before = tbs.validity.not_before.to_system_time();
    let not_after = tbs.validity.not_after.to_system_time();
    let now = SystemTime::now();
    assert!(not_before <= now, "notBefore is not in the future");
    assert!(
        now.duration_since(not_before).unwrap() < Duration::from_secs(5 * 60),
        "small backdate"
    );
    let lifetime = not_after.duration_since(now).unwrap();
    assert!(
        lifetime <= Duration::from_secs(10 * 60) && lifetime > Duration::from_secs(9 * 60),
        "10 minutes"
    );

    let (critical, ku) = extension(certificate, "2.5.29.15").expect("keyUsage");
    assert!(critical, "keyUsage critical");
    let usages = KeyUsage::from_der(&ku).unwrap().0;
    assert_eq!(
        usages,
        flagset::FlagSet::from(KeyUsages::NonRepudiation),
        "nonRepudiation only"
    );

    let (_, ski) = extension(certificate, "2.5.29.14").expect("subjectKeyIdentifier");
    SubjectKeyIdentifier::from_der(&ski).unwrap();
    let (_, aki) = extension(certificate, "2.5.29.35").expect("authorityKeyIdentifier");
    let aki = AuthorityKeyIdentifier::from_der(&aki).unwrap();
    let issuing =
        qsign::state::read_certificates(&env().dir.join(qsign::state::ISSUING_CA)).unwrap();
    let issuing = Certificate::from_der(&issuing[0]).unwrap();
    let (_, issuing_ski) = extension(&issuing, "2.5.29.14").unwrap();
    assert_eq!(
        aki.key_identifier.unwrap(),
        SubjectKeyIdentifier::from_der(&issuing_ski).unwrap().0,
        "AKI names the issuing CA's key"
    );

    let (_, policies) = extension(certificate, "2.5.29.32").expect("certificatePolicies");
    let policies = CertificatePolicies::from_der(&policies).unwrap().0;
    assert_eq!(policies.len(), 1, "exactly one policy");
    assert_eq!(policies[0].policy_identifier, oid(policy));

    let (critical, statements) = extension(certificate, QC_STATEMENTS).expect("qcStatements");
    assert!(!critical, "qcStatements non-critical");
    let statements = Vec::<QcStatement>::from_der(&statements).unwrap();
    let ids: Vec<Oid> = statements.iter().map(|s| s.id).collect();
    assert!(ids.contains(&oid("0.4.0.1862.1.1")), "QcCompliance");
    assert!(ids.contains(&oid("0.4.0.1862.1.4")), "QcSSCD");
    assert!(
        !ids.contains(&oid("0.4.0.1862.1.7")),
        "never QcCClegislation"
    );
    for s in &statements {
        let info = s.info.as_ref();
        match s.id.to_string().as_str() {
            "0.4.0.1862.1.6" => {
                let types: Vec<Oid> = info.unwrap().decode_as().unwrap();
                assert_eq!(types, vec![oid(qc_type)], "QcType");
            }
            "0.4.0.1862.1.5" => {
                let pds: Vec<PdsLocation> = info.unwrap().decode_as().unwrap();
                assert!(pds[0].url.as_str().starts_with("https://"), "QcPDS https");
                assert_eq!(pds[0].language.as_str(), "en");
            }
            "1.3.6.1.5.5.7.11.2" => {
                let si: SemanticsInformation = info.unwrap().decode_as().unwrap();
                assert_eq!(si.identifier, Some(oid(semantics)), "semantics identifier");
                assert_eq!(
                    si.name_registration_authorities,
                    registration_authority.map(|ra| vec![uri(ra)]),
                    "nameRegistrationAuthorities"
                );
            }
            _ => {}
        }
    }
    for id in ["0.4.0.1862.1.6", "0.4.0.1862.1.5", "1.3.6.1.5.5.7.11.2"] {
        assert!(ids.contains(&oid(id)), "statement {id}");
    }

    let (critical, _) = extension(certificate, "2.5.29.56").expect("noRevAvail");
    assert!(!critical, "noRevAvail non-critical");
    let (critical, _) = extension(certificate, "0.4.0.194121.2.1").expect("valassured-ST-certs");
    assert!(!critical, "valassured non-critical");
    assert!(
        extension(certificate, "2.5.29.31").is_none(),
        "no CRL distribution point"
    );
    // EN 319 412-2 §4.4.1: caIssuers, and no OCSP (RFC 9608 §3).
    let (critical, aia) = extension(certificate, "1.3.6.1.5.5.7.1.1").expect("AIA");
    assert!(!critical, "AIA non-critical");
    let aia = AuthorityInfoAccessSyntax::from_der(&aia).unwrap().0;
    let aia: Vec<_> = aia
        .into_iter()
        .map(|d| (d.access_method, d.access_location))
        .collect();
    assert_eq!(
        aia,
        [(
            const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
            uri(qsign::config::DEV_CA_ISSUERS_URL)
        )],
        "caIssuers only"
    );
    assert!(
        extension(certificate, "2.5.29.19").is_none(),
        "no basicConstraints: not a CA"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_certificate_profile() {
    let (certificate, _, _) = issue("cert-person", Who::jens(), "").await;
    common_checks(
        &certificate,
        "0.4.0.1862.1.6.1",
        "0.4.0.194112.1.2",
        (
            "0.4.0.194121.1.1",
            Some(qsign::config::DEV_NAME_REGISTRATION_AUTHORITY),
        ),
    );
    let s = subject(&certificate);
    assert_eq!(value(&s, rfc4519::C), Some("DK"));
    assert_eq!(value(&s, rfc4519::GIVEN_NAME), Some("Jens"));
    assert_eq!(value(&s, rfc4519::SN), Some("Hansen"));
    assert_eq!(value(&s, rfc4519::CN), Some("Jens Hansen"));
    let uuid = qsign::auth::dev::dev_subject("Jens Hansen");
    assert_eq!(
        value(&s, rfc4519::SERIAL_NUMBER),
        Some(format!("UI:DK-{uuid}").as_str())
    );
    assert_eq!(value(&s, rfc4519::O), Some("Qsign Udvikling ApS"));
    assert_eq!(value(&s, oid("2.5.4.97")), Some("NTRDK-12345678"));
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_certificate_profile_has_no_personal_name() {
    let (certificate, der, cms) = issue("cert-seal", Who::sealer(), "dev").await;
    common_checks(
        &certificate,
        "0.4.0.1862.1.6.2",
        "0.4.0.194112.1.3",
        ("0.4.0.194121.1.2", None),
    );
    let s = subject(&certificate);
    assert_eq!(value(&s, rfc4519::C), Some("DK"));
    assert_eq!(value(&s, rfc4519::O), Some("Qsign Udvikling ApS"));
    let org_id = value(&s, oid("2.5.4.97")).unwrap();
    assert_eq!(org_id, "NTRDK-12345678");
    assert_ne!(
        Some(org_id),
        value(&s, rfc4519::O),
        "organizationIdentifier differs from O"
    );
    assert_eq!(value(&s, rfc4519::CN), Some("Qsign Udvikling ApS"));
    for personal in [
        rfc4519::GIVEN_NAME,
        rfc4519::SN,
        rfc4519::SERIAL_NUMBER,
        oid("2.5.4.65"),
    ] {
        assert_eq!(
            value(&s, personal),
            None,
            "no personal attribute {personal}"
        );
    }
    // Not in the certificate, not anywhere in the CMS.
    let who = Who::sealer();
    let uuid = qsign::auth::dev::dev_subject(&format!("{} {}", who.given, who.family)).to_string();
    for needle in [who.given.as_bytes(), who.family.as_bytes(), uuid.as_bytes()] {
        for (name, haystack) in [("certificate", &der), ("CMS", &cms)] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle),
                "{name} contains personal data {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}
