//! Relays an answer to the app as it arrives, translated when the provider speaks another
//! format than the app: never buffered whole, streams stay streams.
//!
//! After each awaited read, every piece of the body that is already readable is taken too and
//! written in one downstream write. Nothing is waited for, so no latency is added, and a burst
//! of SSE events costs one write instead of one per HTTP chunk (PINGORA.md measured the
//! per-chunk writes as the main cost of streaming). Whole answers that need translating
//! (JSON bodies, error bodies) are small and are read whole first.

use super::ctx::RequestCtx;
use super::respond::{add_respan_headers, write_head, write_whole};
use crate::dispatch::answer::{is_event_stream, Answer, BodyReader, Held, Settled};
use crate::dispatch::caller::or_gone;
use crate::drain::Drain;
use crate::endpoint::Endpoint;
use crate::error::{stream_error_event, GatewayError};
use crate::error::{StreamFailure, SHUTTING_DOWN, UPSTREAM_FAILED_CODE};
use crate::head::frame;
use crate::telemetry::breakdown;
use crate::telemetry::record::{BodyEnd, RequestRecord, TokenUsage};
use crate::translate::sse::write_json;
use crate::translate::{transcript, usage};
use crate::translate::{translate_error, ResponsePlan};
use crate::upstream::{ReadLimits, Upstream};
use crate::wire::Wire;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::response::Parts;
use http::StatusCode;
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::future::Future;

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayEnd {
    Complete,
    /// The app closed its connection; an upstream call still running is dropped with it.
    ClientGone,
    /// The upstream failed after the answer had started; the app got an in-band error
    /// (streams) or a cut connection.
    UpstreamFailed(String),
    /// The shutdown's grace period ended first; the app got an in-band error.
    ShutDown,
}

/// Headers that describe a body the translation replaces.
const BODY_HEADERS: [HeaderName; 4] = [
    CONTENT_LENGTH,
    CONTENT_TYPE,
    http::header::CONTENT_ENCODING,
    TRANSFER_ENCODING,
];

/// What is left to write once an answer's body has been read to the end.
enum Last {
    /// The body's last piece (possibly empty), written with the body's end.
    Piece(Bytes),
    /// A whole answer, none of it written yet: its head, framed by the body's length, and
    /// its body. (A stream that has all come by its first write is sent so too: with a
    /// length, Pingora sends head and body in one write, where a chunked head is sent on
    /// its own, and the end of the chunks on its own again.)
    Whole(Box<Parts>, Bytes),
}

/// Writes the settled answer to the app in the format its plan says.
///
/// On a complete answer, the upstream connection goes back to the pool before the app is sent
/// the end of its answer, so that an app's next request always finds it there: released
/// after the last write, it races that request and a second connection is opened. (A relay
/// that fails answers the app first; its connection is rarely reusable anyway.)
pub async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    settled: Settled,
    upstream: &Upstream,
    drain: &Drain,
) -> RelayEnd {
    let Settled {
        mut answer,
        plan,
        limits,
        held,
    } = settled;
    let success = (200..300).contains(&answer.status());
    let read = match (answer.head(), held) {
        (None, _) => Err(RelayEnd::UpstreamFailed("no response header".into())),
        (Some(head), Some(held)) => {
            let head = if plan.is_identity() {
                head
            } else {
                translated_head(head, "text/event-stream")
            };
            relay_stream(session, ctx, &mut answer, head, held, limits, drain).await
        }
        // A whole answer that gets a breakdown is read whole, to add it.
        // A whole answer to be cached (or kept) is read whole, to store it.
        (Some(head), None)
            if plan.is_identity()
                && !whole_with_breakdown(ctx, &answer, &head)
                && ctx.cache_slot.is_none()
                && ctx.keeping.is_none() =>
        {
            let as_is = Held {
                reader: BodyReader::as_is(&plan, is_event_stream(&head.headers)),
                preamble: Vec::new(),
                ended: false,
            };
            relay_stream(session, ctx, &mut answer, head, as_is, limits, drain).await
        }
        (Some(head), None) => relay_whole(session, ctx, &mut answer, head, &plan, limits).await,
    };
    if let Answer::Remote(exchange) = answer {
        upstream.finish(exchange).await;
    }
    let end = match read {
        Ok(last) => write_last(session, last).await,
        Err(end) => end,
    };
    // After the app has its answer: the read does not hold it back.
    let vectors = ctx.endpoint == Endpoint::Embeddings;
    if end == RelayEnd::Complete && success && plan.is_identity() && !vectors {
        read_relayed_answer(&mut ctx.record);
    }
    if let Some(mut slot) = ctx.cache_slot.take() {
        if end == RelayEnd::Complete && ctx.record.stream {
            slot.keep_stream(&ctx.record.served, ctx.record.usage);
        }
        slot.store().await;
    }
    if let Some(keeping) = ctx.keeping.take() {
        if end == RelayEnd::Complete {
            keeping.keep().await;
        }
    }
    ctx.record.body_end = match end {
        RelayEnd::Complete => BodyEnd::Complete,
        RelayEnd::ClientGone => BodyEnd::ClientGone,
        RelayEnd::UpstreamFailed(_) => BodyEnd::UpstreamFailed,
        RelayEnd::ShutDown => BodyEnd::ShutDown,
    };
    if end != RelayEnd::Complete {
        // The answer the app holds is cut short: never reuse its connection.
        session.set_keepalive(None);
    }
    end
}

