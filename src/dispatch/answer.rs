//! An upstream's answer as the relay reads it, whatever produced it, and what the attempt
//! loop hands the relay: the answer it settled on, with the start of a stream it held back.

use crate::error::StreamFailure;
use crate::head;
use crate::providers::echo::LocalAnswer;
use crate::providers::relays_back;
use crate::telemetry::capture::Output;
use crate::telemetry::record::TokenUsage;
use crate::translate::usage::{UsageTail, UsageTap};
use crate::translate::{ResponsePlan, StreamTranslator};
use crate::upstream::{Exchange, ExchangeError, ReadLimits};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::response::Parts;
use http::StatusCode;
use pingora::http::ResponseHeader;

/// A whole (non-streamed) answer to translate is read up to this size.
const MAX_TRANSLATED_BODY: usize = 64 * 1024 * 1024;

/// An answer to relay: from a provider over HTTP, made in-process (the echo provider), or
/// an upstream's error answer read earlier (the last failure of a request whose tries all
/// failed).
pub enum Answer {
    Remote(Box<Exchange>),
    Local(LocalAnswer),
    Buffered(Box<ResponseHeader>, Option<Bytes>),
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Remote(e) => e.status(),
            Answer::Local(l) => l.status,
            Answer::Buffered(h, _) => h.status.as_u16(),
        }
    }

    /// Whether the answer is an SSE stream (read from its header, without copying it).
    pub fn is_event_stream(&self) -> bool {
        match self {
            Answer::Remote(exchange) => exchange
                .header()
                .is_some_and(|header| is_event_stream(&header.headers)),
            Answer::Local(local) => local.content_type.starts_with("text/event-stream"),
            Answer::Buffered(header, _) => is_event_stream(&header.headers),
        }
    }

    /// The answer's head as it came, minus hop-by-hop and `x-respan-*` headers.
    pub fn head(&self) -> Option<Parts> {
        match self {
            Answer::Remote(exchange) => Some(relayed(exchange.header()?)),
            Answer::Buffered(header, body) => {
                let mut head = relayed(header);
                head::frame(&mut head, Some(body.as_ref().map_or(0, Bytes::len)));
                Some(head)
            }
            Answer::Local(local) => {
                let mut head = head::head(StatusCode::from_u16(local.status).ok()?);
                let headers = &mut head.headers;
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(local.content_type));
                let length = match (local.chunks.len(), local.chunks.front()) {
                    (1, Some(only)) => Some(only.len()),
                    _ => None,
                };
                head::frame(&mut head, length);
                Some(head)
            }
        }
    }

    pub async fn next(&mut self, limits: ReadLimits) -> Result<Option<Bytes>, ExchangeError> {
        match self {
            Answer::Remote(e) => e.read(limits).await,
            Answer::Local(l) => Ok(l.chunks.pop_front()),
            Answer::Buffered(_, body) => Ok(body.take()),
        }
    }

    /// Waits for the next piece and appends it to `into`; `false` at the end.
    pub async fn next_into(
        &mut self,
        into: &mut BytesMut,
        limits: ReadLimits,
    ) -> Result<bool, ExchangeError> {
        match self {
            Answer::Remote(e) => e.read_into(into, limits).await,
            Answer::Local(l) => Ok(append(l.chunks.pop_front(), into)),
            Answer::Buffered(_, body) => Ok(append(body.take(), into)),
        }
    }

    /// Appends the next piece to `into` if it is readable without waiting (see
    /// [`Exchange::try_read_into`]); `Some(false)` at the end.
    pub fn try_next_into(&mut self, into: &mut BytesMut) -> Option<Result<bool, ExchangeError>> {
        match self {
            Answer::Remote(e) => e.try_read_into(into),
            Answer::Local(l) => Some(Ok(append(l.chunks.pop_front(), into))),
            Answer::Buffered(_, body) => Some(Ok(append(body.take(), into))),
        }
    }

    pub async fn read_to_end(&mut self, limits: ReadLimits) -> Result<Vec<u8>, ExchangeError> {
        let mut out = BytesMut::new();
        while self.next_into(&mut out, limits).await? {
            if out.len() > MAX_TRANSLATED_BODY {
                return Err(ExchangeError::Broken(
                    "answer too large to translate".into(),
                ));
            }
        }
        Ok(out.into())
    }
}

/// A local or buffered answer's next piece appended to `into`: whether there was one.
fn append(piece: Option<Bytes>, into: &mut BytesMut) -> bool {
    piece.map(|p| into.extend_from_slice(&p)).is_some()
}

/// The answer the loop settled on, how to translate it, and the limits of its reads.
pub struct Settled {
    pub answer: Answer,
    pub plan: ResponsePlan,
    pub limits: ReadLimits,
    /// For a stream: what was read before its content started.
    pub held: Option<Held>,
}

/// The start of a stream, read and held back until its first real content.
pub struct Held {
    /// Reads the rest of the stream.
    pub reader: BodyReader,
    /// The bytes to write first, in the app's format.
    pub preamble: Vec<u8>,
    /// The whole stream is in `preamble`.
    pub ended: bool,
}

/// What the relay passes a body through on its way to the app: a translation, or, for a body
/// in the app's own format, a scan that reads its usage and hands it on as it is.
pub enum BodyReader {
    /// SSE in another format: translated event by event (`scratch` holds the output).
    /// (Boxed: a translator is half a kilobyte, the other readers a few words.)
    Translate {
        translator: Box<StreamTranslator>,
        scratch: Vec<u8>,
    },
    /// SSE in the app's format: relayed in whole events, usage read off the way.
    Tap(UsageTap),
    /// Any other body in the app's format: relayed as it is, its end kept for its usage.
    Tail(UsageTail),
}

