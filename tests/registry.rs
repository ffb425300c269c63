//! The registry of SPEC §9 end to end, on SQLite and on PostgreSQL: e-mail
//! validation by code, ordering, issuing from a CSR and as PKCS#12,
//! renewing, revoking, true OCSP and CRL status, search and CSV; and every
//! refusal with its gRPC code.

use qsign::proto::{
    self, issue_certificate_request as key, renew_certificate_request as renew_key,
};
use tonic::Code;

use crate::support::admin::{self, admin, openssl, pem_file, token, with, Replica, CVR, OTHER_CVR};
use crate::support::postgres::Postgres;
use crate::support::tools;

type Client =
    proto::administration_service_client::AdministrationServiceClient<tonic::transport::Channel>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_sqlite() {
    let replica = Replica::start("registry-sqlite", None).await;
    lifecycle(&replica).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let replica = Replica::start("registry-pg", Some(&pg.url)).await;
    lifecycle(&replica).await;
}

/// A profile naming the organisation (EN 319 412-3 O comes from it).
pub async fn put_profile(c: &mut Client, id: &str, allow: &[&str]) {
    put_named_profile(c, id, "Acme A/S", allow).await;
}

/// [`put_profile`] with the organisation name `name`.
pub async fn put_named_profile(c: &mut Client, id: &str, name: &str, allow: &[&str]) {
    let profile = proto::Profile {
        id: id.into(),
        organization_name: name.into(),
        cvr: CVR.into(),
        allow: allow.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    c.put_profile(with(
        &admin(),
        proto::PutProfileRequest {
            profile: Some(profile),
        },
    ))
    .await
    .expect("profile put");
}

/// Starts and confirms the validation of `email` with the mailed code.
pub async fn validate(replica: &Replica, c: &mut Client, email: &str) {
    let start = proto::StartEmailValidationRequest {
        email: email.into(),
    };
    c.start_email_validation(with(&admin(), start))
        .await
        .expect("code mailed");
    let code = replica.code_for(email);
    let confirm = proto::ConfirmEmailRequest {
        email: email.into(),
        code,
    };
    c.confirm_email(with(&admin(), confirm))
        .await
        .expect("confirmed");
}

pub fn order(kind: proto::CertificateKind, name: &str) -> proto::OrderCertificateRequest {
    proto::OrderCertificateRequest {
        kind: kind.into(),
        name: name.into(),
        contact_name: "Ida Admin".into(),
        contact_email: "ida@acme.example".into(),
        system_name: if kind == proto::CertificateKind::System {
            "Invoicing".into()
        } else {
            String::new()
        },
        retrieval: proto::Retrieval::Api.into(),
        ..Default::default()
    }
}

pub async fn ordered(c: &mut Client, request: proto::OrderCertificateRequest) -> String {
    c.order_certificate(with(&admin(), request))
        .await
        .expect("ordered")
        .into_inner()
        .id
}

pub fn issue_csr(id: &str, csr: Vec<u8>) -> proto::IssueCertificateRequest {
    proto::IssueCertificateRequest {
        id: id.into(),
        key: Some(key::Key::Csr(csr)),
    }
}

async fn lifecycle(replica: &Replica) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = replica.client().await;
    put_profile(&mut c, "acme-seal", &["seal"]).await;
    validate(replica, &mut c, "web@acme.example").await;

    // An organisation certificate with a generated key, as PKCS#12.
    let mut request = order(proto::CertificateKind::Organization, "Acme web");
    request.certificate_email = "web@acme.example".into();
    let web = ordered(&mut c, request).await;
    let issue = proto::IssueCertificateRequest {
        id: web.clone(),
        key: Some(key::Key::Pkcs12Password("correct horse".into())),
    };
    let issued = c
        .issue_certificate(with(&admin(), issue))
        .await
        .expect("issued")
        .into_inner();
    assert_eq!(issued.chain.len(), 2, "organisation CA and root");
    let org_ca = pem_file(&dir.path().join("org-ca.pem"), &[&issued.chain[0]]);
    let root = pem_file(&dir.path().join("root.pem"), &[&issued.chain[1]]);
    let web_pem = pem_file(&dir.path().join("web.pem"), &[&issued.certificate]);
    if tools::require("openssl") {
        check_pkcs12(dir.path(), &issued.pkcs12, &web_pem);
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            s(&root),
            "-untrusted",
            s(&org_ca),
            s(&web_pem),
        ]);
        assert!(ok, "chain verifies: {text}");
        let (_, text) = openssl(&["x509", "-in", s(&web_pem), "-noout", "-text"]);
        for expected in [
            "email:web@acme.example",
            "0.4.0.2042.1.1",
            "organization-ca.crl",
            "OCSP - URI",
            "CA Issuers - URI",
            "NTRDK-11223344",
            "O = Acme A/S",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }

    // A system certificate from a CSR: the key stays here.
    let system = ordered(
        &mut c,
        order(proto::CertificateKind::System, "Acme invoicing"),
    )
    .await;
    let csr = admin::csr(
        dir.path(),
        "system",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let sys = c
        .issue_certificate(with(&admin(), issue_csr(&system, csr)))
        .await
        .expect("issued")
        .into_inner();
    let sys_pem = pem_file(&dir.path().join("sys.pem"), &[&sys.certificate]);

    // Status: good, then revoked (time, reason), unknown for a serial never issued.
    if tools::require("openssl") {
        assert_eq!(
            ocsp(replica, &org_ca, &root, &["-cert", s(&sys_pem)]),
            "good"
        );
    }
    // Unchanged revocations: the CRL signed for the first GET is served
    // again (below, a revocation makes the next GET sign a new one).
    let crl_url = format!("{}/crl/organization-ca.crl", replica.http);
    let first = http_get(&crl_url).await;
    assert_eq!(
        http_get(&crl_url).await,
        first,
        "the same CRL, not signed again"
    );
    let revoke = proto::RevokeCertificateRequest {
        id: system.clone(),
        reason: proto::RevocationReason::KeyCompromise.into(),
    };
    let revoked = c
        .revoke_certificate(with(&admin(), revoke))
        .await
        .expect("revoked")
        .into_inner();
    assert_eq!(revoked.status(), proto::CertificateStatus::Revoked);
    if tools::require("openssl") {
        assert_eq!(
            ocsp(replica, &org_ca, &root, &["-cert", s(&sys_pem)]),
            "revoked"
        );
        assert_eq!(
            ocsp(replica, &org_ca, &root, &["-serial", "0x4242424242"]),
            "unknown"
        );
        let crl = http_get(&crl_url).await;
        assert_ne!(crl, first, "a revocation makes a new CRL");
        let crl_file = dir.path().join("org.crl");
        std::fs::write(&crl_file, crl).unwrap();
        let (ok, text) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            s(&crl_file),
            "-noout",
            "-text",
            "-CAfile",
            s(&org_ca),
        ]);
        assert!(ok, "CRL verifies: {text}");
        assert!(
            text.to_lowercase().contains(&revoked.serial),
            "CRL lists {}:\n{text}",
            revoked.serial
        );
        assert!(text.contains("Key Compromise"), "{text}");
    }

    // Renew: same name and contact, a new key and serial.
    let renew = proto::RenewCertificateRequest {
        id: web.clone(),
        key: Some(renew_key::Key::Csr(admin::csr(
            dir.path(),
            "web2",
            &["-newkey", "rsa:2048"],
        ))),
    };
    let renewed = c
        .renew_certificate(with(&admin(), renew))
        .await
        .expect("renewed")
        .into_inner();
    assert_ne!(renewed.certificate, issued.certificate);
    let record = c
        .get_certificate(with(
            &admin(),
            proto::GetCertificateRequest { id: web.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (record.name.as_str(), record.status()),
        ("Acme web", proto::CertificateStatus::Valid)
    );
    assert_eq!(record.der, renewed.certificate);
    assert_eq!(
        record.subject,
        "CN=Acme web,organizationIdentifier=NTRDK-11223344,O=Acme A/S,C=DK"
    );

    search_and_export(&mut c, dir.path(), &web, &system).await;
    // SPEC §9 contact mails: issued, renewed, revoked.
    let mails: String = replica
        .mails_to("ida@acme.example")
        .into_iter()
        .map(|m| m.1)
        .collect();
    for what in ["issued", "renewed", "revoked"] {
        assert!(mails.contains(&format!("\" {what}")), "a mail says {what}");
    }
}

fn check_pkcs12(dir: &std::path::Path, pkcs12: &[u8], certificate: &std::path::Path) {
    let p12 = dir.join("web.p12");
    std::fs::write(&p12, pkcs12).unwrap();
    let pass = "pass:correct horse";
    let (ok, info) = openssl(&["pkcs12", "-in", s(&p12), "-passin", pass, "-info", "-noout"]);
    assert!(ok, "openssl opens the PKCS#12: {info}");
    assert!(
        info.contains("AES-256-CBC")
            && info.contains("hmacWithSHA256")
            && info.contains("MAC: sha256"),
        "{info}"
    );
    assert!(!info.contains("RC2") && !info.contains("3DES"), "{info}");
    let key = dir.join("web.key");
    let (ok, text) = openssl(&[
        "pkcs12",
        "-in",
        s(&p12),
        "-passin",
        pass,
        "-nocerts",
        "-nodes",
        "-out",
        s(&key),
    ]);
    assert!(ok, "{text}");
    let (_, from_key) = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    let (_, from_cert) = openssl(&["x509", "-in", s(certificate), "-noout", "-pubkey"]);
    assert_eq!(
        from_key, from_cert,
        "the PKCS#12 key matches the certificate"
    );
}

/// The status `openssl ocsp` reports, the response verified against the root.
fn ocsp(
    replica: &Replica,
    org_ca: &std::path::Path,
    root: &std::path::Path,
    which: &[&str],
) -> String {
    let url = format!("{}/ocsp", replica.http);
    let mut args = vec![
        "ocsp",
        "-issuer",
        s(org_ca),
        "-CAfile",
        s(root),
        "-url",
        &url,
    ];
    args.extend_from_slice(which);
    let (ok, text) = openssl(&args);
    assert!(ok && text.contains("Response verify OK"), "{text}");
    let status = text.lines().find_map(|l| {
        l.split_once(": ")
            .filter(|(k, _)| !k.starts_with('\t'))
            .map(|(_, v)| v.trim().to_owned())
    });
    status.unwrap_or_default()
}

async fn search_and_export(c: &mut Client, dir: &std::path::Path, web: &str, system: &str) {
    let search = |query: &str, status: proto::CertificateStatus| proto::SearchCertificatesRequest {
        query: query.into(),
        status: status.into(),
        page_size: 1,
        ..Default::default()
    };
    // A part of the contact's e-mail, any case; pages of one.
    let first = c
        .search_certificates(with(
            &admin(),
            search("IDA@ACME", proto::CertificateStatus::Unspecified),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.certificates.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let mut next = search("ida@acme", proto::CertificateStatus::Unspecified);
    next.page_token = first.next_page_token.clone();
    let second = c
        .search_certificates(with(&admin(), next))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.certificates.len(), 1);
    assert_ne!(first.certificates[0].id, second.certificates[0].id);
    let revoked = c
        .search_certificates(with(
            &admin(),
            search("", proto::CertificateStatus::Revoked),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        revoked
            .certificates
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        vec![system]
    );
    // LIKE syntax in a query is data: "%" matches nothing here.
    let none = c
        .search_certificates(with(
            &admin(),
            search("%", proto::CertificateStatus::Unspecified),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(none.certificates.is_empty());

    let export = proto::ExportCertificatesRequest {
        query: "acme".into(),
        ..Default::default()
    };
    let csv = c
        .export_certificates(with(&admin(), export))
        .await
        .unwrap()
        .into_inner()
        .csv;
    let file = dir.join("export.csv");
    std::fs::write(&file, &csv).unwrap();
    let script = "import csv,sys,json\nrows=list(csv.DictReader(open(sys.argv[1],newline='',encoding='utf-8')))\nprint(json.dumps(rows))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, s(&file)])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<std::collections::BTreeMap<String, String>> =
        serde_json::from_slice(&out.stdout).unwrap();
    let columns: Vec<&str> = rows[0].keys().map(String::as_str).collect();
    let mut expected = qsign::registry::csv::COLUMNS.to_vec();
    expected.sort_unstable();
    assert_eq!(columns, expected);
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    assert!(ids.contains(&web) && ids.contains(&system), "{ids:?}");
    let sys_row = rows.iter().find(|r| r["id"] == system).unwrap();
    assert_eq!(
        (
            sys_row["status"].as_str(),
            sys_row["revocation_reason"].as_str()
        ),
        ("REVOKED", "keyCompromise")
    );
    assert!(String::from_utf8(csv)
        .unwrap()
        .starts_with("id,kind,name,status,serial,subject,"));
}

/// GET with curl, the body.
pub async fn http_get(url: &str) -> Vec<u8> {
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sf", &url])
            .output()
    })
    .await
    .unwrap()
    .expect("curl");
    assert!(out.status.success(), "GET failed");
    out.stdout
}

fn s(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.expect_err("refused").code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_code() {
    let replica = Replica::start("registry-refusals", None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = replica.client().await;
    put_profile(&mut c, "acme-refusals", &["seal"]).await;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

    // No token, a token for another audience: UNAUTHENTICATED.
    let get = |id: &str| proto::GetCertificateRequest { id: id.into() };
    assert_eq!(
        code(c.get_certificate(get("x")).await),
        Code::Unauthenticated
    );
    let activation = env_token();
    assert_eq!(
        code(c.get_certificate(with(&activation, get("x"))).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(
            c.get_certificate(with(&admin(), get(&uuid::Uuid::new_v4().to_string())))
                .await
        ),
        Code::NotFound
    );

    // Name taken; another organisation's admin; an employee without the role.
    let id = ordered(&mut c, order(proto::CertificateKind::Organization, "Taken")).await;
    let again = order(proto::CertificateKind::Organization, "TAKEN");
    assert_eq!(
        code(c.order_certificate(with(&admin(), again)).await),
        Code::AlreadyExists
    );
    let other = token("olga", OTHER_CVR, &["user_admin"]);
    assert_eq!(
        code(c.get_certificate(with(&other, get(&id))).await),
        Code::PermissionDenied
    );
    let csr = admin::csr(dir.path(), "a", &ec);
    assert_eq!(
        code(
            c.issue_certificate(with(&other, issue_csr(&id, csr.clone())))
                .await
        ),
        Code::PermissionDenied
    );
    let employee = token("karen", CVR, &[]);
    assert_eq!(
        code(
            c.issue_certificate(with(&employee, issue_csr(&id, csr.clone())))
                .await
        ),
        Code::PermissionDenied
    );
    let order_as_employee = order(proto::CertificateKind::Organization, "Mine");
    assert_eq!(
        code(
            c.order_certificate(with(&employee, order_as_employee))
                .await
        ),
        Code::PermissionDenied
    );

    // CSRs: a weak key, a bad signature.
    let weak = admin::csr(dir.path(), "weak", &["-newkey", "rsa:1024"]);
    assert_eq!(
        code(
            c.issue_certificate(with(&admin(), issue_csr(&id, weak)))
                .await
        ),
        Code::InvalidArgument
    );
    let mut forged = csr.clone();
    let last = forged.len() - 3;
    forged[last] ^= 0x55;
    assert_eq!(
        code(
            c.issue_certificate(with(&admin(), issue_csr(&id, forged)))
                .await
        ),
        Code::InvalidArgument
    );

    // Issuing twice; revoking twice.
    c.issue_certificate(with(&admin(), issue_csr(&id, csr.clone())))
        .await
        .expect("first issue");
    assert_eq!(
        code(
            c.issue_certificate(with(&admin(), issue_csr(&id, csr.clone())))
                .await
        ),
        Code::FailedPrecondition
    );
    let revoke = || proto::RevokeCertificateRequest {
        id: id.clone(),
        reason: 0,
    };
    c.revoke_certificate(with(&admin(), revoke()))
        .await
        .expect("revoked");
    assert_eq!(
        code(c.revoke_certificate(with(&admin(), revoke())).await),
        Code::FailedPrecondition
    );
    let renew = proto::RenewCertificateRequest {
        id: id.clone(),
        key: Some(renew_key::Key::Csr(csr.clone())),
    };
    assert_eq!(
        code(c.renew_certificate(with(&admin(), renew)).await),
        Code::FailedPrecondition
    );

    // A user certificate: only the employee it names issues it.
    let mut user = order(proto::CertificateKind::User, "Karen Blixen");
    user.user_sub = "karen".into();
    let user = ordered(&mut c, user).await;
    let stranger = token("someone-else", CVR, &[]);
    assert_eq!(
        code(
            c.issue_certificate(with(&stranger, issue_csr(&user, csr.clone())))
                .await
        ),
        Code::PermissionDenied
    );
    c.issue_certificate(with(&employee, issue_csr(&user, csr.clone())))
        .await
        .expect("the employee issues");
    let renew_user = || proto::RenewCertificateRequest {
        id: user.clone(),
        key: Some(renew_key::Key::Csr(csr.clone())),
    };
    let refused = c.renew_certificate(with(&stranger, renew_user())).await;
    assert_eq!(code(refused), Code::PermissionDenied);
    c.renew_certificate(with(&employee, renew_user()))
        .await
        .expect("the employee renews");

    email_refusals(&replica, &mut c, &csr).await;
}

/// Unvalidated address, wrong codes (five end the code), an expired code.
async fn email_refusals(replica: &Replica, c: &mut Client, csr: &[u8]) {
    let mut request = order(proto::CertificateKind::Organization, "Mailed");
    request.certificate_email = "new@acme.example".into();
    let id = ordered(c, request).await;
    assert_eq!(
        code(
            c.issue_certificate(with(&admin(), issue_csr(&id, csr.to_vec())))
                .await
        ),
        Code::FailedPrecondition
    );

    let address = "new@acme.example";
    let start = || proto::StartEmailValidationRequest {
        email: address.into(),
    };
    let confirm = |code: &str| proto::ConfirmEmailRequest {
        email: address.into(),
        code: code.into(),
    };
    assert_eq!(
        code(c.confirm_email(with(&admin(), confirm("1"))).await),
        Code::FailedPrecondition,
        "nothing started"
    );
    c.start_email_validation(with(&admin(), start()))
        .await
        .unwrap();
    let right = replica.code_for(address);
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..5 {
        assert_eq!(
            code(c.confirm_email(with(&admin(), confirm(wrong))).await),
            Code::InvalidArgument
        );
    }
    assert_eq!(
        code(c.confirm_email(with(&admin(), confirm(&right))).await),
        Code::FailedPrecondition,
        "five wrong codes end it"
    );

    // A new code, expired (its row aged by hand): refused.
    c.start_email_validation(with(&admin(), start()))
        .await
        .unwrap();
    let fresh = replica.code_for(address);
    age_codes(replica).await;
    assert_eq!(
        code(c.confirm_email(with(&admin(), confirm(&fresh))).await),
        Code::FailedPrecondition,
        "expired"
    );

    // And a fresh one works; then the certificate issues.
    c.start_email_validation(with(&admin(), start()))
        .await
        .unwrap();
    let fresh = replica.code_for(address);
    c.confirm_email(with(&admin(), confirm(&fresh)))
        .await
        .expect("confirmed");
    c.issue_certificate(with(&admin(), issue_csr(&id, csr.to_vec())))
        .await
        .expect("issued");
}

/// Moves every code's expiry 25 hours back (SPEC §9: 24 h).
async fn age_codes(replica: &Replica) {
    let db = replica.outbox.parent().unwrap().join("registry.db");
    let url = qsign::store::Database::sqlite_url(&db);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE email_validations SET expires_unix = expires_unix - 90000")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// An activation token (aud = qsign, not the administration audience).
fn env_token() -> String {
    crate::support::env().token(&crate::support::Who::jens(), &[[0; 32]])
}

/// SPEC §9: the contact is mailed before expiry, once, however often the
/// periodic task runs (here with a notice period longer than the lifetime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_is_told_once_before_expiry() {
    use qsign::auth::admin::Administrator;
    use qsign::registry::model::{Kind, Order, Retrieval};
    let dir = tempfile::tempdir().unwrap();
    let core = admin::core_with("registry-expiry", None, dir.path(), |r| {
        r.expiry_notice = std::time::Duration::from_secs(4 * 365 * 86_400);
    });
    let registry = core.registry.clone().unwrap();
    let ida = Administrator {
        sub: "ida".into(),
        org_cvr: CVR.parse().unwrap(),
        roles: vec!["user_admin".into()],
    };
    let row = qsign::store::registry::ProfileRow {
        id: "acme-expiry".into(),
        cvr: CVR.into(),
        organization_name: "Acme A/S".into(),
        allow: vec!["seal".into()],
        allowed_clients: vec![],
    };
    registry.put_profile(&ida, row).await.unwrap();
    let order = Order {
        kind: Some(Kind::Organization),
        name: "Soon".into(),
        contact_name: "Ida".into(),
        contact_email: "soon@acme.example".into(),
        retrieval: Some(Retrieval::Api),
        ..Default::default()
    };
    let record = registry.order(&ida, order).await.unwrap();
    let csr = admin::csr(
        dir.path(),
        "soon",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let key = qsign::registry::KeySource::Csr(csr);
    registry
        .issue(&core.hsm, &ida, (&record.id.to_string(), false), key)
        .await
        .unwrap();
    assert_eq!(registry.send_expiry_notices().await.unwrap(), 1);
    assert_eq!(
        registry.send_expiry_notices().await.unwrap(),
        0,
        "told once"
    );
    let outbox = dir.path().join("outbox");
    let expiring = std::fs::read_dir(outbox)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .filter(|text| text.contains("\" expiring"))
        .count();
    assert_eq!(expiring, 1);
}

/// SPEC §12: administration calls count against the caller's rate like
/// signing calls; beyond it they are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_is_behind_the_caller_limits() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().to_owned();
    let core = crate::support::env().core("registry-limits", |config| {
        config.database = Some(qsign::config::DatabaseConfig {
            url: qsign::store::Database::sqlite_url(&outbox.join("registry.db")),
            max_connections: 2,
        });
        let registry = config.registry.as_mut().expect("dev state has [registry]");
        registry.mail.transport =
            qsign::registry::settings::MailTransport::Outbox(outbox.join("outbox"));
        config.limits.requests_per_second_per_caller = 2;
    });
    let replica = Replica::serve(core, dir).await;
    let mut c = replica.client().await;
    let get = || {
        with(
            &admin(),
            proto::GetCertificateRequest {
                id: uuid::Uuid::new_v4().to_string(),
            },
        )
    };
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(code(c.get_certificate(get()).await));
    }
    assert!(
        codes.contains(&Code::NotFound),
        "some are answered: {codes:?}"
    );
    assert!(
        codes.contains(&Code::ResourceExhausted),
        "20 calls at once are over 2 a second: {codes:?}"
    );
}
