//! SPEC §12 limits and the defects a hostile client found: per-caller
//! concurrency and rate, the request deadline, the memory budget, malformed
//! protobuf; connections and the anonymous HTTP rate (`connections`,
//! `anonymous`); names and signature fields (`names`). Raw HTTP/2 helpers
//! here.

mod anonymous;
mod connections;
mod names;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use qsign::proto::SignDetachedResponse;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::detached::{digest, request};
use crate::support::{env, Server, Who};

pub const FIRST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
pub const SECOND: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A gRPC call on its own HTTP/2 connection from `local`, whose request
/// body the test sends piece by piece through `body` (dropping it ends the
/// body); `answer` is the grpc-status and message.
pub struct RawCall {
    pub body: Option<mpsc::Sender<Bytes>>,
    pub answer: JoinHandle<(Code, String)>,
}

pub async fn raw_call(server: SocketAddr, local: IpAddr, method: &str) -> RawCall {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(local, 0)).expect("bind");
    let stream = socket.connect(server).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let (body, chunks) = mpsc::channel::<Bytes>(4);
    let frames = ReceiverStream::new(chunks).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let request = hyper::Request::post(format!("http://{server}/qsign.v1.SigningService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(StreamBody::new(frames))
        .expect("request");
    let answer = tokio::spawn(async move {
        match sender.send_request(request).await {
            Ok(response) => grpc_status(response).await,
            Err(e) => (Code::Unknown, format!("no response: {e}")),
        }
    });
    RawCall {
        body: Some(body),
        answer,
    }
}

/// The grpc-status of a response: in its headers (trailers-only) or trailers.
async fn grpc_status(response: hyper::Response<Incoming>) -> (Code, String) {
    let read = |headers: &hyper::HeaderMap| {
        let code = headers
            .get("grpc-status")?
            .to_str()
            .ok()?
            .parse::<i32>()
            .ok()?;
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        Some((Code::from(code), percent_decoded(message)))
    };
    if let Some(status) = read(response.headers()) {
        return status;
    }
    match response.into_body().collect().await {
        Ok(collected) => collected
            .trailers()
            .and_then(read)
            .unwrap_or((Code::Unknown, "no grpc-status".into())),
        Err(e) => (Code::Unknown, format!("body: {e}")),
    }
}

/// grpc-message is percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decoded(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(decoded) if b == b'%' => {
                bytes.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The gRPC length prefix of an uncompressed message of `length` bytes.
pub fn prefix(length: usize) -> Bytes {
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&u32::try_from(length).unwrap().to_be_bytes());
    Bytes::from(prefix)
}

/// A personal B-B signature of one digest from `local`.
pub async fn sign_from(
    server: &Server,
    local: IpAddr,
    seed: u8,
) -> Result<SignDetachedResponse, tonic::Status> {
    let d = [seed; 32];
    let token = env().token(&Who::jens(), &[d]);
    let mut client = server.client_from(Some(local)).await;
    client
        .sign_detached(request(vec![digest(d)], token, ""))
        .await
        .map(tonic::Response::into_inner)
}

/// Repeats `attempt` (every 100 ms, for up to 20 s) until it gives `Some`.
#[track_caller]
pub fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    attempt: impl FnMut() -> F,
) -> impl std::future::Future<Output = T> {
    let caller = std::panic::Location::caller();
    eventually_at(caller, attempt)
}

