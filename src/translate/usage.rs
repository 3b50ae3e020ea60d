//! Token counts read off answers the gateway relays as they are, without translating them:
//! a whole JSON body, or an SSE stream scanned event by event as it goes by.
//!
//! The stream scan only parses events that mention usage (the last one or two of a stream,
//! or Gemini's chunks, which each carry running totals); every other event is passed on as
//! bytes. It can also drop the usage chunk the gateway asked an OpenAI upstream for on its
//! own behalf (`stream_options.include_usage`), which the app did not ask to see.

use super::anthropic::AUsage;
use super::assembled::Assembled;
use super::gemini::UsageMetadata;
use super::openai::Usage;
use super::sse::MAX_EVENT_BYTES;
use super::{anthropic, gemini, openai, responses};
use crate::telemetry::capture::Output;
use crate::telemetry::record::TokenUsage;
use crate::wire::Wire;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use std::borrow::Cow;

/// The usage of a whole answer body in `wire`'s format.
pub fn of_body(wire: Wire, body: &[u8]) -> Option<TokenUsage> {
    match wire {
        Wire::OpenAi | Wire::Responses => openai::usage::of_body(body),
        Wire::Anthropic => anthropic::usage::of_body(body),
        Wire::Gemini => gemini::usage::of_body(body),
    }
}

/// How much of the end of a body relayed as it is [`UsageTail`] keeps: the usage object comes
/// last (OpenAI, Anthropic) or nearly (Gemini), well inside this.
const TAIL_BYTES: usize = 4096;

/// The end of a whole (non-SSE) body relayed as it is, kept to read its usage at the end
/// without keeping, or parsing, the rest.
#[derive(Debug)]
pub struct UsageTail {
    wire: Wire,
    tail: Vec<u8>,
}

impl UsageTail {
    pub fn new(wire: Wire) -> UsageTail {
        UsageTail {
            wire,
            tail: Vec::new(),
        }
    }

    /// Takes a piece of the body as it goes by.
    pub fn feed(&mut self, piece: &[u8]) {
        if piece.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail
                .extend_from_slice(&piece[piece.len() - TAIL_BYTES..]);
            return;
        }
        let over = (self.tail.len() + piece.len()).saturating_sub(TAIL_BYTES);
        self.tail.drain(..over);
        self.tail.extend_from_slice(piece);
    }

    /// The usage object nearest the end of the body (the top-level one: nested text cannot
    /// hold an unescaped `"usage":`).
    pub fn usage(&self) -> Option<TokenUsage> {
        let key: &[u8] = match self.wire {
            Wire::Gemini => b"\"usageMetadata\"",
            _ => b"\"usage\"",
        };
        let at = memchr::memmem::rfind(&self.tail, key)? + key.len();
        let rest = self.tail[at..].trim_ascii_start().strip_prefix(b":")?;
        let mut de = serde_json::Deserializer::from_slice(rest);
        match self.wire {
            Wire::OpenAi | Wire::Responses => Usage::deserialize(&mut de)
                .ok()
                .map(|u| openai::usage::tokens(&u)),
            Wire::Anthropic => AUsage::deserialize(&mut de)
                .ok()
                .map(|u| anthropic::usage::tokens(&u)),
            Wire::Gemini => UsageMetadata::deserialize(&mut de)
                .ok()
                .map(|u| gemini::usage::tokens(&u)),
        }
    }
}

/// Scans an SSE stream relayed as it is, for its usage. Hands on whole events only (a
/// partial one waits for its end, which the app needs before it can use it anyway).
#[derive(Debug)]
pub struct UsageTap {
    wire: Wire,
    /// Drop OpenAI's usage-only chunk (no choices): the gateway asked for it, not the app.
    drop_usage_chunk: bool,
    /// The start of an event whose end has not come yet.
    carry: BytesMut,
    usage: Option<TokenUsage>,
    anthropic: AUsage,
    /// Gemini's reader of the trace's answer, which keeps what it needs from chunk to chunk
    /// (made at the first chunk it reads).
    gemini: Option<Box<gemini::transcript::StreamReader>>,
    /// The trace's answer, assembled from each whole event as it is handed on (when the
    /// request's text is kept): the framing done here is not done again.
    transcript: Option<Box<Assembled>>,
    /// Bytes of the stream's whole events read so far.
    scanned: usize,
    /// Where the first event of plain text ended in the stream (see [`Self::content_began`]).
    text_end: Option<usize>,
    /// An event before it may be one a probe fails on (see [`may_fail`]).
    may_fail: bool,
}

