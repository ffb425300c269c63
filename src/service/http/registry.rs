//! The registry's documents (SPEC §9): `GET /crl/organization-ca.crl` (the
//! organisation CA's CRL of every revoked, unexpired certificate, RFC 2585
//! §4.2, signed per GET within the anonymous HSM rate) and
//! `GET /ca/organization-ca.crt` (its certificate, RFC 2585 §4.1, the
//! caIssuers of RFC 5280 §4.2.2.1).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::{not_allowed, ok, over_anonymous_rate, plain, Front, Pending};
use crate::registry::{CA_CERTIFICATE_PATH, CRL_PATH};

pub(super) fn matches(path: &str) -> bool {
    path == CRL_PATH || path == CA_CERTIFICATE_PATH
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    let crl = request.uri().path() == CRL_PATH;
    let get = request.method() == Method::GET;
    Box::pin(async move {
        let Some(registry) = front.core.registry.clone() else {
            return plain(StatusCode::NOT_FOUND, "no registry is kept here");
        };
        if !get {
            return not_allowed("GET", "GET the organisation CA's CRL or certificate");
        }
        if !crl {
            return ok(registry.ca_certificate().to_vec(), "application/pkix-cert");
        }
        if let Some(reply) = over_anonymous_rate(&front) {
            return reply;
        }
        match registry.crl(&front.core.hsm).await {
            Ok(der) => ok(der, "application/pkix-crl"),
            Err(e) => {
                tracing::error!(error = %e, "organisation CA CRL: not made");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the CRL could not be made; try again",
                )
            }
        }
    })
}
