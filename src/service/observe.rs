//! Around every gRPC request: a request id (the caller's `x-request-id` if
//! well-formed, else a fresh UUID) in a tracing span, so that every log
//! line of the request names it, and in the response metadata; and the
//! request's count and latency by method and code (`crate::metrics`).

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, HeaderValue, Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tracing::Instrument;

/// The header (gRPC metadata key) carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// `inner` with request ids and metrics.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S> Observe<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for Observe<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for Observe<S>
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let id = request_id(request.headers());
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!("grpc", request_id = %id, method = %method);
        let mut inner = self.inner.clone();
        let started = Instant::now();
        Box::pin(
            async move {
                let Ok(mut response) = inner.call(request).await;
                let code = grpc_code(response.headers());
                // UNIMPLEMENTED paths are the caller's invention: one series
                // for all of them keeps the label set bounded.
                let method = if code == "12" { "unknown" } else { &method };
                crate::metrics::grpc(method, code_name(code), started.elapsed());
                tracing::debug!(code = code_name(code), "answered");
                if let Ok(value) = HeaderValue::from_str(&id) {
                    response.headers_mut().insert(REQUEST_ID, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The caller's request id when it is 1 to 128 visible characters of
/// `[A-Za-z0-9._:-]` (safe in logs and headers), else a new UUID v4.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The grpc-status of a trailers-only answer (every error tonic makes);
/// a response with a body carries OK, or its status in the trailers.
fn grpc_code(headers: &HeaderMap) -> &str {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
}

/// gRPC status code names (grpc/doc/statuscodes.md).
fn code_name(code: &str) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    code.parse::<usize>()
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_request_id_is_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123.x:y_z"));
        assert_eq!(request_id(&headers), "abc-123.x:y_z");
        headers.insert(REQUEST_ID, HeaderValue::from_static("a b\"c"));
        let fresh = request_id(&headers);
        assert!(uuid::Uuid::parse_str(&fresh).is_ok());
        headers.insert(REQUEST_ID, HeaderValue::from_str(&"a".repeat(129)).unwrap());
        assert_ne!(request_id(&headers).len(), 129);
    }

    #[test]
    fn codes_have_their_names() {
        assert_eq!(code_name("0"), "OK");
        assert_eq!(code_name("14"), "UNAVAILABLE");
        assert_eq!(code_name("99"), "UNKNOWN");
    }
}
