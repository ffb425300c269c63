//! SPEC §6 levels: B-T by default wherever a TSA is available, CAdES and
//! PAdES time-stamps that validators accept at the time-stamp's time, and
//! no half-signed result when the external TSA is down.

use qsign::proto::{self, TimeStampRequest};
use tonic::Code;

use crate::detached::{content, request, sign_one};
use crate::pades::{judge_at_level, judge_later};
use crate::support::{corpus_file, env, server, sha256, sign_pdf_request, tools, Server, Who};

async fn cades_bt(label: &str, who: Who, seal: &str, expect: &str, level: proto::Level) {
    let server = server(label).await;
    let data = format!("B-T {label}").into_bytes();
    let response = sign_one(&server, &data, &who, seal, level).await;
    validate_cms_b_t(&response.cms[0], &data, expect, false);
    validate_cms_later(&response.cms[0], &data);
    let root = env().root_ca();
    if tools::require("openssl") {
        tools::openssl_cms_verify(&response.cms[0], &data, &root).expect("openssl");
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cades_personal_is_b_t_by_default() {
    cades_bt(
        "bt-person",
        Who::jens(),
        "",
        "person",
        proto::Level::Unspecified,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cades_seal_b_t() {
    cades_bt("bt-seal", Who::sealer(), "dev", "seal", proto::Level::BT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_t_validates_at_the_time_stamp() {
    let server = server("bt-pdf").await;
    let mut client = server.client().await;
    let dir = tempfile::tempdir().unwrap();
    for (name, who, seal, expect) in [
        ("reportlab_simple.pdf", Who::jens(), "", "person"),
        ("qpdf_object_streams.pdf", Who::sealer(), "dev", "seal"),
        ("incremental_updates.pdf", Who::jens(), "", "person"),
    ] {
        let Some((original, pdf)) = corpus_file(name) else {
            return;
        };
        let request = sign_pdf_request(pdf, &who, seal, proto::Level::Unspecified);
        let signed = client
            .sign_pdf(request)
            .await
            .expect("signed")
            .into_inner()
            .signed_pdf;
        let path = dir.path().join(name);
        std::fs::write(&path, signed).unwrap();
        judge_at_level(&path, &original, expect, "B-T", "tst");
        judge_later(&path, &original, expect, "B-T");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn external_tsa_down_is_unavailable_and_leaves_no_key() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let label = "bt-tsa-down";
    let core = env().core(label, |c| {
        if let Some(tsa) = c.tsa.as_mut() {
            tsa.urls = vec![format!("http://{closed}/")];
        }
    });
    let server = Server::start(core).await;
    let data = b"needs a time-stamp".to_vec();
    let status = server
        .client()
        .await
        .sign_detached({
            let mut r = request(
                vec![content(&data)],
                env().token(&Who::jens(), &[sha256(&data)]),
                "",
            );
            r.level = proto::Level::BT as i32;
            r
        })
        .await
        .expect_err("no TSA answers");
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn levels_without_support_are_refused_not_downgraded() {
    // No TSA at all: B-T, B-LT and B-LTA are refused, not made B-B.
    let core = env().core("bt-no-tsa", |c| c.tsa = None);
    let no_tsa = Server::start(core).await;
    // External TSAs only: B-T is possible, B-LT and B-LTA need the built-in
    // one (refused before any TSA is asked: the URL answers nothing).
    let core = env().core("blta-external", |c| {
        if let Some(tsa) = c.tsa.as_mut() {
            tsa.urls = vec!["http://127.0.0.1:9/".into()];
        }
    });
    let external = Server::start(core).await;
    for (server, level, needs) in [
        (
            &no_tsa,
            proto::Level::BT,
            "B_T needs a time-stamping authority",
        ),
        (&no_tsa, proto::Level::BLt, "built-in"),
        (&no_tsa, proto::Level::BLta, "built-in"),
        (&external, proto::Level::BLt, "built-in"),
        (&external, proto::Level::BLta, "built-in"),
    ] {
        let data = b"no tsa".to_vec();
        let mut r = request(
            vec![content(&data)],
            env().token(&Who::jens(), &[sha256(&data)]),
            "",
        );
        r.level = level as i32;
        let status = server
            .client()
            .await
            .sign_detached(r)
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{level:?}: {}",
            status.message()
        );
        assert!(status.message().contains(needs), "{}", status.message());
    }
    assert_eq!(env().leftover_keys("bt-no-tsa"), 0);
    assert_eq!(env().leftover_keys("blta-external"), 0);
}

/// SignPdf at `level` on two corpus files (a classic xref table, and object
/// and cross-reference streams), judged at that level.
async fn pades_long_term(label: &str, level: proto::Level, name: &str) {
    let server = server(label).await;
    let mut client = server.client().await;
    let dir = tempfile::tempdir().unwrap();
    for (file, who, seal, expect) in [
        ("reportlab_simple.pdf", Who::jens(), "", "person"),
        ("qpdf_object_streams.pdf", Who::sealer(), "dev", "seal"),
    ] {
        let Some((original, pdf)) = corpus_file(file) else {
            return;
        };
        let request = sign_pdf_request(pdf, &who, seal, level);
        let signed = client
            .sign_pdf(request)
            .await
            .unwrap_or_else(|s| panic!("{file}: {s:?}"))
            .into_inner()
            .signed_pdf;
        let path = dir.path().join(file);
        std::fs::write(&path, signed).unwrap();
        judge_at_level(&path, &original, expect, name, "tst");
        judge_later(&path, &original, expect, name);
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_lt_has_a_dss_with_chain_and_crls() {
    pades_long_term("blt-pdf", proto::Level::BLt, "B-LT").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_lta_has_a_document_time_stamp_over_the_dss() {
    pades_long_term("blta-pdf", proto::Level::BLta, "B-LTA").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_lt_needs_the_built_in_tsa() {
    let core = env().core("blt-no-tsa", |c| c.tsa = None);
    let server = Server::start(core).await;
    let pdf = b"%PDF-1.7\n".to_vec();
    for level in [proto::Level::BLt, proto::Level::BLta] {
        let status = server
            .client()
            .await
            .sign_pdf(sign_pdf_request(pdf.clone(), &Who::jens(), "", level))
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("built-in"),
            "{}",
            status.message()
        );
    }
}

/// Hash-only PAdES (`qsign sign-pdf` above its threshold): the server
/// returns the validation data and the document time-stamp, the client
/// writes the /DSS and /DocTimeStamp updates; judged as SignPdf's are, at
/// the time-stamp and after the certificate expired.
#[tokio::test(flavor = "multi_thread")]
async fn hash_only_pdf_b_lt_and_b_lta_written_by_the_client() {
    use qsign::client::{self, Connection, PdfJob, TokenSource};
    let label = "blt-hash-only";
    let server = server(label).await;
    let connection = Connection {
        server: format!("http://{}", server.address),
        ca: None,
        identity: None,
    };
    let out = tempfile::tempdir().unwrap();
    for (file, level, name) in [
        ("reportlab_simple.pdf", proto::Level::BLt, "B-LT"),
        ("qpdf_object_streams.pdf", proto::Level::BLta, "B-LTA"),
        ("incremental_updates.pdf", proto::Level::BLta, "B-LTA"),
    ] {
        let Some((original, _)) = corpus_file(file) else {
            return;
        };
        let job = PdfJob {
            input: original.clone(),
            output: out.path().join(file),
            seal_profile: None,
            options: Default::default(),
            key_algorithm: proto::KeyAlgorithm::EcP256,
            level,
            hash_only_above: 0,
            durable: false,
        };
        let token = TokenSource::Dev {
            state_dir: env().dir.clone(),
            name: "Jens Hansen".into(),
        };
        client::sign_pdf(&connection, &token, &job)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        judge_at_level(&job.output, &original, "person", name, "tst");
        judge_later(&job.output, &original, "person", name);
    }
    assert_eq!(env().leftover_keys(label), 0);
}

/// CAdES B-LT: the chain, the TSA certificate and CRLs of both CAs travel in
/// the SignedData; `openssl cms -verify -crl_check_all` needs exactly those.
#[tokio::test(flavor = "multi_thread")]
async fn cades_b_lt_carries_certificates_and_crls() {
    let label = "blt-cades";
    let server = server(label).await;
    let data = b"archive me".to_vec();
    let mut req = request(
        vec![content(&data)],
        env().token(&Who::jens(), &[sha256(&data)]),
        "",
    );
    req.level = proto::Level::BLt as i32;
    let mut response = server
        .client()
        .await
        .sign_detached(req)
        .await
        .expect("signed")
        .into_inner();
    let cms = response.cms.remove(0);
    let certificates = crate::detached::cms_certificates(&cms);
    assert_eq!(certificates.len(), 4, "signer, issuing CA, root, TSA");
    crate::crl::issuing_crl_is_fresh_for_the_signature(&cms, &response.certificate);
    if tools::require("openssl") {
        let root = env().root_ca();
        tools::openssl_cms_verify_with(&cms, &data, &root, &["-crl_check_all"])
            .expect("openssl cms -verify -crl_check_all");
        // The same check fails on a B-T signature: the CRLs are what B-LT adds.
        let data = b"no crls".to_vec();
        let bt = sign_one(&server, &data, &Who::jens(), "", proto::Level::BT)
            .await
            .cms
            .remove(0);
        assert!(
            tools::openssl_cms_verify_with(&bt, &data, &root, &["-crl_check_all"]).is_err(),
            "B-T has no CRLs"
        );
        // Nor does a validator that insists on revocation data accept it.
        if tools::validator().is_some() {
            assert!(validate_cms_with_time(&bt, &data, "require", false).is_err());
        }
    }
    validate_cms_b_t(&cms, &data, "person", false);
    validate_cms_later(&cms, &data);
    // pyHanko requiring revocation data for every certificate of every path
    // finds it in the SignedData, also after the certificate expired.
    validate_cms_with_time(&cms, &data, "require", true).expect("B-LT, require");
    assert_eq!(env().leftover_keys(label), 0);
}

/// `validate_cms.py --level B-T` on a detached CMS over `data`, given whole
/// or, with `digest_mode`, as its SHA-256 only.
pub fn validate_cms_b_t(cms: &[u8], data: &[u8], expect: &str, digest_mode: bool) {
    crate::detached::validate_cms(cms, data, digest_mode, expect, &["--level", "B-T"]);
}

/// pyHanko's EN 319 102-1 §5.5 validation with time of a detached CMS over
/// `data`, with the clock `tools::LATER`: after the certificate expired, the
/// signature time-stamp proves it existed while it was valid.
pub fn validate_cms_later(cms: &[u8], data: &[u8]) {
    validate_cms_with_time(cms, data, "soft-fail", true)
        .unwrap_or_else(|verdict| panic!("at {}: {verdict}", tools::LATER));
}

/// `tests/validate/ades_with_time.py` with `revocation` checking (the
/// SignedData's own CRLs and OCSP responses only), now or `later`: `Err`
/// with the verdict unless it PASSED.
pub fn validate_cms_with_time(
    cms: &[u8],
    data: &[u8],
    revocation: &str,
    later: bool,
) -> Result<(), String> {
    validate_cms_with_time_of(cms, data, false, revocation, later)
}

/// [`validate_cms_with_time`] of `data` given whole or, with `digest_mode`,
/// as its SHA-256 only.
pub fn validate_cms_with_time_of(
    cms: &[u8],
    data: &[u8],
    digest_mode: bool,
    revocation: &str,
    later: bool,
) -> Result<(), String> {
    let files = tools::DetachedFiles::new(cms, data, digest_mode);
    let root = env().root_ca();
    let mut args = files.args();
    args.extend([
        "--root".as_ref(),
        root.as_os_str(),
        "--revocation".as_ref(),
        revocation.as_ref(),
    ]);
    let script = tools::own_script("ades_with_time.py");
    let verdict = if later {
        tools::validate_later(&script, &args)
    } else {
        tools::validate_own(&script, &args)
    };
    match verdict {
        Ok(Some(verdict)) if verdict["indication"] == "PASSED" => Ok(()),
        Ok(Some(verdict)) => Err(verdict.to_string()),
        Ok(None) => Ok(()),
        Err(failed) => Err(failed),
    }
}

/// `TimeStamp` (the document time-stamp of hash-only B-LTA): a token over
/// exactly the digest sent (the TSA's tokens: `tests/tsa.rs`); a digest
/// that is no SHA-256 is INVALID_ARGUMENT, a server without the built-in
/// TSA FAILED_PRECONDITION.
#[tokio::test(flavor = "multi_thread")]
async fn time_stamp_rpc() {
    let server = server("ts-rpc").await;
    let data = b"document time-stamp".to_vec();
    let token = server
        .client()
        .await
        .time_stamp(TimeStampRequest {
            sha256_digest: sha256(&data).to_vec(),
        })
        .await
        .expect("a token")
        .into_inner()
        .time_stamp_token;
    let imprint = qsign::tsa::tst_info(&token)
        .expect("TSTInfo")
        .message_imprint;
    assert_eq!(imprint.hashed_message.as_bytes(), sha256(&data));
    let status = server
        .client()
        .await
        .time_stamp(TimeStampRequest {
            sha256_digest: vec![0; 20],
        })
        .await
        .expect_err("not a SHA-256");
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    let none = Server::start(env().core("ts-rpc-none", |c| c.tsa = None)).await;
    let status = none
        .client()
        .await
        .time_stamp(TimeStampRequest {
            sha256_digest: sha256(&data).to_vec(),
        })
        .await
        .expect_err("no TSA");
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
}