async fn write_last(session: &mut Session, last: Last) -> RelayEnd {
    let written = match last {
        Last::Piece(data) => session.write_response_body(Some(data), true).await,
        Last::Whole(head, body) => write_whole(session, *head, body).await,
    };
    match written {
        Ok(()) => RelayEnd::Complete,
        Err(_) => RelayEnd::ClientGone,
    }
}

/// The upstream's head for a body the gateway rewrote: none of its body headers, the new
/// type (framing is set when the body is written).
fn translated_head(mut head: Parts, content_type: &'static str) -> Parts {
    let headers = &mut head.headers;
    for name in BODY_HEADERS {
        headers.remove(name);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    head
}

/// Relays a body as it arrives: first what was held back, then the rest, through the held
/// translator if there is one. Everything but the last piece is written, and the head
/// with the first piece written: a body that has ended by then goes out whole, with its
/// length.
async fn relay_stream(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: &mut Answer,
    mut head: Parts,
    held: Held,
    limits: ReadLimits,
    drain: &Drain,
) -> Result<Last, RelayEnd> {
    add_respan_headers(&mut head, ctx);
    let sse = is_event_stream(&head.headers);
    ctx.record.stream = sse;
    ctx.record.output.stream = sse;
    let Held {
        mut reader,
        preamble,
        ended,
    } = held;
    if reader.assembles() {
        ctx.record.output.assembling();
    }
    let mut unwritten = Some(head);
    let last = if ended {
        ctx.record.first_byte();
        Ok(preamble.into())
    } else {
        let deadline = drain.deadline();
        let stream = Stream {
            reader: &mut reader,
            head: &mut unwritten,
            sse,
        };
        pump(session, ctx, answer, stream, preamble, limits, deadline).await
    };
    ctx.record.usage = reader.usage();
    if let Some(output) = reader.transcript() {
        ctx.record.output.assembled(output);
    }
    let mut end = last?;
    // The cache keeps (and shares) the stream without this request's breakdown.
    if let Some(slot) = ctx.cache_slot.as_mut() {
        slot.sent(&end, &ctx.record.served);
    }
    if sse && ctx.record.request_breakdown {
        let breakdown = breakdown::of(&ctx.record, 200);
        end = with_breakdown_event(&end, ctx.endpoint.ingress(), &breakdown);
    }
    // On the record and on a response to be kept as the app gets it, breakdown included.
    ctx.record.output.push(&end);
    if let Some(keeping) = &mut ctx.keeping {
        keeping.sent(&end);
    }
    Ok(match unwritten {
        Some(mut head) => {
            frame(&mut head, Some(end.len()));
            Last::Whole(Box::new(head), end)
        }
        None => Last::Piece(end),
    })
}

/// A body being relayed: how it is read, and its head until that is written.
struct Stream<'a> {
    reader: &'a mut BodyReader,
    head: &'a mut Option<Parts>,
    sse: bool,
}

impl Stream<'_> {
    /// Writes the head if it is not yet, framed for a body of unknown length.
    async fn start(&mut self, session: &mut Session) -> Result<(), RelayEnd> {
        let Some(mut head) = self.head.take() else {
            return Ok(());
        };
        frame(&mut head, None);
        write_head(session, head)
            .await
            .map_err(|_| RelayEnd::ClientGone)
    }
}

