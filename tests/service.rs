//! The server's own services: grpc.health.v1 and reflection, as grpcurl
//! and load balancers use them.

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::support::server;

#[tokio::test(flavor = "multi_thread")]
async fn health_and_reflection() {
    let server = server("service").await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "qsign.v1.SigningService".into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"qsign.v1.SigningService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

/// `[tls]`: the server speaks TLS with a certificate from the operator,
/// and the CLI's client trusts it through `--ca`.
#[tokio::test(flavor = "multi_thread")]
async fn tls_with_an_operator_certificate() {
    if !crate::support::tools::require("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=test TLS CA",
        "-days",
        "1",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(p("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    let core = crate::support::env().core("tls", |_| {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = qsign::config::TlsConfig {
        certificate: p("server.pem"),
        key: p("server.key"),
        client_ca: None,
        client_auth: Default::default(),
    };
    tokio::spawn(async move {
        let tls = qsign::service::Tls::load(&tls).unwrap();
        qsign::service::serve(core, listener, Some(&tls), std::future::pending())
            .await
            .unwrap();
    });
    let connection = qsign::client::Connection {
        server: format!("https://localhost:{}", address.port()),
        ca: Some(p("ca.pem")),
        identity: None,
    };
    let mut client = qsign::client::connect(&connection)
        .await
        .expect("TLS connection");
    let chain = client
        .get_trust_chain(qsign::proto::GetTrustChainRequest {})
        .await
        .expect("a call over TLS")
        .into_inner();
    assert_eq!(chain.certificates.len(), 2);
    // Plaintext to a TLS port fails.
    let plain = qsign::client::Connection {
        server: format!("http://127.0.0.1:{}", address.port()),
        ca: None,
        identity: None,
    };
    let plain = qsign::client::connect(&plain).await;
    if let Ok(mut client) = plain {
        assert!(client
            .get_trust_chain(qsign::proto::GetTrustChainRequest {})
            .await
            .is_err());
    }
}
