//! Issue 11: `qsign serve` under 60 s of open-loop load at 80 % of its
//! measured maximum answers every request OK, and after a warm-up its RSS
//! grows by less than 128 bytes per signature: its anonymous part, since
//! the file-backed rest is the binary's code (see [`Rss`]). The figures it
//! prints (rates, RSS) are information; only errors and memory are asserted.
//!
//! The token is served through p11-kit's remoting, so that SoftHSM runs in
//! p11-kit's process and not in qsign's: SoftHSM 2.6.1 keeps every
//! destroyed session object until C_Finalize (`SessionObjectStore::
//! deleteObject` leaves it in `allObjects`; fixed upstream), ~760 bytes per
//! signature that are the token's, not qsign's. A hardware HSM keeps its
//! objects in the device.
//!
//! About 2 minutes, and the other tests' load would be the measurement's
//! noise: it is ignored by `cargo test` and run alone by the README's test
//! command and `.ci/run`:
//!
//! ```text
//! cargo test --test integration -- --ignored --test-threads=1 --nocapture
//! ```

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qsign::proto::signing_service_client::SigningServiceClient;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Code;

use crate::cli::free_port;
use crate::recovery::{stop_clean_on, RemoteToken, P11_KIT_CLIENT};
use crate::support::binary::{self, sign_with, Outcome, Qsign};
use crate::support::hang;
use crate::support::{env, sha256, Who};

/// The closed loop that finds the maximum rate: `PROBE_SETTLE` first, not
/// counted (connections, pools, the first pages of a fresh database), then
/// `PROBE` measured. A short probe on a fresh server overestimated the
/// rate the server keeps (527/s measured, 401/s kept).
const PROBE_SETTLE: Duration = Duration::from_secs(5);
const PROBE: Duration = Duration::from_secs(10);
const PROBE_CLIENTS: usize = 16;
/// Tokens for the probe: twice what a debug build signed in its 15 s on a
/// quiet machine here (759/s: 11,452).
const PROBE_TOKENS: usize = 24_000;
/// Open loop at the offered rate before RSS is first read: pools, caches,
/// allocator arenas, the database's pages, the bounded memory of spent tokens.
const WARM_UP: Duration = Duration::from_secs(30);
/// The warm-up after an attempt found the rate too high.
const WARM_UP_AGAIN: Duration = Duration::from_secs(10);
const LOAD: Duration = Duration::from_secs(60);
/// The offered rate, as a share of the maximum.
const SHARE: f64 = 0.8;
/// Attempts at a rate the server keeps; each later one offers less.
const ATTEMPTS: usize = 6;
/// Requests in flight beyond this many seconds' worth of the offered rate:
/// the server is not keeping up, and the queue, not signatures, would grow
/// its memory (a shared machine's capacity varies from minute to minute).
const BACKLOG: Duration = Duration::from_millis(500);
/// gRPC connections the open loop spreads its requests over.
const CHANNELS: usize = 8;
const MAX_BYTES_PER_SIGNATURE: f64 = 128.0;

/// Resident memory of a process, bytes (`/proc/PID/status`, proc(5)).
#[derive(Clone, Copy, Debug)]
struct Rss {
    /// VmRSS: all of it.
    total: u64,
    /// RssAnon: heap, stacks, allocator arenas. The rest is file-backed
    /// (mostly the test build's code, ~36 MB, paged in and out as the
    /// kernel pleases), not memory that signatures could keep.
    anon: u64,
}

fn rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Rss {
        total: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

/// What to sign and its single-use activation token.
type Request = (Vec<u8>, String);

/// `count` requests, minted before any clock starts (ES256 in this
/// process would otherwise take CPU from the server), on every core.
fn mint(phase: &str, count: usize) -> Vec<Request> {
    let started = std::time::Instant::now();
    let requests = mint_on_threads(phase, count);
    let rate = count as f64 / started.elapsed().as_secs_f64();
    eprintln!("minted {count} tokens for the {phase} ({rate:.0}/s)");
    requests
}

fn mint_on_threads(phase: &str, count: usize) -> Vec<Request> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let range = t * per_thread..((t + 1) * per_thread).min(count);
                    range
                        .map(|i| {
                            let data = format!("{phase} {i}").into_bytes();
                            let token = env().token(&Who::jens(), &[sha256(&data)]);
                            (data, token)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("mint thread"))
            .collect()
    })
}

