//! Signatures per second and CPU per signature: the raw HSM loop (what every
//! signature costs the token) against qsign's own paths, measured in one run
//! so that the ratios are comparable. Prints figures; asserts nothing.
//!
//!   cargo bench --bench throughput [-- SECONDS]
//!   (QSIGN_BENCH_DATABASE=1: spent tokens in the SQLite database, not memory)
//!
//! Modes, each at 1 and 2 concurrent workers, median of 3 runs:
//! - `hsm-loop`: keygen + read public key, CA signs 600 B, leaf signs 300 B, destroy;
//! - `core`: `SigningCore::sign_detached` (token check, certificate, CMS), no gRPC;
//! - `grpc`: the same through an in-process tonic server and client.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use qsign::auth::dev::{dev_subject, DevClaims, DevIdp};
use qsign::hsm::KeyAlgorithm;
use qsign::proto::{self, document};
use qsign::signing::{Authorization, Document, SigningCore};
use signature::Signer;

fn cpu_seconds() -> f64 {
    // utime + stime of the whole process, in clock ticks (USER_HZ = 100).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU seconds per thread-name prefix (`qsign-hsm`, `tokio-runtime`, ...).
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let name = stat
            .split('(')
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or("?");
        let group = name
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
        *out.entry(group).or_insert(0.0) += ticks / 100.0;
    }
    out
}

struct Run {
    rate: f64,
    cpu_us: f64,
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs.swap_remove(runs.len() / 2)
}

fn tokens(idp: &DevIdp, n: usize) -> Vec<String> {
    let claims = DevClaims {
        issuer: qsign::state::DEV_ISSUER.into(),
        audience: qsign::state::DEV_AUDIENCE.into(),
        subject: dev_subject("Bench Marker"),
        given_name: Some("Bench".into()),
        family_name: Some("Marker".into()),
        org_cvr: qsign::state::DEV_CVR.into(),
        org_name: qsign::state::DEV_ORGANIZATION.into(),
        seal_profiles: vec![],
        digests: vec![[7u8; 32]],
        jti: None,
    };
    (0..n)
        .map(|_| {
            idp.mint(&claims, SystemTime::now(), Duration::from_secs(600))
                .unwrap()
        })
        .collect()
}

