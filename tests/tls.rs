//! TLS and mTLS on both listeners (SPEC §12): client certificates must
//! chain to the client CA; a seal profile's `allowed_clients` admits callers
//! by fingerprint or by subject (PERMISSION_DENIED otherwise); openssl
//! s_client, curl and the CLI check it as independent clients.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use qsign::auth::Right;
use qsign::proto::signing_service_client::SigningServiceClient;
use qsign::proto::{self, document};
use qsign::service::Tls;
use qsign::signing::SigningCore;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

use crate::support::pki::TestPki;
use crate::support::{env, sha256, tools, Server, Who};

/// The development profile "dev" admits the invoicing certificate by its
/// fingerprint (openssl's spelling, with colons); "dev-payroll", a seal
/// profile of the same organisation, the payroll certificate by subject.
fn mtls_core(label: &str, pki: &TestPki) -> Arc<SigningCore> {
    let fingerprint = pki.fingerprint("invoicing");
    env().core(label, |config| {
        let dev = config
            .profiles
            .iter_mut()
            .find(|p| p.id.as_str() == qsign::state::DEV_PROFILE)
            .expect("the development profile");
        dev.allowed_clients = vec![fingerprint.parse().expect("a fingerprint")];
        let mut payroll = dev.clone();
        payroll.id = "dev-payroll".parse().unwrap();
        payroll.allow = vec![Right::Seal];
        // Spaces and case differ from the certificate's subject on purpose.
        payroll.allowed_clients = vec!["cn=Payroll, O=Acme A/S, C=dk".parse().expect("a DN")];
        config.profiles.push(payroll);
    })
}

fn sealer() -> Who {
    Who {
        seal_profiles: vec![qsign::state::DEV_PROFILE, "dev-payroll"],
        ..Who::sealer()
    }
}

fn mtls(pki: &TestPki) -> Tls {
    Tls::load(&pki.tls_config(true)).expect("[tls] loads")
}

/// A gRPC client over TLS to 127.0.0.1 (the server certificate's IP SAN),
/// showing the client certificate `client` (a name of the test PKI).
pub(crate) async fn connect(
    address: SocketAddr,
    pki: &TestPki,
    client: Option<&str>,
) -> Result<SigningServiceClient<Channel>, tonic::transport::Error> {
    let read = |file: &str| std::fs::read(pki.path(file)).expect("PKI file");
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("server-ca.pem")));
    if let Some(name) = client {
        let identity =
            Identity::from_pem(read(&format!("{name}.pem")), read(&format!("{name}.key")));
        tls = tls.identity(identity);
    }
    let channel = Endpoint::from_shared(format!("https://{address}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(SigningServiceClient::new(channel))
}

/// A B-B seal of `content` under `profile`: its CMS.
async fn seal(
    client: &mut SigningServiceClient<Channel>,
    profile: &str,
    content: &[u8],
) -> Result<Vec<u8>, tonic::Status> {
    let request = proto::SignDetachedRequest {
        documents: vec![proto::Document {
            data: Some(document::Data::Content(content.to_vec())),
        }],
        activation_token: env().token(&sealer(), &[sha256(content)]),
        seal_profile: profile.into(),
        level: proto::Level::BB as i32,
        key_algorithm: proto::KeyAlgorithm::EcP256 as i32,
    };
    let mut response = client.sign_detached(request).await?.into_inner();
    Ok(response.cms.remove(0))
}

/// The server refuses the TLS connection with `alert`: the handshake fails,
/// or (TLS 1.3, where the client finishes first, RFC 8446 §4.4.2.4) the
/// first call finds the connection closed by the server's alert, which
/// tonic reports as a transport error (UNAVAILABLE, UNKNOWN or CANCELLED,
/// depending on when the client notices).
async fn refused(address: SocketAddr, pki: &TestPki, client: Option<&str>, alert: &str) {
    let error = match connect(address, pki, client).await {
        Err(e) => format!("{e:?}"),
        Ok(mut grpc) => {
            let status = grpc
                .get_trust_chain(proto::GetTrustChainRequest {})
                .await
                .expect_err("a refused client gets no answer");
            assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled
                ),
                "{status:?}"
            );
            format!("{status:?}")
        }
    };
    // A client that writes before the alert arrives may see only a broken
    // pipe or a closed connection; an alert, when seen, is the expected one.
    assert!(
        error.contains(alert) || !error.contains("alert"),
        "{client:?}: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_mtls_admits_only_known_and_allowed_clients() {
    let label = "tls-grpc";
    if !tools::require("openssl") {
        return;
    }
    let pki = TestPki::new();
    let server = Server::start_with(mtls_core(label, &pki), Some(mtls(&pki))).await;
    refused(server.address, &pki, None, "CertificateRequired").await;
    refused(server.address, &pki, Some("rogue"), "UnknownCA").await;

    let content = b"invoice 2026-0042";
    let mut payroll = connect(server.address, &pki, Some("payroll"))
        .await
        .unwrap();
    let status = seal(&mut payroll, "dev", content).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("does not allow the calling system sha256:"),
        "{}",
        status.message()
    );
    let mut invoicing = connect(server.address, &pki, Some("invoicing"))
        .await
        .unwrap();
    let cms = seal(&mut invoicing, "dev", content)
        .await
        .expect("allowed by fingerprint");
    tools::openssl_cms_verify(&cms, content, &env().root_ca()).expect("openssl cms -verify");
    let cms = seal(&mut payroll, "dev-payroll", content)
        .await
        .expect("allowed by subject");
    tools::openssl_cms_verify(&cms, content, &env().root_ca()).expect("openssl cms -verify");
    let status = seal(&mut invoicing, "dev-payroll", content)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(env().leftover_keys(label), 0);
}

