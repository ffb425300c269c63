//! qsign's own CPU per signature, stage by stage, without the HSM: the
//! token check, the certificate and the CMS, each with a signer that returns
//! a fixed value. Prints medians of 5 runs; asserts nothing.
//!
//!   cargo bench --bench stages

use std::time::{Duration, Instant, SystemTime};

use qsign::auth::dev::{dev_subject, DevClaims, DevIdp};
use qsign::auth::{TokenPolicy, Verifier};
use qsign::pki::{self, CertificatePolicy, Issuer, Subject};
use qsign::signed_data::{SignatureContext, SigningTime};
use qsign::signer::SignatureValue;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};

/// Stands in for the HSM: a DER ECDSA signature of the usual size.
struct FixedSigner;

impl signature::Signer<SignatureValue> for FixedSigner {
    fn try_sign(&self, _: &[u8]) -> Result<SignatureValue, signature::Error> {
        let mut der = vec![0x30, 0x44, 0x02, 0x20];
        der.extend([0x11; 32]);
        der.extend([0x02, 0x20]);
        der.extend([0x22; 32]);
        Ok(SignatureValue::new(der))
    }
}

impl DynSignatureAlgorithmIdentifier for FixedSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(qsign::hsm::KeyAlgorithm::EcP256.signature_algorithm())
    }
}

fn per_op(n: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn main() {
    let idp = DevIdp::generate();
    let verifier = Verifier::new(TokenPolicy::new("iss", "aud"), &idp.jwks_json()).unwrap();
    let claims = DevClaims {
        issuer: "iss".into(),
        audience: "aud".into(),
        subject: dev_subject("Bench Marker"),
        given_name: Some("Bench".into()),
        family_name: Some("Marker".into()),
        org_cvr: "12345678".into(),
        org_name: "Org".into(),
        seal_profiles: vec![],
        digests: vec![[7u8; 32]],
        jti: None,
    };
    let token = idp
        .mint(&claims, SystemTime::now(), Duration::from_secs(600))
        .unwrap();
    let now = SystemTime::now();

    // A real EC public key and a CA certificate made with the fixed signer.
    let key = p256::SecretKey::random(&mut rand::thread_rng());
    let spki = SubjectPublicKeyInfoOwned::from_key(key.public_key()).unwrap();
    let ca_name = pki::name::NameBuilder::default()
        .utf8(const_oid::db::rfc4519::CN, "bench CA")
        .unwrap()
        .build();
    let ca = pki::ca::root(
        ca_name,
        spki.clone(),
        &FixedSigner,
        now,
        Duration::from_secs(3600),
    )
    .unwrap();
    let issuer = Issuer::from_der(ca.der.clone()).unwrap();
    let chain = vec![<der::Any as der::Decode>::from_der(&ca.der).unwrap()];
    let policy = CertificatePolicy {
        lifetime: Duration::from_secs(600),
        backdate: Duration::from_secs(60),
        pds_url: "https://qsign.example/pds/en".into(),
        serial_number_prefix: "UI".into(),
        name_registration_authority: qsign::config::DEV_NAME_REGISTRATION_AUTHORITY.into(),
        ca_issuers_url: qsign::config::DEV_CA_ISSUERS_URL.into(),
        ocsp_url: None,
    };
    let subject = Subject::NaturalPerson {
        given_name: "Bench",
        surname: "Marker",
        subject_id: dev_subject("Bench Marker"),
        organization_name: "Qsign Udvikling ApS",
        cvr: "12345678",
    };

    let verify = per_op(2000, || {
        verifier.verify(&token, now).unwrap();
    });
    let issue = per_op(5000, || {
        pki::issue(&subject, spki.clone(), &policy, &issuer, &FixedSigner, now).unwrap();
    });
    let issued = pki::issue(&subject, spki.clone(), &policy, &issuer, &FixedSigner, now).unwrap();
    let context = per_op(5000, || {
        SignatureContext::new(&issued, &chain, &FixedSigner).unwrap();
    });
    let ctx = SignatureContext::new(&issued, &chain, &FixedSigner).unwrap();
    let sign = per_op(5000, || {
        ctx.sign(&[7u8; 32], SigningTime::Attribute(now), &FixedSigner)
            .unwrap();
    });
    let encode = per_op(5000, || {
        let si = ctx
            .sign(&[7u8; 32], SigningTime::Attribute(now), &FixedSigner)
            .unwrap();
        ctx.content_info(si).unwrap();
    }) - sign;
    println!("qsign CPU per signature by stage (µs, median of 5, no HSM):");
    for (stage, us) in [
        ("verify activation token (ES256)", verify),
        ("issue certificate", issue),
        ("CMS context (ESS, chain)", context),
        ("signed attributes", sign),
        ("encode SignedData", encode),
    ] {
        println!("  {stage:<34} {us:>8.1}");
    }
    println!(
        "  {:<34} {:>8.1}",
        "total",
        verify + issue + context + sign + encode
    );
}
