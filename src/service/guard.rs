//! The limits of SPEC §12 in front of SigningService, before tonic decodes
//! a message: the caller's concurrency and rate, the memory budget reserved
//! by the gRPC length prefix (so that junk is refused before it is held
//! in memory), the size limit, and the request deadline.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use tonic::body::Body;
use tonic::codegen::http::{Extensions, Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

use super::status;
use crate::limits::{Caller, Limiter};
use crate::{Error, ErrorKind};

/// gRPC message framing: 1 byte compressed flag, 4 bytes big-endian length
/// (gRPC over HTTP/2, "Length-Prefixed-Message").
const PREFIX: usize = 5;

/// `inner` behind the limits of `limiter`; messages above `max_message`
/// bytes are refused before they are read.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    limiter: Arc<Limiter>,
    max_message: usize,
}

impl<S> Guard<S> {
    pub fn new(inner: S, limiter: Arc<Limiter>, max_message: usize) -> Self {
        Self {
            inner,
            limiter,
            max_message,
        }
    }
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The generated server is always ready; `call` clones it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let guard = self.clone();
        Box::pin(async move {
            let deadline = guard.limiter.config.request_timeout();
            let reply = match tokio::time::timeout(deadline, guard.admit(request)).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(refused)) => refused,
                // The handler is dropped; HSM work already queued finishes
                // on its worker and its key guard destroys the key.
                Err(_) => status({
                    crate::metrics::refused("deadline");
                    Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "the request did not finish within the server's deadline of {} s; \
                         the HSM may be busy: retry later",
                            deadline.as_secs()
                        ),
                    )
                }),
            };
            Ok(reply.into_http())
        })
    }
}

impl<S> Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    /// Admits the request against every limit, then serves it; the caller's
    /// admission and the memory reservation last until the answer.
    async fn admit(mut self, request: Request<Body>) -> Result<Response<Body>, Status> {
        let caller = caller(request.extensions());
        let _admission = self.limiter.callers.admit(caller).map_err(|e| {
            tracing::debug!(%caller, "request over the caller's limits");
            crate::metrics::refused("caller");
            status(e)
        })?;
        let (parts, body) = request.into_parts();
        let (body, length) = peek_length(body).await?;
        if length > self.max_message {
            crate::metrics::refused("message_size");
            return Err(status(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "the request message is {length} bytes, more than the {} this server \
                     reads: send SHA-256 digests, or sign large PDFs hash-only (SignPdfDigest)",
                    self.max_message
                ),
            )));
        }
        let _reservation = self.limiter.memory.reserve(length).map_err(|e| {
            crate::metrics::refused("memory");
            status(e)
        })?;
        match self.inner.call(Request::from_parts(parts, body)).await {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        }
    }
}

/// SPEC §12's calling system: the TLS client certificate, else the peer
/// address (unspecified when the transport gives none).
fn caller(extensions: &Extensions) -> Caller {
    use sha2::Digest;
    let tls = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
    if let Some(certificate) = tls
        .and_then(|t| t.peer_certs())
        .and_then(|c| c.first().cloned())
    {
        return Caller::Certificate(sha2::Sha256::digest(certificate.as_ref()).into());
    }
    let tcp = tls
        .map(TlsConnectInfo::get_ref)
        .or_else(|| extensions.get::<TcpConnectInfo>());
    Caller::from_address(
        tcp.and_then(TcpConnectInfo::remote_addr)
            .map_or(std::net::Ipv6Addr::UNSPECIFIED.into(), |a| a.ip()),
    )
}

/// Reads until the first message's length prefix has arrived; the body is
/// given back whole. An empty body has length 0 (tonic refuses it).
async fn peek_length(mut body: Body) -> Result<(Body, usize), Status> {
    let mut head = VecDeque::new();
    let mut buffered = Vec::with_capacity(PREFIX);
    let mut ended = false;
    while buffered.len() < PREFIX {
        let Some(frame) = body.frame().await else {
            ended = true;
            break;
        };
        let frame = frame.map_err(|_| {
            status(Error::invalid_argument(
                "the request body could not be read",
            ))
        })?;
        if let Some(data) = frame.data_ref() {
            let take = (PREFIX - buffered.len()).min(data.len());
            buffered.extend_from_slice(&data[..take]);
        }
        let trailers = frame.is_trailers();
        head.push_back(frame);
        if trailers {
            break;
        }
    }
    let length = match buffered[..] {
        [_, a, b, c, d] => u32::from_be_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    let rest = (!ended).then_some(body);
    Ok((Body::new(Replayed { head, rest }), length))
}

/// The frames read ahead, then the rest of the body.
struct Replayed {
    head: VecDeque<Frame<Bytes>>,
    rest: Option<Body>,
}

impl hyper::body::Body for Replayed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(frame) = self.head.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}