impl UsageTap {
    pub fn new(wire: Wire, drop_usage_chunk: bool) -> UsageTap {
        UsageTap {
            wire,
            drop_usage_chunk: drop_usage_chunk && wire == Wire::OpenAi,
            carry: BytesMut::new(),
            usage: None,
            anthropic: AUsage::default(),
            gemini: None,
            transcript: None,
            scanned: 0,
            text_end: None,
            may_fail: false,
        }
    }

    /// Whether the stream's content has begun in what has passed: an event of plain text
    /// that is not empty (an OpenAI chunk whose choices are one choice of it, an Anthropic
    /// text delta; seen as the answer is assembled, so only then) ended within the stream's
    /// first [`MAX_EVENT_BYTES`], after no event a probe could fail on. The hold-back's
    /// probe, reading the same events, would say content has started at that event or
    /// before it; and it fails only on a line of an event longer than that (none up to
    /// there can be) or on such an event: it need not read them again.
    pub fn content_began(&self) -> bool {
        self.text_end.is_some_and(|end| end <= MAX_EVENT_BYTES) && !self.may_fail
    }

    /// Assembles the trace's answer from the events as they pass (the stream is in the app's
    /// format: it is relayed as it is), keeping at most `limit` bytes of its text.
    pub fn assemble(&mut self, limit: usize) {
        if limit > 0 {
            self.transcript = Some(Box::new(Assembled::bounded(limit)));
        }
    }

    pub fn assembles(&self) -> bool {
        self.transcript.is_some()
    }

    /// The answer assembled so far.
    pub fn transcript(&mut self) -> Option<Output> {
        self.transcript.take().map(|a| a.finish())
    }

    /// Takes a piece of the stream; returns the whole events it completes, to relay.
    pub fn feed(&mut self, piece: Bytes) -> Bytes {
        let joined = if self.carry.is_empty() {
            piece
        } else {
            self.carry.extend_from_slice(&piece);
            std::mem::take(&mut self.carry).freeze()
        };
        let (whole, kept) = self.scan(&joined, false);
        self.carry.extend_from_slice(&joined[whole..]);
        // Sliced only when it must be: a slice of a buffer not yet shared allocates.
        kept.unwrap_or_else(|| {
            if whole == joined.len() {
                joined
            } else {
                joined.slice(..whole)
            }
        })
    }

