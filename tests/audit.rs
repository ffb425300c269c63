//! The audit log (SPEC §11) end to end: signatures through the gRPC server
//! leave records whose ids the responses carry; `qsign audit verify` passes
//! and names the first edited, deleted, inserted or reordered record and a
//! forged checkpoint; `qsign audit prove` verifies with an independent
//! Python implementation; two servers append to one PostgreSQL log without
//! gaps or forks; a log that cannot be written means UNAVAILABLE.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qsign::config::{AuditConfig, DatabaseConfig};
use qsign::signing::SigningCore;
use qsign::state;
use sqlx::Row;
use tonic::Code;

use crate::detached::{content, request};
use crate::support::postgres::Postgres;
use crate::support::{env, sha256, tools, Server, Who};

const QSIGN: &str = env!("CARGO_BIN_EXE_qsign");

/// A core of the fixture with the audit log on, in the database `url`.
fn audited_core(label: &str, url: &str) -> Arc<SigningCore> {
    env().core(label, |config| {
        config.database = Some(DatabaseConfig {
            url: url.into(),
            max_connections: 4,
        });
        config.audit = Some(audit_config());
    })
}

pub fn audit_config() -> AuditConfig {
    AuditConfig {
        settings: qsign::audit::AuditSettings {
            origin: state::AUDIT_ORIGIN.into(),
            key_label: state::AUDIT_KEY_LABEL.into(),
            checkpoint_interval: Duration::from_millis(50),
        },
        vkey: env().dir.join(state::AUDIT_VKEY),
    }
}