/// A seal profile with `allowed_clients` refuses a caller without a client
/// certificate: plain TLS, no mTLS.
#[tokio::test(flavor = "multi_thread")]
async fn allowed_clients_refuse_a_caller_without_certificate() {
    let label = "tls-anonymous";
    if !tools::require("openssl") {
        return;
    }
    let pki = TestPki::new();
    let tls = Tls::load(&pki.tls_config(false)).unwrap();
    let server = Server::start_with(mtls_core(label, &pki), Some(tls)).await;
    let mut client = connect(server.address, &pki, None).await.unwrap();
    let status = seal(&mut client, "dev", b"x").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("allowed_clients"), "{status:?}");
}

/// `client_ca` may hold several CAs; files that do not fit are named at
/// start, with the same messages for both listeners (one `Tls::load`).
#[tokio::test(flavor = "multi_thread")]
async fn client_ca_bundles_and_bad_files() {
    let label = "tls-bundle";
    if !tools::require("openssl") {
        return;
    }
    let pki = TestPki::new();
    let bundle = pki.path("bundle.pem");
    let cas = [pki.path("client-ca.pem"), pki.path("rogue-ca.pem")];
    let pem: Vec<u8> = cas
        .iter()
        .flat_map(|ca| std::fs::read(ca).unwrap())
        .collect();
    std::fs::write(&bundle, pem).unwrap();
    let mut config = pki.tls_config(true);
    config.client_ca = Some(bundle);
    let server =
        Server::start_with(env().core(label, |_| {}), Some(Tls::load(&config).unwrap())).await;
    for client in ["rogue", "payroll"] {
        let mut grpc = connect(server.address, &pki, Some(client)).await.unwrap();
        grpc.get_trust_chain(proto::GetTrustChainRequest {})
            .await
            .unwrap_or_else(|s| panic!("{client}: {s:?}"));
    }
    let message = |config: &qsign::config::TlsConfig| match Tls::load(config) {
        Ok(_) => panic!("{config:?} loads"),
        Err(e) => e.to_string(),
    };
    let mut wrong_key = pki.tls_config(true);
    wrong_key.key = pki.path("payroll.key");
    assert!(message(&wrong_key).contains("does not fit certificate"));
    let mut no_ca = pki.tls_config(true);
    no_ca.client_ca = Some(pki.path("payroll.key"));
    assert!(message(&no_ca).contains("[tls] client_ca"));
    let mut missing = pki.tls_config(false);
    missing.certificate = pki.path("nothing.pem");
    assert!(message(&missing).contains("[tls] certificate"));
}

