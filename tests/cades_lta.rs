//! CAdES B-LTA (ETSI EN 319 122-1 §5.5.3): SignDetached at B_LTA gives each
//! SignerInfo an archive-time-stamp-v3 from the built-in TSA, after B-T's
//! signature time-stamp and B-LT's certificates and CRLs. Checked by
//! `openssl cms -verify`, `validate_cms.py --level B-T`, and
//! `tests/validate/ats_v3.py`, which recomputes the ats-hash-index-v3 and
//! the imprint with asn1crypto and verifies the token with `openssl ts`.

use std::path::Path;

use der::{Decode, Encode};
use qsign::proto;

use crate::detached::{cms_certificates, content, digest, request};
use crate::levels::{validate_cms_b_t, validate_cms_with_time_of};
use crate::support::{env, server, sha256, tools, Server, Who};

/// Signs `documents` in one B_LTA request, each given whole or, with
/// `digest_mode`, as its SHA-256.
async fn sign_b_lta(
    server: &Server,
    who: &Who,
    seal: &str,
    documents: &[Vec<u8>],
    digest_mode: bool,
) -> Vec<Vec<u8>> {
    let digests: Vec<[u8; 32]> = documents.iter().map(|d| sha256(d)).collect();
    let sent = documents
        .iter()
        .zip(&digests)
        .map(|(d, h)| if digest_mode { digest(*h) } else { content(d) })
        .collect();
    let mut req = request(sent, env().token(who, &digests), seal);
    req.level = proto::Level::BLta as i32;
    let response = server
        .client()
        .await
        .sign_detached(req)
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(response.cms.len(), documents.len());
    response.cms
}

/// `ats_v3.py`'s verdict on `cms` over `data` (or its digest) against
/// qsign's `root` CA; `None` when the validators or openssl are not
/// installed (outside CI).
pub fn ats_v3_with_root(
    cms: &[u8],
    data: &[u8],
    digest_mode: bool,
    root: &Path,
) -> Option<Result<(), String>> {
    if !tools::require("openssl") {
        return None;
    }
    let files = tools::DetachedFiles::new(cms, data, digest_mode);
    let mut args = files.args();
    args.extend(["--root".as_ref(), root.as_os_str()]);
    tools::check("ats_v3.py", &args)
}

/// [`ats_v3_with_root`] against the test fixture's root.
fn ats_v3(cms: &[u8], data: &[u8], digest_mode: bool) -> Option<Result<(), String>> {
    ats_v3_with_root(cms, data, digest_mode, &env().root_ca())
}

async fn b_lta(label: &str, who: Who, seal: &str, expect: &str, digest_mode: bool) {
    let server = server(label).await;
    // A batch: every SignerInfo gets its own archive time-stamp.
    let documents = [format!("B-LTA {label} 1"), format!("B-LTA {label} 2")]
        .map(String::into_bytes)
        .to_vec();
    let signed = sign_b_lta(&server, &who, seal, &documents, digest_mode).await;
    for (cms, data) in signed.iter().zip(&documents) {
        // B-LT's validation data is still there: signer, CA, root, TSA.
        assert_eq!(cms_certificates(cms).len(), 4);
        if tools::require("openssl") {
            tools::openssl_cms_verify(cms, data, &env().root_ca()).expect("openssl cms -verify");
        }
        validate_cms_b_t(cms, data, expect, digest_mode);
        if let Some(verdict) = ats_v3(cms, data, digest_mode) {
            verdict.expect("ats_v3.py");
        }
        // pyHanko, requiring revocation data for every certificate, after
        // the certificate expired (it does not read archive time-stamps;
        // `ats_v3.py` checks those).
        validate_cms_with_time_of(cms, data, digest_mode, "require", true)
            .unwrap_or_else(|v| panic!("at {}: {v}", tools::LATER));
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_content_b_lta() {
    b_lta("blta-person", Who::jens(), "", "person", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn personal_digest_b_lta() {
    b_lta("blta-person-digest", Who::jens(), "", "person", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_content_b_lta() {
    b_lta("blta-seal", Who::sealer(), "dev", "seal", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_digest_b_lta() {
    b_lta("blta-seal-digest", Who::sealer(), "dev", "seal", true).await;
}

/// The names of the checks a failed `ats_v3.py` run reports as failed.
fn failed_checks(failure: &str) -> Vec<String> {
    let json = &failure[failure.find('{').expect("a JSON verdict")..];
    let verdict: serde_json::Value = serde_json::Deserializer::from_str(json)
        .into_iter()
        .next()
        .expect("a verdict")
        .expect("JSON");
    verdict["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `cms` with the last byte of the (only) occurrence of `part` flipped.
fn tamper(cms: &[u8], part: &[u8]) -> Vec<u8> {
    let at: Vec<usize> = cms
        .windows(part.len())
        .enumerate()
        .filter(|(_, w)| *w == part)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the part occurs once");
    let mut tampered = cms.to_vec();
    tampered[at[0] + part.len() - 1] ^= 0x01;
    tampered
}

/// The check must be able to fail: a changed signature value, a changed
/// certificate, or another document each make `ats_v3.py` refuse, for the
/// reason the standard gives.
#[tokio::test(flavor = "multi_thread")]
async fn ats_v3_refuses_a_tampered_signature() {
    let label = "blta-tamper";
    let server = server(label).await;
    let data = b"archive, then tamper".to_vec();
    let cms = sign_b_lta(
        &server,
        &Who::jens(),
        "",
        std::slice::from_ref(&data),
        false,
    )
    .await
    .remove(0);
    let Some(verdict) = ats_v3(&cms, &data, false) else {
        return;
    };
    verdict.expect("the untouched signature passes");

    let info = cms::content_info::ContentInfo::from_der(&cms).unwrap();
    let signed: cms::signed_data::SignedData = info.content.decode_as().unwrap();
    let signature = signed.signer_infos.0.get(0).unwrap().signature.as_bytes();
    let refused = |tampered: &[u8], data: &[u8]| {
        let failure = ats_v3(tampered, data, false)
            .expect("checked above")
            .expect_err("tampering is refused");
        failed_checks(&failure)
    };
    // §5.5.3 3): the signature value is in the imprint.
    assert!(refused(&tamper(&cms, signature), &data).contains(&"signer0.imprint.matches".into()));
    // §5.5.2: the root certificate is named in certificatesHashIndex (and
    // appears nowhere else: tokens never carry the root).
    let root = server.core.trust_chain.last().unwrap();
    let failed = refused(&tamper(&cms, root), &data);
    assert!(
        failed.contains(&"signer0.index.certificates_hash_index".into()),
        "{failed:?}"
    );
    // §5.5.3 2): the signed content's hash is in the imprint.
    let failed = refused(&cms, b"another document");
    assert!(
        failed.contains(&"signer0.imprint.matches".into()),
        "{failed:?}"
    );
    // A CRL of the root, for the crlsHashIndex.
    let crl = signed
        .crls
        .as_ref()
        .unwrap()
        .0
        .get(1)
        .unwrap()
        .to_der()
        .unwrap();
    let failed = refused(&tamper(&cms, &crl), &data);
    assert!(
        failed.contains(&"signer0.index.crls_hash_index".into()),
        "{failed:?}"
    );
    assert_eq!(env().leftover_keys(label), 0);
}
