//! RFC 3161 §3.4 time-stamp protocol via HTTP: `POST` a DER TimeStampReq
//! as `application/timestamp-query`, get a DER TimeStampResp as
//! `application/timestamp-reply`. Any path is accepted (clients are given
//! the whole URL) but those of the revocation services: `GET /crl/...`
//! (the CAs' CRLs) and, with `[ocsp]`, `POST /ocsp` (RFC 6960 A.1). With
//! `[tls]` it is HTTPS (RFC 9110 §4.2.2) with the gRPC port's certificate
//! and client certificates. HTTP/1.1 through hyper; HTTP-level faults (method,
//! content type, size, a slow or broken body) get a 4xx with a plain-text
//! reason, every TimeStampReq gets a TimeStampResp. The HSM signatures it
//! makes for anyone share one rate (SPEC §12; 429 beyond it), and
//! connections are capped and closed when idle (`limits::Accept`).

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{protocol, TimeStampAuthority};
use crate::hsm::Hsm;
use crate::limits::{Accept, Limiter, Rate};
use crate::service::tls::Acceptor;
use crate::ErrorKind;

/// RFC 3161 §3.4 MIME types.
pub const QUERY_CONTENT_TYPE: &str = "application/timestamp-query";
pub const REPLY_CONTENT_TYPE: &str = "application/timestamp-reply";
/// A TimeStampReq is ~100 bytes; anything near this is not one.
pub const MAX_QUERY_BYTES: usize = 64 << 10;
/// How long a client may take to send its headers, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

type Reply = Response<Full<Bytes>>;

/// Which CA's CRL a GET asks for (RFC 5280 §5; served as RFC 2585 §4.2
/// `application/pkix-crl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlOf {
    IssuingCa,
    Root,
}

/// Makes a current CRL of a CA (signed in the token); given by the caller so
/// that this module needs no more than the HSM and the TSA.
pub type CrlSource = Arc<
    dyn Fn(CrlOf) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, crate::Error>> + Send>>
        + Send
        + Sync,
>;

/// Answers a DER OCSPRequest with a DER OCSPResponse (RFC 6960 App. A.1).
pub type OcspSource = Arc<
    dyn Fn(Bytes) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, crate::Error>> + Send>>
        + Send
        + Sync,
>;

/// Makes a DER document for a GET: its bytes and Content-Type.
pub type GetSource = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn Future<Output = Result<(Vec<u8>, &'static str), crate::Error>> + Send>,
        > + Send
        + Sync,
>;

/// What `GET /audit/...` serves (SPEC §11), as text/plain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditDocument {
    /// The latest signed checkpoint (C2SP tlog-checkpoint note).
    Checkpoint,
    /// The log's signed-note verifier key.
    Vkey,
}

/// Answers an [`AuditDocument`]; `None` when there is none yet.
pub type AuditSource = Arc<
    dyn Fn(
            AuditDocument,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<Option<String>, crate::Error>> + Send>>
        + Send
        + Sync,
>;

pub const AUDIT_CHECKPOINT_PATH: &str = "/audit/checkpoint";
pub const AUDIT_VKEY_PATH: &str = "/audit/vkey";

/// What the endpoint serves besides time-stamps; each made by the caller.
#[derive(Clone, Default)]
pub struct Revocation {
    pub crls: Option<CrlSource>,
    pub ocsp: Option<OcspSource>,
    /// DER of the issuing CA's and the root's certificates, for `GET /ca/...`.
    pub ca_certificates: Option<(Bytes, Bytes)>,
    /// More GET paths (SPEC §9: the organisation CA's CRL and certificate).
    pub documents: Vec<(&'static str, GetSource)>,
    /// The audit log's checkpoint and verifier key, with `[audit]`.
    pub audit: Option<AuditSource>,
    /// SPEC §10 public certificate lookup (`GET /lookup`, `/api/v1/certificates`).
    pub lookup: Option<Arc<crate::registry::lookup::Lookup>>,
}

/// RFC 6960 Appendix A.1: where OCSP requests are POSTed, and the types.
pub const OCSP_PATH: &str = "/ocsp";
pub const OCSP_REQUEST_TYPE: &str = "application/ocsp-request";
pub const OCSP_RESPONSE_TYPE: &str = "application/ocsp-response";

/// Paths of the CA certificates (EN 319 412-2 §4.4.1 caIssuers), served as
/// RFC 2585 §4.1 `application/pkix-cert` DER.
pub const ISSUING_CA_CERT_PATH: &str = "/ca/issuing-ca.cer";
pub const ROOT_CA_CERT_PATH: &str = "/ca/root-ca.cer";

/// Paths of the CRLs on the endpoint.
pub const ISSUING_CA_CRL_PATH: &str = "/crl/issuing-ca.crl";
pub const ROOT_CA_CRL_PATH: &str = "/crl/root-ca.crl";

/// Serves the TSA on `listener` until `shutdown` completes; each connection
/// runs in its own task (after its TLS handshake with `tls`), the HSM work
/// of each query in [`Hsm::run`]. The `limiter` caps connections and the
/// anonymous HSM signatures (SPEC §12).
pub async fn serve(
    hsm: Hsm,
    tsa: Arc<TimeStampAuthority>,
    revocation: Revocation,
    limiter: Arc<Limiter>,
    listener: TcpListener,
    tls: Option<Acceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut incoming = Accept::new(
        listener,
        limiter.connections(),
        limiter.config.idle_timeout(),
    );
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = incoming.next() => accepted,
        };
        let (hsm, tsa, revocation, tls) =
            (hsm.clone(), tsa.clone(), revocation.clone(), tls.clone());
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let ended = match tls {
                None => {
                    let io = TokioIo::new(stream);
                    connection(io, hsm, tsa, revocation, limiter, peer.ip()).await
                }
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        let io = TokioIo::new(stream);
                        connection(io, hsm, tsa, revocation, limiter, peer.ip()).await
                    }
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "TSA: TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "TSA: connection ended");
            }
        });
    }
}

