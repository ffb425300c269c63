//! The service as deployed, measured from ANOTHER process: the client half of
//! `benches/service.sh` (which builds, starts a release `qsign serve` with the
//! development configuration and runs this). Prints figures; asserts nothing.
//!
//!   cargo bench --bench service -- --addr 127.0.0.1:PORT --pid SERVER_PID \
//!       --state SERVER_STATE_DIR [--seconds 5] [--conc 1,4,16] [--label sqlite] [--no-loop]
//!       [--ops bb,bt,pdf,open,rsa] [--key-pool N --metrics http://HOST:PORT/metrics]
//!
//! 1. The ceiling: the raw HSM loop (key pair + public value, CA signs 600 B,
//!    leaf signs 300 B, destroy; `+tsa`: the TSA key signs 300 B too) with 1
//!    and 2 threads inside this process, its own SoftHSM token, no gRPC.
//! 2. Closed loops over gRPC on loopback (one connection per client task):
//!    `SignDetached` by digest at B-B and B-T, `SignPdf` of a ~100 KB PDF at
//!    B-B; signatures/s, p50/p99/max latency, errors, the SERVER's CPU per
//!    signature (utime+stime of /proc/PID/stat), its RSS and peak RSS
//!    (VmHWM), its CPU per thread group (/proc/PID/task/*/stat).
//! 3. Open loops: `SignDetached` B-B at half the best closed-loop rate and at
//!    20/s (the lightly loaded case).
//! 4. RSA-2048, one request at a time: 5, then 20 back to back. With
//!    `--key-pool N` (the server's `[hsm.key_pool] rsa2048`), each row starts
//!    once the server's metrics show the pool full: 5 come from the pool,
//!    the 20 drain it.
//!
//! Efficiency = the loop's CPU per signature (2 threads) ÷ the server's CPU
//! per signature; "rate/ceil" = signatures/s ÷ the loop's rate (2 threads).
//! B-T is compared with the loop plus one TSA signature.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use qsign::auth::dev::{dev_subject, DevClaims, DevIdp};
use qsign::hsm::KeyAlgorithm;
use qsign::proto::{self, document, signing_service_client::SigningServiceClient};
use sha2::Digest as _;
use signature::Signer;
use tonic::transport::Channel;

fn ticks(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    t / 100.0
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: &str) -> f64 {
    ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// stime of a stat line, seconds.
fn sys_seconds(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    fields
        .get(12)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 100.0
}

/// CPU seconds per thread-name group (digits and dashes trimmed), and the
/// system-time share of each as "<group> sys".
fn cpu_by_thread(pid: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
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
        *out.entry(format!("{group} sys")).or_insert(0.0) += sys_seconds(&stat);
        *out.entry(group).or_insert(0.0) += ticks(&stat);
    }
    out
}

