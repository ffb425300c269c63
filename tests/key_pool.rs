//! `[hsm.key_pool]`: pre-generated RSA pairs sign, each once, the pool
//! refills to its size, and the token holds none of them after shutdown.
//! (After a lost login: `recovery::a_lost_login_empties_the_key_pool`.)

use der::{Decode, Encode};
use qsign::hsm::{Hsm, HsmSettings, KeyAlgorithm};
use qsign::proto;

use crate::detached::{cms_certificates, content, request};
use crate::recovery::wait_for;
use crate::support::{close_clean, env, key_label, sha256, tools, Server, Who};

const POOLED: usize = 3;

/// The SPKI (DER) of the one RSA certificate of `cms`: the signer's (the
/// development CAs' keys are EC).
fn rsa_signer_key(cms: &[u8]) -> Vec<u8> {
    let rsa: Vec<_> = cms_certificates(cms)
        .iter()
        .map(|der| x509_cert::Certificate::from_der(der).expect("certificate"))
        .map(|c| c.tbs_certificate.subject_public_key_info)
        .filter(|spki| spki.algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION)
        .collect();
    assert_eq!(rsa.len(), 1, "one RSA certificate, the signer's");
    rsa[0].to_der().expect("der")
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_rsa_keys_sign_once_refill_and_leave_with_shutdown() {
    let label = "key-pool";
    let core = env().core(label, |c| {
        c.hsm.key_pool = vec![(KeyAlgorithm::Rsa2048, POOLED)]
    });
    let hsm = core.hsm.clone();
    let server = Server::start(core).await;
    let full = || hsm.pooled_keys(KeyAlgorithm::Rsa2048) == POOLED;
    wait_for(full, "the pool to fill").await;
    assert_eq!(env().leftover_keys(label), 2 * POOLED, "pairs in the token");
    let gauge = qsign::metrics::encode();
    assert!(
        gauge.contains("qsign_hsm_key_pool_keys{algorithm=\"RSA-2048\"}"),
        "{gauge}"
    );

    let mut client = server.client().await;
    let mut keys = std::collections::BTreeSet::new();
    let requests = POOLED + 2;
    for i in 0..requests {
        let data = format!("pooled {i}").into_bytes();
        let mut req = request(
            vec![content(&data)],
            env().token(&Who::jens(), &[sha256(&data)]),
            "",
        );
        req.key_algorithm = proto::KeyAlgorithm::Rsa2048 as i32;
        let cms = client
            .sign_detached(req)
            .await
            .expect("signed")
            .into_inner()
            .cms;
        if tools::require("openssl") {
            tools::openssl_cms_verify(&cms[0], &data, &env().root_ca()).expect("openssl verifies");
        }
        keys.insert(rsa_signer_key(&cms[0]));
    }
    assert_eq!(keys.len(), requests, "a key signs one request only");
    let taken = hsm.pooled_keys_used();
    assert!(
        (POOLED as u64..=requests as u64).contains(&taken),
        "the first {POOLED} keys came from the full pool: {taken}"
    );

    // Refilled, and the pairs used are gone: only the pool's are left.
    wait_for(full, "the pool to refill").await;
    assert_eq!(env().leftover_keys(label), 2 * POOLED);

    server.stop().await;
    close_clean(hsm);
    assert_eq!(env().leftover_keys(label), 0, "shutdown destroyed the pool");
}

/// In process: a pooled private key is as sensitive as a generated one,
/// and two takes give two keys.
#[test]
fn a_pooled_private_key_cannot_be_read() {
    let label = "key-pool-value";
    let hsm = Hsm::open(
        &env().module,
        &qsign::app::pin(&env().config.hsm.pin).unwrap(),
        HsmSettings {
            token_label: env().config.hsm.token_label.clone(),
            sessions: 1,
            issuing_key_label: env().config.hsm.issuing_key_label.clone(),
            ephemeral_label: key_label(label),
            key_pool: vec![(KeyAlgorithm::Rsa2048, 2)],
            watchdog: None,
        },
    )
    .expect("hsm");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while hsm.pooled_keys(KeyAlgorithm::Rsa2048) < 2 {
        assert!(std::time::Instant::now() < deadline, "the pool fills");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    hsm.run_blocking(|session| {
        let first = session.generate_ephemeral(KeyAlgorithm::Rsa2048)?;
        let second = session.generate_ephemeral(KeyAlgorithm::Rsa2048)?;
        assert_ne!(first.public_key_info(), second.public_key_info());
        for key in [&first, &second] {
            assert_eq!(session.read_value(key.private_handle())?, None);
        }
        Ok(())
    })
    .expect("hsm work");
    assert_eq!(hsm.pooled_keys_used(), 2, "both came from the pool");
    close_clean(hsm);
    assert_eq!(env().leftover_keys(label), 0);
}
