//! `server.client_header_timeout_ms`: a client that has not sent its whole request head by
//! then is closed (slowloris).
//!
//! Pingora 0.9 bounds each read of a head (60 s), not the head as a whole, so a client that
//! sends a byte every 59 s holds its connection forever. This wraps the API port's app: each
//! accepted connection's stream is read through [`Guarded`], which starts a deadline at the
//! head's first byte and fails the read (so Pingora closes the connection) if the blank line
//! that ends the head has not come by then. Only a connection's first head is timed: later
//! heads on a kept-alive connection cannot be told from body bytes without parsing, and are
//! bounded by the keep-alive idle time and the per-read timeout.

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// An app whose connections must send their first head within `timeout`.
pub struct HeadTimeout<A> {
    pub app: Arc<A>,
    pub timeout: Duration,
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadTimeout<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let guarded: Stream = Box::new(Guarded::new(session, self.timeout));
        self.app.process_new(guarded, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

/// Where a connection's first head is.
#[derive(Debug)]
enum Head {
    /// Not a byte yet.
    NotStarted,
    /// Started: it must end by the deadline. `ends` counts the bytes of `\r\n\r\n` matched
    /// so far (a head may end across reads).
    Reading { ends: u8 },
    /// Ended: nothing is timed any more.
    Done,
}

/// A stream whose first request head must arrive within a time.
#[derive(Debug)]
pub struct Guarded {
    inner: Stream,
    timeout: Duration,
    head: Head,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    fn new(inner: Stream, timeout: Duration) -> Guarded {
        Guarded {
            inner,
            timeout,
            head: Head::NotStarted,
            deadline: None,
        }
    }

    /// Follows the head through bytes just read: its first byte starts the deadline, its
    /// end drops it.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if matches!(self.head, Head::NotStarted) {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
        }
        self.head = advance(&self.head, bytes);
        if matches!(self.head, Head::Done) {
            self.deadline = None;
        }
    }
}

/// Where the head is after `bytes` more of it.
fn advance(head: &Head, bytes: &[u8]) -> Head {
    const END: &[u8; 4] = b"\r\n\r\n";
    let mut ends = match head {
        Head::Done => return Head::Done,
        Head::NotStarted if bytes.is_empty() => return Head::NotStarted,
        Head::NotStarted => 0,
        Head::Reading { ends } => *ends,
    };
    for &b in bytes {
        ends = if b == END[usize::from(ends)] {
            ends + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if ends == 4 {
            return Head::Done;
        }
    }
    Head::Reading { ends }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request head did not arrive within client_header_timeout_ms",
                )));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        // Once the head has ended, a read costs nothing more than the inner stream's.
        if matches!(
            (&read, &this.head),
            (Poll::Ready(Ok(())), Head::NotStarted | Head::Reading { .. })
        ) {
            this.saw(&buf.filled()[before..]);
        }
        read
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Guarded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_at_its_blank_line_across_reads() {
        let head = advance(&Head::NotStarted, b"GET / HTTP/1.1\r\nhost: x\r");
        assert!(matches!(head, Head::Reading { ends: 1 }));
        let head = advance(&head, b"\n\r");
        assert!(matches!(head, Head::Reading { ends: 3 }));
        assert!(matches!(advance(&head, b"\n"), Head::Done));
        assert!(matches!(advance(&head, b"x"), Head::Reading { ends: 0 }));
        assert!(matches!(advance(&Head::Done, b"abc"), Head::Done));
        assert!(matches!(advance(&Head::NotStarted, b""), Head::NotStarted));
        let one_read = advance(&Head::NotStarted, b"GET / HTTP/1.1\r\n\r\nbody");
        assert!(matches!(one_read, Head::Done));
    }
}
