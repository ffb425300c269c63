//! `GET /ca/...`: the CA certificates (EN 319 412-2 §4.4.1 caIssuers),
//! RFC 2585 §4.1 `application/pkix-cert` DER.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};

use super::{not_allowed, ok, Front, Pending};

pub const ISSUING_CA_CERT_PATH: &str = "/ca/issuing-ca.cer";
pub const ROOT_CA_CERT_PATH: &str = "/ca/root-ca.cer";

pub(super) fn matches(path: &str) -> bool {
    path == ISSUING_CA_CERT_PATH || path == ROOT_CA_CERT_PATH
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    let reply = if request.method() != Method::GET {
        not_allowed("GET", "GET a CA certificate")
    } else if request.uri().path() == ROOT_CA_CERT_PATH {
        ok(front.core.root.der.clone(), "application/pkix-cert")
    } else {
        ok(front.core.issuer.der.clone(), "application/pkix-cert")
    };
    Box::pin(async move { reply })
}
