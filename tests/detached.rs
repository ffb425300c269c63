//! SignDetached end to end: personal and seal CAdES verified by openssl and
//! the shared validators, content and digest mode, batches.

use der::{Decode, Encode};
use qsign::proto::{self, document, SignDetachedRequest, SignDetachedResponse};

use crate::support::{env, server, sha256, tools, Server, Who};

pub fn content(data: &[u8]) -> proto::Document {
    proto::Document {
        data: Some(document::Data::Content(data.to_vec())),
    }
}

pub fn digest(d: [u8; 32]) -> proto::Document {
    proto::Document {
        data: Some(document::Data::Sha256Digest(d.to_vec())),
    }
}

pub fn request(documents: Vec<proto::Document>, token: String, seal: &str) -> SignDetachedRequest {
    SignDetachedRequest {
        documents,
        activation_token: token,
        seal_profile: seal.into(),
        level: proto::Level::BB as i32,
        key_algorithm: proto::KeyAlgorithm::EcP256 as i32,
    }
}

/// SignDetached of `data` (its content) at `level`, with a token of `who`
/// and the seal profile `seal` ("" for personal); the response.
pub async fn sign_one(
    server: &Server,
    data: &[u8],
    who: &Who,
    seal: &str,
    level: proto::Level,
) -> SignDetachedResponse {
    let mut req = request(vec![content(data)], env().token(who, &[sha256(data)]), seal);
    req.level = level as i32;
    server
        .client()
        .await
        .sign_detached(req)
        .await
        .expect("signed")
        .into_inner()
}

/// The certificates of a CMS SignedData, DER.
pub fn cms_certificates(cms: &[u8]) -> Vec<Vec<u8>> {
    let info = cms::content_info::ContentInfo::from_der(cms).expect("ContentInfo");
    let signed: cms::signed_data::SignedData = info.content.decode_as().expect("SignedData");
    signed
        .certificates
        .expect("certificates")
        .0
        .iter()
        .map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => c.to_der().expect("der"),
            _ => panic!("unexpected certificate choice"),
        })
        .collect()
}

/// `validate_cms.py` on a detached CMS over `data` (or, with `digest_mode`,
/// its SHA-256) signed as `expect` (person or seal), with `extra` arguments.
pub fn validate_cms(cms: &[u8], data: &[u8], digest_mode: bool, expect: &str, extra: &[&str]) {
    let files = tools::DetachedFiles::new(cms, data, digest_mode);
    let root = env().root_ca();
    let mut args = files.args();
    args.extend(["--root".as_ref(), root.as_os_str(), "--expect".as_ref()]);
    args.push(expect.as_ref());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    tools::validate("validate_cms.py", &args).expect("validate_cms.py");
}

async fn sign_and_validate(label: &str, who: Who, seal: &str, expect: &str, digest_mode: bool) {
    let server = server(label).await;
    let data = format!("document for {label}").into_bytes();
    let d = sha256(&data);
    let document = if digest_mode {
        digest(d)
    } else {
        content(&data)
    };
    let response = server
        .client()
        .await
        .sign_detached(request(vec![document], env().token(&who, &[d]), seal))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(response.cms.len(), 1);
    assert!(!response.signature_id.is_empty());
    let cms = &response.cms[0];
    assert!(cms_certificates(cms).contains(&response.certificate));
    if tools::require("openssl") {
        tools::openssl_cms_verify(cms, &data, &env().root_ca()).expect("openssl cms -verify");
    }
    validate_cms(cms, &data, digest_mode, expect, &[]);
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_content() {
    sign_and_validate("personal-content", Who::jens(), "", "person", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_digest() {
    sign_and_validate("personal-digest", Who::jens(), "", "person", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_content() {
    sign_and_validate("seal-content", Who::sealer(), "dev", "seal", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_digest() {
    sign_and_validate("seal-digest", Who::sealer(), "dev", "seal", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_of_three_digests_shares_one_certificate() {
    let server = server("batch").await;
    let docs: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("batch document {i}").into_bytes())
        .collect();
    let digests: Vec<[u8; 32]> = docs.iter().map(|d| sha256(d)).collect();
    let response = server
        .client()
        .await
        .sign_detached(request(
            digests.iter().map(|d| digest(*d)).collect(),
            env().token(&Who::jens(), &digests),
            "",
        ))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(response.cms.len(), 3);
    for (cms, data) in response.cms.iter().zip(&docs) {
        let certificates = cms_certificates(cms);
        assert!(
            certificates.contains(&response.certificate),
            "same certificate in every CMS"
        );
        if tools::require("openssl") {
            tools::openssl_cms_verify(cms, data, &env().root_ca()).expect("verify");
            // The CMS of one document does not verify another.
            let other = if data == &docs[0] { &docs[1] } else { &docs[0] };
            assert!(tools::openssl_cms_verify(cms, other, &env().root_ca()).is_err());
        }
    }
    assert_eq!(env().leftover_keys("batch"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_algorithm_verifies() {
    let server = server("algorithms").await;
    for algorithm in [
        proto::KeyAlgorithm::EcP256,
        proto::KeyAlgorithm::EcP384,
        proto::KeyAlgorithm::Rsa2048,
    ] {
        let data = format!("{algorithm:?}").into_bytes();
        let d = sha256(&data);
        let mut req = request(vec![content(&data)], env().token(&Who::jens(), &[d]), "");
        req.key_algorithm = algorithm as i32;
        let response = server
            .client()
            .await
            .sign_detached(req)
            .await
            .expect("signed")
            .into_inner();
        if tools::require("openssl") {
            tools::openssl_cms_verify(&response.cms[0], &data, &env().root_ca())
                .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
        }
    }
    assert_eq!(env().leftover_keys("algorithms"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_chain_is_issuing_then_root() {
    let server = server("chain").await;
    let chain = server
        .client()
        .await
        .get_trust_chain(proto::GetTrustChainRequest {})
        .await
        .expect("chain")
        .into_inner()
        .certificates;
    assert_eq!(chain.len(), 2);
    let root = qsign::state::read_certificates(&env().root_ca())
        .unwrap()
        .remove(0);
    assert_eq!(chain[1], root);
    let issuing = x509_cert::Certificate::from_der(&chain[0]).unwrap();
    let root = x509_cert::Certificate::from_der(&chain[1]).unwrap();
    assert_eq!(issuing.tbs_certificate.issuer, root.tbs_certificate.subject);
}
