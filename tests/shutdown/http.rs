//! SIGTERM on the HTTP front door: the listener closes, a request in flight
//! is answered whole (with `Connection: close`), idle keep-alive
//! connections close, and qsign exits 0 well before the grace ends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::Encode;
use qsign::service::http::{ISSUING_CA_CERT_PATH, ISSUING_CA_CRL_PATH};
use qsign::tsa::asn1::TimeStampReq;
use qsign::tsa::MessageImprint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::free_port;
use crate::recovery::wait_for;
use crate::support::binary::{self, Qsign};
use crate::support::env;

/// How long any read may wait: past it the server hangs.
const HANG: Duration = Duration::from_secs(30);
const GRACE_SECONDS: u64 = 20;

/// What a client got for one request on its connection.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// A whole response: its status, and whether the server said it
    /// closes the connection after it.
    Complete { status: u16, closing: bool },
    /// Not a byte of a response before the connection ended: the request
    /// was not taken (RFC 9112 §9.6: a client may retry it).
    NotTaken,
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_http_keep_alive_connections() {
    let (port, http_port) = (free_port(), free_port());
    let limits = [
        ("anonymous_signatures_per_second", "100000"),
        ("shutdown_grace_seconds", &GRACE_SECONDS.to_string()),
    ];
    let config = binary::config(
        "sigterm-http",
        &qsign::state::softhsm_module(),
        port,
        &limits,
    );
    http_listener(&config, http_port);
    let mut qsign = Qsign::start(&config, port, &[]);
    let address = SocketAddr::from(([127, 0, 0, 1], http_port));

    // Certainly in flight at SIGTERM: half its body is sent before.
    let query = time_stamp_query();
    let (head, rest) = query.split_at(query.len() / 2);
    let mut slow = TcpStream::connect(address).await.expect("connect");
    slow.write_all(&[post_head(query.len()).as_bytes(), head].concat())
        .await
        .unwrap();
    // Idle on keep-alive after one exchange.
    let mut idle = TcpStream::connect(address).await.expect("connect");
    let first = exchange(&mut idle, &request(0)).await;
    assert_eq!(
        first,
        Answer::Complete {
            status: 200,
            closing: false
        }
    );

    let answered = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..4)
        .map(|i| tokio::spawn(keep_alive_loop(address, i, answered.clone())))
        .collect();
    wait_for(|| answered.load(Ordering::Relaxed) >= 40, "HTTP load").await;
    let signalled = Instant::now();
    qsign.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;

    slow.write_all(rest).await.expect("the rest of the body");
    let reply = read_answer(&mut slow).await;
    assert_eq!(
        reply,
        Answer::Complete {
            status: 200,
            closing: true
        },
        "{}",
        qsign.log()
    );
    assert_eq!(read_to_end(&mut slow).await, 0, "closed after the answer");
    assert_eq!(read_to_end(&mut idle).await, 0, "idle connection closed");
    let before = answered.load(Ordering::Relaxed);
    for task in loops {
        task.await.expect("a client loop");
    }
    assert!(answered.load(Ordering::Relaxed) >= before);

    let status = qsign.wait(Duration::from_secs(GRACE_SECONDS + 10));
    let took = signalled.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        qsign.log()
    );
    // Drained, not cut by the end of the grace.
    assert!(
        took < Duration::from_secs(GRACE_SECONDS / 2),
        "{took:?}\n{}",
        qsign.log()
    );
    let log = qsign.log();
    assert!(!log.contains("grace is over"), "{log}");
    assert!(log.contains("ephemeral_keys_alive=0"), "{log}");
    assert_eq!(env().leftover_keys("sigterm-http"), 0);
}

/// Requests of kind `i % 3` back to back over keep-alive, reconnecting
/// after a `Connection: close` or a request not taken, until the
/// connection is refused. Every answer is whole (a cut one panics).
async fn keep_alive_loop(address: SocketAddr, i: usize, answered: Arc<AtomicUsize>) {
    let mut n = i;
    'connect: loop {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            return;
        };
        loop {
            n += 1;
            match exchange(&mut stream, &request(n)).await {
                Answer::Complete { status, closing } => {
                    assert_eq!(status, 200, "request {n}");
                    answered.fetch_add(1, Ordering::Relaxed);
                    if closing {
                        continue 'connect;
                    }
                }
                Answer::NotTaken => continue 'connect,
            }
        }
    }
}

/// Sends `request` (a write may fail on a closing connection) and reads
/// the answer.
pub async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Answer {
    if stream.write_all(request).await.is_err() {
        return Answer::NotTaken;
    }
    read_answer(stream).await
}

/// One response, by its Content-Length; panics on a cut one or a hang.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let whole = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = header(&head, "content-length:").expect("Content-Length");
            if got.len() >= end + 4 + length {
                assert_eq!(got.len(), end + 4 + length, "one answer at a time");
                break head;
            }
        }
        let read = tokio::time::timeout(HANG, stream.read(&mut chunk)).await;
        match read.expect("the server hangs") {
            Ok(0) | Err(_) if got.is_empty() => return Answer::NotTaken,
            Ok(0) | Err(_) => panic!("a cut response: {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    };
    Answer::Complete {
        status: whole[9..12].parse().expect("status"),
        closing: header::<String>(&whole, "connection:").is_some_and(|v| v == "close"),
    }
}

fn header<T: std::str::FromStr>(head: &str, name: &str) -> Option<T> {
    head.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes until the server closes (0 when it closed at once).
async fn read_to_end(stream: &mut TcpStream) -> usize {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(HANG, stream.read_to_end(&mut rest)).await;
    read.expect("the server closes").map_or(0, |_| rest.len())
}

/// A time-stamp (RFC 3161 §3.4), the issuing CA's CRL or its certificate.
fn request(n: usize) -> Vec<u8> {
    match n % 3 {
        0 => [
            post_head(time_stamp_query().len()).into_bytes(),
            time_stamp_query(),
        ]
        .concat(),
        1 => get(ISSUING_CA_CRL_PATH),
        _ => get(ISSUING_CA_CERT_PATH),
    }
}

pub fn post_head(length: usize) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: qsign\r\nContent-Type: application/timestamp-query\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: qsign\r\n\r\n").into_bytes()
}

pub fn time_stamp_query() -> Vec<u8> {
    TimeStampReq {
        version: 1,
        message_imprint: MessageImprint::sha256([7; 32]),
        req_policy: None,
        nonce: None,
        cert_req: None,
        extensions: None,
    }
    .to_der()
    .unwrap()
}

/// `[tsa] listen` on `port` in the test's config (`binary::config` leaves
/// the HTTP listener out).
pub fn http_listener(config: &Path, port: u16) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replacen(
        "[tsa]\n",
        &format!("[tsa]\nlisten = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(config, text).unwrap();
}
