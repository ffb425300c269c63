//! The outbound adapter: [`tsa::Transport`](crate::tsa::Transport) over
//! plain HTTP/1.1 (RFC 3161 §3.4), with hyper's client. It lives beside the
//! front doors so that hyper stays in one module tree; the flow sees only
//! the trait, which `app::signing_core` fills with [`HttpTransport`].
//!
//! https is not supported: a token is signed, so the transport adds no
//! integrity; an https-only TSA needs a local forwarder.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::http::content_type_is;
use crate::tsa::protocol::{QUERY_CONTENT_TYPE, REPLY_CONTENT_TYPE};
use crate::tsa::{Exchange, Transport};

/// Largest reply read (a token with a certificate chain is a few KiB).
const MAX_REPLY_BYTES: usize = 1 << 20;

/// One connection per exchange: a TSA is asked once per signature value,
/// and a fresh connection cannot be one the TSA has half-closed.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpTransport;

impl Transport for HttpTransport {
    fn exchange<'a>(&'a self, url: &'a str, query: &'a [u8], timeout: Duration) -> Exchange<'a> {
        Box::pin(async move {
            tokio::time::timeout(timeout, post(url, query))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
        })
    }
}

/// Aborts the connection's task when the exchange ends or is dropped (a
/// timeout), so that no socket outlives it.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One POST of `query` to an http URL; the reply body.
async fn post(url: &str, query: &[u8]) -> Result<Vec<u8>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("https is not supported; give an http URL".into()),
        _ => return Err("not an http URL".into()),
    }
    let authority = uri.authority().ok_or("the URL has no host")?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = TcpStream::connect((host, authority.port_u16().unwrap_or(80)))
        .await
        .map_err(|e| format!("cannot connect ({e})"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed ({e})"))?;
    let _driver = Driver(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::new(Full::new(Bytes::copy_from_slice(query)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = path.parse().map_err(|e| format!("bad path ({e})"))?;
    let headers = request.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(QUERY_CONTENT_TYPE));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("no HTTP response ({e})"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("HTTP status {}", response.status()));
    }
    if !content_type_is(response.headers(), REPLY_CONTENT_TYPE) {
        return Err(format!("the reply is not {REPLY_CONTENT_TYPE}"));
    }
    Limited::new(response.into_body(), MAX_REPLY_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .map_err(|e| format!("cannot read the reply ({e})"))
}