/// Whether a whole answer is to get a breakdown: a success the app asked one for.
fn whole_with_breakdown(ctx: &RequestCtx, answer: &Answer, head: &Parts) -> bool {
    ctx.record.request_breakdown
        && (200..300).contains(&answer.status())
        && !is_event_stream(&head.headers)
}

/// The last piece of a stream with the breakdown event added: before OpenAI's `[DONE]` (the
/// last data event before it), at the end for the other formats, which have no end marker
/// (Anthropic's as an event of its own name, which the SDKs skip).
fn with_breakdown_event(end: &[u8], ingress: Wire, breakdown: &Value) -> Bytes {
    let value = json!({ "request_breakdown": breakdown });
    let mut event = Vec::new();
    let name = matches!(ingress, Wire::Anthropic | Wire::Responses).then_some("request_breakdown");
    write_json(&mut event, name, &value);
    let at = match ingress {
        Wire::OpenAi => memchr::memmem::rfind(end, b"data: [DONE]").unwrap_or(end.len()),
        Wire::Anthropic | Wire::Gemini | Wire::Responses => end.len(),
    };
    let mut out = Vec::with_capacity(end.len() + event.len());
    out.extend_from_slice(&end[..at]);
    out.extend_from_slice(&event);
    out.extend_from_slice(&end[at..]);
    out.into()
}

/// Relays the rest of a body but its last piece, which it returns. `pending` (what was
/// held back, already in the app's format) goes out with the first batch: one write
/// instead of two. The head is written before anything is waited for, or with the first
/// batch when there is one at once (and not at all when that batch ends the body). A
/// shutdown's `deadline` ends it with an in-band error.
async fn pump(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: &mut Answer,
    mut stream: Stream<'_>,
    mut pending: Vec<u8>,
    limits: ReadLimits,
    deadline: impl Future<Output = ()>,
) -> Result<Bytes, RelayEnd> {
    let sse = stream.sse;
    // Made once per stream: it registers with the drain on its first poll only.
    tokio::pin!(deadline);
    loop {
        // Sized by what comes: a burst grows it a few times, a paced event fits it exactly.
        let mut read = BytesMut::new();
        let (batch, done, failure) = if pending.is_empty() {
            stream.start(session).await?;
            let next = tokio::select! {
                biased;
                next = or_gone(session, answer.next_into(&mut read, limits)) => next,
                () = &mut deadline => return Err(shut_down(session, ctx, sse).await),
            };
            let Ok(next) = next else {
                return Err(RelayEnd::ClientGone);
            };
            match next {
                Ok(true) => gather(answer, read),
                Ok(false) => (Bytes::new(), true, None),
                Err(e) => (Bytes::new(), false, Some(StreamFailure::of_read(e))),
            }
        } else {
            // What is held goes out now, with whatever else is readable without waiting.
            gather(answer, read)
        };
        let (mut data, failure) = match stream.reader.pass(batch, done) {
            Ok(data) => (data, failure),
            Err(f) => (Bytes::new(), failure.or(Some(f))),
        };
        if !pending.is_empty() {
            pending.extend_from_slice(&data);
            data = Bytes::from(std::mem::take(&mut pending));
        }
        if !data.is_empty() {
            ctx.record.first_byte();
        }
        if done && failure.is_none() {
            return Ok(data);
        }
        stream.start(session).await?;
        if !data.is_empty() {
            ctx.sent(&data);
            if session
                .write_response_body(Some(data), false)
                .await
                .is_err()
            {
                return Err(RelayEnd::ClientGone);
            }
        }
        if let Some(failure) = failure {
            return Err(fail(session, ctx, failure, sse).await);
        }
    }
}

/// What a burst of events that come together is expected to fit in.
const BURST: usize = 8 * 1024;

/// `read` with every piece that is readable right now appended, as one buffer; whether the
/// body ended; and a failure met while gathering (after the data before it).
fn gather(answer: &mut Answer, mut read: BytesMut) -> (Bytes, bool, Option<StreamFailure>) {
    let mut more = 0;
    loop {
        match answer.try_next_into(&mut read) {
            None => return (read.freeze(), false, None),
            Some(Ok(true)) => {
                more += 1;
                // Pieces still coming at once are a burst (a fast upstream's whole stream):
                // room for it in one go. Grown by doubling from one event's size, the buffer
                // of a 22-event stream was reallocated, and copied, six times. (Two pieces
                // are not yet a burst: a paced stream's last event and its end come so.)
                if more == 2 {
                    read.reserve(BURST);
                }
            }
            Some(Ok(false)) => return (read.freeze(), true, None),
            Some(Err(e)) => return (read.freeze(), false, Some(StreamFailure::of_read(e))),
        }
    }
}