/// The fixture's qsign.toml with the database `url`, for the CLI.
fn config_file(dir: &Path, url: &str) -> PathBuf {
    let text = std::fs::read_to_string(env().dir.join(state::CONFIG)).unwrap();
    let text = text.replace("url = \"sqlite://qsign.db\"", &format!("url = \"{url}\""));
    // Relative paths (the vkey, the PIN) stay those of the state directory.
    let path = env().dir.join(format!(
        "audit-{}.toml",
        dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// `qsign ARGS`: (success, stdout, stderr).
fn qsign(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(QSIGN).args(args).output().expect("qsign");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify(config: &Path) -> Result<String, String> {
    let (ok, out, err) = qsign(&["audit", "verify", "--config", config.to_str().unwrap()]);
    if ok {
        Ok(out)
    } else {
        Err(err)
    }
}

/// `n` SignDetached requests (the last one refused: unknown seal
/// profile); the signature ids of the good ones.
async fn sign_some(server: &Server, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let data = format!("audit {tag} {i}").into_bytes();
        let token = env().token(&Who::jens(), &[sha256(&data)]);
        let seal = if i + 1 == n { "no-such-profile" } else { "" };
        let answer = server
            .client()
            .await
            .sign_detached(request(vec![content(&data)], token, seal))
            .await;
        match answer {
            Ok(response) => ids.push(response.into_inner().signature_id),
            Err(status) => assert_eq!(status.code(), Code::InvalidArgument, "{status:?}"),
        }
    }
    ids
}

/// Waits until a checkpoint covers `size` records.
async fn checkpointed(core: &SigningCore, size: u64) {
    let log = core.audit.as_ref().expect("audit on");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let note = log.latest_checkpoint().await.unwrap().unwrap_or_default();
        if note.lines().nth(1) == Some(&size.to_string()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size}: {note}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sqlite(path: &Path) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

async fn exec(pool: &sqlx::SqlitePool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn records_verify_prove_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let core = audited_core("audit-sqlite", &url);
    let server = Server::start(core.clone()).await;
    let ids = sign_some(&server, 7, "sqlite").await;
    assert_eq!(ids.len(), 6);
    // Refused at the front door (an unknown level): recorded all the same.
    let data = b"bad level".to_vec();
    let mut bad = request(
        vec![content(&data)],
        env().token(&Who::jens(), &[sha256(&data)]),
        "",
    );
    bad.level = 99;
    let status = server.client().await.sign_detached(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    checkpointed(&core, 8).await;
    let config = config_file(dir.path(), &url);

    let ok = verify(&config).expect("an untouched log verifies");
    assert!(ok.contains("8 records"), "{ok}");

    // The response's signature_id is the record's id; the record holds no
    // names, token or certificate, only its serial and fingerprint.
    let db = sqlite(&file).await;
    let rows = sqlx::query("SELECT idx, id, json FROM audit_records ORDER BY idx")
        .fetch_all(&db)
        .await
        .unwrap();
    let stored: Vec<(i64, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for id in &ids {
        let (_, _, json) = stored
            .iter()
            .find(|(_, i, _)| i == id)
            .expect("a record per signature");
        assert!(json.contains("\"event\":\"issuance\"") && json.contains("certificate_sha256"));
        for secret in ["Jens", "Hansen", "MII"] {
            assert!(!json.contains(secret), "{json}");
        }
    }
    for (_, _, refused) in &stored[6..8] {
        assert!(
            refused.contains("\"error_code\":\"INVALID_ARGUMENT\""),
            "{refused}"
        );
    }
    assert!(
        !stored[7].2.contains("\"sub\""),
        "the bad request never reached the token"
    );

    prove_independently(&config, &ids[2], dir.path());
    tampering_is_named(&db, &config, &stored).await;
    verify(&config).expect("the log verifies again once repaired");
}

/// `qsign audit prove` checked by tests/validate/tlog_proof.py.
fn prove_independently(config: &Path, id: &str, dir: &Path) {
    let (ok, proof, err) = qsign(&["audit", "prove", id, "--config", config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{proof}"
    );
    let file = dir.join("record.tlog-proof");
    std::fs::write(&file, &proof).unwrap();
    let vkey = env().dir.join(state::AUDIT_VKEY);
    let script = tools::own_script("tlog_proof.py");
    let verdict = tools::validate_own(&script, &[file.as_os_str(), vkey.as_os_str()])
        .expect("the proof verifies independently");
    if let Some(verdict) = verdict {
        assert_eq!(verdict["record"]["id"], id);
    }
    // One changed byte of the record, and the proof no longer verifies.
    let forged = proof.replacen("extra eyJ", "extra eyK", 1);
    std::fs::write(&file, forged).unwrap();
    if tools::validator().is_some() {
        assert!(tools::validate_own(&script, &[file.as_os_str(), vkey.as_os_str()]).is_err());
    }
}

/// Each kind of tampering, undone after `verify` named it.
async fn tampering_is_named(
    db: &sqlx::SqlitePool,
    config: &Path,
    stored: &[(i64, String, String)],
) {
    let named = |expected: &str| {
        let err = verify(config).expect_err("tampering is found");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    };
    // An edited record.
    exec(
        db,
        "UPDATE audit_records SET json = replace(json, 'B-B', 'B-T') WHERE idx = 2",
    )
    .await;
    named(&format!("record 2 ({}) was edited", stored[2].1));
    exec(
        db,
        "UPDATE audit_records SET json = replace(json, 'B-T', 'B-B') WHERE idx = 2",
    )
    .await;
    verify(config).expect("repaired");

    // A deleted one (kept aside to put back).
    exec(db, "CREATE TABLE aside AS SELECT * FROM audit_records WHERE idx = 3; DELETE FROM audit_records WHERE idx = 3").await;
    named("record 3 is missing: deleted");
    exec(
        db,
        "INSERT INTO audit_records SELECT * FROM aside; DROP TABLE aside",
    )
    .await;

    // An inserted one, before record 2: the rest move up one.
    exec(
        db,
        "UPDATE audit_records SET idx = idx + 1000 WHERE idx >= 2;
         UPDATE audit_records SET idx = idx - 999 WHERE idx >= 1000;
         INSERT INTO audit_records (idx, id, json, leaf, root)
           SELECT 2, 'forged', replace(json, id, 'forged'), leaf, root FROM audit_records WHERE idx = 1;",
    )
    .await;
    let forged_json: String = sqlx::query_scalar("SELECT json FROM audit_records WHERE idx = 2")
        .fetch_one(db)
        .await
        .unwrap();
    let leaf = qsign::audit::merkle::leaf_hash(forged_json.as_bytes());
    sqlx::query("UPDATE audit_records SET leaf = $1 WHERE idx = 2")
        .bind(leaf.to_vec())
        .execute(db)
        .await
        .unwrap();
    named("record 2 (forged) was inserted");
    exec(
        db,
        "DELETE FROM audit_records WHERE idx = 2;
         UPDATE audit_records SET idx = idx + 1000 WHERE idx >= 3;
         UPDATE audit_records SET idx = idx - 1001 WHERE idx >= 1000;",
    )
    .await;
    verify(config).expect("repaired");

    // Two swapped (their contents; the stored roots stay in place).
    let id4 = &stored[4].1;
    swap_records(db, 1, 4).await;
    named(&format!(
        "record 1 ({id4}) was reordered: it changed places with record 4"
    ));
    swap_records(db, 1, 4).await;
    verify(config).expect("repaired");

    // A forged checkpoint: the latest one's root replaced.
    let note: String =
        sqlx::query_scalar("SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_one(db)
            .await
            .unwrap();
    let root_line = note.lines().nth(2).unwrap().to_owned();
    let forged = note.replace(&root_line, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    sqlx::query("UPDATE audit_checkpoints SET note = $1 WHERE note = $2")
        .bind(&forged)
        .bind(&note)
        .execute(db)
        .await
        .unwrap();
    named("checkpoint 8: the signature by qsign.example/audit does not verify");
    sqlx::query("UPDATE audit_checkpoints SET note = $1 WHERE note = $2")
        .bind(&note)
        .bind(&forged)
        .execute(db)
        .await
        .unwrap();
}

/// Swaps the id, JSON and leaf of two records (not their roots).
async fn swap_records(db: &sqlx::SqlitePool, a: i64, b: i64) {
    let row = |i: i64| {
        sqlx::query("SELECT id, json, leaf FROM audit_records WHERE idx = $1")
            .bind(i)
            .fetch_one(db)
    };
    let (ra, rb) = (row(a).await.unwrap(), row(b).await.unwrap());
    let set = |i: i64, id: String, json: String, leaf: Vec<u8>| {
        sqlx::query("UPDATE audit_records SET id = $1, json = $2, leaf = $3 WHERE idx = $4")
            .bind(id)
            .bind(json)
            .bind(leaf)
            .bind(i)
            .execute(db)
    };
    set(a, "swapping".into(), String::new(), Vec::new())
        .await
        .unwrap();
    set(b, ra.get(0), ra.get(1), ra.get(2)).await.unwrap();
    set(a, rb.get(0), rb.get(1), rb.get(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_append_to_one_postgres_log() {
    let Some(pg) = Postgres::start() else { return };
    let a = audited_core("audit-pg-a", &pg.url);
    let b = audited_core("audit-pg-b", &pg.url);
    let (server_a, server_b) = (
        Server::start(a.clone()).await,
        Server::start(b.clone()).await,
    );
    let (ids_a, ids_b) = tokio::join!(
        sign_some(&server_a, 8, "pg-a"),
        sign_some(&server_b, 8, "pg-b")
    );
    assert_eq!(ids_a.len() + ids_b.len(), 14);
    checkpointed(&a, 16).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &pg.url);
    let ok = verify(&config).expect("one log, no gaps, no forks");
    assert!(ok.contains("16 records"), "{ok}");
    let (ok, proof, err) = qsign(&[
        "audit",
        "prove",
        &ids_b[3],
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok && proof.contains("\nindex "), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_signature_leaves_without_its_record() {
    let label = "audit-unwritable";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let core = audited_core(label, &url);
    let server = Server::start(core.clone()).await;
    assert_eq!(sign_some(&server, 2, "before").await.len(), 1);
    // The disk is full, as far as the log is concerned: every insert fails.
    let db = sqlite(&file).await;
    exec(
        &db,
        "CREATE TRIGGER full BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .await;
    let data = b"never leaves".to_vec();
    let token = env().token(&Who::jens(), &[sha256(&data)]);
    let req = request(vec![content(&data)], token, "");
    let status = server
        .client()
        .await
        .sign_detached(req.clone())
        .await
        .expect_err("no record, no signature");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("audit log"), "{status:?}");
    assert_eq!(env().leftover_keys(label), 0);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_records")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(count, 2, "nothing was recorded, and nothing was returned");
    // The log comes back with the disk, and stays one tree. The token's
    // spending rode in the failed record's transaction: rolled back with
    // it, so the same request signs now, once.
    exec(&db, "DROP TRIGGER full").await;
    server
        .client()
        .await
        .sign_detached(req.clone())
        .await
        .expect("the token was not spent by the failed request");
    let replay = server.client().await.sign_detached(req).await;
    assert_eq!(replay.expect_err("spent").code(), Code::Unauthenticated);
    assert_eq!(sign_some(&server, 1, "after").await.len(), 0);
    checkpointed(&core, 5).await;
    verify(&config_file(dir.path(), &url)).expect("no gap from the failed append");
}

/// SPEC §11 "never keys, PINs, tokens or documents": `qsign serve` at
/// RUST_LOG=trace signs a document and a refusal; its logs hold none of
/// the token, the user PIN, the document, or the signer's name.
#[test]
fn trace_logs_hold_no_token_pin_document_or_name() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let log = temp.path().join("serve.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut child = Command::new(QSIGN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(&state)
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("qsign serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "qsign serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let document = b"Confidential merger agreement 8c1f".to_vec();
    let pem = std::fs::read_to_string(state.join(state::DEV_IDP_KEY)).unwrap();
    let idp = qsign::auth::dev::DevIdp::from_pkcs8_pem(&pem).unwrap();
    let who = Who {
        given: "Xenia",
        family: "Quistgaard",
        ..Who::jens()
    };
    let token = idp
        .mint(
            &who.claims(&[sha256(&document)]),
            std::time::SystemTime::now(),
            Duration::from_secs(300),
        )
        .unwrap();
    let (doc, token_file) = (
        temp.path().join("merger.txt"),
        temp.path().join("token.jws"),
    );
    std::fs::write(&doc, &document).unwrap();
    std::fs::write(&token_file, &token).unwrap();
    let server = format!("http://127.0.0.1:{port}");
    for seal in [None, Some("no-such-profile")] {
        let mut command = Command::new(QSIGN);
        command
            .args(["sign-detached", "--server", &server, "--token"])
            .arg(&token_file)
            .arg(&doc);
        if let Some(seal) = seal {
            command.args(["--seal", seal]);
        }
        let _ = command.output().expect("qsign sign-detached");
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("audit record written") && logs.contains("request refused"),
        "a signature and a refusal were served and recorded: {logs}"
    );
    let pin = std::fs::read_to_string(state.join(state::USER_PIN)).unwrap();
    let jws_signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("the activation token", token.as_str()),
        ("the token's signature", jws_signature),
        ("the user PIN", pin.trim()),
        ("the document", "Confidential merger"),
        ("the given name", "Xenia"),
        ("the family name", "Quistgaard"),
    ] {
        assert!(!logs.contains(secret), "{what} is in the trace logs");
    }
}

/// `qsign init-audit --config`: a new Ed25519 key in the token and its
/// verifier key file; a second run refuses to replace either.
#[test]
fn init_audit_makes_the_key_once() {
    let text = std::fs::read_to_string(env().dir.join(state::CONFIG)).unwrap();
    let text = text
        .replace(
            "key_label = \"qsign-audit\"",
            "key_label = \"qsign-audit-init-test\"",
        )
        .replace("vkey = \"audit.vkey\"", "vkey = \"audit-init-test.vkey\"");
    assert!(text.contains("qsign-audit-init-test") && text.contains("audit-init-test.vkey"));
    let config = env().dir.join("audit-init-test.toml");
    std::fs::write(&config, text).unwrap();
    let (ok, out, err) = qsign(&["init-audit", "--config", config.to_str().unwrap()]);
    assert!(ok, "{err}");
    let written = std::fs::read_to_string(env().dir.join("audit-init-test.vkey")).unwrap();
    assert_eq!(out.trim(), written.trim());
    let verifier = qsign::audit::NoteVerifier::from_vkey(&written).expect("a signed-note vkey");
    assert_eq!(verifier.name, state::AUDIT_ORIGIN);
    let (ok, _, err) = qsign(&["init-audit", "--config", config.to_str().unwrap()]);
    assert!(!ok && err.contains("refusing to replace"), "{err}");
}

/// SPEC §11 for the registry: profile put, order, issue and revoke through
/// the AdministrationService and a refused call leave records of their
/// kinds, written before the answer; the log verifies; no contact e-mail,
/// code, PKCS#12 or certificate in any record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_events_are_recorded() {
    use crate::registry::{order, ordered, put_profile, validate};
    use crate::support::admin::{self, with, Replica};
    use qsign::proto;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.db");
    let url = qsign::store::Database::sqlite_url(&file);
    let core = env().core("audit-registry", |config| {
        config.database = Some(DatabaseConfig {
            url: url.clone(),
            max_connections: 4,
        });
        let registry = config.registry.as_mut().expect("dev state has [registry]");
        registry.mail.transport =
            qsign::registry::settings::MailTransport::Outbox(dir.path().join("outbox"));
        config.audit = Some(audit_config());
    });
    let replica = Replica::serve(core.clone(), dir).await;
    let mut c = replica.client().await;

    put_profile(&mut c, "acme-audit", &["seal"]).await;
    validate(&replica, &mut c, "audit@acme.example").await;
    let mut request = order(proto::CertificateKind::Organization, "Acme audit");
    request.certificate_email = "audit@acme.example".into();
    let id = ordered(&mut c, request).await;
    let issue = proto::IssueCertificateRequest {
        id: id.clone(),
        key: Some(proto::issue_certificate_request::Key::Pkcs12Password(
            "correct horse".into(),
        )),
    };
    let issued = c
        .issue_certificate(with(&admin::admin(), issue))
        .await
        .expect("issued")
        .into_inner();
    assert!(!issued.pkcs12.is_empty());
    let revoke = proto::RevokeCertificateRequest {
        id: id.clone(),
        reason: proto::RevocationReason::Superseded.into(),
    };
    c.revoke_certificate(with(&admin::admin(), revoke))
        .await
        .expect("revoked");
    // Refused: no bearer, and revoking again.
    let unauthenticated = c
        .get_certificate(tonic::Request::new(proto::GetCertificateRequest {
            id: id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    let again = proto::RevokeCertificateRequest {
        id: id.clone(),
        reason: proto::RevocationReason::Superseded.into(),
    };
    let refused = c
        .revoke_certificate(with(&admin::admin(), again))
        .await
        .unwrap_err();

    // profile, e-mail confirmed, order, issue, revoke, two refusals.
    checkpointed(&core, 7).await;
    let config = config_file(replica.outbox.parent().unwrap(), &url);
    let ok = verify(&config).expect("the registry's log verifies");
    assert!(ok.contains("7 records"), "{ok}");

    let db = sqlite(&file).await;
    let rows = sqlx::query("SELECT id, json FROM audit_records ORDER BY idx")
        .fetch_all(&db)
        .await
        .unwrap();
    let stored: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let kinds: Vec<&str> = stored
        .iter()
        .map(|(_, json)| {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            match v["event"].as_str().unwrap() {
                "administration" => "administration",
                "issuance" => "issuance",
                "revocation" => "revocation",
                "refusal" => "refusal",
                other => panic!("{other}"),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "administration",
            "administration",
            "administration",
            "issuance",
            "revocation",
            "refusal",
            "refusal"
        ],
        "{stored:#?}"
    );
    let fingerprint = hex::encode(sha256(&issued.certificate));
    assert!(stored[2].1.contains(&format!("certificate={id}")));
    assert!(stored[3].1.contains(&format!("certificate={id}")));
    assert!(stored[3].1.contains(&fingerprint), "{}", stored[3].1);
    assert!(stored[4].1.contains(&format!("certificate={id}")));
    assert!(stored[4].1.contains("reason=superseded"), "{}", stored[4].1);
    assert!(stored[4].1.contains(&fingerprint), "{}", stored[4].1);
    assert!(stored[0].1.contains("\"profile\":\"acme-audit\""));
    assert!(stored[1].1.contains("email_sha256="));
    assert!(stored[5].1.contains("\"error_code\":\"UNAUTHENTICATED\""));
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        stored[6]
            .1
            .contains("\"error_code\":\"FAILED_PRECONDITION\""),
        "{}",
        stored[6].1
    );
    let code_sent = replica.code_for("audit@acme.example");
    let pkcs12 = base64_of(&issued.pkcs12);
    let certificate = base64_of(&issued.certificate);
    for (_, json) in &stored {
        for secret in [
            "acme.example",
            "Ida Admin",
            "correct horse",
            code_sent.as_str(),
            pkcs12.as_str(),
            certificate.as_str(),
            &hex::encode(&issued.certificate),
        ] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
