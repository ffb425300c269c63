//! The time-stamping authority: RFC 3161 over HTTP from an in-process
//! endpoint, checked with `openssl ts`; bad input; the external client; the
//! TSA certificate's profile.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use qsign::signing::SigningCore;
use qsign::tsa::asn1::{FailureInfo, PkiStatusInfo, TimeStampReq, TimeStampResp};
use qsign::tsa::{MessageImprint, TimeStampAuthority};
use qsign::{proto, state, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use crate::support::{env, tools, Server};

/// The placeholder policy of the development configuration.
const DEV_POLICY: &str = "1.3.6.1.4.1.32473.1.1";

/// The HTTP endpoint of a core's TSA on an ephemeral port, stopped on drop.
struct TsaServer {
    address: SocketAddr,
    core: Arc<SigningCore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TsaServer {
    async fn start(label: &str) -> Self {
        let core = env().core(label, |_| {});
        let tsa = core.tsa.clone().expect("the dev configuration has a TSA");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(qsign::tsa::http::serve(
            core.hsm.clone(),
            tsa,
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            core,
            stop: Some(stop),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    fn tsa(&self) -> &TimeStampAuthority {
        self.core.tsa.as_deref().expect("TSA")
    }
}

impl Drop for TsaServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP exchange over a fresh connection: status, Content-Type, body.
async fn http(address: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!("{head}Host: {address}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    // A server that refuses a body early may close before reading it all:
    // the write then fails and the read ends in a reset after the reply.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("the server answers");
    assert!(read.is_ok() || !response.is_empty(), "no reply: {read:?}");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head[9..12].parse().expect("status code");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, response[split + 4..].to_vec())
}

/// POSTs a query with the RFC 3161 §3.4 content type.
async fn post_query(address: SocketAddr, query: &[u8]) -> (u16, String, Vec<u8>) {
    let head = format!(
        "POST / HTTP/1.1\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\n",
        query.len()
    );
    http(address, &head, query).await
}

/// A granted TimeStampResp's token; a rejection's failInfo otherwise.
fn decode_reply(body: &[u8]) -> TimeStampResp {
    TimeStampResp::from_der(body).expect("a DER TimeStampResp")
}

fn rejected_with(body: &[u8], failure: FailureInfo) {
    let reply = decode_reply(body);
    assert_eq!(reply.status.status, PkiStatusInfo::REJECTION, "{reply:?}");
    assert_eq!(
        reply.status.fail_info,
        Some(failure.bit_string()),
        "{reply:?}"
    );
    assert!(reply.time_stamp_token.is_none());
    assert!(reply.status.status_string.is_some(), "a reason to act on");
}

/// The certificates embedded in a token, DER; empty when there are none.
fn certificates(token: &[u8]) -> Vec<Vec<u8>> {
    let info = cms::content_info::ContentInfo::from_der(token).expect("ContentInfo");
    let signed: cms::signed_data::SignedData = info.content.decode_as().expect("SignedData");
    signed
        .certificates
        .map(|set| {
            set.0
                .iter()
                .map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => c.to_der().expect("DER"),
                    _ => panic!("unexpected certificate choice"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// pyHanko's RFC 3161 validation (intact, valid, trusted under the dev
/// root, soft-fail revocation) of a token on `digest`.
const PYHANKO_TST: &str = r#"
import asyncio, sys
from asn1crypto import cms, pem, x509
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext
token, root, digest = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
_, _, der = pem.unarmor(open(root, 'rb').read())
context = ValidationContext(trust_roots=[x509.Certificate.load(der)],
                            allow_fetching=False, revocation_mode='soft-fail')
signed = cms.ContentInfo.load(open(token, 'rb').read())['content']
status = asyncio.run(validate_tst_signed_data(signed, context, lambda algo: digest))
ok = status['intact'] and status['valid'] and status['trust_problem_indic'] is None
print(status)
sys.exit(0 if ok else 1)
"#;

fn pyhanko_validates(token: &[u8], digest: [u8; 32]) {
    let Some((python, _)) = tools::validator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.der");
    std::fs::write(&file, token).unwrap();
    let out = Command::new(python)
        .args(["-c", PYHANKO_TST, path(&file), path(&env().root_ca())])
        .arg(hex::encode(digest))
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "pyHanko: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tsa_pem() -> PathBuf {
    env().dir.join(state::TSA_CERTIFICATE)
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `openssl ts -verify -data FILE -in REPLY` against the dev root, with
/// the TSA certificate as an untrusted intermediate.
fn openssl_ts_verify(data: &Path, reply: &Path) -> (bool, String) {
    let (root, tsa) = (env().root_ca(), tsa_pem());
    let args = [
        "ts",
        "-verify",
        "-data",
        path(data),
        "-in",
        path(reply),
        "-CAfile",
        path(&root),
        "-untrusted",
        path(&tsa),
    ];
    let (ok, text) = openssl(&args);
    (ok && text.contains("Verification: OK"), text)
}

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

#[tokio::test(flavor = "multi_thread")]
async fn external_client_tries_urls_in_order() {
    let label = "tsa-external";
    let server = TsaServer::start(label).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/tsa", listener.local_addr().unwrap())
    };
    let data = b"stamp me from outside".to_vec();
    let imprint = MessageImprint::sha256_of(&data);

    let err = qsign::tsa::request_external(std::slice::from_ref(&closed), &imprint)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains(&closed), "{}", err.message());
    let err = qsign::tsa::request_external(&[], &imprint)
        .await
        .expect_err("no URL");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let err = qsign::tsa::request_external(&["https://127.0.0.1:1/".into()], &imprint)
        .await
        .expect_err("https");
    assert!(err.message().contains("https"), "{}", err.message());

    let token = qsign::tsa::request_external(&[closed, server.url()], &imprint)
        .await
        .expect("the second URL grants");
    let info = qsign::tsa::tst_info(&token).unwrap();
    assert_eq!(info.message_imprint, imprint);
    assert!(info.nonce.is_some(), "the client sends a nonce");
    assert_eq!(info.policy.to_string(), DEV_POLICY);
    assert_eq!(
        certificates(&token),
        vec![server.tsa().certificate_der().to_vec()],
        "certReq: the TSA certificate only, not the root"
    );
    pyhanko_validates(&token, crate::support::sha256(&data));
    if tools::require("openssl") {
        let dir = tempfile::tempdir().unwrap();
        let (file, token_file) = (dir.path().join("data"), dir.path().join("token.der"));
        std::fs::write(&file, &data).unwrap();
        std::fs::write(&token_file, &token).unwrap();
        let (root, tsa) = (env().root_ca(), tsa_pem());
        let (ok, text) = openssl(&[
            "ts",
            "-verify",
            "-token_in",
            "-data",
            path(&file),
            "-in",
            path(&token_file),
            "-CAfile",
            path(&root),
            "-untrusted",
            path(&tsa),
        ]);
        assert!(ok && text.contains("Verification: OK"), "{text}");
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn time_stamp_in_an_hsm_session() {
    let label = "tsa-direct";
    let core = env().core(label, |_| {});
    let tsa = core.tsa.clone().unwrap();
    let imprint = MessageImprint::sha256([9; 32]);
    let authority = tsa.clone();
    let token = core
        .hsm
        .run(move |session| authority.time_stamp(session, &imprint, None, false, SystemTime::now()))
        .await
        .expect("token");
    assert!(
        certificates(&token).is_empty(),
        "no certificate without certReq"
    );
    let info = qsign::tsa::tst_info(&token).unwrap();
    assert_eq!(info.nonce, None);
    assert_eq!(info.version, 1);
    assert_eq!(info.ordering, None, "ordering is left out (DEFAULT FALSE)");
    if tools::require("openssl") {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token.der");
        std::fs::write(&token_file, &token).unwrap();
        let (root, tsa_file) = (env().root_ca(), tsa_pem());
        let (ok, text) = openssl(&[
            "ts",
            "-verify",
            "-token_in",
            "-digest",
            &hex::encode([9; 32]),
            "-in",
            path(&token_file),
            "-CAfile",
            path(&root),
            "-untrusted",
            path(&tsa_file),
        ]);
        assert!(ok && text.contains("Verification: OK"), "{text}");
    }
    let sha1 = MessageImprint {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_1,
            parameters: None,
        },
        hashed_message: der::asn1::OctetString::new([9; 20]).unwrap(),
    };
    let err = core
        .hsm
        .run(move |session| tsa.time_stamp(session, &sha1, None, true, SystemTime::now()))
        .await
        .expect_err("SHA-1 is refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(env().leftover_keys(label), 0);
    // The TSA key pair stays, and only it carries the TSA label.
    let persistent = env()
        .hsm
        .run_blocking(|s| Ok(s.objects_labelled(state::TSA_KEY_LABEL)?.len()))
        .unwrap();
    assert_eq!(persistent, 2, "the TSA's private and public key");
}

fn extension(certificate: &Certificate, oid: const_oid::ObjectIdentifier) -> (bool, Vec<u8>) {
    let found = certificate
        .tbs_certificate
        .extensions
        .as_ref()
        .and_then(|e| e.iter().find(|e| e.extn_id == oid))
        .unwrap_or_else(|| panic!("extension {oid}"));
    (found.critical, found.extn_value.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn tsa_certificate_profile_and_trust_chain() {
    use const_oid::db::rfc5280;
    let der = state::read_certificates(&tsa_pem()).unwrap().remove(0);
    let certificate = Certificate::from_der(&der).unwrap();
    let root = state::read_certificates(&env().root_ca())
        .unwrap()
        .remove(0);
    let root = Certificate::from_der(&root).unwrap();

    let (critical, eku) = extension(&certificate, rfc5280::ID_CE_EXT_KEY_USAGE);
    assert!(critical, "extendedKeyUsage critical (RFC 3161 §2.3)");
    assert_eq!(
        ExtendedKeyUsage::from_der(&eku).unwrap().0,
        vec![rfc5280::ID_KP_TIME_STAMPING],
        "id-kp-timeStamping only"
    );
    let (critical, ku) = extension(&certificate, rfc5280::ID_CE_KEY_USAGE);
    assert!(critical, "keyUsage critical");
    assert_eq!(
        KeyUsage::from_der(&ku).unwrap().0,
        KeyUsages::DigitalSignature | KeyUsages::NonRepudiation
    );
    let has = |oid| {
        certificate
            .tbs_certificate
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.extn_id == oid)
    };
    assert!(!has(rfc5280::ID_CE_BASIC_CONSTRAINTS), "not a CA");
    let (_, aki) = extension(&certificate, rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER);
    let (_, root_ski) = extension(&root, rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER);
    assert_eq!(
        AuthorityKeyIdentifier::from_der(&aki)
            .unwrap()
            .key_identifier,
        Some(SubjectKeyIdentifier::from_der(&root_ski).unwrap().0),
        "issued by the root"
    );
    extension(&certificate, rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER);
    assert_eq!(
        certificate.tbs_certificate.issuer,
        root.tbs_certificate.subject
    );
    if tools::require("openssl") {
        let (root, tsa) = (env().root_ca(), tsa_pem());
        let (ok, text) = openssl(&[
            "verify",
            "-purpose",
            "timestampsign",
            "-CAfile",
            path(&root),
            path(&tsa),
        ]);
        assert!(ok, "openssl verify -purpose timestampsign: {text}");
    }

    let server = Server::start(env().core("tsa-chain", |_| {})).await;
    let chain = server
        .client()
        .await
        .get_trust_chain(proto::GetTrustChainRequest {})
        .await
        .expect("chain")
        .into_inner();
    assert_eq!(chain.tsa_certificate, der, "GetTrustChain names the TSA");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_without_tsa_has_none() {
    let core = env().core("tsa-none", |c| c.tsa = None);
    assert!(core.tsa.is_none());
    let server = Server::start(core).await;
    let chain = server
        .client()
        .await
        .get_trust_chain(proto::GetTrustChainRequest {})
        .await
        .expect("chain")
        .into_inner();
    assert!(chain.tsa_certificate.is_empty());
}

#[test]
fn a_tsa_certificate_that_does_not_fit_is_refused_at_start() {
    let refused = |certificate: PathBuf| {
        let mut config = env().config.clone();
        config.tsa.as_mut().unwrap().certificate = certificate;
        let err = qsign::app::signing_core(&config, &env().module)
            .err()
            .expect("refused");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
        err.message().to_owned()
    };
    // No extendedKeyUsage timeStamping: the issuing CA's certificate.
    let message = refused(env().dir.join(state::ISSUING_CA));
    assert!(message.contains("id-kp-timeStamping"), "{message}");

    // A proper TSA certificate, but for another key.
    let root_der = state::read_certificates(&env().root_ca())
        .unwrap()
        .remove(0);
    let other = env()
        .hsm
        .run_blocking(|session| {
            let key = session.generate_ephemeral(qsign::hsm::KeyAlgorithm::EcP256)?;
            let root_signer = session.persistent_signer(state::ROOT_KEY_LABEL)?;
            let issued = qsign::pki::ca::time_stamping(
                qsign::pki::name::NameBuilder::default().build(),
                key.public_key_info().clone(),
                &qsign::pki::Issuer::from_der(root_der)?,
                &root_signer,
                SystemTime::now(),
                Duration::from_secs(3600),
            )?;
            Ok(issued.der)
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("other-tsa.pem");
    std::fs::write(&pem, state::pem_certificate(&other).unwrap()).unwrap();
    let message = refused(pem);
    assert!(message.contains("does not match"), "{message}");
}
