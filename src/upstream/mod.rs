//! One HTTP exchange with a provider, on Pingora's pooled connectors.
//!
//! Model calls do not go through Pingora's proxy loop (it cannot replay bodies over 64 KiB,
//! retry after an answer has been read, or re-translate for another provider); the attempt
//! loop in `dispatch` drives these exchanges itself. An exchange ends either read to the end,
//! when its connection goes back to the pool, or dropped, when the connection is closed.

mod resolve;

use crate::config::BaseUrl;
use bytes::Bytes;
use futures::FutureExt;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use resolve::Resolver;
use std::time::Duration;
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

/// The provider connections of one process: a keep-alive pool and a DNS cache.
pub struct Upstream {
    connector: Connector,
    resolver: Resolver,
}

impl Upstream {
    /// `pool_size` should be at least the peak number of concurrent upstream calls, or new
    /// connections are opened under load (measured: +48% CPU).
    pub fn new(pool_size: usize) -> Upstream {
        let mut options = pingora::connectors::ConnectorOptions::new(pool_size);
        options.keepalive_pool_size = pool_size;
        Upstream {
            connector: Connector::new(Some(options)),
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
        mut peer: HttpPeer,
        header: &RequestHeader,
        body: &Bytes,
        deadline: Instant,
    ) -> Result<Exchange, ExchangeError> {
        let mut stale_retries = 0;
        loop {
            let (session, reused) = timeout_at(deadline, self.connector.get_http_session(&peer))
                .await
                .map_err(|_| ExchangeError::Timeout)?
                .map_err(|e| match e.etype() {
                    pingora::ErrorType::ConnectTimedout => ExchangeError::Timeout,
                    _ => ExchangeError::Connect(e.to_string()),
                })?;
            let mut exchange = Exchange { session, peer };
            match timeout_at(deadline, exchange.request(header, body)).await {
                Err(_) => return Err(ExchangeError::Timeout),
                Ok(Ok(())) => return Ok(exchange),
                Ok(Err(_)) if reused && stale_retries < STALE_CONNECTION_RETRIES => {
                    stale_retries += 1;
                    peer = exchange.peer;
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Ends an exchange: its connection goes back to the pool if the answer was read to the
    /// end, and is closed otherwise.
    pub async fn finish(&self, exchange: Exchange) {
        // Pingora closes it rather than pooling it when the body was not read to the end.
        self.connector
            .release_http_session(exchange.session, &exchange.peer, Some(POOL_IDLE_TIMEOUT))
            .await;
    }
}

/// A request sent and its answer being read.
pub struct Exchange {
    session: HttpSession,
    peer: HttpPeer,
}

impl Exchange {
    async fn request(&mut self, header: &RequestHeader, body: &Bytes) -> Result<(), ExchangeError> {
        let broken = |e: Box<pingora::Error>| ExchangeError::Broken(e.to_string());
        self.session
            .write_request_header(Box::new(header.clone()))
            .await
            .map_err(broken)?;
        if !body.is_empty() {
            self.session
                .write_request_body(body.clone(), true)
                .await
                .map_err(broken)?;
        }
        self.session.finish_request_body().await.map_err(broken)?;
        // Skip informational answers (100 Continue and the like) to the real one.
        loop {
            self.session.read_response_header().await.map_err(broken)?;
            match self.session.response_header() {
                Some(h) if h.status.is_informational() => continue,
                Some(_) => return Ok(()),
                None => return Err(ExchangeError::Broken("no response header".into())),
            }
        }
    }

    /// The answer's status line and headers (always there once [`Upstream::send`] returned).
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.session.response_header()
    }

    pub fn status(&self) -> u16 {
        self.header().map_or(0, |h| h.status.as_u16())
    }

    /// Waits for the next piece of the body; `None` at its end.
    pub async fn read(&mut self, limits: ReadLimits) -> Result<Option<Bytes>, ExchangeError> {
        timeout_at(limits.next(), self.session.read_response_body())
            .await
            .map_err(|_| ExchangeError::Timeout)?
            .map_err(|e| ExchangeError::Broken(e.to_string()))
    }

    /// The next piece of the body if it can be had without waiting.
    ///
    /// Relies on Pingora 0.9's HTTP/1 body read consuming nothing before its socket read, so
    /// dropping it while pending loses no byte (`tests/gateway/chat.rs` guards this; upstream
    /// connections are HTTP/1 only for this reason).
    pub fn try_read(&mut self) -> Option<Result<Option<Bytes>, ExchangeError>> {
        self.session
            .read_response_body()
            .now_or_never()
            .map(|r| r.map_err(|e| ExchangeError::Broken(e.to_string())))
    }

    /// Reads the rest of the body into memory, up to `limit` bytes (for error answers, which
    /// are small, so the attempt loop can decide to retry and still relay the last one).
    pub async fn read_to_end(
        &mut self,
        limit: usize,
        limits: ReadLimits,
    ) -> Result<Bytes, ExchangeError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read(limits).await? {
            if out.len() + chunk.len() > limit {
                return Err(ExchangeError::Broken(format!(
                    "error body longer than {limit} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }
}
