//! Connection caps and idle timeouts for both listeners (SPEC §12): a
//! connection beyond the caps is closed at once, one that receives and
//! sends nothing for the idle timeout is closed, and a failing `accept`
//! (e.g. EMFILE, out of file descriptors) is logged and retried after a
//! pause instead of ending or spinning the accept loop.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, Instant, Sleep};

use super::{host, lock};

/// How long the accept loop pauses after `accept` failed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Open connections of one listener, in total and per peer address.
pub struct Connections {
    total: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Connections {
    pub fn new(total: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            per_address,
            open: Mutex::default(),
        })
    }

    /// A slot for a connection from `peer` (an IPv6 /64 counts as one
    /// address), or none beyond the caps.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionSlot> {
        let peer = host(peer);
        let mut open = lock(&self.open);
        let (total, by_address) = &mut *open;
        let of_peer = by_address.entry(peer).or_default();
        if *total >= self.total || *of_peer >= self.per_address {
            if *of_peer == 0 {
                by_address.remove(&peer);
            }
            return None;
        }
        *of_peer += 1;
        *total += 1;
        Some(ConnectionSlot {
            connections: self.clone(),
            peer,
        })
    }
}

/// An open connection, counted until dropped.
pub struct ConnectionSlot {
    connections: Arc<Connections>,
    peer: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.connections.open);
        let (total, by_address) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = by_address.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.peer);
            }
        }
    }
}

/// A connection with its slot and an idle deadline: reading fails with
/// `TimedOut` once nothing was read or written for `idle`.
pub struct Guarded<IO> {
    io: IO,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: ConnectionSlot,
}

impl<IO> Guarded<IO> {
    pub fn new(io: IO, slot: ConnectionSlot, idle: Duration) -> Self {
        Self {
            io,
            idle,
            deadline: Box::pin(sleep(idle)),
            _slot: slot,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.active();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write(cx, data));
        if matches!(written, Ok(n) if n > 0) {
            self.active();
        }
        Poll::Ready(written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepted connections within the caps of `connections`, Nagle's
/// algorithm off (a unary exchange is a few small writes, and delayed ACKs
/// would add ~40 ms to each). A stream that never yields an error.
pub struct Accept {
    listener: TcpListener,
    connections: Arc<Connections>,
    idle: Duration,
    backoff: Option<Pin<Box<Sleep>>>,
}

impl Accept {
    pub fn new(listener: TcpListener, connections: Arc<Connections>, idle: Duration) -> Self {
        Self {
            listener,
            connections,
            idle,
            backoff: None,
        }
    }

    /// The next connection within the caps.
    pub async fn next(&mut self) -> (Guarded<TcpStream>, SocketAddr) {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<(Guarded<TcpStream>, SocketAddr)> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            let (stream, peer) = match ready!(self.listener.poll_accept(cx)) {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing before the next");
                    self.backoff = Some(Box::pin(sleep(ACCEPT_BACKOFF)));
                    continue;
                }
            };
            let Some(slot) = self.connections.admit(peer.ip()) else {
                // Dropping the stream closes it at once.
                tracing::debug!(%peer, "connection refused: too many open connections");
                crate::metrics::refused("connections");
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Poll::Ready((Guarded::new(stream, slot, self.idle), peer));
        }
    }
}

impl tokio_stream::Stream for Accept {
    type Item = io::Result<Guarded<TcpStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_accept(cx)
            .map(|(stream, _)| Some(Ok(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total() {
        let connections = Connections::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let a1 = connections.admit(a).unwrap();
        let _a2 = connections.admit(a).unwrap();
        assert!(connections.admit(a).is_none());
        let _b1 = connections.admit(b).unwrap();
        assert!(connections.admit(b).is_none(), "total cap");
        drop(a1);
        assert!(connections.admit(a).is_some());
    }
}