/// HTTP/1.1 on one connection, plain or TLS.
async fn connection<I>(
    io: I,
    hsm: Hsm,
    tsa: Arc<TimeStampAuthority>,
    revocation: Revocation,
    limiter: Arc<Limiter>,
    peer: IpAddr,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let (hsm, tsa, revocation) = (hsm.clone(), tsa.clone(), revocation.clone());
        let limiter = limiter.clone();
        async move {
            let rate = &limiter.anonymous;
            Ok::<_, Infallible>(route(request, &hsm, &tsa, &revocation, rate, peer).await)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT);
    builder.serve_connection(io, service).await
}

/// `GET /ca/...` serves a CA certificate, `GET /crl/...` a CRL, `POST /ocsp`
/// and `GET /ocsp/<request>` answer OCSP; everything else is an RFC 3161
/// query.
async fn route(
    request: Request<Incoming>,
    hsm: &Hsm,
    tsa: &Arc<TimeStampAuthority>,
    revocation: &Revocation,
    rate: &Rate,
    peer: IpAddr,
) -> Reply {
    if let Some(lookup) = &revocation.lookup {
        if crate::service::lookup::serves(request.uri().path()) {
            return crate::service::lookup::handle(request, lookup, peer).await;
        }
    }
    let path = request.uri().path();
    let ocsp_get = path
        .strip_prefix(OCSP_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|_| request.method() == Method::GET);
    if path == OCSP_PATH || ocsp_get.is_some() {
        let Some(ocsp) = &revocation.ocsp else {
            return plain(
                StatusCode::NOT_FOUND,
                "no OCSP responder is configured here",
            );
        };
        return match ocsp_get.map(ocsp_get_request) {
            None => answer_ocsp(request, ocsp, rate).await,
            Some(Some(der)) => respond_ocsp(ocsp, Bytes::from(der), rate).await,
            Some(None) => plain(
                StatusCode::BAD_REQUEST,
                "GET /ocsp/ takes the URL-encoded base64 of a DER OCSPRequest (RFC 6960 A.1)",
            ),
        };
    }
    if let (Some((issuing, root)), true) =
        (&revocation.ca_certificates, request.method() == Method::GET)
    {
        match path {
            ISSUING_CA_CERT_PATH => return der_reply(issuing.clone(), "application/pkix-cert"),
            ROOT_CA_CERT_PATH => return der_reply(root.clone(), "application/pkix-cert"),
            _ => {}
        }
    }
    if let Some((_, source)) = revocation.documents.iter().find(|(p, _)| *p == path) {
        if request.method() == Method::GET {
            // The organisation CA's CRL is signed per GET: anonymous HSM work.
            if let Err(wait) = rate.try_take() {
                return too_many(wait);
            }
            return document(source).await;
        }
    }
    let audit_document = match path {
        AUDIT_CHECKPOINT_PATH => Some(AuditDocument::Checkpoint),
        AUDIT_VKEY_PATH => Some(AuditDocument::Vkey),
        _ => None,
    };
    if let Some(document) = audit_document {
        if request.method() != Method::GET {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET the audit log's checkpoint or key",
            );
        }
        return audit(&revocation.audit, document).await;
    }
    let which = match path {
        ISSUING_CA_CRL_PATH => Some(CrlOf::IssuingCa),
        ROOT_CA_CRL_PATH => Some(CrlOf::Root),
        _ => None,
    };
    match (which, &revocation.crls, request.method() == Method::GET) {
        (Some(which), Some(crls), true) => crl(crls, which).await,
        (Some(_), None, true) => plain(StatusCode::NOT_FOUND, "no CRLs are served here"),
        _ => handle(request, hsm, tsa, rate).await,
    }
}

