//! SPEC §12 recovery: a network HSM lost and back under load (the fixture's
//! SoftHSM token behind p11-kit's remoting, its server killed and started
//! again) and a `kill -9` of qsign under load, both ending in a serving,
//! clean qsign without operator action.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::cli::free_port;
use crate::shutdown::http;
use crate::support::binary::{self, sign, sign_with, Load, Qsign};
use crate::support::hang;
use crate::support::token_copy::TokenCopy;
use crate::support::{close_clean, env, key_label, tools};

/// p11-kit's client module (Debian `p11-kit-modules`).
pub const P11_KIT_CLIENT: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";
/// The request deadline of these servers: failures must come before it.
const DEADLINE: Duration = Duration::from_secs(5);

/// `p11-kit server` exporting the fixture's token on a unix socket; it forks
/// one process per connection, all in its own process group.
pub struct P11KitServer {
    child: Child,
    /// Killed and reaped: its pid (its group's id) may be another's now.
    killed: bool,
}

impl P11KitServer {
    /// Serves `token`'s copy: stopping or killing this server touches no
    /// other test's token.
    pub fn start(socket: &Path, token: &TokenCopy) -> Self {
        let _ = std::fs::remove_file(socket);
        let child = Command::new("p11-kit")
            .args(["server", "--foreground", "--name"])
            .arg(socket)
            .arg("--provider")
            .arg(qsign::state::softhsm_module())
            .arg("pkcs11:token=qsign")
            .env("SOFTHSM2_CONF", &token.conf)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("p11-kit server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "p11-kit server made no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            killed: false,
        }
    }

    /// As a network HSM is lost: the server and every connection process
    /// die at once (SIGKILL to the process group).
    fn kill(&mut self) {
        if !self.killed {
            self.signal("KILL");
            let _ = self.child.wait();
            self.killed = true;
        }
    }

    /// As a network HSM hangs: the server and every connection process
    /// stop (SIGSTOP), so that every PKCS#11 call blocks; SIGCONT resumes.
    fn signal(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), "--", &group])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn p11_kit_available() -> bool {
    let module = Path::new(P11_KIT_CLIENT).exists();
    if !module {
        assert!(
            !tools::in_ci(),
            "{P11_KIT_CLIENT} is required under CI=true (softhsm/setup.sh --verifiers)"
        );
    }
    tools::require("p11-kit") && module
}

/// A copy of the fixture's token for a p11-kit server of the test's own,
/// on a socket of its own.
pub struct RemoteToken {
    pub token: TokenCopy,
    socket: PathBuf,
    _temp: tempfile::TempDir,
}

impl RemoteToken {
    /// `None` without p11-kit (outside CI).
    pub fn new() -> Option<Self> {
        if !p11_kit_available() {
            return None;
        }
        let temp = tempfile::tempdir().unwrap();
        Some(Self {
            token: TokenCopy::new(),
            socket: temp.path().join("p11-kit.sock"),
            _temp: temp,
        })
    }

    pub fn serve(&self) -> P11KitServer {
        P11KitServer::start(&self.socket, &self.token)
    }

    /// `qsign serve` on `config` (whose module is p11-kit's client),
    /// reaching the server.
    pub fn qsign(&self, config: &Path, port: u16) -> Qsign {
        let address = format!("unix:path={}", self.socket.display());
        Qsign::start(config, port, &[("P11_KIT_SERVER_ADDRESS", &address)])
    }
}

/// Every request of a load ended OK or UNAVAILABLE (never INTERNAL, never
/// a hang) within the deadline.
fn ok_or_unavailable_in_time(outcomes: &[binary::Outcome]) {
    for outcome in outcomes {
        assert!(
            matches!(outcome.code, Code::Ok | Code::Unavailable),
            "{outcome:?}"
        );
        assert!(
            outcome.elapsed < DEADLINE + Duration::from_secs(1),
            "{outcome:?}"
        );
    }
}

#[test]
fn a_network_hsm_lost_and_back_under_load() {
    hang::run(Duration::from_secs(180), lost_and_back());
}