impl BodyReader {
    pub fn translate(translator: StreamTranslator) -> BodyReader {
        BodyReader::Translate {
            translator: Box::new(translator),
            scratch: Vec::new(),
        }
    }

    /// A reader for a body relayed as it is: a tap for SSE, else a tail.
    pub fn as_is(plan: &ResponsePlan, sse: bool) -> BodyReader {
        if sse {
            BodyReader::Tap(UsageTap::new(plan.from, plan.usage_for_gateway))
        } else {
            BodyReader::Tail(UsageTail::new(plan.from))
        }
    }

    /// Takes a piece of the body (`done`: the last one); returns what to write to the app.
    pub fn pass(&mut self, piece: Bytes, done: bool) -> Result<Bytes, StreamFailure> {
        match self {
            BodyReader::Translate {
                translator,
                scratch,
            } => {
                scratch.clear();
                // A translated event is about as long as the one it comes from, or up to
                // twice (the Responses API's carry ids and indexes): room up front, so a
                // piece holding a whole stream is not copied over as the buffer doubles.
                scratch.reserve(piece.len() * 2);
                translator.feed(&piece, scratch)?;
                if done {
                    translator.finish(scratch)?;
                }
                Ok(Bytes::copy_from_slice(scratch))
            }
            BodyReader::Tap(tap) => {
                let events = tap.feed(piece);
                let rest = if done { tap.finish() } else { Bytes::new() };
                // A stream that ends with its last blank line (nearly all) leaves nothing.
                if rest.is_empty() {
                    return Ok(events);
                }
                let mut all = BytesMut::from(&events[..]);
                all.extend_from_slice(&rest);
                Ok(all.freeze())
            }
            BodyReader::Tail(tail) => {
                tail.feed(&piece);
                Ok(piece)
            }
        }
    }

    /// Assembles the trace's answer as the body passes, in the app's format, keeping at most
    /// `limit` bytes of its text (0: none). A body that is not SSE is not assembled here: once
    /// the app has it, the relay reads it from its capture if it was kept whole (else the
    /// trace reads it back).
    pub fn assemble(&mut self, limit: usize) {
        match self {
            BodyReader::Translate { translator, .. } => translator.assemble(limit),
            BodyReader::Tap(tap) => tap.assemble(limit),
            BodyReader::Tail(_) => {}
        }
    }

    /// Whether the trace's answer is being assembled.
    pub fn assembles(&self) -> bool {
        match self {
            BodyReader::Translate { translator, .. } => translator.assembles(),
            BodyReader::Tap(tap) => tap.assembles(),
            BodyReader::Tail(_) => false,
        }
    }

    /// The answer assembled so far.
    pub fn transcript(&mut self) -> Option<Output> {
        match self {
            BodyReader::Translate { translator, .. } => translator.transcript(),
            BodyReader::Tap(tap) => tap.transcript(),
            BodyReader::Tail(_) => None,
        }
    }

    /// The token counts the body reported, once read.
    pub fn usage(&self) -> Option<TokenUsage> {
        match self {
            BodyReader::Translate { translator, .. } => translator.tokens(),
            BodyReader::Tap(tap) => tap.usage(),
            BodyReader::Tail(tail) => tail.usage(),
        }
    }
}

/// An upstream answer's head as the app gets it: the headers that [`relays_back`]. Built fresh in one pass rather than
/// cloned and pruned (header case is not kept: HTTP/1.1 gives it no meaning).
fn relayed(upstream: &ResponseHeader) -> Parts {
    let mut head = head::head(upstream.status);
    let headers = &mut head.headers;
    headers.reserve(upstream.headers.len() + 4);
    for (name, value) in &upstream.headers {
        if relays_back(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    head
}

pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;

    const STREAM: &[u8] =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";

    fn tap() -> BodyReader {
        let mut reader = BodyReader::as_is(&ResponsePlan::identity(Wire::OpenAi, "m"), true);
        reader.assemble(1024);
        reader
    }

    /// A relayed stream that has all come in one piece, ending with its blank line, is handed
    /// on as the same buffer: read for the trace, not copied.
    #[test]
    fn a_whole_stream_in_one_piece_is_relayed_without_a_copy() {
        let piece = Bytes::from_static(STREAM);
        let out = tap().pass(piece.clone(), true).unwrap();
        assert_eq!(out, STREAM);
        assert_eq!(out.as_ptr(), piece.as_ptr());
    }

    /// What follows the last blank line still reaches the app at the end, after the events
    /// before it, however the stream was cut into pieces.
    #[test]
    fn the_last_event_without_its_blank_line_is_relayed_at_the_end() {
        let stream = &STREAM[..STREAM.len() - 2];
        for cut in [0, 10, 60, stream.len()] {
            let mut reader = tap();
            let mut out = reader
                .pass(Bytes::copy_from_slice(&stream[..cut]), false)
                .unwrap()
                .to_vec();
            let last = reader.pass(Bytes::copy_from_slice(&stream[cut..]), true);
            out.extend_from_slice(&last.unwrap());
            assert_eq!(out, stream, "cut at {cut}");
            let answer = reader.transcript().unwrap().message.unwrap();
            assert!(answer.get().contains("\"content\":\"hi\""), "cut at {cut}");
        }
    }
}
