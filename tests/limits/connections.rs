//! Idle connections are closed, connections beyond the per-address cap are
//! closed at once, and the server keeps signing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{sign_from, FIRST};
use crate::support::{env, Server};

/// Reads until the server closes; the bytes it sent first and how long it
/// took. None when it stays open for `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<(usize, Duration)> {
    let start = Instant::now();
    let mut received = 0;
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((received, start.elapsed())),
            Ok(Ok(n)) => received += n,
        }
    }
}

async fn connect(address: SocketAddr) -> TcpStream {
    TcpStream::connect(address).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_and_the_cap_refuses_more() {
    let server = Server::start(env().core("limits-idle", |c| {
        c.limits.idle_timeout_seconds = 2;
        c.limits.max_connections_per_address = 3;
    }))
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect(server.address).await);
    }
    // Give the accept loop time to count the three.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = connect(server.address).await;
    let (sent, _) = closed_within(&mut refused, Duration::from_secs(10))
        .await
        .expect("a fourth connection from the address is closed");
    assert_eq!(sent, 0, "closed before HTTP/2 began");
    for stream in &mut idle {
        let (sent, _) = closed_within(stream, Duration::from_secs(30))
            .await
            .expect("an idle connection is closed");
        assert!(sent > 0, "it was served (SETTINGS) before it idled out");
    }
    sign_from(&server, FIRST, 20)
        .await
        .expect("signing works afterwards");
}

/// An HTTP/2 connection that answers pings but sends no request is closed
/// after `max_connection_age_seconds`.
#[tokio::test(flavor = "multi_thread")]
async fn old_connections_are_closed() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let server = Server::start(env().core("limits-age", |c| {
        c.limits.max_connection_age_seconds = 1;
        c.limits.keepalive_seconds = 1;
    }))
    .await;
    let stream = connect(server.address).await;
    let (_sender, connection) = hyper::client::conn::http2::handshake::<
        _,
        _,
        http_body_util::Empty<hyper::body::Bytes>,
    >(TokioExecutor::new(), TokioIo::new(stream))
    .await
    .expect("HTTP/2 handshake");
    tokio::time::timeout(Duration::from_secs(30), connection)
        .await
        .expect("the server ends an old connection")
        .ok();
}

/// The RFC 3161 endpoint closes idle connections too.
#[tokio::test(flavor = "multi_thread")]
async fn the_http_endpoint_closes_idle_connections() {
    let endpoint = super::anonymous::Endpoint::start("limits-http-idle", |c| {
        c.limits.idle_timeout_seconds = 1;
    })
    .await;
    let mut stream = connect(endpoint.address).await;
    let (_, after) = closed_within(&mut stream, Duration::from_secs(25))
        .await
        .expect("closed before hyper's 30 s header timeout");
    assert!(after < Duration::from_secs(25));
}

/// `qsign serve` under `ulimit -n 40`: sixty connections exhaust its file
/// descriptors (EMFILE on accept); it logs, pauses, and signs afterwards.
#[test]
fn running_out_of_file_descriptors_is_survived() {
    use std::process::{Command, Stdio};
    const QSIGN: &str = env!("CARGO_BIN_EXE_qsign");
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let log = temp.path().join("serve.log");
    let free_port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (port, tsa_port) = (free_port(), free_port());
    let script = format!(
        "ulimit -n 40 && exec \"$0\" serve --listen 127.0.0.1:{port} \
         --tsa-listen 127.0.0.1:{tsa_port} --state-dir \"$1\""
    );
    let child = Command::new("bash")
        .args(["-c", &script, QSIGN])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("bash");
    let _serving = Killed(child);
    let logged = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
        {
            assert!(Instant::now() < deadline, "no '{what}' in the log");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    logged("qsign serving");
    let held: Vec<_> = (0..60)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    logged("accept failed");
    drop(held);
    let file = temp.path().join("after.txt");
    std::fs::write(&file, b"signed after EMFILE").unwrap();
    let out = Command::new(QSIGN)
        .args([
            "sign-detached",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--dev-identity", "Karen Blixen", "--state-dir"])
        .arg(&state)
        .arg(&file)
        .output()
        .expect("qsign sign-detached");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the child on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