async fn lost_and_back() {
    let Some(remote) = RemoteToken::new() else {
        return;
    };
    let mut hsm = remote.serve();
    let port = free_port();
    let limits = [
        ("request_timeout_seconds", "5"),
        ("requests_per_second_per_caller", "10000"),
    ];
    let config = binary::config("recovery", Path::new(P11_KIT_CLIENT), port, &limits);
    let qsign = remote.qsign(&config, port);
    let mut client = qsign.client().await;
    let first = sign(&mut client, b"before the outage").await;
    assert_eq!(first.code, Code::Ok, "{first:?}\n{}", qsign.log());

    let load = Load::start(&qsign, 4).await;
    wait_for(|| load.count() >= 20, "the load to get going").await;
    hsm.kill();
    let not_serving = ServingStatus::NotServing as i32;
    assert!(
        qsign.await_health(not_serving, DEADLINE).await,
        "NOT_SERVING while the token is gone\n{}",
        qsign.log()
    );
    let failed = sign(&mut client, b"during the outage").await;
    assert_eq!(failed.code, Code::Unavailable, "{failed:?}");
    assert!(failed.elapsed < DEADLINE, "{failed:?}");
    // Long enough for several attempts with back-off.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let hsm = remote.serve();
    let serving = ServingStatus::Serving as i32;
    assert!(
        qsign.await_health(serving, Duration::from_secs(30)).await,
        "SERVING again without a restart\n{}",
        qsign.log()
    );
    let outcomes = load.stop().await;
    ok_or_unavailable_in_time(&outcomes);
    let lost = outcomes.iter().filter(|o| o.code == Code::Unavailable);
    assert!(lost.count() > 0, "the load saw the outage");
    let after = sign(&mut client, b"after the outage").await;
    assert_eq!(after.code, Code::Ok, "{after:?}\n{}", qsign.log());
    // The failed request's activation was not spent: it signs now.
    let reused = sign_with(&mut client, b"during the outage", failed.token).await;
    assert_eq!(reused.code, Code::Ok, "{reused:?}");
    assert!(qsign.log().contains("the HSM token is back"));

    stop_clean_on(qsign, &remote.token);
    drop(hsm);
}

/// SIGSTOP of the p11-kit server under load: the calls in progress block,
/// the watchdog's probe finds no answer within `watchdog_seconds` and the
/// token is Down; every request ends OK or UNAVAILABLE within its deadline,
/// none spends its token, and after SIGCONT qsign serves again by itself.
#[test]
fn a_network_hsm_that_hangs_under_load_and_resumes() {
    hang::run(Duration::from_secs(180), hangs_and_resumes());
}

async fn hangs_and_resumes() {
    let Some(remote) = RemoteToken::new() else {
        return;
    };
    let hsm = remote.serve();
    let port = free_port();
    let limits = [
        ("request_timeout_seconds", "5"),
        ("requests_per_second_per_caller", "10000"),
    ];
    let config = binary::config("hung", Path::new(P11_KIT_CLIENT), port, &limits);
    let watchdog = Duration::from_secs(2);
    set_watchdog(&config, watchdog);
    let http_port = free_port();
    http::http_listener(&config, http_port);
    let qsign = remote.qsign(&config, port);
    let mut client = qsign.client().await;
    let first = sign(&mut client, b"before the hang").await;
    assert_eq!(first.code, Code::Ok, "{first:?}\n{}", qsign.log());

    let load = Load::start(&qsign, 4).await;
    wait_for(|| load.count() >= 20, "the load to get going").await;
    hsm.signal("STOP");
    let hung = Instant::now();
    // A time-stamp asked before the watchdog notices: its HSM job waits
    // behind the stuck ones; the answer must not wait for the token.
    let stamped = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http_port))
            .await
            .expect("the HTTP listener");
        let query = http::time_stamp_query();
        let request = [http::post_head(query.len()).into_bytes(), query].concat();
        let answer = http::exchange(&mut stream, &request).await;
        (answer, hung.elapsed())
    });
    let not_serving = ServingStatus::NotServing as i32;
    assert!(
        qsign.await_health(not_serving, watchdog + DEADLINE).await,
        "NOT_SERVING while the token hangs\n{}",
        qsign.log()
    );
    assert!(
        hung.elapsed() >= watchdog,
        "the watchdog waited its timeout"
    );
    // Down: refused at once, not after a deadline spent waiting.
    let failed = sign(&mut client, b"during the hang").await;
    assert_eq!(failed.code, Code::Unavailable, "{failed:?}");
    assert!(failed.elapsed < Duration::from_secs(1), "{failed:?}");
    // Hung past a whole deadline: requests stuck in a call time out.
    tokio::time::sleep((DEADLINE + Duration::from_secs(1)).saturating_sub(hung.elapsed())).await;
    let during = load.count();
    let (answer, took) = stamped.await.unwrap();
    // Whole and in time: the RFC 3161 rejection once the watchdog has the
    // token Down (the queued job fails), or 503 from the HTTP deadline.
    assert!(
        matches!(answer, http::Answer::Complete { .. }),
        "the time-stamp during the hang: {answer:?}\n{}",
        qsign.log()
    );
    assert!(took < DEADLINE + Duration::from_secs(2), "{took:?}");

    hsm.signal("CONT");
    let serving = ServingStatus::Serving as i32;
    assert!(
        qsign.await_health(serving, Duration::from_secs(30)).await,
        "SERVING again without a restart\n{}",
        qsign.log()
    );
    wait_for(|| load.count() >= during + 20, "the load to sign again").await;
    let outcomes = load.stop().await;
    ok_or_unavailable_in_time(&outcomes);
    let lost: Vec<_> = outcomes
        .iter()
        .filter(|o| o.code == Code::Unavailable)
        .collect();
    assert!(!lost.is_empty(), "the load saw the hang");
    let after = sign(&mut client, b"after the hang").await;
    assert_eq!(after.code, Code::Ok, "{after:?}\n{}", qsign.log());
    // No failed request spent its token: each signs now.
    let reused = sign_with(&mut client, b"during the hang", failed.token).await;
    assert_eq!(reused.code, Code::Ok, "{reused:?}");
    for outcome in lost {
        let again = sign_with(&mut client, &outcome.data, outcome.token.clone()).await;
        assert_eq!(again.code, Code::Ok, "{outcome:?} was spent: {again:?}");
    }
    let log = qsign.log();
    assert!(log.contains("did not answer within 2s"), "{log}");
    assert!(log.contains("the HSM token is back"), "{log}");
    stop_clean_on(qsign, &remote.token);
    drop(hsm);
}

