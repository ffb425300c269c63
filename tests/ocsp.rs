//! The `[ocsp]` alternative to noRevAvail (SPEC §5): certificates name the
//! issuing CA's OCSP responder, which `openssl ocsp` asks over HTTP; B-LT
//! embeds its response (CAdES: RFC 5940 in SignedData.crls; PAdES: /DSS
//! /OCSPs) and pyHanko, requiring revocation data for every certificate,
//! accepts the signatures at signing time and after the certificate expired.

use der::Decode;
use qsign::proto;
use x509_cert::ext::pkix::AuthorityInfoAccessSyntax;
use x509_cert::Certificate;

use crate::detached::sign_one;
use crate::levels::validate_cms_with_time;
use crate::support::{corpus_file, env, sign_pdf_request, tools, Server, Who};
use crate::tsa::{http, TsaServer};

/// The responder URL a certificate names (RFC 5280 §4.2.2.1), and whether
/// it carries noRevAvail (RFC 9608: never together with a pointer).
fn revocation_pointers(der: &[u8]) -> (Vec<String>, bool) {
    let certificate = Certificate::from_der(der).expect("certificate");
    let tbs = &certificate.tbs_certificate;
    let urls = tbs
        .get::<AuthorityInfoAccessSyntax>()
        .expect("AIA decodes")
        .map(|(_, aia)| {
            aia.0
                .iter()
                .filter(|d| d.access_method == const_oid::db::rfc5280::ID_AD_OCSP)
                .map(|d| match &d.access_location {
                    x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
                        u.to_string()
                    }
                    other => panic!("not a URI: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let no_rev_avail = tbs
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == qsign::pki::oid::CE_NO_REV_AVAIL);
    (urls, no_rev_avail)
}

/// The status in a successful OCSPResponse's only SingleResponse.
fn single_status(der: &[u8]) -> x509_ocsp::CertStatus {
    let response = x509_ocsp::OcspResponse::from_der(der).expect("an OCSPResponse");
    assert_eq!(
        response.response_status,
        x509_ocsp::OcspResponseStatus::Successful
    );
    let bytes = response.response_bytes.expect("responseBytes");
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic");
    let [single] = <[_; 1]>::try_from(basic.tbs_response_data.responses).expect("one response");
    single.cert_status
}

fn pem(der: &[u8]) -> String {
    qsign::state::pem_certificate(der).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_name_the_responder_and_openssl_ocsp_gets_good() {
    let label = "ocsp-live";
    let endpoint = TsaServer::start_with(label, true).await;
    let server = Server::start(endpoint.core.clone()).await;
    let data = b"ask the responder".to_vec();
    let response = sign_one(&server, &data, &Who::jens(), "", proto::Level::BB).await;
    let url = format!("http://{}/ocsp", endpoint.address);
    assert_eq!(
        revocation_pointers(&response.certificate),
        (vec![url.clone()], false),
        "an OCSP pointer instead of noRevAvail"
    );
    let (default_urls, no_rev_avail) = {
        let server = crate::support::server("ocsp-default").await;
        let data = b"default profile".to_vec();
        let certificate = sign_one(&server, &data, &Who::jens(), "", proto::Level::BB)
            .await
            .certificate;
        revocation_pointers(&certificate)
    };
    assert!(
        default_urls.is_empty() && no_rev_avail,
        "the default is noRevAvail"
    );

    // RFC 6960 A.1 over HTTP, judged by OpenSSL: the response verifies
    // (delegated responder certified by the issuing CA, nonce echoed).
    if tools::require("openssl") {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join("leaf.pem");
        std::fs::write(&leaf, pem(&response.certificate)).unwrap();
        let issuing = env().dir.join(qsign::state::ISSUING_CA);
        let out = std::process::Command::new("openssl")
            .args(["ocsp", "-url", &url])
            .arg("-issuer")
            .arg(&issuing)
            .arg("-cert")
            .arg(&leaf)
            .arg("-CAfile")
            .arg(env().root_ca())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(stderr.contains("Response verify OK"), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!("{}: good", leaf.display())),
            "{stdout}"
        );

        // The same request by GET (RFC 6960 A.1): /ocsp/{url-encoded base64}.
        let request = dir.path().join("request.der");
        let out = std::process::Command::new("openssl")
            .args(["ocsp", "-no_nonce", "-issuer"])
            .arg(&issuing)
            .arg("-cert")
            .arg(&leaf)
            .arg("-reqout")
            .arg(&request)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(&request).unwrap())
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let head = format!("GET /ocsp/{encoded} HTTP/1.1\r\n");
        let (status, content_type, body) = http(endpoint.address, &head, b"").await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/ocsp-response")
        );
        assert_eq!(single_status(&body), x509_ocsp::CertStatus::good());
    }

    // Not an OCSPRequest: a malformedRequest response (RFC 6960 §2.3).
    let head =
        "POST /ocsp HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 4\r\n";
    let (status, content_type, body) = http(endpoint.address, head, b"junk").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/ocsp-response")
    );
    let answer = x509_ocsp::OcspResponse::from_der(&body).expect("an OCSPResponse");
    assert_eq!(
        answer.response_status,
        x509_ocsp::OcspResponseStatus::MalformedRequest
    );
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cades_b_lta_embeds_the_response_and_strict_validation_accepts_it() {
    let label = "ocsp-cades";
    let endpoint = TsaServer::start_with(label, true).await;
    let server = Server::start(endpoint.core.clone()).await;
    let data = b"long-term with OCSP".to_vec();
    let cms = sign_one(&server, &data, &Who::sealer(), "dev", proto::Level::BLta)
        .await
        .cms
        .remove(0);
    if tools::require("openssl") {
        tools::openssl_cms_verify(&cms, &data, &env().root_ca()).expect("openssl");
    }
    // The archive time-stamp's index covers the OCSP response too.
    if let Some(verdict) = crate::cades_lta::ats_v3_with_root(&cms, &data, false, &env().root_ca())
    {
        verdict.expect("ats_v3.py");
    }
    // The root's CRL and the OCSP response are the only revocation data:
    // the signer's certificate is covered by the response alone.
    for later in [false, true] {
        validate_cms_with_time(&cms, &data, "require", later)
            .unwrap_or_else(|v| panic!("later={later}: {v}"));
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pades_b_lta_carries_the_response_in_the_dss() {
    let label = "ocsp-pades";
    let endpoint = TsaServer::start_with(label, true).await;
    let server = Server::start(endpoint.core.clone()).await;
    let Some((_, pdf)) = corpus_file("reportlab_simple.pdf") else {
        return;
    };
    let signed = server
        .client()
        .await
        .sign_pdf(sign_pdf_request(pdf, &Who::jens(), "", proto::Level::BLta))
        .await
        .expect("signed")
        .into_inner()
        .signed_pdf;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ocsp-lta.pdf");
    std::fs::write(&path, signed).unwrap();
    let root = env().root_ca();
    let args = [path.as_os_str(), "--root".as_ref(), root.as_os_str()];
    let strict = tools::own_script("pades_lta_strict.py");
    for verdict in [
        tools::validate_own(&strict, &args),
        tools::validate_later(&strict, &args),
    ] {
        let verdict = verdict.unwrap_or_else(|e| panic!("{e}"));
        if let Some(verdict) = verdict {
            assert_eq!(verdict["indication"], "PASSED", "{verdict}");
        }
    }
    // The shared validator's certificate profile asks for noRevAvail, which
    // this alternative replaces; every other check must pass.
    let verdict = tools::validate_own(
        &tools::shared_script("validate_pdf.py"),
        &[
            path.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
            "--expect".as_ref(),
            "person".as_ref(),
            "--level".as_ref(),
            "B-LTA".as_ref(),
            "--at".as_ref(),
            "tst".as_ref(),
        ],
    );
    match verdict {
        Ok(None) => {}
        Ok(Some(v)) => panic!("noRevAvail cannot pass with an OCSP pointer: {v}"),
        Err(failed) => {
            let json = &failed[failed.find('{').expect("a verdict")..];
            let json = &json[..=json.rfind('}').unwrap()];
            let verdict: serde_json::Value = serde_json::from_str(json).expect("JSON");
            assert_eq!(
                verdict["failed"],
                serde_json::json!(["cert.no_rev_avail"]),
                "{verdict}"
            );
            let dss = verdict["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "level.blt.dss_certs")
                .expect("DSS check");
            assert!(
                dss["detail"].as_str().unwrap().contains("/OCSPs=1"),
                "{dss}"
            );
        }
    }
    assert_eq!(env().leftover_keys(label), 0);
}
