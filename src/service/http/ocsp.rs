//! OCSP over HTTP (RFC 6960 Appendix A.1): `POST /ocsp` with a DER
//! OCSPRequest, or `GET /ocsp/{url-encoded base64 of it}`; answered by the
//! `[ocsp]` responder within the anonymous HSM rate.

use std::sync::Arc;

use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, StatusCode};

use super::{body, ok, over_anonymous_rate, plain, Front, Pending, Reply, MAX_QUERY_BYTES};

pub const OCSP_PATH: &str = "/ocsp";
pub const OCSP_REQUEST_TYPE: &str = "application/ocsp-request";
pub const OCSP_RESPONSE_TYPE: &str = "application/ocsp-response";

pub(super) fn matches(path: &str) -> bool {
    path == OCSP_PATH || path.starts_with("/ocsp/")
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    Box::pin(async move {
        if front.core.ocsp.is_none() && front.core.registry.is_none() {
            return plain(
                StatusCode::NOT_FOUND,
                "no OCSP responder is configured here",
            );
        }
        let encoded = request
            .uri()
            .path()
            .strip_prefix("/ocsp/")
            .filter(|_| request.method() == Method::GET)
            .map(get_request);
        let der =
            match encoded {
                Some(Some(der)) => Bytes::from(der),
                Some(None) => return plain(
                    StatusCode::BAD_REQUEST,
                    "GET /ocsp/ takes the URL-encoded base64 of a DER OCSPRequest (RFC 6960 A.1)",
                ),
                None => {
                    let usage = "POST a DER OCSPRequest (RFC 6960 A.1.1)";
                    match body(request, OCSP_REQUEST_TYPE, usage).await {
                        Ok(der) => der,
                        Err(reply) => return reply,
                    }
                }
            };
        respond(&front, &der).await
    })
}

async fn respond(front: &Front, request: &[u8]) -> Reply {
    if let Some(reply) = over_anonymous_rate(front) {
        return reply;
    }
    // SPEC §9: the organisation CA's certificates are answered from the
    // registry (true status); others by the `[ocsp]` responder.
    let registry = match &front.core.registry {
        Some(registry) => registry.ocsp_answer(&front.core.hsm, request).await,
        None => None,
    };
    let answer = match registry {
        Some(answer) => answer,
        None if front.core.ocsp.is_some() => front.core.ocsp_answer(request).await,
        // RFC 6960 §2.3: not a request, or not a CA this server answers for.
        None if crate::pki::ocsp::parse_request(request).is_none() => {
            crate::pki::ocsp::malformed_request()
        }
        None => der::Encode::to_der(&x509_ocsp::OcspResponse::unauthorized())
            .map_err(crate::pki::encoding),
    };
    match answer {
        Ok(der) => ok(der, OCSP_RESPONSE_TYPE),
        Err(e) => {
            tracing::error!(error = %e, "OCSP: no response");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the OCSP response could not be made",
            )
        }
    }
}

/// RFC 6960 A.1: `GET {url}/{url-encoding of base-64 encoding of the DER
/// encoding of the OCSPRequest}`; `None` when it is not that.
fn get_request(encoded: &str) -> Option<Vec<u8>> {
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