/// A `/proc/PID/status` field in MB (VmRSS, VmHWM).
fn status_mb(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[derive(Clone, Copy)]
struct Ceiling {
    rate: f64,
    cpu_us: f64,
}

/// The raw loop inside one HSM job per thread (no handoff counted).
fn hsm_loop(core: &Arc<qsign::signing::SigningCore>, threads: usize, tsa: bool, s: f64) -> Ceiling {
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let done: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let core = core.clone();
                scope.spawn(move || {
                    core.hsm
                        .run_blocking(move |h| {
                            let mut n = 0;
                            while t0.elapsed().as_secs_f64() < s {
                                let key = h.generate_ephemeral(KeyAlgorithm::EcP256)?;
                                h.issuing_ca()?.try_sign(&[0x5a; 600]).expect("CA sign");
                                key.try_sign(&[0xa5; 300]).expect("leaf sign");
                                if tsa {
                                    h.session_signer(qsign::state::TSA_KEY_LABEL)?
                                        .try_sign(&[0x3c; 300])
                                        .expect("TSA sign");
                                }
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
    Ceiling {
        rate: done as f64 / t0.elapsed().as_secs_f64(),
        cpu_us: (cpu_seconds("self") - cpu0) * 1e6 / done as f64,
    }
}

/// Median (by rate) of three runs.
fn ceiling(core: &Arc<qsign::signing::SigningCore>, threads: usize, tsa: bool, s: f64) -> Ceiling {
    let mut runs: Vec<Ceiling> = (0..3).map(|_| hsm_loop(core, threads, tsa, s)).collect();
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs[1]
}

/// A one-page PDF with an uncompressed image XObject of about `bytes`.
fn pdf(bytes: usize) -> Vec<u8> {
    let mut f = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = vec![];
    let mut obj = |f: &mut Vec<u8>, body: &[u8]| {
        offsets.push(f.len());
        f.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        f.extend_from_slice(body);
        f.extend_from_slice(b"\nendobj\n");
    };
    obj(&mut f, b"<< /Type /Catalog /Pages 2 0 R >>");
    obj(&mut f, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    obj(&mut f, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>");
    let content = b"q 595 0 0 842 0 0 cm /Im1 Do Q";
    let mut body = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(b"\nendstream");
    obj(&mut f, &body);
    let side = ((bytes / 3) as f64).sqrt() as usize;
    let length = side * side * 3;
    let mut body = format!(
        "<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {length} >>\nstream\n"
    )
    .into_bytes();
    body.extend((0..length).map(|i| (i % 251) as u8));
    body.extend_from_slice(b"\nendstream");
    obj(&mut f, &body);
    let xref = f.len();
    f.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes());
    for o in &offsets {
        f.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    f.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    f
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    DetachedBB,
    DetachedBT,
    PdfBB,
    Rsa2048,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::DetachedBB => "SignDetached B-B",
            Op::DetachedBT => "SignDetached B-T",
            Op::PdfBB => "SignPdf 100KB B-B",
            Op::Rsa2048 => "SignDetached RSA-2048",
        }
    }
}

struct Load {
    idp: DevIdp,
    pdf: Arc<Vec<u8>>,
    pdf_digest: [u8; 32],
}

impl Load {
    fn tokens(&self, op: Op, n: usize) -> Vec<String> {
        let digest = if op == Op::PdfBB {
            self.pdf_digest
        } else {
            [7u8; 32]
        };
        let claims = DevClaims {
            issuer: qsign::state::DEV_ISSUER.into(),
            audience: qsign::state::DEV_AUDIENCE.into(),
            subject: dev_subject("Bench Marker"),
            given_name: Some("Bench".into()),
            family_name: Some("Marker".into()),
            org_cvr: qsign::state::DEV_CVR.into(),
            org_name: qsign::state::DEV_ORGANIZATION.into(),
            seal_profiles: vec![],
            digests: vec![digest],
            jti: None,
        };
        (0..n)
            .map(|_| {
                self.idp
                    .mint(&claims, SystemTime::now(), Duration::from_secs(800))
                    .unwrap()
            })
            .collect()
    }
}

/// One request; Err carries the status text.
async fn call(
    client: &mut SigningServiceClient<Channel>,
    op: Op,
    token: String,
    pdf: &Arc<Vec<u8>>,
) -> Result<(), String> {
    let detached =
        |level: proto::Level, algorithm: proto::KeyAlgorithm| proto::SignDetachedRequest {
            documents: vec![proto::Document {
                data: Some(document::Data::Sha256Digest(vec![7u8; 32])),
            }],
            activation_token: token.clone(),
            seal_profile: String::new(),
            level: level as i32,
            key_algorithm: algorithm as i32,
        };
    let result = match op {
        Op::DetachedBB => client
            .sign_detached(detached(proto::Level::BB, proto::KeyAlgorithm::EcP256))
            .await
            .map(drop),
        Op::DetachedBT => client
            .sign_detached(detached(proto::Level::BT, proto::KeyAlgorithm::EcP256))
            .await
            .map(drop),
        Op::Rsa2048 => client
            .sign_detached(detached(proto::Level::BB, proto::KeyAlgorithm::Rsa2048))
            .await
            .map(drop),
        Op::PdfBB => client
            .sign_pdf(proto::SignPdfRequest {
                pdf: pdf.to_vec(),
                activation_token: token.clone(),
                level: proto::Level::BB as i32,
                key_algorithm: proto::KeyAlgorithm::EcP256 as i32,
                ..Default::default()
            })
            .await
            .map(drop),
    };
    result.map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

struct Outcome {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    latencies: Vec<Duration>,
    elapsed: f64,
    cpu_us: f64,
    threads: Vec<(String, f64)>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

fn measure_end(
    pid: &str,
    cpu0: f64,
    threads0: &BTreeMap<String, f64>,
    t0: Instant,
    mut results: Vec<(Duration, Result<(), String>)>,
) -> Outcome {
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let mut latencies = vec![];
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for (latency, result) in results.drain(..) {
        match result {
            Ok(()) => {
                ok += 1;
                latencies.push(latency);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    latencies.sort();
    let per = ok.max(1) as f64;
    let threads = cpu_by_thread(pid)
        .into_iter()
        .map(|(g, s)| {
            (
                g.clone(),
                (s - threads0.get(&g).copied().unwrap_or(0.0)) * 1e6 / per,
            )
        })
        .filter(|(_, us)| *us >= 5.0)
        .collect();
    Outcome {
        ok,
        errors,
        first_error,
        latencies,
        elapsed,
        cpu_us: cpu * 1e6 / per,
        threads,
    }
}

async fn connect(addr: &str, n: usize) -> Vec<SigningServiceClient<Channel>> {
    let mut clients = vec![];
    for _ in 0..n {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        clients.push(
            SigningServiceClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
    }
    clients
}

/// `conc` tasks, each on its own connection, back to back for `seconds`
/// (or until the pre-minted tokens run out).
async fn closed_loop(
    addr: &str,
    pid: &str,
    load: &Load,
    op: Op,
    conc: usize,
    seconds: f64,
    budget: usize,
) -> Outcome {
    let clients = connect(addr, conc).await;
    let tokens = Arc::new(std::sync::Mutex::new(load.tokens(op, budget)));
    let (cpu0, threads0, t0) = (cpu_seconds(pid), cpu_by_thread(pid), Instant::now());
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (tokens, pdf) = (tokens.clone(), load.pdf.clone());
            tokio::spawn(async move {
                let mut out = vec![];
                while t0.elapsed().as_secs_f64() < seconds {
                    let Some(token) = tokens.lock().unwrap().pop() else {
                        break;
                    };
                    let start = Instant::now();
                    let result = call(&mut client, op, token, &pdf).await;
                    out.push((start.elapsed(), result));
                }
                out
            })
        })
        .collect();
    let mut results = vec![];
    for task in tasks {
        results.extend(task.await.unwrap());
    }
    measure_end(pid, cpu0, &threads0, t0, results)
}

/// Requests started at `rate`/s for `seconds` regardless of answers.
async fn open_loop(addr: &str, pid: &str, load: &Load, rate: f64, seconds: f64) -> Outcome {
    let n = (rate * seconds).ceil() as usize;
    let clients = connect(addr, 16).await;
    let mut tokens = load.tokens(Op::DetachedBB, n);
    let (cpu0, threads0, t0) = (cpu_seconds(pid), cpu_by_thread(pid), Instant::now());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = vec![];
    for i in 0..n {
        ticker.tick().await;
        let mut client = clients[i % clients.len()].clone();
        let (token, pdf) = (tokens.pop().unwrap(), load.pdf.clone());
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let result = call(&mut client, Op::DetachedBB, token, &pdf).await;
            (start.elapsed(), result)
        }));
    }
    let mut results = vec![];
    for task in tasks {
        results.push(task.await.unwrap());
    }
    measure_end(pid, cpu0, &threads0, t0, results)
}

fn header() {
    println!(
        "{:<8} {:<22} {:>5} {:>6} {:>4} {:>8} {:>7} {:>7} {:>7} {:>9} {:>6} {:>6} {:>7} {:>7}",
        "db",
        "operation",
        "conc",
        "ok",
        "err",
        "sig/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU µs/sig",
        "effic",
        "rate/c",
        "RSS MB",
        "HWM MB"
    );
}

fn row(label: &str, what: &str, conc: &str, o: &Outcome, ceil: Ceiling, pid: &str) {
    println!(
        "{:<8} {:<22} {:>5} {:>6} {:>4} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>9.0} {:>6.2} {:>6.2} {:>7.1} {:>7.1}",
        label,
        what,
        conc,
        o.ok,
        o.errors,
        o.rate(),
        o.pct(0.5),
        o.pct(0.99),
        o.pct(1.0),
        o.cpu_us,
        ceil.cpu_us / o.cpu_us,
        o.rate() / ceil.rate,
        status_mb(pid, "VmRSS"),
        status_mb(pid, "VmHWM"),
    );
    let groups: Vec<String> = o
        .threads
        .iter()
        .filter(|(g, _)| !g.ends_with(" sys"))
        .map(|(g, us)| {
            let sys = o
                .threads
                .iter()
                .find(|(h, _)| *h == format!("{g} sys"))
                .map_or(0.0, |(_, s)| *s);
            format!("{g} {us:.0} (sys {sys:.0})")
        })
        .collect();
    println!(
        "{:<8}   server CPU µs/sig by thread: {}",
        "",
        groups.join(", ")
    );
    if let Some(e) = &o.first_error {
        println!("{:<8}   first error: {e}", "");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut pid, mut state, mut seconds) = (None, None, None, 5.0);
    let (mut concs, mut label, mut do_loop) = (vec![1, 4, 16], "sqlite".to_owned(), true);
    // --ops: a comma list of bb, bt, pdf, open, rsa (default all).
    let mut ops = "bb,bt,pdf,open,rsa".to_owned();
    let (mut key_pool, mut metrics_url) = (0usize, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next(),
            "--pid" => pid = args.next(),
            "--state" => state = args.next(),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0),
            "--label" => label = args.next().unwrap_or_default(),
            "--no-loop" => do_loop = false,
            "--ops" => ops = args.next().unwrap_or_default(),
            "--key-pool" => key_pool = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "--metrics" => metrics_url = args.next(),
            "--conc" => {
                concs = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|c| c.parse().ok())
                    .collect()
            }
            _ => {} // cargo bench passes --bench
        }
    }
    let (Some(addr), Some(pid), Some(state)) = (addr, pid, state) else {
        eprintln!("usage: --addr HOST:PORT --pid SERVER_PID --state DIR (see benches/service.sh)");
        return;
    };

    // 1. The ceiling, in this process (the server is idle meanwhile).
    let (mut plain, mut with_tsa) = (
        Ceiling {
            rate: f64::NAN,
            cpu_us: f64::NAN,
        },
        Ceiling {
            rate: f64::NAN,
            cpu_us: f64::NAN,
        },
    );
    let cache = std::path::Path::new(&state).join("bench-ceiling");
    if do_loop {
        let temp = tempfile::tempdir().unwrap();
        let (config, module) = qsign::app::load(None, temp.path(), None).expect("state");
        let core = qsign::app::signing_core(&config, &module).expect("core");
        println!("Ceiling: raw HSM loop in the client process (own SoftHSM token), EC P-256, median of 3 x 2 s");
        println!(
            "{:<26} {:>7} {:>9} {:>11}",
            "loop", "threads", "sig/s", "CPU µs/sig"
        );
        for tsa in [false, true] {
            for threads in [1, 2] {
                let c = ceiling(&core, threads, tsa, 2.0);
                let name = if tsa {
                    "keygen+CA+leaf+TSA+destroy"
                } else {
                    "keygen+CA+leaf+destroy"
                };
                println!("{name:<26} {threads:>7} {:>9.0} {:>11.0}", c.rate, c.cpu_us);
                if threads == 2 {
                    *(if tsa { &mut with_tsa } else { &mut plain }) = c;
                }
            }
        }
        let _ = std::fs::write(
            &cache,
            format!(
                "{} {} {} {}",
                plain.rate, plain.cpu_us, with_tsa.rate, with_tsa.cpu_us
            ),
        );
        drop(core);
    } else if let Ok(text) = std::fs::read_to_string(&cache) {
        let v: Vec<f64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() == 4 {
            plain = Ceiling {
                rate: v[0],
                cpu_us: v[1],
            };
            with_tsa = Ceiling {
                rate: v[2],
                cpu_us: v[3],
            };
        }
        println!(
            "Ceiling from earlier in this run: {:.0}/s {:.0} µs (B-B), {:.0}/s {:.0} µs (+TSA)",
            plain.rate, plain.cpu_us, with_tsa.rate, with_tsa.cpu_us
        );
    }

    let pem = std::fs::read_to_string(std::path::Path::new(&state).join(qsign::state::DEV_IDP_KEY))
        .expect("the server's dev IdP key");
    let pdf = pdf(100 * 1024);
    let load = Load {
        idp: DevIdp::from_pkcs8_pem(&pem).unwrap(),
        pdf_digest: sha2::Sha256::digest(&pdf).into(),
        pdf: Arc::new(pdf),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!();
    println!(
        "Service over gRPC on loopback ({label}; audit log and replay cache on), closed loop, {seconds} s per row, PDF {} bytes",
        load.pdf.len()
    );
    println!("effic = ceiling CPU µs/sig (2 threads) / server CPU µs/sig; rate/c = sig/s / ceiling sig/s (2 threads)");
    header();
    let budget = |c: Ceiling| ((c.rate.max(500.0)) * seconds * 1.3) as usize + 50;
    let mut best_bb: f64 = 0.0;
    let wanted = |name: &str| ops.split(',').any(|o| o == name);
    for (op, _) in [
        (Op::DetachedBB, "bb"),
        (Op::DetachedBT, "bt"),
        (Op::PdfBB, "pdf"),
    ]
    .into_iter()
    .filter(|(_, name)| wanted(name))
    {
        let ceil = if op == Op::DetachedBT {
            with_tsa
        } else {
            plain
        };
        for &conc in &concs {
            let o = runtime.block_on(closed_loop(
                &addr,
                &pid,
                &load,
                op,
                conc,
                seconds,
                budget(ceil),
            ));
            if op == Op::DetachedBB {
                best_bb = best_bb.max(o.rate());
            }
            row(&label, op.name(), &conc.to_string(), &o, ceil, &pid);
        }
    }
    // 3. Open loops.
    let open_rates = if wanted("open") && best_bb > 0.0 {
        vec![best_bb / 2.0, 20.0]
    } else {
        vec![]
    };
    for rate in open_rates {
        let secs = if rate > 50.0 { seconds } else { 3.0 };
        let o = runtime.block_on(open_loop(&addr, &pid, &load, rate, secs));
        row(
            &label,
            &format!("B-B open {rate:.0}/s"),
            "open",
            &o,
            plain,
            &pid,
        );
    }
    // 4. RSA-2048, one at a time; with a key pool, from a full one.
    if !wanted("rsa") {
        return;
    }
    for n in [5, 20] {
        if let Some(url) = metrics_url.as_deref().filter(|_| key_pool > 0) {
            wait_for_pool(url, key_pool);
        }
        let o = runtime.block_on(closed_loop(&addr, &pid, &load, Op::Rsa2048, 1, 60.0, n));
        row(&label, Op::Rsa2048.name(), "1", &o, plain, &pid);
        println!(
            "{:<8}   RSA-2048 x{n} latencies ms (key pool: {key_pool}): {:?}",
            "",
            o.latencies
                .iter()
                .map(|l| (l.as_secs_f64() * 1e3).round())
                .collect::<Vec<_>>()
        );
    }
}

/// Polls the server's `qsign_hsm_key_pool_keys` gauge (RSA-2048) until it
/// reaches `size`, for up to 60 s.
fn wait_for_pool(url: &str, size: usize) {
    let want = format!("qsign_hsm_key_pool_keys{{algorithm=\"RSA-2048\"}} {size}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_get(url).is_some_and(|body| body.lines().any(|l| l == want)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("the key pool did not fill in 60 s; measuring anyway");
}

/// A plain HTTP/1.0 GET of `http://HOST:PORT/PATH`: the body.
fn http_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}