/// Ends an answer the upstream broke off: a stream gets an in-band error event in the
/// caller's format (and no end marker, so the app cannot mistake it for a whole answer);
/// anything else is cut.
/// The event carries the failure's status: 504 for a timeout, as for an answer that never
/// started.
async fn fail(
    session: &mut Session,
    ctx: &mut RequestCtx,
    failure: StreamFailure,
    sse: bool,
) -> RelayEnd {
    let message = failure.message;
    tracing::warn!(request_id = %ctx.request_id, provider = %ctx.record.served.provider, "upstream failed mid-answer: {message}");
    let text = format!("the upstream failed during the answer: {message}");
    end_with_error(
        session,
        ctx,
        (failure.status, UPSTREAM_FAILED_CODE),
        text,
        sse,
    )
    .await;
    RelayEnd::UpstreamFailed(message)
}

/// Ends an answer still running when a shutdown's grace period is spent: a stream gets an
/// in-band 503 event, as an upstream failure would give it.
async fn shut_down(session: &mut Session, ctx: &mut RequestCtx, sse: bool) -> RelayEnd {
    let text = "the sidecar is shutting down and its grace period ended before the answer did";
    end_with_error(session, ctx, SHUTTING_DOWN, text.to_string(), sse).await;
    RelayEnd::ShutDown
}

/// Writes a stream's last event, an error in the caller's format (`status`, `code`), and
/// notes the error on the record.
async fn end_with_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    (status, code): (u16, &str),
    text: String,
    sse: bool,
) {
    if sse {
        let event = stream_error_event(ctx.endpoint.ingress(), status, code, &text);
        ctx.record.output.push(&event);
        let _ = session.write_response_body(Some(event.into()), true).await;
    }
    ctx.record.error = Some(text);
}

/// Reads a whole answer and translates it (a success or an error body).
async fn relay_whole(
    session: &mut Session,
    ctx: &mut RequestCtx,
    answer: &mut Answer,
    head: Parts,
    plan: &ResponsePlan,
    limits: ReadLimits,
) -> Result<Last, RelayEnd> {
    let status = answer.status();
    let body = match answer.read_to_end(limits).await {
        Ok(body) => body,
        Err(e) => {
            return Err(answer_error(session, ctx, GatewayError::NoUpstream(e.to_string())).await)
        }
    };
    let (status, body) = if (200..300).contains(&status) {
        ctx.record.usage = read_answer(&mut ctx.record, plan, &body);
        let body = if plan.is_identity() {
            Ok(body)
        } else {
            plan.translate_body(&body)
        };
        if let Ok(body) = &body {
            keep(ctx, body);
        }
        match body {
            Ok(body) if ctx.record.request_breakdown => {
                let breakdown = breakdown::of(&ctx.record, status);
                (status, breakdown::add_to_body(body, &breakdown))
            }
            Ok(body) => (status, body),
            Err(e) => {
                return Err(
                    answer_error(session, ctx, GatewayError::NoUpstream(e.to_string())).await,
                )
            }
        }
    } else {
        translate_error(plan.from, plan.to, status, &body)
    };
    let mut head = translated_head(head, "application/json");
    head.status = StatusCode::from_u16(status)
        .map_err(|_| RelayEnd::UpstreamFailed(format!("bad status {status}")))?;
    frame(&mut head, Some(body.len()));
    add_respan_headers(&mut head, ctx);
    ctx.record.output.push(&body);
    Ok(Last::Whole(Box::new(head), body.into()))
}

/// A successful whole answer's usage. When its text is kept and the app gets it as it is,
/// its answer is read in the same pass, and its trace carries it: the exporters then only
/// copy it out, and its bytes are not kept to be read back. (An answer that gets a
/// breakdown is rewritten for the app, and its trace reads what the app got.)
fn read_answer(record: &mut RequestRecord, plan: &ResponsePlan, body: &[u8]) -> Option<TokenUsage> {
    let once =
        plan.is_identity() && !record.request_breakdown && record.output.has_room(body.len());
    match once.then(|| transcript::answer(plan.from, body)).flatten() {
        Some((output, usage)) => {
            record.output.assembled(output);
            usage
        }
        None => usage::of_body(plan.from, body),
    }
}