/// SIGTERM while the token hangs (the p11-kit server stopped, requests
/// stuck inside their calls): the grace, then the watchdog's timeout for
/// the HSM's threads; the stuck ones are left behind, no session closes,
/// no C_Finalize, exit 69 in bounded time; the token keeps nothing of it
/// and serves the next qsign.
#[test]
fn sigterm_while_the_token_hangs_exits_in_bounded_time() {
    hang::run(Duration::from_secs(180), sigterm_while_hung());
}

async fn sigterm_while_hung() {
    let Some(remote) = RemoteToken::new() else {
        return;
    };
    let hsm = remote.serve();
    let port = free_port();
    let (grace, watchdog) = (Duration::from_secs(2), Duration::from_secs(2));
    // A deadline past the grace: the stuck requests are still waiting.
    let limits = [
        ("request_timeout_seconds", "30"),
        ("requests_per_second_per_caller", "10000"),
        ("shutdown_grace_seconds", "2"),
    ];
    let config = binary::config("hungstop", Path::new(P11_KIT_CLIENT), port, &limits);
    set_watchdog(&config, watchdog);
    let mut qsign = remote.qsign(&config, port);
    let load = Load::start(&qsign, 4).await;
    wait_for(|| load.count() >= 20, "the load to get going").await;
    hsm.signal("STOP");
    let not_serving = ServingStatus::NotServing as i32;
    assert!(
        qsign.await_health(not_serving, watchdog + DEADLINE).await,
        "NOT_SERVING while the token hangs\n{}",
        qsign.log()
    );

    let signalled = Instant::now();
    qsign.signal("TERM");
    let status = qsign.wait(Duration::from_secs(60));
    let took = signalled.elapsed();
    let log = qsign.log();
    assert_eq!(status.and_then(|s| s.code()), Some(69), "{status:?}\n{log}");
    let bound = grace + watchdog + Duration::from_secs(3);
    assert!(took < bound, "exited {took:?} after SIGTERM\n{log}");
    let said = log.lines().find(|l| l.contains("the HSM token hangs"));
    let said = said.unwrap_or_else(|| panic!("the error line\n{log}"));
    assert!(said.contains("ERROR") && said.contains("calls_in_progress="));
    assert!(
        !log.contains("HSM sessions closed"),
        "no session closed\n{log}"
    );
    // What was left behind, for a person reading the test's output.
    let stopping = log.lines().skip_while(|l| !l.contains("stopping"));
    eprintln!("exited {took:?} after SIGTERM");
    stopping
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .for_each(|l| eprintln!("{l}"));
    // Each request ended, answered or cut with the connection.
    let outcomes = load.stop().await;
    assert!(outcomes.iter().any(|o| o.code == Code::Ok));

    // The connection's end drops the session objects: no token object.
    hsm.signal("CONT");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(hsm);
    assert_eq!(remote.token.new_objects(), Vec::<PathBuf>::new());
    let hsm = remote.serve();
    let qsign = remote.qsign(&config, port);
    let mut client = qsign.client().await;
    let after = sign(&mut client, b"after the hung shutdown").await;
    assert_eq!(after.code, Code::Ok, "{after:?}\n{}", qsign.log());
    stop_clean_on(qsign, &remote.token);
    drop(hsm);
}

