//! Relays an answer to the app as it arrives: never buffered whole, streams stay streams.
//!
//! After each awaited read, every piece of the body that is already readable is taken too and
//! written in one downstream write. Nothing is waited for, so no latency is added, and a burst
//! of SSE events costs one write instead of one per HTTP chunk (PINGORA.md measured the
//! per-chunk writes as the main cost of streaming).

use super::ctx::RequestCtx;
use super::respond::respan_headers;
use crate::error::error_body;
use crate::providers::echo::LocalAnswer;
use crate::upstream::{Exchange, ExchangeError, Upstream};
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use tokio::time::Instant;

/// An answer to relay: from a provider over HTTP, made in-process (the echo provider), or
/// an upstream's error answer read earlier (the last failure of a request whose tries all
/// failed).
pub enum Answer {
    Remote(Box<Exchange>),
    Local(LocalAnswer),
    Buffered(Box<ResponseHeader>, Option<Bytes>),
}

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayEnd {
    Complete,
    /// The app closed its connection; the upstream call is dropped with it.
    ClientGone,
    /// The upstream failed after the answer had started; the app got an in-band error
    /// (streams) or a cut connection.
    UpstreamFailed(ExchangeError),
}

/// Response headers that describe one hop, not the answer.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Remote(e) => e.status(),
            Answer::Local(l) => l.status,
            Answer::Buffered(h, _) => h.status.as_u16(),
        }
    }

    /// The header the app gets: the upstream's, minus hop-by-hop headers, plus ours. A body
    /// without a length is sent chunked.
    fn downstream_header(&self, ctx: &RequestCtx) -> Option<ResponseHeader> {
        let mut header = match self {
            Answer::Remote(exchange) => {
                let mut h = exchange.header()?.clone();
                for name in HOP_HEADERS {
                    h.remove_header(*name);
                }
                h
            }
            Answer::Local(local) => {
                let mut h = ResponseHeader::build(local.status, Some(4)).ok()?;
                h.insert_header("content-type", local.content_type).ok()?;
                if let (1, Some(only)) = (local.chunks.len(), local.chunks.front()) {
                    h.insert_header("content-length", only.len().to_string())
                        .ok()?;
                }
                h
            }
            Answer::Buffered(upstream, body) => {
                let mut h = ResponseHeader::clone(upstream);
                for name in HOP_HEADERS.iter().chain(&["transfer-encoding"]) {
                    h.remove_header(*name);
                }
                let length = body.as_ref().map_or(0, Bytes::len);
                h.insert_header("content-length", length.to_string()).ok()?;
                h
            }
        };
        let has_length = header.headers.contains_key(http::header::CONTENT_LENGTH);
        if !has_length {
            header.remove_header("transfer-encoding");
            header.insert_header("transfer-encoding", "chunked").ok()?;
        }
        respan_headers(&mut header, ctx);
        Some(header)
    }

    async fn next(&mut self, deadline: Instant) -> Result<Option<Bytes>, ExchangeError> {
        match self {
            Answer::Remote(e) => e.read(deadline).await,
            Answer::Local(l) => Ok(l.chunks.pop_front()),
            Answer::Buffered(_, body) => Ok(body.take()),
        }
    }

    fn try_next(&mut self) -> Option<Result<Option<Bytes>, ExchangeError>> {
        match self {
            Answer::Remote(e) => e.try_read(),
            Answer::Local(l) => Some(Ok(l.chunks.pop_front())),
            Answer::Buffered(_, body) => Some(Ok(body.take())),
        }
    }
}

/// Writes `answer` to the app, then returns its connection to the pool (or closes it).
pub async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut answer: Answer,
    upstream: &Upstream,
    deadline: Instant,
) -> RelayEnd {
    let end = match answer.downstream_header(ctx) {
        Some(header) => {
            let sse = is_event_stream(&header);
            ctx.served.stream = sse;
            match session.write_response_header(Box::new(header), false).await {
                Ok(()) => pump(session, ctx, &mut answer, deadline, sse).await,
                Err(_) => RelayEnd::ClientGone,
            }
        }
        None => RelayEnd::UpstreamFailed(ExchangeError::Broken("no response header".into())),
    };
    if end != RelayEnd::Complete {
        // The answer the app holds is cut short: never reuse its connection.
        session.set_keepalive(None);
    }
    if let Answer::Remote(exchange) = answer {
        upstream.finish(*exchange).await;
    }
    end
}

async fn pump(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: &mut Answer,
    deadline: Instant,
    sse: bool,
) -> RelayEnd {
    loop {
        let first = match answer.next(deadline).await {
            Ok(Some(first)) => first,
            Ok(None) => {
                return match session.write_response_body(None, true).await {
                    Ok(()) => RelayEnd::Complete,
                    Err(_) => RelayEnd::ClientGone,
                }
            }
            Err(e) => return fail(session, ctx, e, sse).await,
        };
        let (batch, done, failure) = gather(answer, first);
        if ctx.served.time_to_first_byte.is_none() {
            ctx.served.time_to_first_byte = Some(ctx.started.elapsed());
        }
        if session
            .write_response_body(Some(batch), done)
            .await
            .is_err()
        {
            return RelayEnd::ClientGone;
        }
        if let Some(e) = failure {
            return fail(session, ctx, e, sse).await;
        }
        if done {
            return RelayEnd::Complete;
        }
    }
}

/// `first` plus every piece that is readable right now, as one buffer; whether the body
/// ended; and a failure met while gathering (after the data before it).
fn gather(answer: &mut Answer, first: Bytes) -> (Bytes, bool, Option<ExchangeError>) {
    let mut joined: Option<BytesMut> = None;
    loop {
        match answer.try_next() {
            None => break,
            Some(Ok(Some(more))) => {
                joined
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&more);
            }
            Some(Ok(None)) => return (take(joined, first), true, None),
            Some(Err(e)) => return (take(joined, first), false, Some(e)),
        }
    }
    (take(joined, first), false, None)
}

fn take(joined: Option<BytesMut>, first: Bytes) -> Bytes {
    joined.map_or(first, BytesMut::freeze)
}

/// Ends an answer the upstream broke off: a stream gets an in-band error event (and no
/// `[DONE]`, so the app cannot mistake it for a whole answer); anything else is cut.
async fn fail(session: &mut Session, ctx: &RequestCtx, e: ExchangeError, sse: bool) -> RelayEnd {
    tracing::warn!(request_id = %ctx.request_id, provider = %ctx.served.provider, "upstream failed mid-answer: {e}");
    if sse {
        let message = format!("the upstream failed during the stream: {e}");
        let mut event = b"data: ".to_vec();
        event.extend(error_body(
            ctx.endpoint.ingress(),
            502,
            &message,
            Some("upstream_error"),
            None,
        ));
        event.extend_from_slice(b"\n\n");
        let _ = session.write_response_body(Some(event.into()), true).await;
    }
    RelayEnd::UpstreamFailed(e)
}

fn is_event_stream(header: &ResponseHeader) -> bool {
    header
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}
