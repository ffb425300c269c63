//! The authority itself: tokens made in an HSM session, the external
//! client, the TSA certificate's profile, and refusals at start-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use der::Decode;
use qsign::service::outbound::HttpTransport;
use qsign::tsa::{ExternalTsas, MessageImprint};
use qsign::{proto, state, ErrorKind};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use super::{certificates, openssl, path, pyhanko_validates, tsa_pem, TsaServer, DEV_POLICY};
use crate::support::{env, tools, Server};

/// `urls` over the service's HTTP adapter, as `app::signing_core` wires them.
pub fn external(urls: &[&str]) -> ExternalTsas {
    let urls = urls.iter().map(|u| u.to_string()).collect();
    ExternalTsas::new(urls, Arc::new(HttpTransport))
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

    let err = external(&[&closed])
        .time_stamp(&imprint)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains(&closed), "{}", err.message());
    let err = external(&[])
        .time_stamp(&imprint)
        .await
        .expect_err("no URL");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let err = external(&["https://127.0.0.1:1/"])
        .time_stamp(&imprint)
        .await
        .expect_err("https");
    assert!(err.message().contains("https"), "{}", err.message());

    let token = external(&[&closed, &server.url()])
        .time_stamp(&imprint)
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

/// The HTTP adapter keeps the deadline it is given and leaves no
/// connection behind: a TSA that accepts and never answers sees it closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_tsa_times_out_and_its_connection_closes() {
    use qsign::tsa::Transport;
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let timeout = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let err = HttpTransport
        .exchange(&url, b"query", timeout)
        .await
        .expect_err("nobody answers");
    assert!(err.contains("no answer within"), "{err}");
    assert!(started.elapsed() < timeout * 10, "{:?}", started.elapsed());
    let (mut socket, _) = listener.accept().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = Vec::new();
    let read = socket.read_to_end(&mut request);
    assert!(read.is_ok(), "closed, not left open: {read:?}");
    assert!(
        String::from_utf8_lossy(&request).starts_with("POST / HTTP/1.1"),
        "{request:?}"
    );
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
        .run(move |session| {
            let signer = session.session_signer(authority.key_label())?;
            authority.time_stamp(&signer, &imprint, None, false, SystemTime::now())
        })
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
        .run(move |session| {
            let signer = session.session_signer(tsa.key_label())?;
            tsa.time_stamp(&signer, &sha1, None, true, SystemTime::now())
        })
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
                (
                    &qsign::pki::Issuer::from_der(root_der)?,
                    qsign::config::DEV_ROOT_CRL_URL,
                ),
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