async fn eventually_at<T, F: std::future::Future<Output = Option<T>>>(
    caller: &'static std::panic::Location<'static>,
    mut attempt: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gave up waiting at {caller}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_over_its_concurrency_is_refused_while_another_signs() {
    let label = "limits-concurrency";
    let server = Server::start(env().core(label, |c| {
        c.limits.concurrent_requests_per_caller = 1;
    }))
    .await;
    // Headers but no message yet: the request is in progress, admitted. A
    // signature of ours admitted first makes it refused: then hold anew.
    let mut held = raw_call(server.address, FIRST, "SignDetached").await;
    let start = Instant::now();
    let message = loop {
        if held.answer.is_finished() {
            held = raw_call(server.address, FIRST, "SignDetached").await;
        }
        match sign_from(&server, FIRST, 1).await {
            Err(s) if s.code() == Code::ResourceExhausted => break s.message().to_owned(),
            _ => assert!(start.elapsed() < Duration::from_secs(20), "never refused"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(message.contains("in progress, the limit is 1"), "{message}");
    sign_from(&server, SECOND, 2)
        .await
        .expect("another calling system still signs");
    held.body.take();
    eventually(|| async { sign_from(&server, FIRST, 3).await.ok() }).await;
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_over_its_rate_is_refused_while_another_signs() {
    let server = Server::start(env().core("limits-rate", |c| {
        c.limits.requests_per_second_per_caller = 2;
    }))
    .await;
    let mut client = server.client_from(Some(FIRST)).await;
    let mut refused = None;
    for _ in 0..20 {
        let chain = client
            .get_trust_chain(qsign::proto::GetTrustChainRequest {})
            .await;
        if let Err(status) = chain {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            refused = Some(status.message().to_owned());
            break;
        }
    }
    let message = refused.expect("20 requests at once are over 2 a second");
    assert!(message.contains("2 requests a second"), "{message}");
    sign_from(&server, SECOND, 4)
        .await
        .expect("another calling system still signs");
    eventually(|| async { sign_from(&server, FIRST, 5).await.ok() }).await;
}

/// A request past `request_timeout_seconds` is answered UNAVAILABLE.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_the_deadline_is_unavailable() {
    let server = Server::start(env().core("limits-deadline", |c| {
        c.limits.request_timeout_seconds = 1;
    }))
    .await;
    let mut held = raw_call(server.address, FIRST, "SignDetached").await;
    let answer = tokio::time::timeout(Duration::from_secs(30), &mut held.answer)
        .await
        .expect("answered within the deadline, generously")
        .expect("call task");
    assert_eq!(answer.0, Code::Unavailable, "{answer:?}");
    assert!(answer.1.contains("deadline"), "{answer:?}");
    sign_from(&server, FIRST, 6).await.expect("still serving");
}

/// A deadline that passes while the HSM works (RSA-3072 key generation is
/// slow) leaves no key: the job finishes on its worker and its guard
/// destroys the key. Either outcome is fine; the token must be clean.
#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_during_hsm_work_leaves_no_key() {
    let label = "limits-deadline-hsm";
    let server = Server::start(env().core(label, |c| {
        c.limits.request_timeout_seconds = 1;
    }))
    .await;
    let mut client = server.client_from(Some(FIRST)).await;
    let mut timed_out = 0;
    for seed in 40..43u8 {
        let d = [seed; 32];
        let mut slow = request(vec![digest(d)], env().token(&Who::jens(), &[d]), "");
        slow.key_algorithm = qsign::proto::KeyAlgorithm::Rsa3072 as i32;
        slow.level = qsign::proto::Level::BT as i32;
        match client.sign_detached(slow).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::Unavailable && s.message().contains("deadline") => {
                timed_out += 1
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    hsm_drained(&server.core, env().config.hsm.sessions).await;
    assert_eq!(env().leftover_keys(label), 0);
    eprintln!("{timed_out} of 3 RSA-3072 requests passed the 1 s deadline");
}

/// Returns once every HSM job queued before has finished: one job per
/// session worker, all meeting at a barrier (the workers share one queue).
async fn hsm_drained(core: &qsign::signing::SigningCore, sessions: usize) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(sessions));
    let jobs: Vec<_> = (0..sessions)
        .map(|_| {
            let (hsm, barrier) = (core.hsm.clone(), barrier.clone());
            tokio::spawn(async move {
                hsm.run(move |_| {
                    barrier.wait();
                    Ok(())
                })
                .await
            })
        })
        .collect();
    for job in jobs {
        job.await.unwrap().expect("HSM job");
    }
}

/// Before this, a message that is not protobuf was INTERNAL (tonic-prost).
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_message_is_invalid_argument() {
    let server = Server::start(env().core("limits-malformed", |_| {})).await;
    let junk = b"\xff\xff\xff\xff not protobuf";
    let mut call = raw_call(server.address, FIRST, "SignDetached").await;
    let body = call.body.take().unwrap();
    body.send(prefix(junk.len())).await.unwrap();
    body.send(Bytes::from_static(junk)).await.unwrap();
    drop(body);
    let (code, message) = call.answer.await.unwrap();
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("protobuf"), "{message}");
    // A length prefix of 4 GiB is refused before anything more is read.
    let mut call = raw_call(server.address, FIRST, "SignDetached").await;
    let body = call.body.take().unwrap();
    body.send(prefix(u32::MAX as usize)).await.unwrap();
    let (code, message) = call.answer.await.unwrap();
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    assert!(message.contains("SHA-256 digests"), "{message}");
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Eight 32 MiB messages with a junk token against a 40 MiB budget: one is
/// read, seven are refused before their bytes are held; the process grows
/// by far less than eight messages (before: ~8 × 2 × 32 MiB).
#[tokio::test(flavor = "multi_thread")]
async fn large_requests_share_the_memory_budget() {
    const SIZE: usize = 32 << 20;
    let server = Server::start(env().core("limits-memory", |c| {
        c.limits.memory_budget_bytes = 40 << 20;
    }))
    .await;
    let message = Bytes::from(vec![0u8; SIZE]);
    let before = rss_bytes();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let call = raw_call(server.address, FIRST, "SignDetached").await;
        let body = call.body.clone().unwrap();
        let _ = body.send(prefix(SIZE)).await;
        // All but the last byte: the admitted one stays in progress.
        let _ = body.send(message.slice(..SIZE - 1)).await;
        calls.push(call);
    }
    let finished = eventually(|| async {
        let done = calls.iter().filter(|c| c.answer.is_finished()).count();
        (done >= 7).then_some(done)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_bytes()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    assert_eq!(finished, 7, "exactly one fits the budget");
    let mut admitted = None;
    for mut call in calls {
        if call.answer.is_finished() {
            let (code, message) = (&mut call.answer).await.unwrap();
            assert_eq!(code, Code::ResourceExhausted, "{message}");
            assert!(message.contains("memory budget"), "{message}");
        } else {
            admitted = Some(call);
        }
    }
    if let Some(grown) = grown {
        assert!(grown < 300 << 20, "RSS grew by {} MiB", grown >> 20);
    }
    let mut admitted = admitted.unwrap();
    let body = admitted.body.take().unwrap();
    body.send(message.slice(SIZE - 1..)).await.unwrap();
    drop(body);
    let (code, message) = admitted.answer.await.unwrap();
    assert_eq!(
        code,
        Code::InvalidArgument,
        "zeros are no message: {message}"
    );
    sign_from(&server, FIRST, 7)
        .await
        .expect("the budget is given back");
}