/// A whole answer (not SSE) the app got as it came, its bytes kept whole in its capture
/// and not yet read: read once, now, for its trace's answer and its usage, as
/// [`read_answer`] reads one the relay reads whole, so that the exporters only copy the
/// answer out, as they do a stream's. The usage read off its tail holds where the whole
/// answer reports none. Left to be read back when not all of it was kept, when it carries a
/// breakdown, or in a format whose reader does not give the counts too.
fn read_relayed_answer(record: &mut RequestRecord) {
    let capture = &record.output;
    let unread = capture.kept_whole() && !capture.stream && !record.request_breakdown;
    let Some(format) = capture.format.filter(|_| unread) else {
        return;
    };
    if let Some((output, usage)) = transcript::answer(format, capture.bytes()) {
        record.usage = usage.or(record.usage);
        record.output.assembled(output);
    }
}

/// Keeps a complete successful answer (as the app gets it, before any breakdown of this
/// request is added) for the cache, if the request missed it, and as a response to keep;
/// stored once it is written.
fn keep(ctx: &mut RequestCtx, body: &[u8]) {
    if let Some(keeping) = &mut ctx.keeping {
        keeping.answered(body);
    }
    if let Some(slot) = ctx.cache_slot.as_mut() {
        let served = ctx.record.served.clone();
        slot.keep(Bytes::copy_from_slice(body), served, ctx.record.usage);
    }
}

async fn answer_error(session: &mut Session, ctx: &mut RequestCtx, e: GatewayError) -> RelayEnd {
    super::respond::error(session, ctx, &e).await;
    RelayEnd::UpstreamFailed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

    /// What the tail read, when the whole answer is not read.
    const TAIL: Option<TokenUsage> = Some(TokenUsage {
        prompt_tokens: 0,
        completion_tokens: 9,
        total_tokens: 9,
        cached_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
    });

    /// A record whose capture kept `body` (up to `limit` bytes) and whose usage the tail read.
    fn relayed(format: Wire, body: &str, limit: usize) -> RequestRecord {
        let mut r = RequestRecord::new();
        r.output.start(Some(format), false, limit);
        r.output.push(body.as_bytes());
        r.usage = TAIL;
        r
    }

    #[test]
    fn a_whole_answer_kept_is_read_once_for_its_text_and_usage() {
        let mut r = relayed(Wire::OpenAi, ANSWER, 1024);
        read_relayed_answer(&mut r);
        let output = r.output.assembled_output().expect("read into the trace");
        let message = output.message.as_ref().expect("a message").get();
        assert!(message.contains(r#""content":"hi""#), "{message}");
        assert_eq!(output.finish_reasons, ["stop"]);
        assert!(r.output.bytes().is_empty(), "no bytes kept once read");
        assert_eq!(r.usage.map(|u| u.completion_tokens), Some(1));
    }

    /// Not kept whole, rewritten with a breakdown, or in a format read apart: left to be
    /// read back as it was kept, with the tail's usage.
    #[test]
    fn an_answer_not_to_be_read_now_is_left_as_it_was_kept() {
        let mut cut = relayed(Wire::OpenAi, ANSWER, 20);
        let mut breakdown = relayed(Wire::OpenAi, ANSWER, 1024);
        breakdown.request_breakdown = true;
        let gemini = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}"#;
        let mut apart = relayed(Wire::Gemini, gemini, 1024);
        for (r, kept) in [
            (&mut cut, &ANSWER[..20]),
            (&mut breakdown, ANSWER),
            (&mut apart, gemini),
        ] {
            read_relayed_answer(r);
            assert!(r.output.assembled_output().is_none(), "{kept}");
            assert_eq!(r.output.bytes(), kept.as_bytes());
            assert_eq!(r.usage, TAIL);
        }
    }

    /// An answer serde does not read as one completion (here, bytes after it) is read as
    /// each reader reads it alone: its text is taken, and the tail's usage holds.
    #[test]
    fn an_answer_whose_usage_is_not_read_keeps_the_tails() {
        let mut r = relayed(Wire::OpenAi, &format!("{ANSWER} x"), 1024);
        read_relayed_answer(&mut r);
        assert!(r.output.assembled_output().is_some());
        assert_eq!(r.usage, TAIL);
    }
}