/// Outcomes of a phase, and when its last answer came.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: Vec<Outcome>,
    last: Option<Instant>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        if outcome.code == Code::Ok {
            self.ok += 1;
        } else {
            self.errors.push(outcome);
        }
        self.last = Some(Instant::now());
    }

    /// Answers a second from `start` to the last answer.
    fn rate(&self, start: Instant) -> f64 {
        let elapsed = self.last.map_or(Duration::ZERO, |l| l - start);
        (self.ok + self.errors.len() as u64) as f64 / elapsed.as_secs_f64().max(1e-3)
    }
}

/// `PROBE_CLIENTS` clients, each sending its next request as soon as the
/// last is answered, for `PROBE_SETTLE + PROBE` or until `requests` run
/// out: the maximum signatures a second, over `PROBE`; every outcome.
async fn closed_loop(qsign: &Qsign, requests: Vec<Request>) -> (f64, Tally) {
    let queue = Arc::new(Mutex::new(requests));
    let settle = Arc::new(Mutex::new(Tally::default()));
    let measured = Arc::new(Mutex::new(Tally::default()));
    let mut clients = Vec::new();
    for _ in 0..PROBE_CLIENTS {
        clients.push(qsign.client().await);
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (queue, settle, measured) = (queue.clone(), settle.clone(), measured.clone());
            tokio::spawn(async move {
                while start.elapsed() < PROBE_SETTLE + PROBE {
                    let Some((data, token)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let outcome = sign_with(&mut client, &data, token).await;
                    let tally = if start.elapsed() < PROBE_SETTLE {
                        &settle
                    } else {
                        &measured
                    };
                    tally.lock().unwrap().add(outcome);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("closed-loop client");
    }
    assert!(
        !queue.lock().unwrap().is_empty(),
        "the probe ran out of tokens: raise PROBE_TOKENS"
    );
    let settle = Arc::into_inner(settle).unwrap().into_inner().unwrap();
    let mut tally = Arc::into_inner(measured).unwrap().into_inner().unwrap();
    let rate = tally.rate(start + PROBE_SETTLE);
    tally.ok += settle.ok;
    tally.errors.extend(settle.errors);
    (rate, tally)
}

/// How an open loop ended.
enum Open {
    /// Every request sent on time and answered.
    Answered(Instant, Tally),
    /// More than `BACKLOG` of requests in flight: sending stopped after
    /// `sent`; the ones in flight were answered.
    Behind { sent: usize, tally: Tally },
}

/// Sends request `i` at `start + i / rate` whether or not earlier ones
/// were answered (an open loop: a slow server faces a queue, not fewer
/// requests), over `CHANNELS` connections, until all are answered or the
/// server falls `BACKLOG` behind.
async fn open_loop(
    clients: &[SigningServiceClient<Channel>],
    rate: f64,
    requests: Vec<Request>,
) -> Open {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let period = Duration::from_secs_f64(1.0 / rate);
    let backlog = requests_for(rate, BACKLOG).max(64);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut behind = None;
    for (i, (data, token)) in requests.into_iter().enumerate() {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        let (mut client, tally) = (clients[i % clients.len()].clone(), tally.clone());
        tasks.spawn(async move {
            let outcome = sign_with(&mut client, &data, token).await;
            tally.lock().unwrap().add(outcome);
        });
        while tasks.try_join_next().is_some() {}
        if tasks.len() > backlog {
            behind = Some(i + 1);
            break;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("open-loop request");
    }
    let tally = Arc::into_inner(tally).unwrap().into_inner().unwrap();
    match behind {
        Some(sent) => Open::Behind { sent, tally },
        None => Open::Answered(start, tally),
    }
}

/// RSS every 10 s, printed: whether growth levels off or keeps on.
fn sample_rss(pid: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let secs = start.elapsed().as_secs();
            let Rss { total, anon } = rss(pid);
            eprintln!("  load {secs:>2} s: RSS {total} bytes, anonymous {anon}");
        }
    })
}

fn requests_for(rate: f64, time: Duration) -> usize {
    (rate * time.as_secs_f64()).ceil() as usize
}

fn no_errors(phase: &str, tally: &Tally) {
    assert!(
        tally.errors.is_empty(),
        "{phase}: {} errors, the first: {:?}",
        tally.errors.len(),
        tally.errors.first()
    );
}

/// An open loop at `offered` for `time` with 0 errors: its start and
/// tally, or None when the server fell behind (printed).
async fn phase(
    name: &str,
    clients: &[SigningServiceClient<Channel>],
    offered: f64,
    time: Duration,
) -> Option<(Instant, Tally)> {
    let requests = mint(name, requests_for(offered, time));
    match open_loop(clients, offered, requests).await {
        Open::Answered(start, tally) => {
            no_errors(name, &tally);
            Some((start, tally))
        }
        Open::Behind { sent, tally } => {
            // What a server too slow for the rate answers: UNAVAILABLE past
            // the request deadline (SPEC §12); anything else is a failure.
            let unavailable = tally.errors.iter().filter(|e| e.code == Code::Unavailable);
            let unavailable = unavailable.count();
            assert_eq!(
                unavailable,
                tally.errors.len(),
                "{name}: {:?}",
                tally.errors.first()
            );
            eprintln!(
                "{name}: more than {BACKLOG:?} of requests in flight after {sent} sent at \
                 {offered:.0}/s ({unavailable} UNAVAILABLE): the server does not keep that \
                 rate now"
            );
            None
        }
    }
}

#[test]
#[ignore = "2 minutes of load measuring RSS: run alone (see the module comment)"]
fn eighty_percent_of_the_maximum_for_a_minute_flat_memory() {
    // Normally 2-4 minutes; at most ATTEMPTS x 70 s more.
    hang::run(Duration::from_secs(900), load_test());
}

async fn load_test() {
    let remote =
        RemoteToken::new().expect("p11-kit's remoting is needed: softhsm/setup.sh --verifiers");
    let _hsm = remote.serve();
    let port = free_port();
    // All the load comes from one address: the per-caller limits would
    // answer RESOURCE_EXHAUSTED long before the HSM is the limit.
    let limits = [
        ("requests_per_second_per_caller", "100000"),
        ("concurrent_requests_per_caller", "100000"),
    ];
    let config = binary::config("memory", Path::new(P11_KIT_CLIENT), port, &limits);
    let qsign = remote.qsign(&config, port);

    let (max, probe) = closed_loop(&qsign, mint("probe", PROBE_TOKENS)).await;
    no_errors("closed loop", &probe);
    eprintln!(
        "max rate {max:.0}/s (closed loop, {PROBE_CLIENTS} clients, {PROBE:?} after \
         {PROBE_SETTLE:?}; {} signatures in all)",
        probe.ok
    );
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        clients.push(qsign.client().await);
    }
    let mut offered = SHARE * max;
    let mut warm_up = WARM_UP;
    for attempt in 1..=ATTEMPTS {
        eprintln!("attempt {attempt}: {offered:.0}/s");
        let lower = 0.85 * offered;
        if phase("warm-up", &clients, offered, warm_up).await.is_none() {
            (offered, warm_up) = (lower, WARM_UP_AGAIN);
            continue;
        }
        let before = rss(qsign.pid());
        let series = sample_rss(qsign.pid());
        let load = phase("load", &clients, offered, LOAD).await;
        let after = rss(qsign.pid());
        series.abort();
        let Some((start, tally)) = load else {
            (offered, warm_up) = (lower, WARM_UP_AGAIN);
            continue;
        };
        flat_memory(offered, &tally, tally.rate(start), before, after);
        stop_clean_on(qsign, &remote.token);
        return;
    }
    panic!(
        "the server kept none of {ATTEMPTS} rates from {:.0}/s down",
        SHARE * max
    );
}

/// Every request of the load answered, and anonymous RSS grew less than
/// `MAX_BYTES_PER_SIGNATURE` a signature.
fn flat_memory(offered: f64, tally: &Tally, achieved: f64, before: Rss, after: Rss) {
    let growth = |b: u64, a: u64| a.saturating_sub(b) as f64 / tally.ok.max(1) as f64;
    let per_signature = growth(before.anon, after.anon);
    eprintln!(
        "offered {offered:.0}/s for {LOAD:?}: achieved {achieved:.0}/s, {} signatures, {} \
         errors; RSS {} bytes after warm-up, {} at the end ({:.1} bytes per signature); \
         anonymous {} -> {}: {per_signature:.1} bytes per signature",
        tally.ok,
        tally.errors.len(),
        before.total,
        after.total,
        growth(before.total, after.total),
        before.anon,
        after.anon,
    );
    assert!(
        tally.ok as usize >= requests_for(offered, LOAD),
        "every request was answered"
    );
    assert!(
        per_signature < MAX_BYTES_PER_SIGNATURE,
        "anonymous RSS grew {per_signature:.1} bytes per signature"
    );
}
