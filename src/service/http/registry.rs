//! The registry's documents (SPEC §9): `GET /crl/organization-ca.crl` (the
//! organisation CA's CRL of every revoked, unexpired certificate, RFC 2585
//! §4.2, signed again within the anonymous HSM rate when a revocation came
//! or the last one is five minutes old) and
//! `GET /ca/organization-ca.crt` (its certificate, RFC 2585 §4.1, the
//! caIssuers of RFC 5280 §4.2.2.1).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use std::time::Duration;

use super::{not_allowed, ok, plain, too_many, Front, Pending};
use crate::registry::{CA_CERTIFICATE_PATH, CRL_PATH};
use crate::ErrorKind;

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
        let limiter = &front.core.limiter.anonymous;
        match registry
            .crl(&front.core.hsm, || limiter.admit("a new CRL"))
            .await
        {
            Ok(der) => ok(der, "application/pkix-crl"),
            // The anonymous rate is used up and the CRL must be signed again.
            Err(e) if e.kind() == ErrorKind::ResourceExhausted => too_many(Duration::from_secs(1)),
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
