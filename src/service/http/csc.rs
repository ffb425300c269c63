//! `/csc/v1/...` and `/csc/v2/...`: the CSC API (SPEC §13), when `[csc]`
//! is enabled; `service::csc` decodes it.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::{plain, Front, Pending};

pub(super) fn matches(path: &str) -> bool {
    path.starts_with("/csc/")
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    Box::pin(async move {
        match &front.csc {
            Some(csc) => crate::service::csc::handle(request, csc).await,
            None => plain(StatusCode::NOT_FOUND, "the CSC API is not enabled here"),
        }
    })
}
