//! One HTTP exchange with a provider, on Pingora's pooled transport connector.
//!
//! Model calls do not go through Pingora's proxy loop (it cannot replay bodies over 64 KiB,
//! retry after an answer has been read, or re-translate for another provider); the attempt
//! loop in `dispatch::attempts` drives these exchanges itself. An exchange ends either read
//! to the end, when its connection goes back to the pool, or dropped, when the connection is
//! closed.
//!
//! The request goes out in one vectored write of its header and body. Pingora's HTTP/1
//! client flushes the header on its own, which costs a second loopback send per request
//! (measured: about 13% of the sidecar's CPU per non-streamed request); its reader is used
//! as is for the answer.

mod pool;
mod resolve;
mod upgrade;

pub use upgrade::Upgrade;

use crate::config::BaseUrl;
use crate::telemetry::record::Outcome;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::v1::client::{http_req_header_to_wire, HttpSession};
use pingora::protocols::Stream;
use pingora::upstreams::peer::Peer;
use pool::Pool;
use resolve::Resolver;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout_at, Instant};

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A pooled connection that fails before any answer is retried on a fresh connection this
/// many times, without counting as an attempt: the server may have closed it while idle.
const STALE_CONNECTION_RETRIES: usize = 2;

/// When a read of an answer must complete: by the attempt's deadline, and within the longest
/// silence allowed between two pieces of a body.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub deadline: Instant,
    pub idle: Duration,
}

impl ReadLimits {
    /// The deadline of the next read.
    pub fn next(&self) -> Instant {
        self.deadline.min(Instant::now() + self.idle)
    }
}

/// Why an exchange failed before a complete answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Broken(String),
}

impl ExchangeError {
    /// How an attempt that failed so ended.
    pub fn outcome(&self) -> Outcome {
        match self {
            ExchangeError::Connect(_) => Outcome::ConnectError,
            ExchangeError::Timeout => Outcome::Timeout,
            ExchangeError::Broken(_) => Outcome::Broken,
        }
    }
}

/// The provider connections of one process: a keep-alive pool and a DNS cache.
pub struct Upstream {
    /// Opens new connections (TCP, TLS); reuse is `pool`'s.
    transport: TransportConnector,
    pool: Arc<Pool>,
    resolver: Resolver,
}

impl Upstream {
    /// `pool_size` should be at least the peak number of concurrent upstream calls, or new
    /// connections are opened under load (measured: +48% CPU).
    pub fn new(pool_size: usize) -> Upstream {
        Upstream {
            transport: TransportConnector::new(None),
            pool: Arc::new(Pool::new(pool_size, POOL_IDLE_TIMEOUT)),
            resolver: Resolver::default(),
        }
    }

    /// The peer for a provider's base URL, with the connect timeout (TCP and TLS together).
    pub async fn peer(
        &self,
        base: &BaseUrl,
        connect_timeout: Duration,
    ) -> Result<HttpPeer, ExchangeError> {
        let addr = self
            .resolver
            .resolve(&base.host, base.port)
            .await
            .map_err(ExchangeError::Connect)?;
        let mut peer = HttpPeer::new(addr, base.tls, base.host.clone());
        peer.options.connection_timeout = Some(connect_timeout);
        peer.options.total_connection_timeout = Some(connect_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);
        Ok(peer)
    }