/// The raw loop: each worker runs it inside ONE HSM job, so no handoff is
/// counted, only what the token does per signature.
fn hsm_loop(core: &Arc<SigningCore>, workers: usize, seconds: f64) -> Run {
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let done: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let core = core.clone();
                scope.spawn(move || {
                    core.hsm
                        .run_blocking(move |s| {
                            let mut n = 0;
                            while t0.elapsed().as_secs_f64() < seconds {
                                let key = s.generate_ephemeral(KeyAlgorithm::EcP256)?;
                                s.issuing_ca()?.try_sign(&[0x5a; 600]).expect("CA sign");
                                key.try_sign(&[0xa5; 300]).expect("leaf sign");
                                n += 1;
                            }
                            Ok(n)
                        })
                        .expect("hsm loop")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    finish(done, cpu0, t0)
}

/// The same loop as `hsm_loop`, through the async boundary (`Hsm::run`).
async fn hsm_run(core: &Arc<SigningCore>, workers: usize, count: usize) -> Run {
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(count));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (core, left) = (core.clone(), left.clone());
            tokio::spawn(async move {
                let take = |n: usize| n.checked_sub(1);
                while left.fetch_update(Relaxed, Relaxed, take).is_ok() {
                    core.hsm
                        .run(|s| {
                            let key = s.generate_ephemeral(KeyAlgorithm::EcP256)?;
                            s.issuing_ca()?.try_sign(&[0x5a; 600]).expect("CA sign");
                            key.try_sign(&[0xa5; 300]).expect("leaf sign");
                            Ok(())
                        })
                        .await
                        .expect("hsm run");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    finish(count, cpu0, t0)
}

fn finish(done: usize, cpu0: f64, t0: Instant) -> Run {
    let elapsed = t0.elapsed().as_secs_f64();
    Run {
        rate: done as f64 / elapsed,
        cpu_us: (cpu_seconds() - cpu0) * 1e6 / done as f64,
    }
}

async fn core_path(core: &Arc<SigningCore>, tokens: Vec<String>, workers: usize) -> Run {
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let n = tokens.len();
    let queue = Arc::new(std::sync::Mutex::new(tokens));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (core, queue) = (core.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(token) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let authorization = Authorization {
                        activation_token: token,
                        seal_profile: None,
                        key_algorithm: KeyAlgorithm::EcP256,
                        level: Some(qsign::signing::Level::BB),
                        client: None,
                        calling_system: None,
                    };
                    core.sign_detached(vec![Document::Digest(vec![7u8; 32])], authorization)
                        .await
                        .expect("core sign");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    finish(n, cpu0, t0)
}

async fn grpc_path(address: std::net::SocketAddr, tokens: Vec<String>, workers: usize) -> Run {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let n = tokens.len();
    let queue = Arc::new(std::sync::Mutex::new(tokens));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let mut client =
                proto::signing_service_client::SigningServiceClient::new(channel.clone());
            let queue = queue.clone();
            tokio::spawn(async move {
                loop {
                    let Some(token) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let request = proto::SignDetachedRequest {
                        documents: vec![proto::Document {
                            data: Some(document::Data::Sha256Digest(vec![7u8; 32])),
                        }],
                        activation_token: token,
                        seal_profile: String::new(),
                        level: proto::Level::BB as i32,
                        key_algorithm: proto::KeyAlgorithm::EcP256 as i32,
                    };
                    client.sign_detached(request).await.expect("grpc sign");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    finish(n, cpu0, t0)
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let temp = tempfile::tempdir().unwrap();
    let (mut config, module) = qsign::app::load(None, temp.path(), None).expect("state");
    // One client is the only calling system here: measure the service, not
    // its per-caller rate limit (SPEC §12).
    config.limits.requests_per_second_per_caller = 1_000_000;
    if let Some(n) = std::env::var("QSIGN_BENCH_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        config.hsm.sessions = n;
    }
    // The development default keeps an audit log (SPEC §11) and spent
    // tokens in its database; QSIGN_BENCH_AUDIT=off measures without the
    // log, and then, unless QSIGN_BENCH_DATABASE is set, with spent tokens
    // in memory.
    if std::env::var("QSIGN_BENCH_AUDIT").as_deref() == Ok("off") {
        config.audit = None;
        if std::env::var_os("QSIGN_BENCH_DATABASE").is_none() {
            config.database = None;
            config.token.replay_journal = None;
        }
    }
    let core = qsign::app::signing_core(&config, &module).expect("core");
    let idp = DevIdp::from_pkcs8_pem(
        &std::fs::read_to_string(temp.path().join("dev-idp-key.pem")).unwrap(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let serving = core.clone();
    runtime.spawn(async move {
        qsign::service::serve(serving, listener, None, std::future::pending())
            .await
            .unwrap();
    });

    if std::env::var_os("QSIGN_BENCH_PROFILE").is_some() {
        // For `perf record -D`: mint first, then only the core path.
        let tokens = tokens(&idp, 20_000);
        eprintln!("minted; signing");
        let before = cpu_by_thread();
        // QSIGN_BENCH_WORKERS=N: N concurrent requests (default 1).
        let workers = std::env::var("QSIGN_BENCH_WORKERS")
            .ok()
            .and_then(|w| w.parse().ok())
            .unwrap_or(1);
        let run = runtime.block_on(core_path(&core, tokens, workers));
        println!(
            "core: {:.0}/s, {:.0} µs CPU per signature",
            run.rate, run.cpu_us
        );
        for (group, seconds) in cpu_by_thread() {
            let delta = seconds - before.get(&group).copied().unwrap_or(0.0);
            println!("  {group:<24} {:>6.0} µs/sig", delta * 1e6 / 20_000.0);
        }
        return;
    }
    println!("EC P-256, {seconds} s per run, median of 3; CPU = process user+sys per signature");
    println!(
        "{:<10} {:>7} {:>10} {:>12} {:>14} {:>16}",
        "mode", "workers", "sig/s", "CPU µs/sig", "rate vs loop", "qsign CPU µs/sig"
    );
    // QSIGN_BENCH_MODES=core,grpc and QSIGN_BENCH_WORKERS=1,2 narrow the run (for profiling).
    let modes = std::env::var("QSIGN_BENCH_MODES").unwrap_or_else(|_| "core,grpc".into());
    let worker_list = std::env::var("QSIGN_BENCH_WORKERS").unwrap_or_else(|_| "1,2".into());
    for workers in worker_list
        .split(',')
        .filter_map(|w| w.parse::<usize>().ok())
    {
        let raw = median((0..3).map(|_| hsm_loop(&core, workers, seconds)).collect());
        let count = ((raw.rate * seconds) as usize).max(50);
        println!(
            "{:<10} {:>7} {:>10.0} {:>12.0} {:>14} {:>16}",
            "hsm-loop", workers, raw.rate, raw.cpu_us, "1.00", "-"
        );
        for mode in modes.split(',') {
            let run = median(
                (0..3)
                    .map(|_| {
                        let tokens = tokens(&idp, count);
                        runtime.block_on(async {
                            match mode {
                                "hsm-run" => hsm_run(&core, workers, tokens.len()).await,
                                "core" => core_path(&core, tokens, workers).await,
                                _ => grpc_path(address, tokens, workers).await,
                            }
                        })
                    })
                    .collect(),
            );
            println!(
                "{:<10} {:>7} {:>10.0} {:>12.0} {:>14.2} {:>16.0}",
                mode,
                workers,
                run.rate,
                run.cpu_us,
                run.rate / raw.rate,
                run.cpu_us - raw.cpu_us
            );
        }
    }
}