/// `[hsm] watchdog_seconds` in the test's config.
fn set_watchdog(config: &Path, timeout: Duration) {
    let text = std::fs::read_to_string(config).unwrap();
    let line = format!("watchdog_seconds = {}", timeout.as_secs());
    let changed = text.replacen("watchdog_seconds = 10", &line, 1);
    assert!(changed.contains(&line), "watchdog_seconds in {config:?}");
    std::fs::write(config, changed).unwrap();
}

/// SIGTERM: exit 0 with no ephemeral key alive and no key object of the
/// test's label in the fixture's token.
pub fn stop_clean(qsign: Qsign, label: &str) {
    stopped_clean(qsign);
    assert_eq!(env().leftover_keys(label), 0);
}

/// As [`stop_clean`], for a server on a copy of the token: no token
/// object made since the copy.
pub fn stop_clean_on(qsign: Qsign, token: &TokenCopy) {
    stopped_clean(qsign);
    assert_eq!(token.new_objects(), Vec::<std::path::PathBuf>::new());
}

fn stopped_clean(mut qsign: Qsign) {
    qsign.signal("TERM");
    let status = qsign.wait(Duration::from_secs(40));
    let log = qsign.log();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(log.contains("ephemeral_keys_alive=0"), "{log}");
    assert!(!log.contains("still in use"), "every session closed\n{log}");
}

#[test]
fn kill_9_under_load_then_restart_on_the_same_state() {
    hang::run(Duration::from_secs(180), killed_and_restarted());
}

async fn killed_and_restarted() {
    let port = free_port();
    let limits = [("requests_per_second_per_caller", "10000")];
    let config = binary::config("crash", &qsign::state::softhsm_module(), port, &limits);
    let qsign = Qsign::start(&config, port, &[]);
    let load = Load::start(&qsign, 4).await;
    wait_for(|| load.count() >= 20, "the load to get going").await;
    qsign.signal("KILL");
    drop(qsign);
    let outcomes = load.stop().await;
    assert!(outcomes.iter().any(|o| o.code == Code::Ok));
    // What the killed process left verifies as it is, before any restart.
    let left = binary::audit_verified(&config);

    let qsign = Qsign::start(&config, port, &[]);
    let mut client = qsign.client().await;
    let signed = sign(&mut client, b"after the crash").await;
    assert_eq!(signed.code, Code::Ok, "{signed:?}\n{}", qsign.log());
    persistent_keys_only();
    // The restart wrote on top of the crash's log: still one valid log,
    // longer by the signature above at least.
    let again = binary::audit_verified(&config);
    assert!(
        record_count(&again) > record_count(&left),
        "{left}\n{again}"
    );
    stop_clean(qsign, "crash");
    binary::audit_verified(&config);
}

/// The record count of `qsign audit verify`'s "audit log OK: N records".
fn record_count(said: &str) -> u64 {
    said.split_whitespace()
        .skip_while(|w| *w != "OK:")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a record count in {said:?}"))
}

/// The token holds the development state's persistent keys and nothing
/// else: an ephemeral key or a session copy is never a token object.
fn persistent_keys_only() {
    use qsign::state::{
        AUDIT_KEY_LABEL, ISSUING_KEY_LABEL, OCSP_KEY_LABEL, ORGANIZATION_CA_KEY_LABEL,
        ROOT_KEY_LABEL, TSA_KEY_LABEL,
    };
    let labels = env()
        .hsm
        .run_blocking(|s| Ok(s.token_object_labels()?))
        .expect("token objects");
    let expected = [
        ROOT_KEY_LABEL,
        ISSUING_KEY_LABEL,
        TSA_KEY_LABEL,
        OCSP_KEY_LABEL,
        AUDIT_KEY_LABEL,
        ORGANIZATION_CA_KEY_LABEL,
    ];
    // `audit::init_audit_makes_the_key_once` adds a persistent key of its
    // own to the shared token, possibly while this test runs.
    let other_tests = ["qsign-audit-init-test"];
    for label in &labels {
        assert!(
            expected.contains(&label.as_str()) || other_tests.contains(&label.as_str()),
            "token object {label:?}"
        );
    }
    assert!(!labels.iter().any(|l| l.starts_with(&key_label(""))));
}

