//! The bound PDF signatures reserve room by: the longest certificate qsign
//! can issue stays within `MAX_END_ENTITY_LEN`.

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
        assert!(
            issued.der.len() <= MAX_END_ENTITY_LEN,
            "{} bytes (OCSP URL: {})",
            issued.der.len(),
            policy.ocsp_url.is_some()
        );
    }
}
