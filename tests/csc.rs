//! The CSC API (SPEC §13): pyHanko's own CSC client and an independent CSC
//! 2.0 client sign through qsign; a SAD for other hashes, a reused SAD,
//! another user's SAD or credential, an expired credential are refused with
//! CSC errors, and no one-time key is ever left in the token. A seal
//! profile administered in the registry is a CSC credential at once, and
//! no more once deleted (SPEC §9, §13).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use qsign::auth::dev::DevClaims;
use qsign::signing::csc::{Csc, CscSettings};

use crate::support::{corpus_file, env, sha256, tools, Who};

/// The HTTP listener with the CSC API on, stopped on drop.
struct CscServer {
    address: SocketAddr,
    csc: Arc<Csc>,
    label: &'static str,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CscServer {
    async fn start(label: &'static str, settings: CscSettings) -> Self {
        Self::start_with(label, settings, |_| {}).await
    }

    async fn start_with(
        label: &'static str,
        settings: CscSettings,
        tweak: impl FnOnce(&mut qsign::config::Config),
    ) -> Self {
        Self::serve(label, env().core(label, tweak), settings).await
    }

    /// The CSC API of `core` (e.g. one with a registry).
    async fn serve(
        label: &'static str,
        core: Arc<qsign::signing::SigningCore>,
        settings: CscSettings,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let csc = Csc::start(core.clone(), settings).expect("CSC facade");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(qsign::service::http::serve_with(
            core.clone(),
            Some(csc.clone()),
            listener,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            csc,
            label,
            _stop: stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// POST `/csc/{version}/{method}`: the status and the JSON answer.
    async fn call(&self, version: &str, method: &str, bearer: &str, body: Value) -> (u16, Value) {
        let body = body.to_string();
        let head = format!(
            "POST /csc/{version}/{method} HTTP/1.1\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        let (status, _, answer) = crate::tsa::http(self.address, &head, body.as_bytes()).await;
        let answer = serde_json::from_slice(&answer).expect("a JSON answer");
        (status, answer)
    }

    /// `credentials/info` (v1): prepares the one-time key.
    async fn prepare(&self, bearer: &str, credential: &str) -> Value {
        let (status, answer) = self
            .call(
                "v1",
                "credentials/info",
                bearer,
                json!({ "credentialID": credential }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// `signatures/signHash` (v1) of `hashes` with `sad`.
    async fn sign_hash(
        &self,
        bearer: &str,
        credential: &str,
        sad: &str,
        hashes: &[[u8; 32]],
    ) -> (u16, Value) {
        let hashes: Vec<String> = hashes.iter().map(|h| STANDARD.encode(h)).collect();
        let body = json!({
            "credentialID": credential, "SAD": sad, "hash": hashes,
            "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2",
        });
        self.call("v1", "signatures/signHash", bearer, body).await
    }

    /// Waits until the token holds no key of this test (destroying is
    /// asynchronous to the answer): at most 10 s.
    async fn assert_no_keys(&self, after: &str) {
        for _ in 0..100 {
            if env().leftover_keys(self.label) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{after}: a one-time key is left in the token");
    }
}

/// A bearer for the CSC API: an IdP token with `aud` qsign-csc (SPEC §13).
fn bearer(who: &Who) -> String {
    let claims = DevClaims {
        audience: "qsign-csc".into(),
        ..who.claims(&[])
    };
    env()
        .idp
        .mint(&claims, SystemTime::now(), Duration::from_secs(300))
        .expect("mint")
}

/// The claims the scripts' SAD minting copies (`tests/validate/csc_sad.py`).
fn claims_json(who: &Who) -> String {
    let c = who.claims(&[]);
    json!({
        "iss": c.issuer, "aud": c.audience, "sub": c.subject.to_string(),
        "given_name": c.given_name, "family_name": c.family_name,
        "org_cvr": c.org_cvr, "org_name": c.org_name, "seal_profiles": c.seal_profiles,
    })
    .to_string()
}

fn assert_refused(answer: &(u16, Value), status: u16, error: &str, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    assert_eq!(answer.1["error"], error, "{what}: {}", answer.1);
    assert!(
        answer.1["error_description"].is_string(),
        "{what}: {}",
        answer.1
    );
}

/// `validate_pdf.py` at B-T.
fn validate_bt(signed: &std::path::Path, original: &std::path::Path, expect: &str) {
    let root = env().root_ca();
    let args: [&OsStr; 11] = [
        signed.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--expect".as_ref(),
        expect.as_ref(),
        "--original".as_ref(),
        original.as_os_str(),
        "--level".as_ref(),
        "B-T".as_ref(),
        "--at".as_ref(),
        "now".as_ref(),
    ];
    tools::validate("validate_pdf.py", &args)
        .unwrap_or_else(|e| panic!("{}: {e}", signed.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyhanko_csc_signer_signs_personal_and_seal() {
    let Some((original, _)) = corpus_file("pikepdf_made.pdf") else {
        return;
    };
    let server = CscServer::start("csc-pyhanko", CscSettings::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (who, credential, expect) in [
        (Who::jens(), "person", "person"),
        (Who::sealer(), "seal:dev", "seal"),
    ] {
        let signed = dir.path().join(format!("{expect}.pdf"));
        let args = [
            OsStr::new(&server.url()).to_owned(),
            bearer(&who).into(),
            credential.into(),
            env().dir.clone().into_os_string(),
            claims_json(&who).into(),
            original.clone().into_os_string(),
            signed.clone().into_os_string(),
        ];
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let verdict = tools::validate_own(&tools::own_script("csc_pyhanko.py"), &args)
            .unwrap_or_else(|e| panic!("pyHanko's CSC client, {credential}: {e}"));
        if verdict.is_none() {
            return;
        }
        validate_bt(&signed, &original, expect);
        server.assert_no_keys(credential).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_csc2_client_signs_hashes_and_documents() {
    let Some((original, _)) = corpus_file("pikepdf_made.pdf") else {
        return;
    };
    let server = CscServer::start("csc-client", CscSettings::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let who = Who::jens();
    let args = [
        OsStr::new(&server.url()).to_owned(),
        bearer(&who).into(),
        "person".into(),
        env().dir.clone().into_os_string(),
        claims_json(&who).into(),
        original.clone().into_os_string(),
        dir.path().as_os_str().to_owned(),
    ];
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let verdict = tools::validate_own(&tools::own_script("csc_client.py"), &args)
        .unwrap_or_else(|e| panic!("the CSC 2.0 client: {e}"));
    if verdict.is_none() {
        return;
    }
    validate_bt(&dir.path().join("signdoc.pdf"), &original, "person");
    let cms = std::fs::read(dir.path().join("signdoc.p7s")).expect("CAdES");
    let content = std::fs::read(dir.path().join("content.bin")).expect("content");
    if tools::require("openssl") {
        tools::openssl_cms_verify(&cms, &content, &env().root_ca()).expect("openssl cms -verify");
    }
    server.assert_no_keys("signHash and signDoc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_csc_errors_and_leave_no_key() {
    let settings = CscSettings {
        key_lifetime: Duration::from_secs(2),
        max_keys_per_subject: 1,
        ..CscSettings::default()
    };
    let server = CscServer::start("csc-refusals", settings).await;
    let (jens, mette) = (Who::jens(), Who::sealer());
    let (bearer_jens, bearer_mette) = (bearer(&jens), bearer(&mette));
    let hash = sha256(b"signed attributes");

    // No bearer, or an activation token (aud qsign) as bearer: 401.
    let list = json!({});
    let answer = server
        .call("v1", "credentials/list", "", list.clone())
        .await;
    assert_refused(&answer, 401, "invalid_token", "no bearer");
    let activation = env().token(&jens, &[hash]);
    let answer = server
        .call("v2", "credentials/list", &activation, list)
        .await;
    assert_refused(&answer, 401, "invalid_token", "wrong audience");

    // Another user's credential: Jens may not seal.
    let body = json!({ "credentialID": "seal:dev" });
    let answer = server
        .call("v1", "credentials/info", &bearer_jens, body)
        .await;
    assert_refused(&answer, 403, "access_denied", "another user's seal");

    // A SAD for other hashes.
    server.prepare(&bearer_jens, "person").await;
    let other = env().token(&jens, &[sha256(b"something else")]);
    let answer = server
        .sign_hash(&bearer_jens, "person", &other, &[hash])
        .await;
    assert_refused(&answer, 400, "invalid_request", "SAD for other hashes");
    server.assert_no_keys("a SAD for other hashes").await;

    // credentials/authorize refuses it too, and another user's SAD.
    let authorize = |sad: &str| json!({ "credentialID": "person", "hash": [STANDARD.encode(hash)], "OTP": sad });
    let answer = server
        .call(
            "v1",
            "credentials/authorize",
            &bearer_jens,
            authorize(&other),
        )
        .await;
    assert_refused(&answer, 400, "invalid_request", "authorize other hashes");
    let mettes_sad = env().token(&mette, &[hash]);
    let answer = server
        .call(
            "v1",
            "credentials/authorize",
            &bearer_jens,
            authorize(&mettes_sad),
        )
        .await;
    assert_refused(
        &answer,
        400,
        "invalid_request",
        "authorize another user's SAD",
    );

    // Another user's SAD at signHash.
    server.prepare(&bearer_jens, "person").await;
    let answer = server
        .sign_hash(&bearer_jens, "person", &mettes_sad, &[hash])
        .await;
    assert_refused(&answer, 400, "invalid_request", "another user's SAD");
    server.assert_no_keys("another user's SAD").await;

    // Another user's prepared credential: Mette cannot use Jens's key.
    server.prepare(&bearer_jens, "person").await;
    let answer = server
        .sign_hash(&bearer_mette, "person", &mettes_sad, &[hash])
        .await;
    assert_refused(&answer, 400, "invalid_request", "another user's credential");

    // A good SAD signs once (Jens's key above); reused, it is refused.
    let sad = env().token(&jens, &[hash]);
    let (status, answer) = server
        .call("v1", "credentials/authorize", &bearer_jens, authorize(&sad))
        .await;
    assert_eq!(status, 200, "{answer}");
    let sad = answer["SAD"].as_str().expect("SAD").to_owned();
    let (status, answer) = server
        .sign_hash(&bearer_jens, "person", &sad, &[hash])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["signatures"].as_array().map(Vec::len), Some(1));
    server.prepare(&bearer_jens, "person").await;
    let answer = server
        .sign_hash(&bearer_jens, "person", &sad, &[hash])
        .await;
    assert_refused(&answer, 400, "invalid_request", "reused SAD");
    server.assert_no_keys("a reused SAD").await;

    // Unused past its lifetime (2 s here): refused, and reaped.
    server.prepare(&bearer_jens, "person").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = env().token(&jens, &[hash]);
    let answer = server
        .sign_hash(&bearer_jens, "person", &fresh, &[hash])
        .await;
    assert_refused(&answer, 400, "invalid_request", "expired credential");
    server.prepare(&bearer_mette, "seal:dev").await;
    assert_eq!(env().leftover_keys(server.label), 2, "a prepared key pair");
    server
        .assert_no_keys("a credential never used (the reaper)")
        .await;

    // Bounded: one prepared key per sub here; shutdown destroys them.
    server.prepare(&bearer_mette, "seal:dev").await;
    let body = json!({ "credentialID": "person" });
    let answer = server
        .call("v1", "credentials/info", &bearer_mette, body.clone())
        .await;
    assert_refused(&answer, 429, "too_many_requests", "over the per-sub limit");
    let (status, _) = server
        .call("v1", "credentials/info", &bearer_jens, body)
        .await;
    assert_eq!(status, 200, "another sub has its own room");
    assert_eq!(server.csc.prepared(), 2);
    assert_eq!(
        env().leftover_keys(server.label),
        4,
        "two prepared key pairs"
    );
    server.csc.shutdown(None);
    server.assert_no_keys("shutdown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_is_a_caller_with_limits() {
    let settings = CscSettings::default();
    let server = CscServer::start_with("csc-rate", settings, |c| {
        c.limits.requests_per_second_per_caller = 1;
    })
    .await;
    let jens = bearer(&Who::jens());
    server.prepare(&jens, "person").await;
    // A burst: within one second at most one more gets through.
    let body = json!({ "credentialID": "person" });
    let info = || server.call("v1", "credentials/info", &jens, body.clone());
    let (a, b, c) = tokio::join!(info(), info(), info());
    let burst = [a, b, c];
    let refused = burst.iter().filter(|a| a.0 == 429).count();
    assert!(refused >= 1, "over the per-sub rate: {burst:?}");
    for answer in burst.iter().filter(|a| a.0 != 200) {
        assert_refused(answer, 429, "too_many_requests", "over the per-sub rate");
    }
    // Another user is another caller.
    server.prepare(&bearer(&Who::sealer()), "seal:dev").await;
    server.csc.shutdown(None);
    server.assert_no_keys("shutdown").await;
}

/// SPEC §11: a refused `signHash` is recorded with its CSC error code, a
/// signed one as an issuance; each with the CSC calling system.
#[tokio::test(flavor = "multi_thread")]
async fn sign_hash_refusals_and_signatures_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.db");
    let url = qsign::store::Database::sqlite_url(&file);
    let server = CscServer::start_with("csc-audit", CscSettings::default(), |config| {
        config.database = Some(qsign::config::DatabaseConfig {
            url: url.clone(),
            max_connections: 2,
        });
        config.audit = Some(crate::audit::audit_config());
    })
    .await;
    let jens = Who::jens();
    let bearer_jens = bearer(&jens);
    let hash = sha256(b"signed attributes, audited");
    server.prepare(&bearer_jens, "person").await;
    let other = env().token(&jens, &[sha256(b"something else")]);
    let answer = server
        .sign_hash(&bearer_jens, "person", &other, &[hash])
        .await;
    assert_refused(&answer, 400, "invalid_request", "SAD for other hashes");
    server.prepare(&bearer_jens, "person").await;
    let sad = env().token(&jens, &[hash]);
    let (status, body) = server
        .sign_hash(&bearer_jens, "person", &sad, &[hash])
        .await;
    assert_eq!(status, 200, "{body}");

    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
    let db = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let records: Vec<String> = sqlx::query_scalar("SELECT json FROM audit_records ORDER BY idx")
        .fetch_all(&db)
        .await
        .unwrap();
    let records: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:#?}");
    let (refusal, issuance) = (&records[0], &records[1]);
    assert_eq!(refusal["event"], "refusal", "{refusal}");
    assert_eq!(refusal["error_code"], "invalid_request", "{refusal}");
    assert_eq!(issuance["event"], "issuance", "{issuance}");
    for record in &records {
        assert_eq!(record["calling_system"], "csc", "{record}");
        assert_eq!(record["documents"], json!([hex::encode(hash)]), "{record}");
    }
    server.assert_no_keys("audited signHash").await;
}

/// SPEC §9, §13: a seal profile put through the AdministrationService is a
/// CSC credential for the next call (listed, prepared, signed with, its
/// organisation in the certificate); deleted, it is refused at the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_seal_profiles_are_live_csc_credentials() {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    use qsign::proto;

    use crate::support::admin::{self, admin, with, CVR};

    let dir = tempfile::tempdir().expect("tempdir");
    let core = admin::core("csc-registry", None, dir.path());
    let admin_server = crate::support::Server::start(core.clone()).await;
    let server = CscServer::serve("csc-registry", core, CscSettings::default()).await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", admin_server.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut c =
        qsign::proto::administration_service_client::AdministrationServiceClient::new(channel);
    let sealer = Who {
        given: "Mette",
        family: "Sørensen",
        cvr: CVR,
        seal_profiles: vec!["acme-csc"],
    };
    let bearer = bearer(&sealer);
    let listed = || async {
        let (status, answer) = server
            .call("v1", "credentials/list", &bearer, json!({}))
            .await;
        assert_eq!(status, 200, "{answer}");
        let ids = answer["credentialIDs"].as_array().expect("credentialIDs");
        ids.contains(&json!("seal:acme-csc"))
    };
    assert!(!listed().await, "no such profile yet");

    crate::registry::put_named_profile(&mut c, "acme-csc", "Acme CSC A/S", &["seal"]).await;
    assert!(listed().await, "the profile just put");
    let info = server.prepare(&bearer, "seal:acme-csc").await;
    let certificate = STANDARD
        .decode(
            info["cert"]["certificates"][0]
                .as_str()
                .expect("a certificate"),
        )
        .unwrap();
    let certificate = <x509_cert::Certificate as der::Decode>::from_der(&certificate).unwrap();
    let subject = certificate.tbs_certificate.subject.to_string();
    assert!(
        subject.split(',').any(|rdn| rdn == "O=Acme CSC A/S"),
        "{subject}"
    );
    let hash = sha256(b"sealed under a registry profile");
    let sad = env().token(&sealer, &[hash]);
    let (status, answer) = server
        .sign_hash(&bearer, "seal:acme-csc", &sad, &[hash])
        .await;
    assert_eq!(status, 200, "{answer}");
    let signature = STANDARD
        .decode(answer["signatures"][0].as_str().expect("a signature"))
        .unwrap();
    let signature = p256::ecdsa::Signature::from_der(&signature)
        .or_else(|_| p256::ecdsa::Signature::from_slice(&signature))
        .expect("an ECDSA signature");
    let spki = &certificate.tbs_certificate.subject_public_key_info;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
        .expect("a P-256 key");
    key.verify_prehash(&hash, &signature)
        .expect("the signature verifies with the certificate's key");

    // Deleted: refused at the next call, prepared or not.
    server.prepare(&bearer, "seal:acme-csc").await;
    let delete = proto::DeleteProfileRequest {
        id: "acme-csc".into(),
    };
    c.delete_profile(with(&admin(), delete)).await.unwrap();
    assert!(!listed().await, "deleted");
    let sad = env().token(&sealer, &[hash]);
    let answer = server
        .sign_hash(&bearer, "seal:acme-csc", &sad, &[hash])
        .await;
    assert_refused(&answer, 403, "access_denied", "signHash, deleted");
    let body = json!({ "credentialID": "seal:acme-csc" });
    let answer = server.call("v1", "credentials/info", &bearer, body).await;
    assert_refused(&answer, 403, "access_denied", "credentials/info, deleted");
    server.assert_no_keys("a deleted profile").await;
}
