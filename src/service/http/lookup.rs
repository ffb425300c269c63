//! `GET /lookup...` and `GET /api/v1/certificates...`: the public lookup
//! of published certificates (SPEC §10), when a registry is kept;
//! `service::lookup` renders it, rate-limited per client address.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::{plain, Front, Pending};

/// The caller's address, put into each request's extensions by the
/// connection that read it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer(pub IpAddr);

pub(super) fn matches(path: &str) -> bool {
    crate::service::lookup::serves(path)
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    Box::pin(async move {
        let peer = request
            .extensions()
            .get::<Peer>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0);
        match &front.lookup {
            Some(lookup) => crate::service::lookup::handle(request, lookup, peer).await,
            None => plain(
                StatusCode::NOT_FOUND,
                "no certificate registry is kept here",
            ),
        }
    })
}
