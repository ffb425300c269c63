//! Nothing that could sign again outlives the request: no key object in the
//! token after successes, failures, panics and cancelled clients; private
//! keys cannot be read; no issued certificate reaches the state directory.

use std::time::Duration;

use der::Decode;
use qsign::hsm::{Hsm, HsmSettings, KeyAlgorithm};
use qsign::proto;

use crate::detached::{content, digest, request};
use crate::support::{env, key_label, server, sha256, Server, Who};

fn hsm(label: &str) -> Hsm {
    Hsm::open(
        &env().module,
        &qsign::app::pin(&env().config.hsm.pin).unwrap(),
        HsmSettings {
            token_label: env().config.hsm.token_label.clone(),
            sessions: 1,
            issuing_key_label: env().config.hsm.issuing_key_label.clone(),
            ephemeral_label: key_label(label),
            watchdog: None,
            key_pool: Vec::new(),
        },
    )
    .expect("hsm")
}

#[tokio::test(flavor = "multi_thread")]
async fn many_requests_good_and_bad_leave_no_key() {
    let label = "hygiene-many";
    let server = server(label).await;
    let mut client = server.client().await;
    let mut signed = 0;
    for i in 0..30u32 {
        let data = format!("doc {i}").into_bytes();
        let d = sha256(&data);
        let req = match i % 3 {
            0 => request(vec![content(&data)], env().token(&Who::jens(), &[d]), ""),
            1 => request(vec![content(&data)], "bad.token.here".into(), ""),
            _ => request(
                vec![digest(d)],
                env().token(&Who::jens(), &[sha256(b"other")]),
                "",
            ),
        };
        signed += u32::from(client.sign_detached(req).await.is_ok());
    }
    assert_eq!(signed, 10);
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_client_leaves_no_key() {
    let label = "hygiene-cancel";
    // One session: the second request waits until the cancelled one is done.
    let server = Server::start(env().core(label, |c| c.hsm.sessions = 1)).await;
    let mut client = server.client().await;
    let data = b"cancel me".to_vec();
    let mut slow = request(
        vec![content(&data)],
        env().token(&Who::jens(), &[sha256(&data)]),
        "",
    );
    slow.key_algorithm = proto::KeyAlgorithm::Rsa3072 as i32;
    let cancelled =
        tokio::time::timeout(Duration::from_millis(50), client.sign_detached(slow)).await;
    assert!(
        cancelled.is_err(),
        "the client gave up before the RSA-3072 key was ready"
    );
    let data = b"after".to_vec();
    client
        .sign_detached(request(
            vec![content(&data)],
            env().token(&Who::jens(), &[sha256(&data)]),
            "",
        ))
        .await
        .expect("the next request is served");
    assert_eq!(env().leftover_keys(label), 0);
}

#[test]
fn ephemeral_private_key_cannot_be_read() {
    let label = "hygiene-value";
    let hsm = hsm(label);
    hsm.run_blocking(|session| {
        let key = session.generate_ephemeral(KeyAlgorithm::EcP256)?;
        assert_eq!(
            session.read_value(key.private_handle())?,
            None,
            "CKA_VALUE is refused"
        );
        assert_eq!(
            session.objects_labelled(&key_label(label))?.len(),
            2,
            "both halves exist"
        );
        Ok(())
    })
    .expect("hsm work");
    assert_eq!(
        env().leftover_keys(label),
        0,
        "destroyed when the guard dropped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_destroys_on_error_and_panic() {
    let label = "hygiene-guard";
    let hsm = hsm(label);
    let failed = hsm
        .run(|session| {
            let _key = session.generate_ephemeral(KeyAlgorithm::EcP256)?;
            Err::<(), _>(qsign::Error::internal("failure after key generation"))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(env().leftover_keys(label), 0, "error path");
    let panicked = hsm
        .run(|session| -> Result<(), qsign::Error> {
            let _key = session.generate_ephemeral(KeyAlgorithm::EcP256)?;
            panic!("panic after key generation");
        })
        .await;
    assert!(panicked.is_err(), "a panic becomes an error, not a crash");
    assert_eq!(env().leftover_keys(label), 0, "panic path");
    // The pool still works afterwards.
    hsm.run(|session| {
        Ok(session
            .generate_ephemeral(KeyAlgorithm::EcP256)
            .map(|_| ())?)
    })
    .await
    .expect("pool usable after a panic");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_issued_certificate_reaches_the_state_dir() {
    let label = "hygiene-disk";
    let server = server(label).await;
    let mut client = server.client().await;
    let mut needles = Vec::new();
    for (who, seal) in [(Who::jens(), ""), (Who::sealer(), "dev")] {
        let data = format!("disk {seal}").into_bytes();
        let response = client
            .sign_detached(request(
                vec![content(&data)],
                env().token(&who, &[sha256(&data)]),
                seal,
            ))
            .await
            .expect("signed")
            .into_inner();
        let certificate = x509_cert::Certificate::from_der(&response.certificate).unwrap();
        needles.push(
            certificate
                .tbs_certificate
                .serial_number
                .as_bytes()
                .to_vec(),
        );
        needles.push(response.certificate);
    }
    let mut files = 0;
    let mut stack = vec![env().dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            for needle in &needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "{} contains an issued certificate",
                    path.display()
                );
            }
        }
    }
    assert!(files > 5, "the state dir and its token files were searched");
}
