//! RFC 3161 §3.4 time-stamping over HTTP: `POST` a DER TimeStampReq as
//! `application/timestamp-query`, get a DER TimeStampResp as
//! `application/timestamp-reply`, on any path no other route takes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::{body, ok, over_anonymous_rate, plain, Front, Pending};
use crate::tsa::protocol::{QUERY_CONTENT_TYPE, REPLY_CONTENT_TYPE};

/// A TimeStampReq is ~100 bytes; anything near this is not one (the same
/// bound holds for OCSP requests).
pub const MAX_QUERY_BYTES: usize = 64 << 10;

pub(super) fn handle(request: Request<Incoming>, front: Arc<Front>) -> Pending {
    Box::pin(async move {
        if front.core.tsa.is_none() {
            return plain(
                StatusCode::NOT_FOUND,
                "no time-stamping authority is configured here",
            );
        }
        let usage = "POST a DER TimeStampReq (RFC 3161 §3.4)";
        let query = match body(request, QUERY_CONTENT_TYPE, usage).await {
            Ok(query) => query,
            Err(reply) => return reply,
        };
        if let Some(reply) = over_anonymous_rate(&front) {
            return reply;
        }
        match front.core.time_stamp_reply(&query).await {
            Ok(der) => ok(der, REPLY_CONTENT_TYPE),
            Err(e) => {
                tracing::error!(error = %e, "TSA: no reply");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "the TSA failed")
            }
        }
    })
}
