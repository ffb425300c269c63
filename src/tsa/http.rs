//! RFC 3161 §3.4 time-stamp protocol via HTTP: `POST` a DER TimeStampReq
//! as `application/timestamp-query`, get a DER TimeStampResp as
//! `application/timestamp-reply`. Any path is accepted (clients are given
//! the whole URL). HTTP/1.1 through hyper; HTTP-level faults (method,
//! content type, size, a slow or broken body) get a 4xx with a plain-text
//! reason, every TimeStampReq gets a TimeStampResp.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{protocol, TimeStampAuthority};
use crate::hsm::Hsm;

/// RFC 3161 §3.4 MIME types.
pub const QUERY_CONTENT_TYPE: &str = "application/timestamp-query";
pub const REPLY_CONTENT_TYPE: &str = "application/timestamp-reply";
/// A TimeStampReq is ~100 bytes; anything near this is not one.
pub const MAX_QUERY_BYTES: usize = 64 << 10;
/// How long a client may take to send its headers, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

type Reply = Response<Full<Bytes>>;

/// Serves the TSA on `listener` until `shutdown` completes; each connection
/// runs in its own task, the HSM work of each query in [`Hsm::run`].
pub async fn serve(
    hsm: Hsm,
    tsa: Arc<TimeStampAuthority>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // E.g. out of file descriptors: back off, keep serving.
                    tracing::warn!(error = %e, "TSA: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (hsm, tsa) = (hsm.clone(), tsa.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (hsm, tsa) = (hsm.clone(), tsa.clone());
                async move { Ok::<_, Infallible>(handle(request, &hsm, &tsa).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "TSA: connection ended");
            }
        });
    }
}

async fn handle(request: Request<Incoming>, hsm: &Hsm, tsa: &Arc<TimeStampAuthority>) -> Reply {
    let query = match query(request).await {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    match protocol::respond(hsm, tsa, &query).await {
        Ok(der) => {
            let mut reply = Response::new(Full::new(Bytes::from(der)));
            reply
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(REPLY_CONTENT_TYPE));
            reply
        }
        Err(e) => {
            tracing::error!(error = %e, "TSA: no reply");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "the TSA failed")
        }
    }
}

/// The body of a well-formed query, or the 4xx that explains why not.
async fn query(request: Request<Incoming>) -> Result<Bytes, Reply> {
    if request.method() != Method::POST {
        let mut reply = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST a DER TimeStampReq (RFC 3161 §3.4)",
        );
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Err(reply);
    }
    if !content_type_is(request.headers(), QUERY_CONTENT_TYPE) {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/timestamp-query",
        ));
    }
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a TimeStampReq is at most 64 KiB",
        )
    };
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

/// Whether Content-Type names `expected`, ignoring case and parameters.
pub(crate) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
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

fn plain(status: StatusCode, reason: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(reason.as_bytes())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}