    /// At the stream's end: what is left (an event without its blank line still counts).
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.carry).freeze();
        let (_, kept) = self.scan(&rest, true);
        kept.unwrap_or(rest)
    }

    /// The counts seen so far (the last report wins; Anthropic's are merged).
    pub fn usage(&self) -> Option<TokenUsage> {
        self.usage
    }

    /// Reads the whole events of `buf` (each framed once, here; `at_end` of the stream, what
    /// follows them too): into the trace's answer when one is assembled (noting where the
    /// content began), and for their usage, dropping the ones that must not reach the app.
    /// Gives the length they take, and what of them is to be relayed when that is not all of
    /// them. Without an answer to assemble, events that do not mention usage are not parsed.
    fn scan(&mut self, buf: &[u8], at_end: bool) -> (usize, Option<Bytes>) {
        // Assembling, every event is read anyway: each is searched on its own below.
        if self.transcript.is_none() && !mentions_usage(buf) {
            let len = if at_end {
                buf.len()
            } else {
                whole_events_len(buf)
            };
            self.scanned += len;
            return (len, None);
        }
        let mut kept: Option<BytesMut> = None;
        let mut start = 0;
        // Each whole event, then, at the end, what is left (no blank line after it).
        let ends = event_ends(buf).chain(at_end.then_some(buf.len()));
        for end in ends {
            if end <= start {
                continue;
            }
            let event = &buf[start..end];
            let read = self.read(event);
            self.note_beginning(&read, event, end);
            match (&mut kept, read.drop) {
                (None, true) => kept = Some(BytesMut::from(&buf[..start])),
                (Some(out), false) => out.extend_from_slice(event),
                _ => {}
            }
            start = end;
        }
        self.scanned += start;
        (start, kept.map(BytesMut::freeze))
    }

    /// Notes, until the content's beginning is known (and only while the answer is assembled:
    /// see [`Self::content_began`]), where the first event of plain text ended, or whether an
    /// event before it may be one a probe fails on.
    fn note_beginning(&mut self, read: &EventRead, event: &[u8], end: usize) {
        if self.text_end.is_some() || self.transcript.is_none() {
            return;
        }
        if read.text {
            self.text_end = Some(self.scanned + end);
        } else if !self.may_fail {
            self.may_fail = may_fail(self.wire, event);
        }
    }

    /// Reads one event (its data found once): into the answer, and, when it mentions
    /// usage, for its usage. Whether it mentions usage is only searched for where the
    /// answer's reader does not give the counts.
    fn read(&mut self, event: &[u8]) -> EventRead {
        let mentions_usage = || mentions_usage(event);
        let Some(assembled) = &mut self.transcript else {
            return EventRead::dropped(mentions_usage() && self.read_usage(&event_data(event)));
        };
        let data = event_data(event);
        let Ok(text) = std::str::from_utf8(&data) else {
            return EventRead::dropped(mentions_usage() && self.read_usage(&data));
        };
        match self.wire {
            // Their readers give the counts too: each event is parsed once, for both.
            Wire::Gemini => {
                let reader = self.gemini.get_or_insert_with(Box::default);
                self.usage = reader.read(text, assembled).or(self.usage);
                EventRead::default()
            }
            Wire::Responses => {
                self.usage = responses::transcript::read(text, assembled).or(self.usage);
                EventRead::default()
            }
            Wire::Anthropic => {
                let reported = anthropic::transcript::read(text, assembled);
                if anthropic::usage::add(&mut self.anthropic, reported.reports()) {
                    self.usage = Some(anthropic::usage::tokens(&self.anthropic));
                }
                EventRead {
                    drop: false,
                    text: reported.text,
                }
            }
            // The answer's reader starts at the choices: the usage chunk, the last, is read
            // a second time for its counts.
            Wire::OpenAi => {
                let text = openai::transcript::read(text, assembled);
                EventRead {
                    drop: mentions_usage() && self.read_usage(&data),
                    text,
                }
            }
        }
    }

    /// Reads one event's usage from its data; whether the event is to be dropped.
    fn read_usage(&mut self, data: &[u8]) -> bool {
        match self.wire {
            Wire::OpenAi => {
                let Some((usage, only)) = openai::usage::of_chunk(data) else {
                    return false;
                };
                self.usage = Some(usage);
                self.drop_usage_chunk && only
            }
            Wire::Anthropic => {
                if anthropic::usage::add_event(data, &mut self.anthropic) {
                    self.usage = Some(anthropic::usage::tokens(&self.anthropic));
                }
                false
            }
            Wire::Gemini => {
                self.usage = gemini::usage::of_chunk(data).or(self.usage);
                false
            }
            Wire::Responses => {
                self.usage = responses::usage::of_event(data).or(self.usage);
                false
            }
        }
    }
}

/// What reading one event found.
#[derive(Default)]
struct EventRead {
    /// The event is the usage chunk the gateway asked for: it is not relayed.
    drop: bool,
    /// The event is plain text that is not empty, read without a parser (an OpenAI chunk
    /// whose choices are one choice of it, an Anthropic text delta).
    text: bool,
}

impl EventRead {
    fn dropped(drop: bool) -> EventRead {
        EventRead { drop, text: false }
    }
}

