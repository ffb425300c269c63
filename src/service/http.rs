//! The HTTP front door, beside gRPC: RFC 3161 time-stamps (§3.4, any path
//! not routed elsewhere: clients are given the whole URL), the CAs' CRLs,
//! OCSP (RFC 6960 A.1), the CA certificates and Prometheus metrics; later
//! the audit, lookup and CSC routes plug into [`ROUTES`] as one line each.
//! It decodes HTTP, takes the anonymous HSM rate (SPEC §12; 429 beyond it),
//! calls the signing flow and maps its errors — no domain logic here.
//!
//! HTTP/1.1 through hyper; with `[tls]` HTTPS (RFC 9110 §4.2.2) with the
//! gRPC port's certificate and client certificates. Connections are capped
//! and closed when idle (`limits::Accept`); HTTP-level faults (method,
//! content type, size, a slow or broken body) get a 4xx with a plain-text
//! reason. Every request runs in a span with its request id, returned in
//! `x-request-id`, and is counted by route and status (`crate::metrics`).

mod audit;
mod ca;
mod crl;
mod csc;
mod lookup;
mod metrics;
mod ocsp;
mod registry;
mod timestamp;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::observe::{request_id, REQUEST_ID};
use super::tls::Acceptor;
use crate::limits::Accept;
use crate::signing::{CrlCache, SigningCore};

pub use audit::{AUDIT_CHECKPOINT_PATH, AUDIT_VKEY_PATH};
pub use ca::{ISSUING_CA_CERT_PATH, ROOT_CA_CERT_PATH};
pub use crl::{ISSUING_CA_CRL_PATH, ROOT_CA_CRL_PATH};
pub use metrics::METRICS_PATH;
pub use ocsp::{OCSP_PATH, OCSP_REQUEST_TYPE, OCSP_RESPONSE_TYPE};
pub use timestamp::MAX_QUERY_BYTES;

/// How long a client may take to send its headers, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

type Reply = Response<Full<Bytes>>;
type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// What every route shares: the flow, the CRLs it signed lately, and the
/// CSC facade when enabled.
pub struct Front {
    core: Arc<SigningCore>,
    crls: CrlCache,
    csc: Option<Arc<crate::signing::csc::Csc>>,
    /// SPEC §10, with a registry.
    lookup: Option<crate::registry::lookup::Lookup>,
}

/// A route: the paths it takes, its metric label and its handler.
struct Route {
    /// A fixed name for metrics and logs, never the caller's path.
    name: &'static str,
    matches: fn(&str) -> bool,
    handle: fn(Request<Incoming>, Arc<Front>) -> Pending,
}

/// First match wins; everything else is an RFC 3161 query. One line a route.
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { name: "/metrics", matches: metrics::matches, handle: metrics::handle },
    Route { name: "/audit", matches: audit::matches, handle: audit::handle },
    Route { name: "/csc", matches: csc::matches, handle: csc::handle },
    Route { name: "/registry", matches: registry::matches, handle: registry::handle },
    Route { name: "/lookup", matches: lookup::matches, handle: lookup::handle },
    Route { name: "/ca", matches: ca::matches, handle: ca::handle },
    Route { name: "/crl", matches: crl::matches, handle: crl::handle },
    Route { name: "/ocsp", matches: ocsp::matches, handle: ocsp::handle },
];
const TIME_STAMP: Route = Route {
    name: "timestamp",
    matches: |_| true,
    handle: timestamp::handle,
};

/// Serves the HTTP front door of `core` on `listener` until `shutdown`
/// completes, then drains: returns once every connection has ended. Each
/// connection runs in its own task (after its TLS handshake with `tls`),
/// the HSM work of each request in `Hsm::run`.
pub async fn serve(
    core: Arc<SigningCore>,
    listener: TcpListener,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(core, None, listener, tls, shutdown).await
}

