//! Two replicas on one PostgreSQL (SPEC §9): racing on one name, one order
//! and one revocation, exactly one wins and nothing is duplicated; a
//! profile changed through one is used by the other's next signature.

use qsign::proto;
use tonic::Code;

use crate::detached::{content, request};
use crate::registry::{issue_csr, order, ordered, put_profile};
use crate::support::admin::{self, admin, with, Replica, CVR};
use crate::support::postgres::Postgres;
use crate::support::{env, sha256, Who};

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
    profile_reaches_the_other_replica(&a, &b, &mut ca).await;
}

fn serial_of(der: &[u8]) -> String {
    use der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).unwrap();
    qsign::registry::certificate::serial_hex(certificate.tbs_certificate.serial_number.as_bytes())
}

async fn seal_on(
    server: &crate::support::Server,
    sealer: &Who,
) -> Result<tonic::Response<proto::SignDetachedResponse>, tonic::Status> {
    let data = b"sealed under a profile made on the other replica".to_vec();
    let req = request(
        vec![content(&data)],
        env().token(sealer, &[sha256(&data)]),
        "acme-live",
    );
    server.client().await.sign_detached(req).await
}

/// SPEC §9: a change takes effect for the next signature on every replica.
async fn profile_reaches_the_other_replica(a: &Replica, b: &Replica, ca: &mut admin::AdminClient) {
    let sealer = Who {
        given: "Mette",
        family: "Sørensen",
        cvr: CVR,
        seal_profiles: vec!["acme-live"],
    };
    let refused = seal_on(&b.server, &sealer)
        .await
        .expect_err("no such profile yet");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    put_profile(ca, "acme-live", &["seal"]).await;
    seal_on(&b.server, &sealer)
        .await
        .expect("B uses the profile A made");
    let delete = proto::DeleteProfileRequest {
        id: "acme-live".into(),
    };
    ca.delete_profile(with(&admin(), delete)).await.unwrap();
    let refused = seal_on(&b.server, &sealer)
        .await
        .expect_err("deleted through A");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let _ = a;
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