/// Whether a probe might fail on `event`, one that is not plain text: an Anthropic error
/// event fails the hold-back, and any Anthropic event whose text holds `"error"`, or an
/// escape that could spell it, counts as one. An OpenAI probe fails on no event it can
/// frame (one it cannot read starts the content; a too long one is bounded in
/// [`UsageTap::content_began`]); the other formats' events are never plain text here.
fn may_fail(wire: Wire, event: &[u8]) -> bool {
    wire == Wire::Anthropic
        && (memchr::memmem::find(event, br#""error""#).is_some()
            || memchr::memchr(b'\\', event).is_some())
}

/// Whether `bytes` mention usage that may hold counts: a `"usage` key (see [`usage_finder`])
/// not followed by `":null`. OpenAI writes `"usage":null` on every chunk of a stream asked
/// for usage (as the sidecar asks an OpenAI provider), and no reader takes counts from a
/// `null`: reading each such chunk for them cost six times what relaying the stream did. A
/// `"usage":null` cannot be inside a string (its quotes would be escaped there).
fn mentions_usage(bytes: &[u8]) -> bool {
    usage_finder()
        .find_iter(bytes)
        .any(|at| !bytes[at..].starts_with(br#""usage":null"#))
}

/// The searcher for a `"usage` key (`"usage"` and `"usageMetadata"`), built once: building
/// one per event cost more than the search. The quote keeps out words such as `message`.
fn usage_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("\"usage"));
    &FINDER
}

/// The length of the part of `buf` made of whole events: up to and including the last blank
/// line (`\n\n`, `\r\n\r\n` or `\r\r`, as SSE allows).
fn whole_events_len(buf: &[u8]) -> usize {
    event_ends(buf).last().unwrap_or(0)
}

/// Where each whole event of `buf` ends (just past its blank line).
fn event_ends(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(found) = memchr::memchr2(b'\n', b'\r', &buf[at..]) {
            let eol = at + found;
            let next = if buf[eol] == b'\r' && buf.get(eol + 1) == Some(&b'\n') {
                eol + 2
            } else {
                eol + 1
            };
            at = next;
            // A line end right after a line end is a blank line: the event ends there.
            let blank = match buf.get(next) {
                Some(b'\n') => Some(next + 1),
                Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => Some(next + 2),
                // A lone `\r` at the very end may be the first half of `\r\n`: wait.
                Some(b'\r') if next + 1 < buf.len() => Some(next + 1),
                _ => None,
            };
            if let Some(end) = blank {
                at = end;
                return Some(end);
            }
        }
        None
    })
}

