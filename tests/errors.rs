//! SPEC §7: every error class gets its code and a message a person can act on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qsign::auth::dev::DevIdp;
use qsign::hsm::{Hsm, HsmSettings};
use qsign::proto::{self, SignDetachedRequest};
use qsign::signing::SigningCore;
use tonic::Code;

use crate::detached::{content, digest, request};
use crate::support::{env, server, sha256, Server, Who};

async fn code_of(server: &Server, req: SignDetachedRequest) -> (Code, String) {
    let status = server
        .client()
        .await
        .sign_detached(req)
        .await
        .expect_err("request must be refused");
    (status.code(), status.message().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn token_problems_are_unauthenticated() {
    let server = server("err-token").await;
    let data = b"doc".to_vec();
    let d = sha256(&data);
    let who = Who::jens();
    let now = SystemTime::now();
    let foreign = DevIdp::generate()
        .mint(&who.claims(&[d]), now, Duration::from_secs(60))
        .unwrap();
    let expired = env().token_at(
        &who,
        &[d],
        now - Duration::from_secs(3600),
        Duration::from_secs(300),
    );
    let future = env().token_at(
        &who,
        &[d],
        now + Duration::from_secs(3600),
        Duration::from_secs(300),
    );
    for (case, token) in [
        ("missing", String::new()),
        ("garbage", "not.a.token".to_owned()),
        ("foreign IdP", foreign),
        ("expired", expired),
        ("issued in the future", future),
    ] {
        let (code, message) = code_of(&server, request(vec![content(&data)], token, "")).await;
        assert_eq!(code, Code::Unauthenticated, "{case}: {message}");
        assert!(!message.is_empty());
    }
    assert_eq!(env().leftover_keys("err-token"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_token_is_refused() {
    let server = server("err-replay").await;
    let data = b"replayed".to_vec();
    let token = env().token(&Who::jens(), &[sha256(&data)]);
    let mut client = server.client().await;
    client
        .sign_detached(request(vec![content(&data)], token.clone(), ""))
        .await
        .expect("first use signs");
    let (code, message) = code_of(&server, request(vec![content(&data)], token, "")).await;
    assert_eq!(code, Code::Unauthenticated, "{message}");
    assert!(
        message.contains("already") || message.contains("replay") || message.contains("used"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_does_not_forget_spent_tokens() {
    let data = b"signed before the restart".to_vec();
    let token = env().token(&Who::jens(), &[sha256(&data)]);
    let before = Server::start(env().core("err-restart", |_| {})).await;
    before
        .client()
        .await
        .sign_detached(request(vec![content(&data)], token.clone(), ""))
        .await
        .expect("first use signs");
    before.stop().await;
    // A new core on the same journal, as after `qsign serve` restarts.
    let after = Server::start(env().core("err-restart", |_| {})).await;
    let (code, message) = code_of(&after, request(vec![content(&data)], token, "")).await;
    assert_eq!(code, Code::Unauthenticated, "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_for_a_cannot_sign_b() {
    let server = server("err-cover").await;
    let a = b"document A".to_vec();
    let b = b"document B".to_vec();
    let token = env().token(&Who::jens(), &[sha256(&a)]);
    let (code, message) = code_of(&server, request(vec![content(&b)], token, "")).await;
    assert_eq!(code, Code::PermissionDenied, "{message}");
    // One covered and one not: the whole batch is refused.
    let token = env().token(&Who::jens(), &[sha256(&a)]);
    let (code, _) = code_of(&server, request(vec![content(&a), content(&b)], token, "")).await;
    assert_eq!(code, Code::PermissionDenied);
    // Digest mode: same rule.
    let token = env().token(&Who::jens(), &[sha256(&a)]);
    let (code, _) = code_of(&server, request(vec![digest(sha256(&b))], token, "")).await;
    assert_eq!(code, Code::PermissionDenied);
    assert_eq!(env().leftover_keys("err-cover"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_rights_are_enforced() {
    let server = server("err-profile").await;
    let data = b"sealed?".to_vec();
    let d = sha256(&data);
    // Seal without the profile listed in the token.
    let (code, message) = code_of(
        &server,
        request(vec![content(&data)], env().token(&Who::jens(), &[d]), "dev"),
    )
    .await;
    assert_eq!(code, Code::PermissionDenied, "{message}");
    // Unknown profile.
    let (code, message) = code_of(
        &server,
        request(
            vec![content(&data)],
            env().token(&Who::sealer(), &[d]),
            "nope",
        ),
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    // Personal signature for an organisation without a profile.
    let mut stranger = Who::jens();
    stranger.cvr = "87654321";
    let (code, message) = code_of(
        &server,
        request(vec![content(&data)], env().token(&stranger, &[d]), ""),
    )
    .await;
    assert_eq!(code, Code::PermissionDenied, "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_arguments() {
    let server = server("err-invalid").await;
    let token = env().token(&Who::jens(), &[[0u8; 32]]);
    let short = proto::Document {
        data: Some(proto::document::Data::Sha256Digest(vec![0u8; 31])),
    };
    let (code, message) = code_of(&server, request(vec![short], token, "")).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("32 bytes"), "{message}");
    let (code, message) = code_of(
        &server,
        request(vec![], env().token(&Who::jens(), &[[0u8; 32]]), ""),
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    let (code, _) = code_of(
        &server,
        request(
            vec![proto::Document { data: None }],
            env().token(&Who::jens(), &[[0u8; 32]]),
            "",
        ),
    )
    .await;
    assert_eq!(code, Code::InvalidArgument);
    let mut req = request(
        vec![digest([0u8; 32])],
        env().token(&Who::jens(), &[[0u8; 32]]),
        "",
    );
    req.key_algorithm = 99;
    assert_eq!(code_of(&server, req).await.0, Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_over_the_limits_are_resource_exhausted() {
    let core = env().core("err-limits", |c| {
        c.limits.max_batch = 2;
        c.limits.max_document_bytes = 1 << 20;
    });
    let server = Server::start(core).await;
    let digests = [[1u8; 32], [2u8; 32], [3u8; 32]];
    let (code, message) = code_of(
        &server,
        request(
            digests.iter().map(|d| digest(*d)).collect(),
            env().token(&Who::jens(), &digests),
            "",
        ),
    )
    .await;
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    let big = vec![7u8; (1 << 20) + 1];
    let (code, message) = code_of(
        &server,
        request(
            vec![content(&big)],
            env().token(&Who::jens(), &[sha256(&big)]),
            "",
        ),
    )
    .await;
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    assert!(
        message.contains("digest"),
        "the message points to hash-only signing: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hsm_unavailable_is_unavailable_and_spends_nothing() {
    // A core on the same token whose sessions have lost their login: the HSM
    // refuses every key operation, as after a token reset.
    let base = env().core("err-hsm", |_| {});
    let hsm = Hsm::open(
        &env().module,
        &qsign::app::pin(&env().config.hsm.pin).unwrap(),
        HsmSettings {
            token_label: "no-such-token".into(),
            ..base.hsm.settings().clone()
        },
    );
    assert!(hsm.is_err(), "a missing token is refused at start");
    let err = hsm.err().unwrap();
    assert_eq!(
        qsign::Error::from(err).kind(),
        qsign::ErrorKind::Unavailable
    );

    let broken = broken_core(&base, verifier());
    let server = Server::start(broken.clone()).await;
    let data = b"no hsm".to_vec();
    let token = env().token(&Who::jens(), &[sha256(&data)]);
    let (code, message) = code_of(&server, request(vec![content(&data)], token.clone(), "")).await;
    assert_eq!(code, Code::Unavailable, "{message}");
    assert!(message.contains("HSM"), "{message}");
    // No key, nothing signed: the reservation was released, the signer's
    // activation is not spent.
    let now = std::time::SystemTime::now();
    let activation = broken.verifier.verify(&token, now).expect("still valid");
    broken
        .verifier
        .reserve(&activation, now)
        .await
        .expect("an HSM that cannot make a key does not burn the token")
        .commit()
        .await
        .expect("spent once");
}

/// A verifier like the development state's, remembering in memory.
pub fn verifier() -> qsign::auth::Verifier {
    qsign::auth::Verifier::new(
        qsign::auth::TokenPolicy::new(qsign::state::DEV_ISSUER, qsign::state::DEV_AUDIENCE),
        &std::fs::read_to_string(&env().config.token.jwks_file).unwrap(),
    )
    .unwrap()
}

/// `base` with an HSM whose login is gone (every key operation fails,
/// UNAVAILABLE) and `verifier`.
pub fn broken_core(base: &SigningCore, verifier: qsign::auth::Verifier) -> Arc<SigningCore> {
    Arc::new(SigningCore {
        hsm: HsmDown::hsm(),
        issuer: base.issuer.clone(),
        root: base.root.clone(),
        root_key_label: base.root_key_label.clone(),
        chain: base.chain.clone(),
        trust_chain: base.trust_chain.clone(),
        policy: base.policy.clone(),
        verifier,
        profiles: qsign::auth::Profiles::new(env().config.profiles.clone()).unwrap(),
        limits: base.limits.clone(),
        limiter: base.limiter.clone(),
        tsa: None,
        external_tsa: None,
        ocsp: None,
        database: base.database.clone(),
        registry: None,
        audit: None,
    })
}

/// An Hsm on a second token of the same SoftHSM whose login is gone.
struct HsmDown;

impl HsmDown {
    fn hsm() -> Hsm {
        let module = &env().module;
        let label = "qsign-down";
        let pin: cryptoki::types::AuthPin = "down-pin-1234".to_owned().into();
        if module.slot(label).unwrap().is_none() {
            module
                .init_token(label, &"down-so-pin-1234".to_owned().into(), &pin)
                .expect("second token");
        }
        let hsm = Hsm::open(
            module,
            &pin,
            HsmSettings {
                token_label: label.into(),
                sessions: 1,
                issuing_key_label: "none".into(),
                ephemeral_label: crate::support::key_label("err-hsm"),
                watchdog: None,
                key_pool: Vec::new(),
            },
        )
        .expect("open second token");
        hsm.logout().expect("logout");
        hsm
    }
}