/// `GET /audit/checkpoint`, `GET /audit/vkey` (SPEC §11): text/plain.
async fn audit(source: &Option<AuditSource>, document: AuditDocument) -> Reply {
    let Some(source) = source else {
        return plain(StatusCode::NOT_FOUND, "no audit log is kept here");
    };
    match source(document).await {
        Ok(Some(text)) => {
            let mut reply = Response::new(Full::new(Bytes::from(text)));
            reply.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            reply
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "no checkpoint has been signed yet"),
        Err(e) => {
            tracing::error!(error = %e, "audit: cannot read the checkpoint");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be read; try again later",
            )
        }
    }
}

async fn answer_ocsp(request: Request<Incoming>, ocsp: &OcspSource, rate: &Rate) -> Reply {
    let body = match body(
        request,
        OCSP_REQUEST_TYPE,
        "POST a DER OCSPRequest (RFC 6960 A.1.1)",
    )
    .await
    {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    respond_ocsp(ocsp, body, rate).await
}

/// RFC 6960 A.1: `GET {url}/{url-encoding of base-64 encoding of the DER
/// encoding of the OCSPRequest}`; `None` when it is not that.
fn ocsp_get_request(encoded: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    if encoded.len() > MAX_QUERY_BYTES {
        return None;
    }
    let mut text = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.bytes();
    while let Some(b) = bytes.next() {
        text.push(match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b => b,
        });
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

async fn respond_ocsp(ocsp: &OcspSource, request: Bytes, rate: &Rate) -> Reply {
    if let Err(wait) = rate.try_take() {
        return too_many(wait);
    }
    match ocsp(request).await {
        Ok(der) => der_reply(der, OCSP_RESPONSE_TYPE),
        Err(e) => {
            tracing::error!(error = %e, "OCSP: no response");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the OCSP response could not be made",
            )
        }
    }
}

async fn crl(crls: &CrlSource, which: CrlOf) -> Reply {
    match crls(which).await {
        Ok(der) => der_reply(der, "application/pkix-crl"),
        // The source signs a new CRL only when its cache is stale, within
        // the anonymous rate.
        Err(e) if e.kind() == ErrorKind::ResourceExhausted => too_many(Duration::from_secs(1)),
        Err(e) => {
            tracing::error!(error = %e, "CRL: not made");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the CRL could not be made; try again",
            )
        }
    }
}

async fn document(source: &GetSource) -> Reply {
    match source().await {
        Ok((der, content_type)) => der_reply(der, content_type),
        Err(e) => {
            tracing::error!(error = %e, "document not made");
            plain(StatusCode::SERVICE_UNAVAILABLE, "not available; try again")
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    hsm: &Hsm,
    tsa: &Arc<TimeStampAuthority>,
    rate: &Rate,
) -> Reply {
    let query = match body(
        request,
        QUERY_CONTENT_TYPE,
        "POST a DER TimeStampReq (RFC 3161 §3.4)",
    )
    .await
    {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    if let Err(wait) = rate.try_take() {
        return too_many(wait);
    }
    match protocol::respond(hsm, tsa, &query).await {
        Ok(der) => der_reply(der, REPLY_CONTENT_TYPE),
        Err(e) => {
            tracing::error!(error = %e, "TSA: no reply");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "the TSA failed")
        }
    }
}

/// The body of a well-formed POST of `content_type`, or the 4xx that
/// explains why not (`usage` for a wrong method).
async fn body(
    request: Request<Incoming>,
    content_type: &'static str,
    usage: &'static str,
) -> Result<Bytes, Reply> {
    if request.method() != Method::POST {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, usage);
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Err(reply);
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

/// 200 with a DER body of `content_type`.
fn der_reply(der: impl Into<Bytes>, content_type: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(der.into()));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
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

fn plain(status: StatusCode, reason: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(reason.as_bytes())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}
