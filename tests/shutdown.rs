//! SIGTERM and SIGINT of `qsign serve` (SPEC §12): requests in flight are
//! answered, nothing is left in the token, exit 0; a client holding a
//! request open delays the exit by the grace at most.

pub mod http;

use std::time::{Duration, Instant};

use tonic::Code;

use crate::cli::free_port;
use crate::limits::{prefix, raw_call, FIRST};
use crate::recovery::{stop_clean, wait_for};
use crate::support::binary::{self, sign_with, Load, Qsign};

/// SIGTERM under load: every request is answered, or was never accepted:
/// a failed one's activation is not spent, so it signs after a restart.
/// (A stream the client opened after the server's final GOAWAY was not
/// processed, RFC 9113 §6.8; tonic reports the GOAWAY's NO_ERROR as
/// INTERNAL "h2 protocol error", a refused connection as UNAVAILABLE.)
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_answers_what_was_accepted_and_exits_0() {
    let port = free_port();
    let limits = [("requests_per_second_per_caller", "10000")];
    let config = binary::config("sigterm", &qsign::state::softhsm_module(), port, &limits);
    let qsign = Qsign::start(&config, port, &[]);
    let load = Load::start(&qsign, 4).await;
    wait_for(|| load.count() >= 20, "the load to get going").await;
    stop_clean(qsign, "sigterm");
    let outcomes = load.stop().await;
    assert!(outcomes.iter().filter(|o| o.code == Code::Ok).count() >= 20);

    let qsign = Qsign::start(&config, port, &[]);
    let mut client = qsign.client().await;
    let failed = outcomes.iter().filter(|o| o.code != Code::Ok);
    for outcome in failed.take(100) {
        let again = sign_with(&mut client, &outcome.data, outcome.token.clone()).await;
        assert_eq!(again.code, Code::Ok, "{outcome:?} was spent: {again:?}");
    }
    stop_clean(qsign, "sigterm");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_with_a_request_held_open_exits_within_the_grace() {
    let port = free_port();
    let limits = [
        ("request_timeout_seconds", "120"),
        ("shutdown_grace_seconds", "2"),
    ];
    let config = binary::config("sigint", &qsign::state::softhsm_module(), port, &limits);
    let mut qsign = Qsign::start(&config, port, &[]);
    // A request whose body never ends: the server waits for it.
    let held = raw_call(([127, 0, 0, 1], port).into(), FIRST, "SignDetached").await;
    let body = held.body.as_ref().expect("body");
    body.send(prefix(1000)).await.expect("prefix sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    qsign.signal("INT");
    let status = qsign.wait(Duration::from_secs(15));
    let log = qsign.log();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "exited {took:?} after SIGINT with a grace of 2 s\n{log}"
    );
    assert!(log.contains("ephemeral_keys_alive=0"), "{log}");
}