/// The RFC 3161 / CRL / OCSP endpoint of `core` with `tls`; stops when the
/// returned sender is dropped.
async fn https_endpoint(
    core: &Arc<SigningCore>,
    tls: &Tls,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(qsign::service::http::serve(
        core.clone(),
        listener,
        Some(tls.acceptor(qsign::service::tls::ALPN_HTTP1)),
        async {
            let _ = stopped.await;
        },
    ));
    (address, stop)
}

/// `openssl s_client` to `address`, verifying the server against the
/// server CA and its IP SAN; `client` names the certificate it shows.
fn s_client(pki: &TestPki, address: SocketAddr, alpn: &str, client: Option<&str>) -> Output {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &address.to_string(), "-alpn", alpn])
        .args(["-verify_ip", "127.0.0.1", "-verify_return_error", "-CAfile"])
        .arg(pki.path("server-ca.pem"));
    match client {
        Some(name) => {
            command
                .arg("-cert")
                .arg(pki.path(&format!("{name}.pem")))
                .arg("-key")
                .arg(pki.path(&format!("{name}.key")));
        }
        // Wait for the server's verdict on the missing certificate, which
        // TLS 1.3 sends after the client has finished (RFC 8446 §4.4.2.4).
        None => {
            command.arg("-ign_eof");
        }
    }
    command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_s_client_verifies_both_listeners_and_needs_a_certificate() {
    let label = "tls-s-client";
    if !tools::require("openssl") {
        return;
    }
    let pki = TestPki::new();
    let tls = mtls(&pki);
    let core = mtls_core(label, &pki);
    let (http, _stop) = https_endpoint(&core, &tls).await;
    let grpc = Server::start_with(core, Some(tls)).await;
    for (address, alpn) in [(grpc.address, "h2"), (http, "http/1.1")] {
        let shown =
            tokio::task::block_in_place(|| s_client(&pki, address, alpn, Some("invoicing")));
        let said = text(&shown);
        assert!(
            said.contains("Verify return code: 0 (ok)"),
            "{address}: {said}"
        );
        assert!(said.contains(&format!("ALPN protocol: {alpn}")), "{said}");
        let without = tokio::task::block_in_place(|| s_client(&pki, address, alpn, None));
        let said = text(&without);
        assert!(
            !without.status.success() && said.contains("alert certificate required"),
            "{address} without a client certificate: {said}"
        );
    }
}

/// `curl URL -o OUT` trusting the server CA, showing the certificate
/// `client` (a name of the test PKI); `extra` goes before the URL.
fn curl(pki: &TestPki, url: &str, client: Option<&str>, extra: &[&str], out: &Path) -> Output {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(pki.path("server-ca.pem"));
    if let Some(name) = client {
        command
            .arg("--cert")
            .arg(pki.path(&format!("{name}.pem")))
            .arg("--key")
            .arg(pki.path(&format!("{name}.key")));
    }
    let out = command.args(extra).arg("-o").arg(out).arg(url).output();
    out.expect("curl")
}

