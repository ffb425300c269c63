//! Prometheus metrics (SPEC §12): one process-wide registry with typed
//! handles, so that any module bumps a counter without knowing the
//! exposition format; `service::http` serves [`encode`] as `GET /metrics`
//! (OpenMetrics text, which Prometheus's text parser reads).
//!
//! Label values are fixed strings chosen by qsign (method, route, code,
//! limit), never caller input: the series stay bounded.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A gRPC method and the status code it answered with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    pub method: String,
    pub code: String,
}

/// An HTTP route of the public endpoint and its status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

/// Which limit of SPEC §12 refused a request or connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

/// A key algorithm by its display name (`KeyAlgorithm::name`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlgorithmLabel {
    pub algorithm: &'static str,
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to ~33 s, doubling: a cached CRL to an RSA-3072 key generation.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric qsign exports.
pub struct Metrics {
    registry: Registry,
    pub grpc_requests: Family<GrpcLabels, Counter>,
    pub grpc_latency: Latencies<MethodLabel>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: Latencies<RouteLabel>,
    /// Time from `Hsm::run` to a worker starting the job.
    pub hsm_queue_wait: Histogram,
    /// Time a job holds its session.
    pub hsm_job: Histogram,
    pub hsm_sessions_busy: Gauge,
    pub ephemeral_keys_generated: Counter,
    pub ephemeral_keys_alive: Gauge,
    /// Pre-generated key pairs ready in the key pool (`[hsm.key_pool]`).
    pub key_pool: Family<AlgorithmLabel, Gauge>,
    /// Leaves appended to the audit log (bumped by the audit module).
    pub audit_appends: Counter,
    pub refusals: Family<LimitLabel, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("qsign");
        let metrics = Self {
            grpc_requests: Family::default(),
            grpc_latency: Family::new_with_constructor(latency),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency),
            hsm_queue_wait: latency(),
            hsm_job: latency(),
            hsm_sessions_busy: Gauge::default(),
            ephemeral_keys_generated: Counter::default(),
            ephemeral_keys_alive: Gauge::default(),
            key_pool: Family::default(),
            audit_appends: Counter::default(),
            refusals: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "grpc_requests",
            "gRPC requests answered, by method and status code",
            metrics.grpc_requests.clone(),
        );
        r.register(
            "grpc_request_duration_seconds",
            "gRPC request latency, by method",
            metrics.grpc_latency.clone(),
        );
        r.register(
            "http_requests",
            "HTTP endpoint requests, by route and status",
            metrics.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP endpoint latency, by route",
            metrics.http_latency.clone(),
        );
        r.register(
            "hsm_queue_wait_seconds",
            "time an HSM job waited for a session",
            metrics.hsm_queue_wait.clone(),
        );
        r.register(
            "hsm_job_duration_seconds",
            "time an HSM job held its session",
            metrics.hsm_job.clone(),
        );
        r.register(
            "hsm_sessions_busy",
            "pool sessions running a job now",
            metrics.hsm_sessions_busy.clone(),
        );
        r.register(
            "hsm_ephemeral_keys_generated",
            "ephemeral key pairs asked of the HSM",
            metrics.ephemeral_keys_generated.clone(),
        );
        r.register(
            "hsm_ephemeral_keys_alive",
            "ephemeral key pairs in the token now (should return to 0)",
            metrics.ephemeral_keys_alive.clone(),
        );
        r.register(
            "hsm_key_pool_keys",
            "pre-generated key pairs ready in the key pool, by algorithm",
            metrics.key_pool.clone(),
        );
        r.register(
            "audit_appends",
            "leaves appended to the audit log",
            metrics.audit_appends.clone(),
        );
        r.register(
            "limit_refusals",
            "requests and connections refused by a limit of SPEC §12",
            metrics.refusals.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The OpenMetrics text exposition of every metric.
pub fn encode() -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &metrics().registry);
    text
}

/// Counts one refusal by `limit`.
pub fn refused(limit: &'static str) {
    metrics()
        .refusals
        .get_or_create(&LimitLabel { limit })
        .inc();
}

/// Records one gRPC answer.
pub fn grpc(method: &str, code: &str, took: Duration) {
    let m = metrics();
    m.grpc_requests
        .get_or_create(&GrpcLabels {
            method: method.to_owned(),
            code: code.to_owned(),
        })
        .inc();
    m.grpc_latency
        .get_or_create(&MethodLabel {
            method: method.to_owned(),
        })
        .observe(took.as_secs_f64());
}

/// Records one HTTP answer.
pub fn http(route: &'static str, status: u16, took: Duration) {
    let m = metrics();
    m.http_requests
        .get_or_create(&HttpLabels { route, status })
        .inc();
    m.http_latency
        .get_or_create(&RouteLabel { route })
        .observe(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_exposition() {
        refused("unit_test");
        http("/unit-test", 200, Duration::from_millis(3));
        let text = encode();
        assert!(text.contains("qsign_limit_refusals_total{limit=\"unit_test\"}"));
        assert!(text.contains("qsign_http_requests_total{route=\"/unit-test\",status=\"200\"}"));
        assert!(text.ends_with("# EOF\n"));
    }
}
