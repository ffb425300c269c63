//! SPEC §3, §12 single use: a token spent on one replica is refused on every
//! other, of two replicas given one token at once exactly one signs, a
//! replay costs no HSM key, an HSM failure releases the token, and a
//! journal serves one server only.

use std::sync::Arc;
use std::time::Duration;

use qsign::proto::{self, SignDetachedRequest};
use qsign::signing::SigningCore;
use qsign::store::SpentTokens;
use tonic::Code;

use crate::detached::{content, request};
use crate::errors::{broken_core, verifier};
use crate::support::postgres::Postgres;
use crate::support::{database, env, sha256, Server, Who};

/// A fresh one-document request and its token.
fn fresh(round: &str) -> SignDetachedRequest {
    let data = format!("replay {round} {}", uuid::Uuid::new_v4()).into_bytes();
    let token = env().token(&Who::jens(), &[sha256(&data)]);
    request(vec![content(&data)], token, "")
}

async fn send(server: &Server, req: SignDetachedRequest) -> Result<(), tonic::Status> {
    server.client().await.sign_detached(req).await.map(drop)
}

fn assert_replayed(result: Result<(), tonic::Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert!(status.message().contains("already"), "{}", status.message());
}

/// Two servers `a` and `b` (replicas, or one server twice): a token spent
/// on one is refused by the other, and fired at both at once it signs
/// exactly once, ten rounds running.
async fn single_use_across(a: &Server, b: &Server) {
    let req = fresh("sequential");
    send(a, req.clone()).await.expect("first use signs");
    assert_replayed(send(b, req).await, "spent on the other server");
    for round in 0..10 {
        let req = fresh(&round.to_string());
        let (first, second) = tokio::join!(send(a, req.clone()), send(b, req));
        match (first, second) {
            (Ok(()), Err(refused)) | (Err(refused), Ok(())) => {
                assert_replayed(Err(refused), "the loser of a race")
            }
            (first, second) => panic!("round {round}: {first:?} and {second:?}"),
        }
    }
}

/// Two cores on one token, each with its own HSM sessions and key label,
/// with `[database]` at `url`.
fn replicas(label: &str, url: &str) -> (Arc<SigningCore>, Arc<SigningCore>) {
    let core = |replica: &str| {
        env().core(&format!("{label}-{replica}"), |c| {
            c.database = Some(database(url));
        })
    };
    (core("a"), core("b"))
}

fn no_keys_left(label: &str) {
    for replica in ["a", "b"] {
        let label = format!("{label}-{replica}");
        assert_eq!(env().leftover_keys(&label), 0, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_postgres_sign_a_token_once() {
    let Some(pg) = Postgres::start() else { return };
    let (a, b) = replicas("replay-pg", &pg.url);
    let (a, b) = (Server::start(a).await, Server::start(b).await);
    single_use_across(&a, &b).await;
    no_keys_left("replay-pg");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_sqlite_file_sign_a_token_once() {
    let url = env().sqlite("replay-sqlite").url;
    let (a, b) = replicas("replay-sqlite", &url);
    let (a, b) = (Server::start(a).await, Server::start(b).await);
    single_use_across(&a, &b).await;
    no_keys_left("replay-sqlite");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_server_in_memory_signs_a_token_once() {
    let core = env().core("replay-memory", |c| c.token.replay_journal = None);
    let server = Server::start(core).await;
    single_use_across(&server, &server).await;
    assert_eq!(env().leftover_keys("replay-memory"), 0);
}

/// The defect of issue 8: each replay of a spent token made the HSM
/// generate a key (~0.6 s of HSM time at RSA-3072) before refusing it.
#[tokio::test(flavor = "multi_thread")]
async fn replays_of_a_spent_token_make_no_key() {
    let core = env().core("replay-amplify", |_| {});
    let server = Server::start(core.clone()).await;
    let mut req = fresh("amplify");
    req.key_algorithm = proto::KeyAlgorithm::Rsa3072 as i32;
    send(&server, req.clone()).await.expect("first use signs");
    let before = core.hsm.ephemeral_keys_generated();
    let replays: Vec<_> = (0..20)
        .map(|_| {
            let (address, req) = (server.address, req.clone());
            tokio::spawn(async move {
                let mut client = Server::client_for(address).await;
                client.sign_detached(req).await.map(drop)
            })
        })
        .collect();
    for replay in replays {
        assert_replayed(replay.await.unwrap(), "a replay");
    }
    assert_eq!(
        core.hsm.ephemeral_keys_generated(),
        before,
        "a refused replay made no key"
    );
    assert_eq!(env().leftover_keys("replay-amplify"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_flight_is_refused_before_any_key() {
    let core = env().core("replay-in-flight", |c| c.hsm.sessions = 1);
    let server = Server::start(core.clone()).await;
    // Hold the only HSM session: the first request reserves, then waits.
    let (started, running) = tokio::sync::oneshot::channel();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let blocker = tokio::spawn({
        let core = core.clone();
        async move {
            core.hsm
                .run(move |_| {
                    let _ = started.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        }
    });
    running.await.expect("the HSM is held");
    let req = fresh("in flight");
    let first = tokio::spawn({
        let (address, req) = (server.address, req.clone());
        async move { Server::client_for(address).await.sign_detached(req).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = core.hsm.ephemeral_keys_generated();
    assert_replayed(
        send(&server, req.clone()).await,
        "reserved by a request in flight",
    );
    assert_eq!(core.hsm.ephemeral_keys_generated(), before);
    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    first.await.unwrap().expect("the first request signs");
    assert_replayed(send(&server, req).await, "spent");
    assert_eq!(env().leftover_keys("replay-in-flight"), 0);
}

/// An HSM failure on one replica releases the token in the shared
/// database: another replica then signs with it.
#[tokio::test(flavor = "multi_thread")]
async fn an_hsm_failure_releases_the_token_for_every_replica() {
    let healthy = env().core("replay-release", |c| {
        c.database = Some(env().sqlite("replay-release"));
    });
    let database = healthy.database.clone().expect("a database");
    let ledger = Arc::new(SpentTokens::new(database));
    let broken = Server::start(broken_core(&healthy, verifier().with_ledger(ledger))).await;
    let healthy = Server::start(healthy).await;
    let req = fresh("release");
    let status = send(&broken, req.clone()).await.expect_err("no HSM");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    send(&healthy, req.clone())
        .await
        .expect("released: the other replica signs");
    assert_replayed(send(&broken, req).await, "spent by the other replica");
    assert_eq!(env().leftover_keys("replay-release"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_one_journal_refuses_to_start() {
    let first = env().core("replay-journal", |_| {});
    let mut config = env().config.clone();
    config.database = None;
    config.registry = None;
    config.audit = None;
    // The journal `Env::core` gave the first.
    config.token.replay_journal = Some(env().dir.join("spent-tokens-replay-journal"));
    let second = qsign::app::signing_core(&config, &env().module);
    let err = second.err().expect("the journal is locked");
    assert_eq!(err.kind(), qsign::ErrorKind::FailedPrecondition);
    assert!(
        err.message().contains("in use by another"),
        "{}",
        err.message()
    );
    drop(first);
    qsign::app::signing_core(&config, &env().module).expect("free again once the first is gone");
}
