//! Anonymous HSM work (time-stamps, OCSP, CRLs over HTTP; the TimeStamp
//! RPC) never costs more than the configured rate (RFC 6585 429 beyond it);
//! CRLs come from a cache.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::Encode;
use qsign::config::Config;
use qsign::signing::SigningCore;
use qsign::tsa::asn1::TimeStampReq;
use qsign::tsa::MessageImprint;
use tonic::Code;

use crate::support::{env, Server};

/// The HTTP endpoint (TSA, CRLs, OCSP) of a core configured by `tweak`.
pub struct Endpoint {
    pub address: SocketAddr,
    pub core: Arc<SigningCore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Endpoint {
    pub async fn start(label: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let core = env().core(label, |c| {
            c.ocsp = Some(env().ocsp_config(&format!("http://{address}/ocsp")));
            tweak(c);
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(qsign::service::http::serve(
            core.clone(),
            listener,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            core,
            stop: Some(stop),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn time_stamp_query() -> Vec<u8> {
    TimeStampReq {
        version: 1,
        message_imprint: MessageImprint::sha256([9; 32]),
        req_policy: None,
        nonce: None,
        cert_req: None,
        extensions: None,
    }
    .to_der()
    .unwrap()
}

/// One request of kind `i % 3`: a time-stamp, an OCSP request, a CRL;
/// its status and whether a 429 said when to retry.
async fn anonymous_request(address: SocketAddr, i: usize) -> (u16, bool) {
    let post = |content_type: &str, path: &str, length: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        )
    };
    let query = time_stamp_query();
    let (head, body): (String, &[u8]) = match i % 3 {
        0 => (
            post("application/timestamp-query", "/", query.len()),
            &query,
        ),
        1 => (post("application/ocsp-request", "/ocsp", 4), b"junk"),
        _ => ("GET /crl/issuing-ca.crl HTTP/1.1\r\n".to_owned(), b""),
    };
    let (status, _, _, retry_after) = crate::tsa::http_with_headers(address, &head, body).await;
    (status, retry_after.is_some_and(|s| s >= 1))
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_requests_cost_the_hsm_at_most_the_rate() {
    const RATE: usize = 20;
    let endpoint = Endpoint::start("limits-anonymous", |c| {
        c.limits.anonymous_signatures_per_second = RATE as u32;
    })
    .await;
    let (ok, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let start = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (ok, limited, address) = (ok.clone(), limited.clone(), endpoint.address);
            tokio::spawn(async move {
                // At most ~1,000 a second in all, for ~2 s, loopback only.
                let mut i = w;
                while start.elapsed() < Duration::from_secs(2) {
                    let paced = Instant::now();
                    match anonymous_request(address, i).await {
                        (200, _) if i % 3 != 2 => ok.fetch_add(1, Ordering::Relaxed),
                        (200, _) => 0,
                        (429, true) => limited.fetch_add(1, Ordering::Relaxed),
                        other => panic!("request {i}: {other:?}"),
                    };
                    i += 16;
                    let pace = Duration::from_millis(16);
                    tokio::time::sleep(pace.saturating_sub(paced.elapsed())).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (ok, limited) = (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed));
    // The bucket starts full (one second's worth) and refills at RATE; the
    // CRL is signed at most once (cached), counted here as one more.
    let bound = (RATE as f64 * (elapsed + 1.0)) as usize + 1;
    assert!(
        ok <= bound,
        "{ok} signatures in {elapsed:.1} s, bound {bound}"
    );
    assert!(limited > 0, "{ok} ok, none refused in {elapsed:.1} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn crls_are_served_from_the_cache() {
    let endpoint = Endpoint::start("limits-crl-cache", |_| {}).await;
    let get = "GET /crl/issuing-ca.crl HTTP/1.1\r\n";
    let (status, _, first) = crate::tsa::http(endpoint.address, get, b"").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, second) = crate::tsa::http(endpoint.address, get, b"").await;
    assert_eq!(status, 200);
    assert_eq!(
        first, second,
        "the same CRL (same thisUpdate) within the interval"
    );
}

/// The TimeStamp RPC counts against the same rate.
#[tokio::test(flavor = "multi_thread")]
async fn the_time_stamp_rpc_is_within_the_anonymous_rate() {
    let endpoint = Endpoint::start("limits-rpc-rate", |c| {
        c.limits.anonymous_signatures_per_second = 3;
    })
    .await;
    let server = Server::start(endpoint.core.clone()).await;
    let mut client = server.client().await;
    let mut refused = None;
    for _ in 0..20 {
        let stamped = client
            .time_stamp(qsign::proto::TimeStampRequest {
                sha256_digest: vec![1; 32],
            })
            .await;
        if let Err(status) = stamped {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("20 time-stamps at once are over 3 a second");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("anonymous"), "{status:?}");
}