/// The `data:` lines of one event, joined by `\n` (SSE's rule). Lines are found with
/// `memchr` (splitting byte by byte cost more than reading the event's JSON).
fn event_data(event: &[u8]) -> Cow<'_, [u8]> {
    let mut data = Cow::Borrowed(&[][..]);
    let mut lines = 0;
    let mut at = 0;
    while at < event.len() {
        let end = memchr::memchr2(b'\n', b'\r', &event[at..]).map_or(event.len(), |i| at + i);
        let line = &event[at..end];
        at = end + 1;
        let Some(value) = line.strip_prefix(b"data:") else {
            continue;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        lines += 1;
        // One line (nearly every event) is borrowed; more are joined.
        if lines == 1 {
            data = Cow::Borrowed(value);
        } else {
            let joined = data.to_mut();
            joined.push(b'\n');
            joined.extend_from_slice(value);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_data_lines_are_joined_and_one_line_is_borrowed() {
        let one = event_data(b"event: x\r\ndata: {\"a\":1}\r\n\r\n");
        assert!(matches!(one, Cow::Borrowed(b"{\"a\":1}")));
        assert_eq!(
            &*event_data(b"data:a\ndata: b\n: note\ndata: c\n\n"),
            b"a\nb\nc"
        );
        assert!(event_data(b"event: ping\n\n").is_empty());
    }

    fn relay(tap: &mut UsageTap, stream: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in stream.chunks(piece) {
            out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(part)));
        }
        out.extend_from_slice(&tap.finish());
        out
    }

    const OPENAI: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9,\
\"prompt_tokens_details\":{\"cached_tokens\":3},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn openai_usage_is_read_and_the_stream_kept_whole_in_any_pieces() {
        for piece in [1, 2, 5, 17, OPENAI.len()] {
            let mut tap = UsageTap::new(Wire::OpenAi, false);
            assert_eq!(relay(&mut tap, OPENAI, piece), OPENAI, "pieces of {piece}");
            let u = tap.usage().unwrap();
            assert_eq!(
                (u.prompt_tokens, u.completion_tokens, u.total_tokens),
                (7, 2, 9)
            );
            assert_eq!((u.cached_tokens, u.reasoning_tokens), (3, 1));
        }
    }

    /// Assembling the answer on the way changes nothing the app gets, in any pieces, and
    /// assembles what reading the stream back would (the last event needs no blank line).
    #[test]
    fn the_answer_is_assembled_as_the_events_pass_in_any_pieces() {
        let stream = &OPENAI[..OPENAI.len() - 1];
        let read_back = super::super::transcript::output(Some(Wire::OpenAi), true, stream);
        for piece in [1, 3, 64, stream.len()] {
            let mut tap = UsageTap::new(Wire::OpenAi, true);
            tap.assemble(1024);
            let out = relay(&mut tap, stream, piece);
            assert!(
                !out.windows(7).any(|w| w == b"\"usage\""),
                "pieces of {piece}"
            );
            assert_eq!(tap.usage().unwrap().total_tokens, 9);
            let answer = tap.transcript().unwrap();
            let message = answer.message.unwrap();
            assert_eq!(message.get(), read_back.message.as_ref().unwrap().get());
            assert!(message.get().contains("\"content\":\"hi\""));
        }
    }

    #[test]
    fn the_usage_chunk_the_gateway_asked_for_is_dropped() {
        for piece in [1, 3, 64, OPENAI.len()] {
            let mut tap = UsageTap::new(Wire::OpenAi, true);
            let out = String::from_utf8(relay(&mut tap, OPENAI, piece)).unwrap();
            assert_eq!(
                out,
                "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
            );
            assert_eq!(tap.usage().unwrap().total_tokens, 9);
        }
    }

    /// OpenAI's `"usage":null` on every chunk of a stream asked for usage is no mention of
    /// usage (the table); the stream through the tap is as before: the counts are the last
    /// chunk's, and only that chunk is dropped.
    #[test]
    fn a_null_usage_is_no_usage() {
        for (bytes, mentions) in [
            (&br#"{"choices":[],"usage":null}"#[..], false),
            (br#"{"usage":null,"x":{"usage":{"a":1}}}"#, true),
            (br#"{"usage": null}"#, true),
            (br#"{"usageMetadata":null}"#, true),
            (br#"{"choices":[]}"#, false),
        ] {
            assert_eq!(
                mentions_usage(bytes),
                mentions,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n\
data: [DONE]\n\n";
        let usage_chunk = memchr::memmem::find(stream, b"data: {\"choices\":[],").unwrap();
        let kept = [&stream[..usage_chunk], &b"data: [DONE]\n\n"[..]].concat();
        for assemble in [false, true] {
            for piece in [1, 9, stream.len()] {
                let mut tap = UsageTap::new(Wire::OpenAi, true);
                if assemble {
                    tap.assemble(1024);
                }
                assert_eq!(relay(&mut tap, stream, piece), kept, "pieces of {piece}");
                assert_eq!(tap.usage().unwrap().total_tokens, 9);
            }
        }
    }

    /// The tap says a stream's content has begun once a chunk of plain text has passed, and
    /// not before: not for a role chunk or empty text, nor without the answer assembled.
    #[test]
    fn content_begins_at_the_first_plain_text() {
        let chunk = |text: &str| {
            crate::translate::openai::stream::test_chunk(r#"{"id":"c","#, text, "}") + "\n\n"
        };
        let role = r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        for assemble in [true, false] {
            let mut tap = UsageTap::new(Wire::OpenAi, true);
            if assemble {
                tap.assemble(1024);
            }
            tap.feed(Bytes::from(format!("data: {role}\n\ndata: {}", chunk(""))));
            assert!(!tap.content_began());
            tap.feed(Bytes::from(format!("data: {}", chunk("hi"))));
            assert_eq!(tap.content_began(), assemble);
        }
    }

    /// A text event longer than a probe takes (it fails on it) is no beginning the probe may
    /// be left out for.
    #[test]
    fn a_text_event_too_long_for_a_probe_begins_nothing() {
        for (len, began) in [(MAX_EVENT_BYTES, false), (1000, true)] {
            let text = "a".repeat(len);
            let chunk = crate::translate::openai::stream::test_chunk(r#"{"id":"c","#, &text, "}");
            let mut tap = UsageTap::new(Wire::OpenAi, true);
            tap.assemble(1024);
            tap.feed(Bytes::from(format!("data: {chunk}\n\n")));
            assert_eq!(tap.content_began(), began, "{len}");
        }
    }

    proptest::proptest! {
        /// Whenever the tap says the content has begun, a probe fed the same reads says so
        /// too, and has not failed: the hold-back may leave the probe out then. Streams of a
        /// role chunk or none, chunks of any head the decoder's tests use, text or none, in
        /// any reads, framed with `\n` or `\r\n`.
        #[test]
        fn the_tap_sees_content_begin_only_where_a_probe_would(
            role in proptest::bool::ANY,
            fields in proptest::collection::vec(proptest::sample::select(crate::translate::openai::stream::HEAD_FIELDS), 0..5),
            texts in proptest::collection::vec(proptest::sample::select(vec!["", "a", "b \"q\""]), 0..4),
            end in proptest::sample::select(crate::translate::openai::stream::ENDS),
            crlf in proptest::bool::ANY,
            cuts in proptest::collection::vec(0usize..600, 0..5),
        ) {
            use crate::translate::openai::stream::{test_chunk, test_head};
            let head = test_head(&fields);
            let eol = if crlf { "\r\n" } else { "\n" };
            let role = role.then(|| format!(
                r#"{head}"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null}}]{end}"#
            ));
            let stream: String = role
                .into_iter()
                .chain(texts.iter().map(|t| test_chunk(&head, t, end)))
                .chain(["[DONE]".to_string()])
                .map(|data| format!("data: {data}{eol}{eol}"))
                .collect();
            proptest::prop_assert!(began_where_a_probe_would(Wire::OpenAi, &stream, cuts), "{}", stream);
        }
    }

    /// Whether, `stream` read in the pieces `cuts` make of it, a probe fed the same reads
    /// says the content has started, and has not failed, wherever the tap says it began.
    fn began_where_a_probe_would(wire: Wire, stream: &str, cuts: Vec<usize>) -> bool {
        use crate::translate::{ResponsePlan, StreamTranslator};
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.extend([0, stream.len()]);
        cuts.sort_unstable();
        let mut tap = UsageTap::new(wire, wire == Wire::OpenAi);
        tap.assemble(1 << 20);
        let mut probe = StreamTranslator::probe(&ResponsePlan::identity(wire, "m"));
        for piece in cuts.windows(2).map(|w| &stream.as_bytes()[w[0]..w[1]]) {
            tap.feed(Bytes::copy_from_slice(piece));
            let probed = probe.feed(piece, &mut Vec::new());
            if tap.content_began() {
                return probed.is_ok() && probe.content_started();
            }
            // A probe that failed ends the hold-back there.
            if probed.is_err() {
                return true;
            }
        }
        true
    }

    /// Anthropic events a stream's start may be made of in the property test: the preamble,
    /// error events (one spelt with an escape), an event no reader can read, and text deltas.
    const ANTHROPIC_EVENTS: &[&str] = &[
        r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        r#"{"type":"\u0065rror","\u0065rror":{"type":"overloaded_error","message":"busy"}}"#,
        r#"{"type":"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"b \"q\""}}"#,
        r#"{"type":"message_stop"}"#,
    ];

    proptest::proptest! {
        /// As the OpenAI test above, for Anthropic streams, whose probe fails on an error
        /// event: whenever the tap says the content has begun, a probe fed the same reads
        /// says so too, and has not failed.
        #[test]
        fn the_tap_sees_an_anthropic_content_begin_only_where_a_probe_would(
            events in proptest::collection::vec(proptest::sample::select(ANTHROPIC_EVENTS), 0..8),
            named in proptest::bool::ANY,
            cuts in proptest::collection::vec(0usize..900, 0..5),
        ) {
            let stream: String = events
                .iter()
                .map(|data| {
                    let name = if named { "event: x\n" } else { "" };
                    format!("{name}data: {data}\n\n")
                })
                .collect();
            proptest::prop_assert!(began_where_a_probe_would(Wire::Anthropic, &stream, cuts), "{}", stream);
        }
    }

    #[test]
    fn partial_events_wait_for_their_end() {
        let mut tap = UsageTap::new(Wire::OpenAi, false);
        assert!(tap.feed(Bytes::from_static(b"data: {\"a\"")).is_empty());
        assert_eq!(
            &tap.feed(Bytes::from_static(b":1}\n\ndata: x"))[..],
            b"data: {\"a\":1}\n\n"
        );
        assert_eq!(&tap.finish()[..], b"data: x");
    }

    #[test]
    fn crlf_events_are_split_too() {
        let stream = b"data: {\"choices\":[]}\r\n\r\ndata: [DONE]\r\n\r\n";
        assert_eq!(event_ends(stream).collect::<Vec<_>>(), vec![24, 40]);
        assert_eq!(event_ends(b"data: a\r\rdata: b\r\rx").count(), 2);
        // A `\r` at the very end may be the first half of a `\r\n`: the event waits.
        assert_eq!(event_ends(b"data: a\r\rdata: b\r\r").count(), 1);
        assert_eq!(whole_events_len(b"data: a\r"), 0);
    }

    #[test]
    fn anthropic_counts_are_merged_from_start_and_delta() {
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"cache_creation_input_tokens\":6,\"output_tokens\":1}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"x\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut tap = UsageTap::new(Wire::Anthropic, true);
        assert_eq!(relay(&mut tap, stream, 9), stream);
        let u = tap.usage().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (20, 15));
        assert_eq!((u.cached_tokens, u.cache_write_tokens), (4, 6));
    }

    #[test]
    fn gemini_running_totals_keep_the_last() {
        let stream = b"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1}}\r\n\r\n\
data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":8,\"thoughtsTokenCount\":3,\"totalTokenCount\":16}}\r\n\r\n";
        let mut tap = UsageTap::new(Wire::Gemini, false);
        assert_eq!(relay(&mut tap, stream, 7), stream);
        let u = tap.usage().unwrap();
        assert_eq!(
            (u.completion_tokens, u.reasoning_tokens, u.total_tokens),
            (11, 3, 16)
        );
    }

    /// Anthropic's, Gemini's and the Responses API's events are parsed once for the answer
    /// and its counts together: the counts match the tap's that does not assemble, and the
    /// answer its reading back.
    #[test]
    fn one_read_gives_the_answer_and_the_counts() {
        let gemini = include_bytes!("../../tests/fixtures/gemini/stream_text.sse");
        let responses = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":4,\"output_tokens\":2,\"total_tokens\":6}}}\n\n";
        let anthropic = include_bytes!("../../tests/fixtures/anthropic/stream_text.sse");
        for (wire, stream, total) in [
            (Wire::Anthropic, &anthropic[..], 27),
            (Wire::Gemini, &gemini[..], 27),
            (Wire::Responses, &responses[..], 6),
        ] {
            let read_back = super::super::transcript::output(Some(wire), true, stream);
            for piece in [1, 5, stream.len()] {
                let mut counts_only = UsageTap::new(wire, false);
                let mut tap = UsageTap::new(wire, false);
                tap.assemble(1024);
                assert_eq!(relay(&mut counts_only, stream, piece), stream);
                assert_eq!(relay(&mut tap, stream, piece), stream);
                let (u, only) = (tap.usage().unwrap(), counts_only.usage().unwrap());
                assert_eq!(
                    (u.prompt_tokens, u.total_tokens),
                    (only.prompt_tokens, total)
                );
                let answer = tap.transcript().unwrap().message.unwrap();
                assert_eq!(answer.get(), read_back.message.as_ref().unwrap().get());
            }
        }
    }

    #[test]
    fn the_tail_of_a_body_tells_its_usage() {
        let mut body = br#"{"id":"x","choices":[{"message":{"content":"say \"usage\": 5"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"system_fingerprint":"fp"}"#.to_vec();
        let pad = vec![b' '; 10_000];
        body.splice(1..1, pad);
        for piece in [1, 7, 100, body.len()] {
            let mut tail = UsageTail::new(Wire::OpenAi);
            body.chunks(piece).for_each(|p| tail.feed(p));
            assert_eq!(tail.usage().map(|u| u.total_tokens), Some(7), "{piece}");
        }
        let mut gemini = UsageTail::new(Wire::Gemini);
        gemini.feed(br#"{"candidates":[],"usageMetadata": {"promptTokenCount":2,"candidatesTokenCount":1}}"#);
        assert_eq!(gemini.usage().map(|u| u.total_tokens), Some(3));
        let mut none = UsageTail::new(Wire::Anthropic);
        none.feed(b"{\"content\":[]}");
        assert_eq!(none.usage(), None);
    }

    #[test]
    fn whole_bodies() {
        let openai = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(of_body(Wire::OpenAi, openai).unwrap().total_tokens, 7);
        let anthropic = br#"{"content":[],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":2}}"#;
        let u = of_body(Wire::Anthropic, anthropic).unwrap();
        assert_eq!((u.prompt_tokens, u.cached_tokens), (5, 2));
        let gemini_array = br#"[{"usageMetadata":{"promptTokenCount":1}},{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":3}}]"#;
        assert_eq!(of_body(Wire::Gemini, gemini_array).unwrap().total_tokens, 5);
        assert_eq!(of_body(Wire::OpenAi, b"not json"), None);
        assert_eq!(of_body(Wire::OpenAi, br#"{"choices":[]}"#), None);
    }
}
