//! `GET /metrics`: the Prometheus exposition of `crate::metrics`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};

use super::{not_allowed, ok, Front, Pending};

pub const METRICS_PATH: &str = "/metrics";

/// OpenMetrics 1.0 text, which Prometheus's text parser reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) fn matches(path: &str) -> bool {
    path == METRICS_PATH
}

pub(super) fn handle(request: Request<Incoming>, _: Arc<Front>) -> Pending {
    let reply = match *request.method() {
        Method::GET => ok(crate::metrics::encode(), CONTENT_TYPE),
        _ => not_allowed("GET", "GET /metrics"),
    };
    Box::pin(async move { reply })
}