    /// Sends a request and reads the answer's header, all before `deadline`.
    pub async fn send(
        &self,
        peer: &HttpPeer,
        header: &RequestHeader,
        body: &Bytes,
        deadline: Instant,
    ) -> Result<Exchange, ExchangeError> {
        let head = http_req_header_to_wire(header)
            .ok_or_else(|| ExchangeError::Broken("the request header cannot be sent".into()))?;
        let pool_key = peer.reuse_hash();
        let mut stale_retries = 0;
        loop {
            let (stream, reused) = match self.pool.take(pool_key) {
                Some(stream) => (stream, true),
                // Boxed: connecting (TCP, TLS) is a future of many kilobytes, needed only
                // when the pool has no connection; inline, it would make every exchange's
                // future that large, and be copied with it on every await.
                None => (Box::pin(self.connect(peer, deadline)).await?, false),
            };
            match timeout_at(deadline, Exchange::start(stream, peer, &head, body)).await {
                Err(_) => return Err(ExchangeError::Timeout),
                Ok(Ok(session)) => return Ok(Exchange { session, pool_key }),
                Ok(Err(_)) if reused && stale_retries < STALE_CONNECTION_RETRIES => {
                    stale_retries += 1;
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    async fn connect(&self, peer: &HttpPeer, deadline: Instant) -> Result<Stream, ExchangeError> {
        timeout_at(deadline, self.transport.new_stream(peer))
            .await
            .map_err(|_| ExchangeError::Timeout)?
            .map_err(|e| match e.etype() {
                pingora::ErrorType::ConnectTimedout => ExchangeError::Timeout,
                _ => ExchangeError::Connect(e.to_string()),
            })
    }

    /// Ends an exchange: its connection goes back to the pool if the answer was read to the
    /// end, and is closed otherwise.
    ///
    /// Boxed, as the answer holds it: unboxed, the exchange would be stored twice in this
    /// future (as its argument and as the local it is taken apart into).
    pub async fn finish(&self, exchange: Box<Exchange>) {
        let Exchange {
            mut session,
            pool_key,
        } = *exchange;
        // Pingora turns keep-alive off when the body was not read to the end; `reuse` then
        // closes the connection instead of handing it back.
        session.respect_keepalive();
        if let Some(stream) = session.reuse().await {
            self.pool.put(pool_key, stream);
        }
    }
}

/// A request sent and its answer being read.
pub struct Exchange {
    session: HttpSession,
    /// The pool its connection goes back to (`Peer::reuse_hash`, computed once per request).
    pool_key: u64,
}

impl Exchange {
    /// Writes the request on `stream` and reads the answer's header.
    async fn start(
        mut stream: Stream,
        peer: &HttpPeer,
        head: &[u8],
        body: &[u8],
    ) -> Result<HttpSession, ExchangeError> {
        let broken = |e: std::io::Error| ExchangeError::Broken(e.to_string());
        write_request(&mut stream, head, body)
            .await
            .map_err(broken)?;
        let mut session = HttpSession::new_with_options(stream, peer);
        let broken = |e: Box<pingora::Error>| ExchangeError::Broken(e.to_string());
        // Skip informational answers (100 Continue and the like) to the real one.
        loop {
            session.read_response().await.map_err(broken)?;
            match session.resp_header() {
                Some(h) if h.status.is_informational() => continue,
                Some(_) => return Ok(session),
                None => return Err(ExchangeError::Broken("no response header".into())),
            }
        }
    }

    /// The answer's status line and headers (always there once [`Upstream::send`] returned).
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.session.resp_header()
    }

    pub fn status(&self) -> u16 {
        self.header().map_or(0, |h| h.status.as_u16())
    }

    /// Waits for the next piece of the body; `None` at its end.
    pub async fn read(&mut self, limits: ReadLimits) -> Result<Option<Bytes>, ExchangeError> {
        let mut piece = BytesMut::new();
        let more = self.read_into(&mut piece, limits).await?;
        Ok(more.then(|| piece.freeze()))
    }

    /// Waits for the next piece of the body and appends it to `into`; `false` at its end.
    /// The piece is copied once, from the connection's buffer to `into`: a burst of events
    /// read this way is one allocation, not one per HTTP chunk.
    pub async fn read_into(
        &mut self,
        into: &mut BytesMut,
        limits: ReadLimits,
    ) -> Result<bool, ExchangeError> {
        let read = async {
            let piece = self.session.read_body_ref().await;
            append(piece, into)
        };
        timeout_at(limits.next(), read)
            .await
            .map_err(|_| ExchangeError::Timeout)?
    }

    /// Appends the next piece of the body to `into` if it can be had without waiting:
    /// `None` if it cannot, else as [`Self::read_into`].
    ///
    /// Relies on Pingora 0.9's HTTP/1 body read consuming nothing before its socket read, so
    /// dropping it while pending loses no byte (`tests/gateway/chat.rs` guards this; upstream
    /// connections are HTTP/1 only for this reason).
    pub fn try_read_into(&mut self, into: &mut BytesMut) -> Option<Result<bool, ExchangeError>> {
        let piece = self.session.read_body_ref().now_or_never()?;
        Some(append(piece, into))
    }

    /// Reads the rest of the body into memory, up to `limit` bytes (for error answers, which
    /// are small, so the attempt loop can decide to retry and still relay the last one).
    pub async fn read_to_end(
        &mut self,
        limit: usize,
        limits: ReadLimits,
    ) -> Result<Bytes, ExchangeError> {
        let mut out = BytesMut::new();
        while self.read_into(&mut out, limits).await? {
            if out.len() > limit {
                return Err(ExchangeError::Broken(format!(
                    "error body longer than {limit} bytes"
                )));
            }
        }
        Ok(out.freeze())
    }
}

/// A body read's piece appended to `into`: whether there was one (`false` at the body's end).
fn append(
    piece: pingora::Result<Option<&[u8]>>,
    into: &mut BytesMut,
) -> Result<bool, ExchangeError> {
    match piece {
        Ok(Some(piece)) => {
            into.extend_from_slice(piece);
            Ok(true)
        }
        Ok(None) => Ok(false),
        Err(e) => Err(ExchangeError::Broken(e.to_string())),
    }
}

/// Writes a request's header and body with as few sends as the socket allows: one vectored
/// write for both, then whatever of the body it did not take.
async fn write_request(
    stream: &mut Stream,
    mut head: &[u8],
    mut body: &[u8],
) -> std::io::Result<()> {
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    stream.write_all(body).await?;
    stream.flush().await
}