/// Polls `done` every 50 ms for up to 30 s.
pub async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// In process, on a token of its own (a logout would log every test out of
/// the fixture's): a lost login (CKR_USER_NOT_LOGGED_IN) fails the request
/// UNAVAILABLE, turns Down, and the recovery logs in again: Up, signing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_login_is_recovered_in_process() {
    use qsign::hsm::{Health, Hsm, HsmSettings, KeyAlgorithm};
    let module = &env().module;
    let (token, key) = ("qsign-relogin", "relogin-key");
    let pin = own_token(token);
    let settings = HsmSettings {
        token_label: token.into(),
        sessions: 1,
        issuing_key_label: key.into(),
        ephemeral_label: key_label("relogin"),
        watchdog: None,
        key_pool: Vec::new(),
    };
    let hsm = Hsm::open(module, &pin, settings).expect("open");
    hsm.run_blocking(move |s| {
        if !s.has_private_key(key)? {
            s.generate_persistent(KeyAlgorithm::EcP256, key)?;
        }
        Ok(())
    })
    .expect("probe key");
    let ephemeral = |hsm: &Hsm| {
        hsm.run_blocking(|s| Ok(s.generate_ephemeral(KeyAlgorithm::EcP256).map(drop)?))
    };
    ephemeral(&hsm).expect("signs before");
    let mut health = hsm.health();
    hsm.logout().expect("logout");
    let failed = ephemeral(&hsm).expect_err("logged out");
    assert_eq!(failed.kind(), qsign::ErrorKind::Unavailable, "{failed}");
    // Down, then Up (the two may come faster than a look at each).
    wait_for(|| health.has_changed().unwrap_or(false), "Down").await;
    let up = health.wait_for(|h| *h == Health::Up);
    let up = tokio::time::timeout(Duration::from_secs(10), up).await;
    up.expect("Up in time").expect("health");
    ephemeral(&hsm).expect("signs after");
    assert_eq!(hsm.ephemeral_keys_alive(), 0);
    close_clean(hsm);
}

/// A token of the test's own (a logout logs out every session of the
/// process on that token), made once; one at a time, as two could pick
/// the same free slot.
fn own_token(token: &str) -> cryptoki::types::AuthPin {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INIT.lock().unwrap_or_else(|p| p.into_inner());
    let module = &env().module;
    let pin: cryptoki::types::AuthPin = "relogin-pin-1234".to_owned().into();
    if module.slot(token).unwrap().is_none() {
        let so_pin = "relogin-so-1234".to_owned().into();
        module.init_token(token, &so_pin, &pin).expect("token");
    }
    pin
}

