//! Issue 8 as a whole: two replicas of the real `qsign serve`, gRPC over
//! mTLS, sharing one PostgreSQL: they sign, a token used on one is refused
//! by the other (also when both get it at once: exactly one signs), and
//! `qsign audit verify` proves the log they wrote together intact.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use qsign::proto::{self, document};
use toml::Value;

use crate::cli::{free_port, Serving};
use crate::support::pki::TestPki;
use crate::support::postgres::Postgres;
use crate::support::{env, key_label, sha256, tools, Who};
use crate::tls::connect;

const QSIGN: &str = env!("CARGO_BIN_EXE_qsign");

#[tokio::test(flavor = "multi_thread")]
async fn two_mtls_replicas_on_one_postgres_refuse_replays_and_keep_one_log() {
    if !tools::require("openssl") {
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    let pki = TestPki::new();
    let replicas: Vec<(PathBuf, u16)> = (0..2)
        .map(|i| {
            let port = free_port();
            (replica_config(&pki, &pg.url, i, port), port)
        })
        .collect();
    let mut serving: Vec<Serving> = replicas.iter().map(|(c, p)| start(c, *p)).collect();
    let address = |i: usize| std::net::SocketAddr::from(([127, 0, 0, 1], replicas[i].1));
    let mut a = connect(address(0), &pki, Some("invoicing"))
        .await
        .expect("mTLS to a");
    let mut b = connect(address(1), &pki, Some("invoicing"))
        .await
        .expect("mTLS to b");

    // A token used on one replica is refused by the other.
    let (request, content) = seal_request(b"order 1");
    let cms = a
        .sign_detached(request.clone())
        .await
        .expect("replica a seals");
    let cms = &cms.get_ref().cms[0];
    tools::openssl_cms_verify(cms, &content, &env().root_ca()).expect("openssl cms -verify");
    let replay = b.sign_detached(request).await.expect_err("replay on b");
    assert_eq!(replay.code(), tonic::Code::Unauthenticated, "{replay:?}");

    // Both get one token at the same moment: exactly one signs.
    for round in 0..6 {
        let (request, _) = seal_request(format!("order at once {round}").as_bytes());
        let (x, y) = tokio::join!(a.sign_detached(request.clone()), b.sign_detached(request));
        let codes = [&x, &y].map(|r| r.as_ref().err().map(tonic::Status::code));
        assert_eq!(
            codes.iter().filter(|c| c.is_none()).count(),
            1,
            "round {round}: {codes:?}"
        );
        assert!(
            codes.contains(&Some(tonic::Code::Unauthenticated)),
            "{codes:?}"
        );
    }
    serving.clear();

    // One log, written by both: every record and checkpoint verifies.
    let verified = Command::new(QSIGN)
        .args(["audit", "verify", "--config"])
        .arg(&replicas[0].0)
        .output()
        .expect("qsign audit verify");
    let said = String::from_utf8_lossy(&verified.stdout).into_owned()
        + &String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(said.contains("audit log OK"), "{said}");
    let records: u64 = said
        .split_whitespace()
        .skip_while(|w| *w != "OK:")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a record count in {said:?}"));
    // 1 + 1 replay + 6 × 2 answers, each recorded before it left.
    assert!(records >= 14, "{said}");
    assert_eq!(env().leftover_keys("deployment-0"), 0);
    assert_eq!(env().leftover_keys("deployment-1"), 0);
}

/// A seal of `content` under the "dev" profile with a fresh token.
fn seal_request(content: &[u8]) -> (proto::SignDetachedRequest, Vec<u8>) {
    let request = proto::SignDetachedRequest {
        documents: vec![proto::Document {
            data: Some(document::Data::Content(content.to_vec())),
        }],
        activation_token: env().token(&Who::sealer(), &[sha256(content)]),
        seal_profile: "dev".into(),
        level: proto::Level::BB as i32,
        key_algorithm: proto::KeyAlgorithm::EcP256 as i32,
    };
    (request, content.to_vec())
}

/// The fixture's `qsign.toml` for replica `i`: its own ports and key
/// label, the shared PostgreSQL (spent tokens, audit log, registry), mTLS
/// with the test PKI and `allowed_clients` on the "dev" profile; written
/// beside the fixture's so that its relative paths hold.
fn replica_config(pki: &TestPki, database: &str, i: usize, port: u16) -> PathBuf {
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
    set("tsa", "listen", format!("127.0.0.1:{}", free_port()).into());
    set(
        "hsm",
        "ephemeral_key_label",
        key_label(&format!("deployment-{i}")).into(),
    );
    set("database", "url", database.into());
    let mut tls = toml::Table::new();
    tls.insert("certificate".into(), path("server.pem"));
    tls.insert("key".into(), path("server.key"));
    tls.insert("client_ca".into(), path("client-ca.pem"));
    config.insert("tls".into(), tls.into());
    if let Some(token) = config["token"].as_table_mut() {
        token.remove("replay_journal");
    }
    let profiles = config["profiles"].as_array_mut().unwrap();
    let dev = profiles[0].as_table_mut().unwrap();
    dev.insert(
        "allowed_clients".into(),
        vec![Value::from(pki.fingerprint("invoicing"))].into(),
    );
    let written = env().dir.join(format!("qsign-deployment-{i}.toml"));
    std::fs::write(&written, toml::to_string(&config).unwrap()).unwrap();
    written
}

fn start(config: &PathBuf, port: u16) -> Serving {
    let child = Command::new(QSIGN)
        .args(["serve", "--config"])
        .arg(config)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("qsign serve");
    let serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "qsign serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    serving
}
