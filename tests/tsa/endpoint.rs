//! The RFC 3161 §3.4 HTTP endpoint: tokens that `openssl ts` verifies, and
//! bad input that gets a rejection or a 4xx while the server keeps serving.

use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use qsign::tsa::asn1::{FailureInfo, PkiStatusInfo, TimeStampReq};
use qsign::tsa::MessageImprint;

use super::{
    decode_reply, http, openssl, openssl_ts_verify, path, post_query, rejected_with, tsa_pem,
    TsaServer, DEV_POLICY,
};
use crate::support::{env, tools};

#[tokio::test(flavor = "multi_thread")]
async fn openssl_verifies_a_token_from_the_http_endpoint() {
    let label = "tsa-openssl";
    if !tools::require("openssl") {
        return;
    }
    let server = TsaServer::start(label).await;
    let dir = tempfile::tempdir().unwrap();
    let (data, query, reply) = (
        dir.path().join("data.txt"),
        dir.path().join("q.tsq"),
        dir.path().join("reply.tsr"),
    );
    std::fs::write(&data, b"time-stamp me").unwrap();
    let (ok, text) = openssl(&[
        "ts",
        "-query",
        "-data",
        path(&data),
        "-sha256",
        "-cert",
        "-out",
        path(&query),
    ]);
    assert!(ok, "{text}");
    let query_der = std::fs::read(&query).unwrap();
    let (status, content_type, body) = post_query(server.address, &query_der).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/timestamp-reply");
    let response = decode_reply(&body);
    assert_eq!(response.status.status, PkiStatusInfo::GRANTED);
    std::fs::write(&reply, &body).unwrap();

    let (ok, text) = openssl_ts_verify(&data, &reply);
    assert!(ok, "openssl ts -verify: {text}");
    // The nonce (and imprint) of this very query: -queryfile checks both.
    let (ok, text) = openssl(&[
        "ts",
        "-verify",
        "-queryfile",
        path(&query),
        "-in",
        path(&reply),
        "-CAfile",
        path(&env().root_ca()),
        "-untrusted",
        path(&tsa_pem()),
    ]);
    assert!(ok && text.contains("Verification: OK"), "{text}");
    let token = response.time_stamp_token.unwrap().to_der().unwrap();
    let info = qsign::tsa::tst_info(&token).unwrap();
    let request = TimeStampReq::from_der(&query_der).unwrap();
    assert!(request.nonce.is_some(), "openssl sends a nonce");
    assert_eq!(info.nonce, request.nonce, "the nonce is echoed");
    assert_eq!(info.message_imprint, request.message_imprint);
    let gen_time = info.gen_time().expect("whole seconds").to_system_time();
    let skew = SystemTime::now().duration_since(gen_time).unwrap();
    assert!(skew < Duration::from_secs(60), "genTime is now");

    let (ok, text) = openssl(&["ts", "-reply", "-in", path(&reply), "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("Status: Granted."), "{text}");
    assert!(
        text.contains(&format!("Policy OID: {DEV_POLICY}")),
        "{text}"
    );
    assert!(text.contains("Accuracy: 0x01 seconds"), "{text}");
    assert!(text.contains("Ordering: no"), "{text}");

    // Tampering with the signature or with the TSTInfo breaks the token.
    let mut signature = body.clone();
    let last = signature.len() - 1;
    signature[last] ^= 0x01;
    let serial = info.serial_number.as_bytes();
    let at = body
        .windows(serial.len())
        .position(|w| w == serial)
        .expect("the serial number inside the reply");
    let mut tst_info = body.clone();
    tst_info[at + 4] ^= 0x01;
    for tampered in [signature, tst_info] {
        std::fs::write(&reply, &tampered).unwrap();
        let (ok, text) = openssl_ts_verify(&data, &reply);
        assert!(!ok, "a tampered reply must not verify: {text}");
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_answered_and_the_server_keeps_serving() {
    let server = TsaServer::start("tsa-bad-input").await;
    let address = server.address;

    let (status, _, body) = post_query(address, b"").await;
    assert_eq!(status, 200);
    rejected_with(&body, FailureInfo::BadDataFormat);

    let (status, _, body) = post_query(address, b"\x30\x03garbage that is not DER").await;
    assert_eq!(status, 200);
    rejected_with(&body, FailureInfo::BadDataFormat);

    // SHA-1: `openssl ts -query -digest <20 bytes> -sha1`.
    let mut query = TimeStampReq::from_der(&good_query([7; 32])).unwrap();
    query.message_imprint.hash_algorithm.oid = const_oid::db::rfc5912::ID_SHA_1;
    query.message_imprint.hashed_message = der::asn1::OctetString::new([7; 20]).unwrap();
    let (_, _, body) = post_query(address, &query.to_der().unwrap()).await;
    rejected_with(&body, FailureInfo::BadAlg);

    let mut query = TimeStampReq::from_der(&good_query([7; 32])).unwrap();
    query.message_imprint.hashed_message = der::asn1::OctetString::new([7; 31]).unwrap();
    let (_, _, body) = post_query(address, &query.to_der().unwrap()).await;
    rejected_with(&body, FailureInfo::BadDataFormat);

    let mut query = TimeStampReq::from_der(&good_query([7; 32])).unwrap();
    query.req_policy = Some(const_oid::ObjectIdentifier::new_unwrap("1.2.3.4"));
    let (_, _, body) = post_query(address, &query.to_der().unwrap()).await;
    rejected_with(&body, FailureInfo::UnacceptedPolicy);

    let mut query = TimeStampReq::from_der(&good_query([7; 32])).unwrap();
    query.version = 2;
    let (_, _, body) = post_query(address, &query.to_der().unwrap()).await;
    rejected_with(&body, FailureInfo::BadRequest);

    let good = good_query([7; 32]);
    let (status, _, _) = http(
        address,
        &format!(
            "POST / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            good.len()
        ),
        &good,
    )
    .await;
    assert_eq!(status, 415, "wrong content type");
    let (status, _, _) = http(address, "GET / HTTP/1.1\r\n", b"").await;
    assert_eq!(status, 405);
    let (status, _, _) = http(
        address,
        "POST / HTTP/1.1\r\nContent-Type: application/timestamp-query\r\nContent-Length: 100000\r\n",
        b"",
    )
    .await;
    assert_eq!(status, 413, "declared body over 64 KiB");
    let big = vec![0x30; 70_000];
    let (status, _, _) = post_query(address, &big).await;
    assert_eq!(status, 413, "body over 64 KiB");
    let chunked = b"5\r\n\x30\x03abc\r\n0\r\n\r\n";
    let (status, _, body) = http(
        address,
        "POST / HTTP/1.1\r\nContent-Type: application/timestamp-query\r\nTransfer-Encoding: chunked\r\n",
        chunked,
    )
    .await;
    assert_eq!(status, 200, "a chunked body is read too");
    rejected_with(&body, FailureInfo::BadDataFormat);
    let (status, _, _) = http(address, "NONSENSE\r\n", b"").await;
    assert_eq!(status, 400, "not HTTP");

    let (status, _, body) = post_query(address, &good).await;
    assert_eq!(status, 200);
    assert!(decode_reply(&body).status.is_granted(), "still serving");
}

/// A DER TimeStampReq for `digest`, without nonce, certReq false.
fn good_query(digest: [u8; 32]) -> Vec<u8> {
    TimeStampReq {
        version: 1,
        message_imprint: MessageImprint::sha256(digest),
        req_policy: None,
        nonce: None,
        cert_req: None,
        extensions: None,
    }
    .to_der()
    .unwrap()
}

/// `GET /crl/...`: a fresh CRL of each CA, signed in the token, that
/// `openssl crl -CAfile` verifies against the CA's certificate.
#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_serves_crls_of_both_cas() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TsaServer::start("tsa-crl").await;
    let issuing = env().dir.join(qsign::state::ISSUING_CA);
    for (path, ca) in [
        (qsign::service::http::ISSUING_CA_CRL_PATH, issuing),
        (qsign::service::http::ROOT_CA_CRL_PATH, env().root_ca()),
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.address)
            .await
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: qsign\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers")
            + 4;
        let headers = String::from_utf8_lossy(&reply[..split]).to_lowercase();
        assert!(headers.starts_with("http/1.1 200"), "{headers}");
        assert!(headers.contains("application/pkix-crl"), "{headers}");
        let crl = &reply[split..];
        x509_cert::crl::CertificateList::from_der(crl).expect("a CRL");
        if tools::require("openssl") {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("ca.crl");
            std::fs::write(&file, crl).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-in"])
                .arg(&file)
                .arg("-CAfile")
                .arg(&ca)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("verify OK"),
                "{path}: {text}"
            );
        }
    }
}