/// [`serve`] with the CSC API of `csc` under `/csc/` (SPEC §13).
pub async fn serve_with(
    core: Arc<SigningCore>,
    csc: Option<Arc<crate::signing::csc::Csc>>,
    listener: TcpListener,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let limiter = core.limiter.clone();
    let mut incoming = Accept::new(
        listener,
        limiter.connections(),
        limiter.config.idle_timeout(),
    );
    let lookup = core
        .registry
        .clone()
        .map(crate::registry::lookup::Lookup::new);
    let front = Arc::new(Front {
        core,
        crls: CrlCache::default(),
        csc,
        lookup,
    });
    tokio::pin!(shutdown);
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = incoming.next() => accepted,
            // Reaps ended connections so that the set holds open ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (front, tls, closed) = (front.clone(), tls.clone(), closed.clone());
        connections.spawn(async move {
            let caller = lookup::Peer(peer.ip());
            let ended = match tls {
                None => connection(TokioIo::new(stream), front, caller, closed).await,
                Some(tls) => {
                    let handshake = tokio::select! {
                        shaken = tls.accept(stream) => shaken,
                        () = stopped(closed.clone()) => return,
                    };
                    match handshake {
                        Ok(stream) => connection(TokioIo::new(stream), front, caller, closed).await,
                        Err(e) => {
                            tracing::info!(%peer, error = %e, "HTTP: TLS handshake failed");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "HTTP: connection ended");
            }
        });
    }
    // Closing the listener refuses new connections; each open one ends
    // after the response in progress (the caller's grace bounds the wait).
    drop(incoming);
    closing.send_replace(true);
    tracing::debug!(open = connections.len(), "HTTP: draining connections");
    while connections.join_next().await.is_some() {}
}

/// Completes once `closed` says so (or its sender is gone).
async fn stopped(mut closed: watch::Receiver<bool>) {
    let _ = closed.wait_for(|closed| *closed).await;
}

/// HTTP/1.1 on one connection, plain or TLS, until `closed`: then the
/// response in progress is finished, with `Connection: close`, and an idle
/// keep-alive connection closes at once (RFC 9112 §9.6).
async fn connection<I>(
    io: I,
    front: Arc<Front>,
    peer: lookup::Peer,
    closed: watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer);
        let front = front.clone();
        async move { Ok::<_, Infallible>(dispatch(request, front).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
    let serving = builder.serve_connection(io, service);
    tokio::pin!(serving);
    tokio::select! {
        ended = serving.as_mut() => return ended,
        () = stopped(closed) => {}
    }
    serving.as_mut().graceful_shutdown();
    serving.await
}

/// Routes one request in a span naming its request id (the caller's
/// `x-request-id` if well-formed), returned in the reply; counts it.
async fn dispatch(request: Request<Incoming>, front: Arc<Front>) -> Reply {
    let id = request_id(request.headers());
    let path = request.uri().path();
    let route = ROUTES
        .iter()
        .find(|r| (r.matches)(path))
        .unwrap_or(&TIME_STAMP);
    let span = tracing::info_span!("http", request_id = %id, route = route.name);
    let started = Instant::now();
    // SPEC §12: the same deadline as gRPC. A request whose HSM call hangs
    // gets 503 instead of waiting for the token; its job, if still queued,
    // is dropped unrun, and nothing signed by it leaves.
    let deadline = front.core.limiter.config.request_timeout();
    let handled = (route.handle)(request, front).instrument(span.clone());
    let mut reply = match tokio::time::timeout(deadline, handled).await {
        Ok(reply) => reply,
        Err(_) => {
            crate::metrics::refused("deadline");
            span.in_scope(|| tracing::warn!("past the request deadline"));
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request did not finish within the deadline; try again later",
            )
        }
    };
    let status = reply.status().as_u16();
    span.in_scope(|| tracing::debug!(status, "answered"));
    crate::metrics::http(route.name, status, started.elapsed());
    if let Ok(value) = HeaderValue::from_str(&id) {
        reply.headers_mut().insert(REQUEST_ID, value);
    }
    reply
}

/// The body of a well-formed POST of `content_type`, or the 4xx that
/// explains why not (`usage` for a wrong method).
async fn body(
    request: Request<Incoming>,
    content_type: &'static str,
    usage: &'static str,
) -> Result<Bytes, Reply> {
    if request.method() != Method::POST {
        return Err(not_allowed("POST", usage));
    }
    if !content_type_is(request.headers(), content_type) {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "wrong Content-Type: application/timestamp-query or application/ocsp-request",
        ));
    }
    let too_large = || plain(StatusCode::PAYLOAD_TOO_LARGE, "a request is at most 64 KiB");
    if declared_length(request.headers()).is_some_and(|n| n > MAX_QUERY_BYTES as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), MAX_QUERY_BYTES).collect();
    match tokio::time::timeout(READ_TIMEOUT, body).await {
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(plain(StatusCode::BAD_REQUEST, "the body could not be read")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Whether Content-Type names `expected`, ignoring case and parameters
/// (RFC 9110 §8.3.1).
pub(super) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// 200 with a body of `content_type`.
fn ok(body: impl Into<Bytes>, content_type: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// RFC 9110 §15.5.6 405, with the Allow header.
fn not_allowed(allow: &'static str, usage: &'static str) -> Reply {
    let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, usage);
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

/// RFC 6585 §4 429 Too Many Requests, with Retry-After (RFC 9110 §10.2.3)
/// in whole seconds: the anonymous HSM rate (SPEC §12) is used up.
fn too_many(wait: Duration) -> Reply {
    let mut reply = plain(
        StatusCode::TOO_MANY_REQUESTS,
        "this endpoint's rate of HSM signatures is used up; retry after the Retry-After seconds",
    );
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    reply
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    reply
}

/// Takes one unit of the anonymous HSM rate; the 429 to send when none
/// is left.
fn over_anonymous_rate(front: &Front) -> Option<Reply> {
    let wait = front.core.limiter.anonymous.try_take().err()?;
    crate::metrics::refused("anonymous_rate");
    Some(too_many(wait))
}

fn plain(status: StatusCode, reason: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(reason.as_bytes())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}
