//! Fuzz entry points: one function per parser that reads untrusted bytes,
//! shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and the
//! property loops over mutated seeds that `cargo test` runs
//! (`tests/robustness.rs`). Each must return for any input — never panic,
//! never hang — and checks what must hold of what it accepts.

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use der::{Decode, Encode};

use crate::auth::{TokenPolicy, Verifier};
use crate::pades::{prepare_bytes, SignatureRequest};
use crate::tsa::asn1::TimeStampReq;

/// The PDF reader: `prepare` of a signature update (xref, trailer, page
/// tree, AcroForm); what it accepts must take a CMS and cover the file.
pub fn pdf_reader(data: &[u8]) {
    let request = SignatureRequest {
        name: Some("Fuzz".into()),
        reason: None,
        location: None,
        contact_info: None,
        signing_time: UNIX_EPOCH + Duration::from_secs(1_795_867_200),
        appearance: None,
        contents_capacity: 64,
        field_name: None,
    };
    if let Ok(mut prepared) = prepare_bytes(data, &request) {
        let _ = prepared.digest(Default::default());
        assert!(prepared.embed(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_ok());
        assert!(prepared.byte_range()[1] >= data.len() as u64);
    }
}

/// RFC 3161 §2.4.1 TimeStampReq: DER in, and what decodes re-encodes to
/// the same bytes (DER has one encoding per value).
pub fn timestamp_request(data: &[u8]) {
    if let Ok(request) = TimeStampReq::from_der(data) {
        let again = request.to_der().expect("a decoded TimeStampReq encodes");
        assert_eq!(again, data, "TimeStampReq DER round trip");
    }
}

/// RFC 6960 §4.1.1 OCSPRequest as the responder reads it.
pub fn ocsp_request(data: &[u8]) {
    if let Some((ids, _nonce)) = crate::pki::ocsp::parse_request(data) {
        assert!(
            !ids.is_empty(),
            "a request asks about one certificate at least"
        );
    }
}

/// The activation token parser (SPEC §3): the input as a compact JWS, and
/// its first two parts signed again with the test IdP's key, so that the
/// header and claims checks behind the signature are reached too.
pub fn activation_token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let now = UNIX_EPOCH + Duration::from_secs(1_795_867_300);
    let _ = TEST_IDP.0.verify(&text, now);
    let _ = TEST_IDP.0.verify(&resigned(&text), now);
}

/// `issuer`/`audience` of the seeds (`fuzz/seeds/activation_token`).
static TEST_IDP: LazyLock<(Verifier, p256::ecdsa::SigningKey)> = LazyLock::new(|| {
    // A fixed scalar: the same key on every run; never a real IdP's.
    let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("7…7 is a valid P-256 scalar");
    let jwk: serde_json::Value =
        serde_json::from_str(&p256::PublicKey::from(key.verifying_key()).to_jwk_string())
            .expect("p256 writes JSON");
    let mut jwk = jwk.as_object().cloned().unwrap_or_default();
    jwk.insert("kid".into(), "dev".into());
    jwk.insert("alg".into(), "ES256".into());
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    let verifier =
        Verifier::new(TokenPolicy::new("idp", "qsign"), &jwks).expect("a one-key JWKS is accepted");
    (verifier, key)
});

/// RFC 7515 §7.1 compact serialisation of `text`'s first two parts with a
/// fresh ES256 signature (RFC 7518 §3.4: raw r || s).
fn resigned(text: &str) -> String {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let input = text.rsplit_once('.').map_or(text, |(first, _)| first);
    let signature: p256::ecdsa::Signature = TEST_IDP.1.sign(input.as_bytes());
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.to_bytes());
    format!("{input}.{encoded}")
}