/// `curl` as a relying party over mTLS: the root CA's CRL (verified by
/// `openssl crl`) and an RFC 3161 time-stamp (verified by `openssl ts`).
#[tokio::test(flavor = "multi_thread")]
async fn curl_fetches_a_crl_and_a_time_stamp_over_mtls() {
    let label = "tls-curl";
    if !tools::require("openssl") || !tools::require("curl") {
        return;
    }
    let pki = TestPki::new();
    let core = mtls_core(label, &pki);
    let (address, _stop) = https_endpoint(&core, &mtls(&pki)).await;
    let (url, crl) = (
        format!("https://{address}/crl/root-ca.crl"),
        pki.path("root.crl"),
    );
    let refused = tokio::task::block_in_place(|| curl(&pki, &url, None, &[], &crl));
    assert!(!refused.status.success(), "no client certificate, no CRL");
    let fetched = tokio::task::block_in_place(|| curl(&pki, &url, Some("invoicing"), &[], &crl));
    assert!(fetched.status.success(), "{}", text(&fetched));
    let verified = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl)
        .arg("-CAfile")
        .arg(env().root_ca())
        .output()
        .unwrap();
    assert!(text(&verified).contains("verify OK"), "{}", text(&verified));
    tokio::task::block_in_place(|| time_stamp_over_https(&pki, address));
}

/// An `openssl ts` query POSTed with curl over mTLS; `openssl ts -verify`
/// checks the reply against the query (imprint and nonce) and the root.
fn time_stamp_over_https(pki: &TestPki, address: SocketAddr) {
    let (data, query, reply) = (pki.path("data.txt"), pki.path("q.tsq"), pki.path("r.tsr"));
    std::fs::write(&data, b"stamp me over https").unwrap();
    let made = Command::new("openssl")
        .args(["ts", "-query", "-sha256", "-cert", "-data"])
        .arg(&data)
        .arg("-out")
        .arg(&query)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let body = format!("@{}", query.display());
    let extra = [
        "-H",
        "Content-Type: application/timestamp-query",
        "--data-binary",
        &body,
    ];
    let url = format!("https://{address}/");
    let stamped = curl(pki, &url, Some("invoicing"), &extra, &reply);
    assert!(stamped.status.success(), "{}", text(&stamped));
    let verified = Command::new("openssl")
        .args(["ts", "-verify", "-queryfile"])
        .arg(&query)
        .arg("-in")
        .arg(&reply)
        .arg("-CAfile")
        .arg(env().root_ca())
        .arg("-untrusted")
        .arg(env().dir.join(qsign::state::TSA_CERTIFICATE))
        .output()
        .unwrap();
    assert!(
        text(&verified).contains("Verification: OK"),
        "{}",
        text(&verified)
    );
}

/// `qsign sign-detached --ca --cert --key` seals against an mTLS server;
/// without `--cert` it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn cli_seals_with_a_client_certificate() {
    let label = "tls-cli";
    if !tools::require("openssl") {
        return;
    }
    let pki = TestPki::new();
    let server = Server::start_with(mtls_core(label, &pki), Some(mtls(&pki))).await;
    let dir = tempfile::tempdir().unwrap();
    let document = dir.path().join("invoice.xml");
    std::fs::write(&document, b"<invoice>43</invoice>").unwrap();
    let sign = |client: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_qsign"));
        command
            .args([
                "sign-detached",
                "--seal",
                "dev",
                "--level",
                "b-b",
                "--server",
            ])
            .arg(format!("https://127.0.0.1:{}", server.address.port()))
            .arg("--ca")
            .arg(pki.path("server-ca.pem"))
            .args(["--dev-identity", "Karen Blixen", "--state-dir"])
            .arg(&env().dir);
        if client {
            command
                .arg("--cert")
                .arg(pki.path("invoicing.pem"))
                .arg("--key")
                .arg(pki.path("invoicing.key"));
        }
        command
            .arg(&document)
            .output()
            .expect("qsign sign-detached")
    };
    let refused = tokio::task::block_in_place(|| sign(false));
    assert!(
        !refused.status.success(),
        "signed without a client certificate"
    );
    let signed = tokio::task::block_in_place(|| sign(true));
    assert!(signed.status.success(), "{}", text(&signed));
    let cms = std::fs::read(dir.path().join("invoice.xml.p7s")).unwrap();
    tools::openssl_cms_verify(&cms, b"<invoice>43</invoice>", &env().root_ca())
        .expect("openssl cms -verify");
    assert_eq!(env().leftover_keys(label), 0);
}