/// The key pool after a lost login: C_Logout destroys private session
/// objects (PKCS#11 v3.0 §5.6), so the pooled pairs are gone. A request
/// that takes one generates instead (and fails UNAVAILABLE, logged out);
/// recovery empties the pool, which refills and serves again, and
/// shutdown leaves no key.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_login_empties_the_key_pool() {
    use qsign::hsm::{Health, Hsm, HsmSettings, KeyAlgorithm};
    use signature::Signer;
    let module = &env().module;
    let (token, key) = ("qsign-relogin-pool", "relogin-pool-key");
    let pin = own_token(token);
    let settings = HsmSettings {
        token_label: token.into(),
        sessions: 1,
        issuing_key_label: key.into(),
        ephemeral_label: key_label("relogin-pool"),
        key_pool: vec![(KeyAlgorithm::Rsa2048, 2)],
        watchdog: None,
    };
    let hsm = Hsm::open(module, &pin, settings.clone()).expect("open");
    hsm.run_blocking(move |s| {
        if !s.has_private_key(key)? {
            s.generate_persistent(KeyAlgorithm::EcP256, key)?;
        }
        Ok(())
    })
    .expect("probe key");
    let full = || hsm.pooled_keys(KeyAlgorithm::Rsa2048) == 2;
    wait_for(full, "the pool to fill").await;
    let sign = |hsm: &Hsm| {
        hsm.run_blocking(|s| {
            let key = s.generate_ephemeral(KeyAlgorithm::Rsa2048)?;
            key.try_sign(b"pooled")
                .map_err(|e| qsign::Error::internal(e.to_string()))?;
            Ok(())
        })
    };
    let label = key_label("relogin-pool");
    let objects = move |hsm: &Hsm| {
        let label = label.clone();
        hsm.run_blocking(move |s| Ok(s.objects_labelled(&label)?))
            .expect("objects")
    };
    sign(&hsm).expect("signs before");
    assert_eq!(hsm.pooled_keys_used(), 1);
    wait_for(full, "the pool to refill").await;
    let before = objects(&hsm);
    assert_eq!(before.len(), 4, "two pooled pairs");

    let mut health = hsm.health();
    hsm.logout().expect("logout");
    let failed = sign(&hsm).expect_err("logged out");
    assert_eq!(failed.kind(), qsign::ErrorKind::Unavailable, "{failed}");
    assert_eq!(hsm.pooled_keys_used(), 1, "a stale pair is not used");
    wait_for(|| health.has_changed().unwrap_or(false), "Down").await;
    let up = health.wait_for(|h| *h == Health::Up);
    let up = tokio::time::timeout(Duration::from_secs(10), up).await;
    up.expect("Up in time").expect("health");

    // Recovery closed the pool's session: its pairs are new objects (SoftHSM
    // keeps a logged-out application's private objects, hidden, until then).
    wait_for(full, "the pool to refill after recovery").await;
    let after = objects(&hsm);
    assert_eq!(after.len(), 4, "the pool holds real pairs");
    assert!(
        !after.iter().any(|h| before.contains(h)),
        "no pair from before the recovery: {before:?} {after:?}"
    );
    sign(&hsm).expect("signs after, with a fresh pooled pair");
    assert_eq!(hsm.pooled_keys_used(), 2);
    close_clean(hsm);
    let look = Hsm::open(
        module,
        &pin,
        HsmSettings {
            key_pool: Vec::new(),
            ..settings
        },
    )
    .expect("open");
    assert_eq!(objects(&look).len(), 0, "no key of the pool is left");
    close_clean(look);
}

/// The issue's own finding: SoftHSM's token directory moved away under a
/// running server and back (on a copy of the fixture's token). B-LT reads
/// token objects, so it fails UNAVAILABLE (not INTERNAL) while the
/// directory is gone, and signs again once it is back, no restart.
#[test]
fn a_softhsm_token_directory_moved_away_and_back() {
    hang::run(Duration::from_secs(180), moved_away_and_back());
}

async fn moved_away_and_back() {
    let token = TokenCopy::new();
    let tokens = token.tokens();
    let port = free_port();
    let limits = [("request_timeout_seconds", "5")];
    let config = binary::config("moved", &qsign::state::softhsm_module(), port, &limits);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "softhsm_conf = \"softhsm2.conf\"",
        &format!("softhsm_conf = \"{}\"", token.conf.display()),
    );
    std::fs::write(&config, text).unwrap();
    let qsign = Qsign::start(&config, port, &[]);
    let mut client = qsign.client().await;
    let b_lt = |data: &[u8]| binary::sign_at(data, qsign::proto::Level::BLt);
    let first = b_lt(b"before").send(&mut client).await;
    assert_eq!(first.code, Code::Ok, "{first:?}\n{}", qsign.log());

    let away = tokens.with_extension("away");
    std::fs::rename(tokens, &away).unwrap();
    let failed = b_lt(b"while away").send(&mut client).await;
    assert_eq!(
        failed.code,
        Code::Unavailable,
        "{failed:?}\n{}",
        qsign.log()
    );
    assert!(failed.elapsed < DEADLINE, "{failed:?}");
    let not_serving = ServingStatus::NotServing as i32;
    assert!(
        qsign.await_health(not_serving, DEADLINE).await,
        "{}",
        qsign.log()
    );
    std::fs::rename(&away, tokens).unwrap();
    let serving = ServingStatus::Serving as i32;
    let back = qsign.await_health(serving, Duration::from_secs(30)).await;
    assert!(back, "{}", qsign.log());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let again = b_lt(b"after").send(&mut client).await;
        if again.code == Code::Ok {
            break;
        }
        assert_eq!(again.code, Code::Unavailable, "{again:?}");
        assert!(
            Instant::now() < deadline,
            "not back: {again:?}\n{}",
            qsign.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_clean_on(qsign, &token);
}
