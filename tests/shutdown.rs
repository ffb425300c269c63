//! SIGTERM and SIGINT of `qsign serve` (SPEC §12): requests in flight are
//! answered, nothing is left in the token, exit 0; a client holding a
//! request open delays the exit by the grace at most.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::cli::free_port;
use crate::limits::{prefix, raw_call, FIRST};
use crate::recovery::{stop_clean, wait_for};
use crate::support::binary::{self, Load, Outcome, Qsign};

/// Answered by the server, or refused before it accepted anything: the
/// client could not connect (the listener is closed) or the server refused
/// a new stream (HTTP/2 GOAWAY, REFUSED_STREAM); never a request cut.
fn answered_or_not_accepted(outcome: &Outcome) -> bool {
    let refused = ["tcp connect error", "Connection refused", "REFUSED_STREAM"];
    outcome.code == Code::Ok
        || (outcome.code == Code::Unavailable
            && refused.iter().any(|r| outcome.message.contains(r)))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_answers_what_was_accepted_and_exits_0() {
    let port = free_port();
    let limits = [("requests_per_second_per_caller", "10000")];
    let config = binary::config("sigterm", &qsign::state::softhsm_module(), port, &limits);
    let qsign = Qsign::start(&config, port, &[]);
    let load = Load::start(&qsign, 4).await;
    wait_for(|| load.count() >= 20, "the load to get going").await;
    let before = load.count();
    stop_clean(qsign, "sigterm");
    let outcomes = load.stop().await;
    let ok = outcomes.iter().filter(|o| o.code == Code::Ok).count();
    assert!(ok >= before.min(20), "{ok} signatures");
    for outcome in &outcomes {
        assert!(answered_or_not_accepted(outcome), "{outcome:?}");
    }
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
