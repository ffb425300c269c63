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
