//! Observability: `GET /metrics` parses with the reference OpenMetrics
//! parser and its counters follow the requests made; every answer carries
//! the request id (the caller's when well-formed).

use std::collections::HashMap;
use std::ffi::OsStr;

use qsign::proto::TimeStampRequest;

use crate::support::{tools, Server};
use crate::tsa::{http, TsaServer};

type Samples = HashMap<String, f64>;

/// The endpoint's exposition, parsed by `tests/validate/metrics.py`;
/// `None` where the validators' Python is missing (outside CI).
async fn scrape(tsa: &TsaServer) -> Option<Samples> {
    let (status, content_type, body) = http(tsa.address, "GET /metrics HTTP/1.1\r\n", b"").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = String::from_utf8(body).expect("UTF-8");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let script = tools::own_script("metrics.py");
    let parsed = tools::validate_own(&script, &[OsStr::new(&file)]).expect("it parses")?;
    Some(serde_json::from_value(parsed).expect("name -> value"))
}

fn value(samples: &Samples, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_requests_and_parse() {
    let tsa = TsaServer::start_with("metrics", false).await;
    let server = Server::start(tsa.core.clone()).await;
    let Some(before) = scrape(&tsa).await else {
        return;
    };
    let mut client = server.client().await;
    for i in 0..3 {
        let mut request = tonic::Request::new(TimeStampRequest {
            sha256_digest: vec![0; 7],
        });
        request
            .metadata_mut()
            .insert("x-request-id", format!("metrics-test-{i}").parse().unwrap());
        let refused = client.time_stamp(request).await.expect_err("7 bytes");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        let id = refused.metadata().get("x-request-id").expect("request id");
        assert_eq!(id.to_str().unwrap(), format!("metrics-test-{i}"));
    }
    let wrong_type = "POST / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n";
    for _ in 0..2 {
        assert_eq!(http(tsa.address, wrong_type, b"x").await.0, 415);
    }
    let after = scrape(&tsa).await.expect("parsed before");

    let grpc = "qsign_grpc_requests_total{code=INVALID_ARGUMENT,method=/qsign.v1.SigningService/TimeStamp}";
    assert!(
        value(&after, grpc) - value(&before, grpc) >= 3.0,
        "{after:?}"
    );
    let http_415 = "qsign_http_requests_total{route=timestamp,status=415}";
    assert!(value(&after, http_415) - value(&before, http_415) >= 2.0);
    // Only this test scrapes: the first scrape is counted, the second not yet.
    assert_eq!(
        value(
            &after,
            "qsign_http_requests_total{route=/metrics,status=200}"
        ),
        1.0
    );
    for family in [
        "qsign_hsm_sessions_busy{}",
        "qsign_hsm_ephemeral_keys_alive{}",
        "qsign_audit_appends_total{}",
        "qsign_hsm_job_duration_seconds_count{}",
    ] {
        assert!(after.contains_key(family), "{family} missing: {after:?}");
    }
    server.stop().await;
}

/// `qsign --log-format json serve`: every stderr line is a JSON object, and
/// the lines of an HTTP request, the HSM worker's audit record included,
/// name the caller's request id.
#[test]
fn json_logs_name_the_request_id() {
    use std::io::Read;
    use std::process::{Command, Stdio};

    let state = tempfile::tempdir().unwrap();
    let (port, http_port) = (crate::cli::free_port(), crate::cli::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_qsign"))
        .args(["--log-format", "json", "serve", "--state-dir"])
        .arg(state.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--tsa-listen", &format!("127.0.0.1:{http_port}")])
        .env("RUST_LOG", "qsign=debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("qsign serve");
    let mut serving = crate::cli::Serving(child);
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed().as_secs() < 30,
            "qsign serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let query = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/timestamp_request/sha256-cert.tsq"),
    )
    .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nx-request-id: json-log-7\r\n\
         Content-Type: application/timestamp-query\r\nContent-Length: {}\r\n",
        query.len()
    );
    let address = ([127, 0, 0, 1], http_port).into();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(http(address, &head, &query)).0, 200);
    let _ = serving.0.kill();
    let mut log = String::new();
    let _ = serving.0.stderr.take().unwrap().read_to_string(&mut log);
    // The kill may cut the last line short; every other is whole JSON.
    let last = log.lines().count().saturating_sub(1);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .enumerate()
        .filter_map(|(i, l)| match serde_json::from_str(l) {
            Ok(line) => Some(line),
            Err(_) if i == last => None,
            Err(e) => panic!("{e}: {l}"),
        })
        .collect();
    let of_request: Vec<_> = lines
        .iter()
        .filter(|l| l["span"]["request_id"] == "json-log-7")
        .collect();
    assert!(
        of_request.iter().any(|l| l["target"] == "qsign::audit"),
        "{of_request:?}"
    );
    assert!(of_request
        .iter()
        .any(|l| l["fields"]["message"] == "answered"));
}
