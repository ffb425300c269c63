//! Two replicas on one PostgreSQL (SPEC §9): racing on one name, one order
//! and one revocation, exactly one wins and nothing is duplicated; a
//! profile changed through one is used by the other's next signature (on
//! one SQLite file too).

use qsign::proto;
use tonic::Code;

use crate::detached::{content, request};
use crate::registry::{issue_csr, order, ordered, put_named_profile, put_profile};
use crate::support::admin::{self, admin, with, Replica, CVR};
use crate::support::postgres::Postgres;
use crate::support::{env, sha256, sign_pdf_request, tools, Who};

/// Which of two results succeeded: exactly one must, the other with `loser`.
fn one_wins<T: std::fmt::Debug>(results: [Result<T, tonic::Status>; 2], loser: Code) -> T {
    let [a, b] = results;
    match (a, b) {
        (Ok(t), Err(e)) | (Err(e), Ok(t)) => {
            assert_eq!(e.code(), loser, "{e:?}");
            t
        }
        other => panic!("exactly one must win: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_race_and_share_profiles() {
    let Some(pg) = Postgres::start() else { return };
    let (a, b) = (
        Replica::start("race-a", Some(&pg.url)).await,
        Replica::start("race-b", Some(&pg.url)).await,
    );
    let (mut ca, mut cb) = (a.client().await, b.client().await);
    put_profile(&mut ca, "acme-race", &["seal"]).await;
    let dir = tempfile::tempdir().unwrap();
    let csr = admin::csr(
        dir.path(),
        "k",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );

    for round in 0..3 {
        // One name, ordered on both at once.
        let name = format!("Raced {round}");
        let (mut x, mut y) = (ca.clone(), cb.clone());
        let (ra, rb) = tokio::join!(
            x.order_certificate(with(
                &admin(),
                order(proto::CertificateKind::Organization, &name)
            )),
            y.order_certificate(with(
                &admin(),
                order(proto::CertificateKind::Organization, &name)
            )),
        );
        let id = one_wins([ra, rb], Code::AlreadyExists).into_inner().id;

        // One order, issued on both at once.
        let (mut x, mut y) = (ca.clone(), cb.clone());
        let (ra, rb) = tokio::join!(
            x.issue_certificate(with(&admin(), issue_csr(&id, csr.clone()))),
            y.issue_certificate(with(&admin(), issue_csr(&id, csr.clone()))),
        );
        let issued = one_wins([ra, rb], Code::FailedPrecondition).into_inner();

        // Revoke on one while the other renews, then revoke on both.
        let renew = proto::RenewCertificateRequest {
            id: id.clone(),
            key: Some(proto::renew_certificate_request::Key::Csr(csr.clone())),
        };
        let revoke = || proto::RevokeCertificateRequest {
            id: id.clone(),
            reason: 1,
        };
        let (mut x, mut y) = (ca.clone(), cb.clone());
        let (renewed, revoked) = tokio::join!(
            x.renew_certificate(with(&admin(), renew)),
            y.revoke_certificate(with(&admin(), revoke())),
        );
        revoked.expect("revoke wins or follows the renewal");
        let (mut x, mut y) = (ca.clone(), cb.clone());
        let (ra, rb) = tokio::join!(
            x.revoke_certificate(with(&admin(), revoke())),
            y.revoke_certificate(with(&admin(), revoke())),
        );
        assert_eq!(ra.unwrap_err().code(), Code::FailedPrecondition);
        assert_eq!(rb.unwrap_err().code(), Code::FailedPrecondition);

        // Nothing duplicated, and every serial ever issued is revoked.
        let search = proto::SearchCertificatesRequest {
            query: name.clone(),
            ..Default::default()
        };
        let found = cb
            .search_certificates(with(&admin(), search))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.certificates.len(), 1, "one record of {name}");
        let core = &a.server.core;
        let registry = core.registry.as_ref().unwrap();
        let mut serials = vec![serial_of(&issued.certificate)];
        if let Ok(r) = renewed {
            serials.push(serial_of(&r.into_inner().certificate));
        }
        for serial in serials {
            assert!(
                matches!(
                    registry.serial_status(&serial).await.unwrap(),
                    qsign::registry::model::SerialStatus::Revoked { .. }
                ),
                "{serial} revoked"
            );
        }
    }
    profile_reaches_the_other_replica(&b, &mut ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_sqlite_file_share_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let url = qsign::store::Database::sqlite_url(&dir.path().join("shared.db"));
    let a = Replica::start("live-a", Some(&url)).await;
    let b = Replica::start("live-b", Some(&url)).await;
    profile_reaches_the_other_replica(&b, &mut a.client().await).await;
}

fn serial_of(der: &[u8]) -> String {
    use der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).unwrap();
    qsign::registry::certificate::serial_hex(certificate.tbs_certificate.serial_number.as_bytes())
}

fn sealer() -> Who {
    Who {
        given: "Mette",
        family: "Sørensen",
        cvr: CVR,
        seal_profiles: vec!["acme-live"],
    }
}

/// A seal of the profile `acme-live`, with a fresh token.
fn sealed() -> proto::SignDetachedRequest {
    let data = format!("sealed under a live profile {}", uuid::Uuid::new_v4()).into_bytes();
    let token = env().token(&sealer(), &[sha256(&data)]);
    request(vec![content(&data)], token, "acme-live")
}

/// SignPdf of an `acme-live` seal with a visible appearance on `b`: the
/// signed file validates; the appearance's text (None without pdftotext).
async fn seal_pdf_on(b: &Replica) -> Option<String> {
    let pdf = crate::pades::minimal_pdf();
    let mut req = sign_pdf_request(pdf.clone(), &sealer(), "acme-live", proto::Level::BB);
    req.appearance = Some(proto::Appearance {
        page: 1,
        x: 40.0,
        y: 40.0,
        width: 200.0,
        height: 50.0,
    });
    let signed = b.server.client().await.sign_pdf(req).await.expect("sealed");
    let dir = tempfile::tempdir().unwrap();
    let (original, path) = (dir.path().join("in.pdf"), dir.path().join("out.pdf"));
    std::fs::write(&original, &pdf).unwrap();
    std::fs::write(&path, signed.into_inner().signed_pdf).unwrap();
    crate::pades::judge(&path, &original, "seal");
    if !tools::require("pdftotext") {
        return None;
    }
    let text = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap();
    Some(String::from_utf8_lossy(&text.stdout).into_owned())
}

/// `req` on `b`: the organisation name (O) of its certificate.
async fn seal_on(b: &Replica, req: proto::SignDetachedRequest) -> Result<String, tonic::Status> {
    let signed = b.server.client().await.sign_detached(req).await?;
    let der = signed.into_inner().certificate;
    let certificate = <x509_cert::Certificate as der::Decode>::from_der(&der).unwrap();
    let subject = certificate.tbs_certificate.subject.to_string();
    let o = subject.split(',').find_map(|rdn| rdn.strip_prefix("O="));
    Ok(o.expect("a seal names its organisation").to_owned())
}

/// SPEC §9: a change through A takes effect for B's next signature. B
/// decides on the profiles it last read and learns their version from its
/// token's reservation; the rename and the deletion reach it that way, the
/// deletion as a refusal that leaves the token unspent.
async fn profile_reaches_the_other_replica(b: &Replica, ca: &mut admin::AdminClient) {
    let refused = seal_on(b, sealed()).await.expect_err("no such profile yet");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    put_profile(ca, "acme-live", &["seal"]).await;
    let o = seal_on(b, sealed())
        .await
        .expect("B uses the profile A made");
    assert_eq!(o, "Acme A/S");
    put_named_profile(ca, "acme-live", "Acme Renamed A/S", &["seal"]).await;
    let o = seal_on(b, sealed()).await.expect("renamed through A");
    assert_eq!(o, "Acme Renamed A/S", "B's next signature has the new name");
    // SignPdf draws the appearance before the reservation: drawn again.
    put_named_profile(ca, "acme-live", "Acme Again A/S", &["seal"]).await;
    if let Some(text) = seal_pdf_on(b).await {
        assert!(text.contains("Elektronisk segl: Acme Again A/S"), "{text}");
    }

    let delete = proto::DeleteProfileRequest {
        id: "acme-live".into(),
    };
    ca.delete_profile(with(&admin(), delete)).await.unwrap();
    let req = sealed();
    let refused = seal_on(b, req.clone())
        .await
        .expect_err("deleted through A");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    put_profile(ca, "acme-live", &["seal"]).await;
    let o = seal_on(b, req)
        .await
        .expect("the refused token was not spent");
    assert_eq!(o, "Acme A/S");
}

#[tokio::test]
async fn two_orders_of_one_name_on_sqlite_one_wins() {
    let replica = Replica::start("registry-sqlite-race", None).await;
    let (mut c1, mut c2) = (replica.client().await, replica.client().await);
    let (r1, r2) = tokio::join!(
        c1.order_certificate(with(
            &admin(),
            order(proto::CertificateKind::Organization, "Once")
        )),
        c2.order_certificate(with(
            &admin(),
            order(proto::CertificateKind::Organization, "once")
        )),
    );
    one_wins([r1, r2], Code::AlreadyExists);
    let mut c = c1;
    let _ = ordered(&mut c, order(proto::CertificateKind::Organization, "Twice")).await;
}
