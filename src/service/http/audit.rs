//! `GET /audit/checkpoint` (the latest signed C2SP tlog-checkpoint note) and
//! `GET /audit/vkey` (the log's signed-note verifier key), SPEC §11.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::{not_allowed, ok, plain, Front, Pending};

pub const AUDIT_CHECKPOINT_PATH: &str = "/audit/checkpoint";
pub const AUDIT_VKEY_PATH: &str = "/audit/vkey";

pub(super) fn matches(path: &str) -> bool {
    path == AUDIT_CHECKPOINT_PATH || path == AUDIT_VKEY_PATH
}

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    let vkey = request.uri().path() == AUDIT_VKEY_PATH;
    let get = request.method() == Method::GET;
    Box::pin(async move {
        let Some(log) = front.core.audit.clone() else {
            return plain(StatusCode::NOT_FOUND, "no audit log is kept here");
        };
        if !get {
            return not_allowed("GET", "GET the audit log's checkpoint or key");
        }
        let text = if vkey {
            Ok(Some(log.vkey() + "\n"))
        } else {
            log.latest_checkpoint().await
        };
        match text {
            Ok(Some(text)) => ok(text, "text/plain; charset=utf-8"),
            Ok(None) => plain(StatusCode::NOT_FOUND, "no checkpoint has been signed yet"),
            Err(e) => {
                tracing::error!(error = %e, "audit: cannot read the checkpoint");
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the audit log cannot be read; try again later",
                )
            }
        }
    })
}