/// `qsign serve --config` with a `[tls]` table: both listeners speak mTLS
/// with the same certificate, and `allowed_clients` from the TOML admits
/// the invoicing certificate by subject and refuses the payroll one. Runs
/// on the fixture's state directory (its token, CA and IdP) with a
/// configuration of its own beside it.
#[test]
fn serve_with_a_tls_table() {
    if !tools::require("openssl") || !tools::require("curl") {
        return;
    }
    let pki = TestPki::new();
    let (port, http_port) = (crate::cli::free_port(), crate::cli::free_port());
    let config = tls_serve_config(&pki, port, http_port);
    let child = Command::new(env!("CARGO_BIN_EXE_qsign"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("qsign serve");
    let _serving = crate::cli::Serving(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "qsign serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{http_port}/crl/issuing-ca.crl");
    let fetched = curl(&pki, &url, Some("payroll"), &[], &pki.path("issuing.crl"));
    assert!(fetched.status.success(), "{}", text(&fetched));
    let document = pki.path("order.txt");
    std::fs::write(&document, b"order 7").unwrap();
    for (client, allowed) in [("payroll", false), ("invoicing", true)] {
        let out = Command::new(env!("CARGO_BIN_EXE_qsign"))
            .args([
                "sign-detached",
                "--seal",
                "dev",
                "--level",
                "b-b",
                "--server",
            ])
            .arg(format!("https://127.0.0.1:{port}"))
            .arg("--ca")
            .arg(pki.path("server-ca.pem"))
            .arg("--cert")
            .arg(pki.path(&format!("{client}.pem")))
            .arg("--key")
            .arg(pki.path(&format!("{client}.key")))
            .args(["--dev-identity", "Karen Blixen", "--state-dir"])
            .arg(&env().dir)
            .arg(&document)
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.success(), allowed, "{client}: {said}");
        if !allowed {
            assert!(said.contains("PermissionDenied"), "{said}");
        }
    }
    let cms = std::fs::read(pki.path("order.txt.p7s")).unwrap();
    tools::openssl_cms_verify(&cms, b"order 7", &env().root_ca()).expect("openssl cms -verify");
}

/// The fixture's `qsign.toml` with the test's ports, key label and journal,
/// `[tls]` of `pki` and `allowed_clients` on the "dev" profile; written
/// beside it so that its relative paths hold.
fn tls_serve_config(pki: &TestPki, port: u16, http_port: u16) -> std::path::PathBuf {
    use toml::Value;
    let text = std::fs::read_to_string(env().dir.join(qsign::state::CONFIG)).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    let path = |file: &str| Value::String(pki.path(file).display().to_string());
    config.insert("listen".into(), format!("127.0.0.1:{port}").into());
    let mut set = |table: &str, key: &str, value: Value| {
        let table = config[table]
            .as_table_mut()
            .expect("a table of the template");
        table.insert(key.into(), value);
    };
    set("tsa", "listen", format!("127.0.0.1:{http_port}").into());
    let label = crate::support::key_label("tls-serve");
    set("hsm", "ephemeral_key_label", label.into());
    set("token", "replay_journal", "spent-tokens-tls-serve".into());
    let mut tls = toml::Table::new();
    tls.insert("certificate".into(), path("server.pem"));
    tls.insert("key".into(), path("server.key"));
    tls.insert("client_ca".into(), path("client-ca.pem"));
    tls.insert("client_auth".into(), "required".into());
    config.insert("tls".into(), tls.into());
    let profiles = config["profiles"].as_array_mut().unwrap();
    let dev = profiles[0].as_table_mut().unwrap();
    dev.insert(
        "allowed_clients".into(),
        vec![Value::from("CN=Invoicing, O=Acme A/S, C=DK")].into(),
    );
    let written = env().dir.join("qsign-tls-serve.toml");
    std::fs::write(&written, toml::to_string(&config).unwrap()).unwrap();
    written
}
