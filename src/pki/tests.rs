//! The bound PDF signatures reserve room by (the longest certificate qsign
//! can issue stays within `MAX_END_ENTITY_LEN`) and the OCSP responder's
//! answers, with a stand-in RSA-3072 key instead of the token.

use std::time::{Duration, SystemTime};

use der::asn1::BitString;
use der::Encode;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};

use super::*;
use crate::hsm::KeyAlgorithm;
use crate::signer::SignatureValue;

/// An RSA-3072 CA as the HSM would sign: 384-byte signature values.
struct Rsa3072;

impl signature::Signer<SignatureValue> for Rsa3072 {
    fn try_sign(&self, _: &[u8]) -> Result<SignatureValue, signature::Error> {
        Ok(SignatureValue::new(vec![0x5a; 384]))
    }
}

impl DynSignatureAlgorithmIdentifier for Rsa3072 {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(KeyAlgorithm::Rsa3072.signature_algorithm())
    }
}

/// An RSA-3072 SubjectPublicKeyInfo's size: a 398-byte RSAPublicKey.
fn rsa_3072_key() -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::RSA_ENCRYPTION,
            parameters: Some(der::Any::from(der::asn1::Null)),
        },
        subject_public_key: BitString::from_bytes(&[0x42; 398]).unwrap(),
    }
}

/// `n` characters of four UTF-8 bytes each.
fn wide(n: usize) -> String {
    "𝔄".repeat(n)
}

#[test]
fn the_longest_certificate_fits_max_end_entity_len() {
    let now = SystemTime::now();
    // An issuing CA name of about MAX_ISSUER_NAME_LEN bytes.
    let issuer_name = name::NameBuilder::default()
        .utf8(const_oid::db::rfc4519::O, &wide(60))
        .and_then(|b| b.utf8(const_oid::db::rfc4519::CN, &wide(60)))
        .unwrap()
        .build();
    let issuer_len = issuer_name.to_der().unwrap().len();
    assert!(
        issuer_len <= MAX_ISSUER_NAME_LEN && issuer_len > 480,
        "{issuer_len}"
    );
    let ca = ca::root(
        issuer_name,
        rsa_3072_key(),
        &Rsa3072,
        now,
        Duration::from_secs(3600),
    )
    .unwrap();
    let issuer = Issuer::from_der(ca.der).unwrap();
    let url = |scheme: &str| {
        let mut u = format!("{scheme}://qsign.example/");
        u.push_str(&"p".repeat(MAX_PDS_URL_LEN - u.len()));
        u
    };
    for ocsp_url in [None, Some(url("http"))] {
        let policy = CertificatePolicy {
            lifetime: MAX_LIFETIME,
            backdate: Duration::from_secs(60),
            pds_url: url("https"),
            serial_number_prefix: "UI".into(),
            name_registration_authority: url("https"),
            ca_issuers_url: url("http"),
            ocsp_url,
        };
        let (given_name, surname, organization_name) = (wide(31), wide(32), wide(MAX_NAME_CHARS));
        let subject = Subject::NaturalPerson {
            given_name: &given_name,
            surname: &surname,
            subject_id: uuid::Uuid::nil(),
            organization_name: &organization_name,
            cvr: "12345678",
        };
        let issued = issue(&subject, rsa_3072_key(), &policy, &issuer, &Rsa3072, now).unwrap();
        // `sign` assembles the DER from the signed TBS bytes: the same as
        // encoding the whole certificate.
        assert_eq!(issued.der, issued.certificate.to_der().unwrap());
        assert!(
            issued.der.len() <= MAX_END_ENTITY_LEN,
            "{} bytes (OCSP URL: {})",
            issued.der.len(),
            policy.ocsp_url.is_some()
        );
    }
}

/// A responder under an issuing CA, both signed by the fake RSA key.
fn responder() -> (ocsp::Responder, Issuer) {
    let now = SystemTime::now();
    let name = |cn: &str| {
        name::NameBuilder::default()
            .utf8(const_oid::db::rfc4519::CN, cn)
            .unwrap()
            .build()
    };
    let hour = Duration::from_secs(3600);
    let ca = ca::root(name("CA"), rsa_3072_key(), &Rsa3072, now, hour).unwrap();
    let issuer = Issuer::from_der(ca.der).unwrap();
    let crl = "http://qsign.example/crl/issuing-ca.crl";
    let cert = ca::ocsp_signing(
        name("OCSP"),
        rsa_3072_key(),
        (&issuer, crl),
        &Rsa3072,
        now,
        hour,
    );
    let responder = ocsp::Responder::new("label".into(), cert.unwrap().der, &issuer).unwrap();
    (responder, issuer)
}

#[test]
fn ocsp_good_for_the_issuing_ca_unknown_for_others() {
    use der::Decode;
    let (responder, _) = responder();
    let serial = x509_cert::serial_number::SerialNumber::new(&[0x42; 16]).unwrap();
    let ours = responder.cert_id(&serial).unwrap();
    let mut foreign = ours.clone();
    foreign.issuer_key_hash = der::asn1::OctetString::new([0u8; 32]).unwrap();
    assert!(responder.answers_for(&ours) && !responder.answers_for(&foreign));
    let now = SystemTime::now();
    let der = responder
        .respond(vec![ours, foreign], now, now + MAX_LIFETIME, &Rsa3072)
        .unwrap();
    let response = x509_ocsp::OcspResponse::from_der(&der).unwrap();
    let bytes = response.response_bytes.unwrap();
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    let statuses: Vec<_> = basic
        .tbs_response_data
        .responses
        .iter()
        .map(|r| r.cert_status)
        .collect();
    assert_eq!(
        statuses,
        [
            x509_ocsp::CertStatus::good(),
            x509_ocsp::CertStatus::unknown()
        ]
    );
    // §4.2.2.2: the delegated responder's certificate travels along.
    assert_eq!(basic.certs.unwrap()[0], *responder.certificate());
}

#[test]
fn ocsp_refuses_what_is_not_a_request_and_a_responder_without_ocsp_signing() {
    assert!(ocsp::parse_request(b"junk").is_none());
    assert!(ocsp::parse_request(&[0x30, 0x00]).is_none());
    let (_, issuer) = responder();
    // A TSA certificate (id-kp-timeStamping) is no OCSP responder.
    let now = SystemTime::now();
    let tsa = ca::time_stamping(
        issuer.name().clone(),
        rsa_3072_key(),
        (&issuer, "http://qsign.example/crl/root-ca.crl"),
        &Rsa3072,
        now,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(ocsp::Responder::new("label".into(), tsa.der, &issuer).is_err());
}
