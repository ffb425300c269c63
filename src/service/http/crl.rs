//! `GET /crl/...`: a current CRL of a CA (RFC 5280 §5), RFC 2585 §4.2
//! `application/pkix-crl`, signed at most once per `[limits]
//! crl_cache_seconds` within the anonymous HSM rate.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::{not_allowed, ok, plain, too_many, Front, Pending};
use crate::pki::crl::CrlOf;
use crate::ErrorKind;

pub const ISSUING_CA_CRL_PATH: &str = "/crl/issuing-ca.crl";
pub const ROOT_CA_CRL_PATH: &str = "/crl/root-ca.crl";

pub(super) fn matches(path: &str) -> bool {
    path == ISSUING_CA_CRL_PATH || path == ROOT_CA_CRL_PATH
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    let which = match request.uri().path() {
        ROOT_CA_CRL_PATH => CrlOf::Root,
        _ => CrlOf::IssuingCa,
    };
    let get = request.method() == Method::GET;
    Box::pin(async move {
        if !get {
            return not_allowed("GET", "GET a CRL");
        }
        match front.core.cached_crl(&front.crls, which).await {
            Ok(der) => ok(der, "application/pkix-crl"),
            // The anonymous rate is used up and the cached CRL is stale.
            Err(e) if e.kind() == ErrorKind::ResourceExhausted => too_many(Duration::from_secs(1)),
            Err(e) => {
                tracing::error!(error = %e, "CRL: not made");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the CRL could not be made; try again",
                )
            }
        }
    })
}
