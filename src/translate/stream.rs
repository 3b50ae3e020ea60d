//! A whole stream translation: SSE bytes from the provider in, SSE bytes in the ingress
//! format out, one event at a time.

use super::anthropic::stream::{FromOpenAi, ToOpenAi as AnthropicToOpenAi};
use super::assembled::Assembled;
use super::gemini::stream::ToOpenAi as GeminiToOpenAi;
use super::openai::stream::{ChunkReader, ToChoices};
use super::openai::{ChatChunk, ChunkChoice, ChunkObject, Delta, Head, Usage, UsageField};
use super::plan::ResponsePlan;
use super::responses::stream::FromOpenAi as ResponsesFromOpenAi;
use super::sse::{write_data, write_event, Event, SseParser};
use super::{anthropic, gemini, openai};
use crate::error::StreamFailure;
use crate::telemetry::capture::Output;
use crate::telemetry::record::TokenUsage;
use crate::wire::Wire;
use serde::Serialize;
use std::sync::Arc;

/// Reads the provider's events into OpenAI chunks and choices: an OpenAI stream's chunks as
/// they come (those of plain text as choices), the others' as choices (see
/// [`Translation::choices`]).
enum Decoder {
    OpenAi(ChunkReader),
    Anthropic(AnthropicToOpenAi),
    Gemini(GeminiToOpenAi),
    /// OpenAI's Responses API, only ever watched (relayed as it is): its events are typed,
    /// and the `event:` name tells all the probe needs.
    Responses,
}

/// Writes OpenAI chunks in the ingress format.
enum Encoder {
    OpenAi {
        include_usage: bool,
        /// Holds the stream's `id`, `created` and `model`, for the final usage chunk too.
        writer: ChunkWriter,
    },
    Anthropic(FromOpenAi),
    /// Boxed: the largest by far (its open item and its delta frame are held inline).
    Responses(Box<ResponsesFromOpenAi>),
}

/// Translates one streamed answer, and tells when its real content starts.
pub struct StreamTranslator {
    parser: SseParser,
    state: Translation,
}

/// What a translation knows between events (kept apart from the parser, which lends each
/// event to it).
struct Translation {
    decoder: Decoder,
    /// `None` for a probe: decode only, to see when content starts, and write nothing.
    encoder: Option<Encoder>,
    chunks: Vec<ChatChunk>,
    /// What an Anthropic or Gemini stream is read into (and an OpenAI stream's plain text
    /// chunks): the Responses encoder and a probe read the choices as they are, the chat
    /// and Anthropic encoders wrapped in chunks of the decoder's head.
    choices: Vec<ChunkChoice>,
    /// The trace's answer, assembled from the decoded chunks and choices as they pass (when
    /// the request's text is kept): the app's stream is never read back.
    transcript: Option<Box<Assembled>>,
    content: bool,
    ended: bool,
}

impl StreamTranslator {
    pub fn new(plan: &ResponsePlan) -> Self {
        let encoder = match plan.to {
            Wire::Anthropic => Encoder::Anthropic(FromOpenAi::new(plan.model.to_string())),
            Wire::Responses => Encoder::Responses(Box::new(ResponsesFromOpenAi::new(
                plan.model.to_string(),
                plan.tool_names.clone(),
            ))),
            Wire::OpenAi | Wire::Gemini => Encoder::OpenAi {
                include_usage: plan.include_usage,
                writer: ChunkWriter::default(),
            },
        };
        Self::build(plan, Some(encoder))
    }

    /// Reads a stream in `plan.from`'s format without writing anything: for a stream relayed
    /// as it is, to tell when its content starts (see [`Self::content_started`]).
    pub fn probe(plan: &ResponsePlan) -> Self {
        Self::build(plan, None)
    }

    fn build(plan: &ResponsePlan, encoder: Option<Encoder>) -> Self {
        let decoder = match plan.from {
            // A probe's readers make no id or time and keep no head for the chunks they
            // never write.
            Wire::OpenAi if encoder.is_none() => Decoder::OpenAi(ChunkReader::probing()),
            Wire::OpenAi => Decoder::OpenAi(ChunkReader::default()),
            Wire::Anthropic if encoder.is_none() => {
                Decoder::Anthropic(AnthropicToOpenAi::probing(plan.json_mode.clone()))
            }
            Wire::Anthropic => Decoder::Anthropic(AnthropicToOpenAi::new(plan.json_mode.clone())),
            Wire::Gemini if encoder.is_none() => {
                Decoder::Gemini(GeminiToOpenAi::probing(plan.model.to_string()))
            }
            Wire::Gemini => Decoder::Gemini(GeminiToOpenAi::new(plan.model.to_string())),
            Wire::Responses => Decoder::Responses,
        };
        StreamTranslator {
            parser: SseParser::default(),
            state: Translation {
                decoder,
                encoder,
                chunks: Vec::new(),
                choices: Vec::new(),
                transcript: None,
                content: false,
                ended: false,
            },
        }
    }

    /// Whether real content (text, a tool call, reasoning, a finish) has come: before it,
    /// a stream is only preamble (role chunks, `message_start`, pings), which the gateway
    /// holds back so a failure there can still be retried or fall back.
    pub fn content_started(&self) -> bool {
        self.state.content
    }

    /// Assembles the trace's answer from the chunks as they are decoded, keeping at most
    /// `limit` bytes of its text (a probe writes nothing, and assembles nothing).
    pub fn assemble(&mut self, limit: usize) {
        if self.state.encoder.is_some() && limit > 0 {
            self.state.transcript = Some(Box::new(Assembled::bounded(limit)));
        }
    }

    pub fn assembles(&self) -> bool {
        self.state.transcript.is_some()
    }

    /// The answer assembled so far.
    pub fn transcript(&mut self) -> Option<Output> {
        self.state.transcript.take().map(|a| a.finish())
    }

    /// Whether the stream's end was seen.
    pub fn ended(&self) -> bool {
        self.state.ended
    }

    /// Translates the events `bytes` complete, appending the output to `out`. Each event is
    /// translated as the parser completes it; the first failure stops the translation.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), StreamFailure> {
        let state = &mut self.state;
        let mut failure = None;
        let probe = state.encoder.is_none();
        let parsed = self.parser.feed_while(bytes, &mut |e| {
            if failure.is_none() {
                failure = state.event(e, out).err();
            }
            // A probe is done once content has started: the events after it in the same
            // read (a fast upstream's whole stream) are not even framed.
            !(probe && state.content)
        });
        parsed.map_err(|e| StreamFailure::upstream(e.to_string()))?;
        failure.map_or(Ok(()), Err)
    }

    /// At the end of the upstream body. A provider stream that should have ended with an end
    /// event (Anthropic's `message_stop`, OpenAI's `[DONE]`) and did not was cut off.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), StreamFailure> {
        let state = &mut self.state;
        let mut failure = None;
        self.parser.finish(&mut |e| {
            if failure.is_none() {
                failure = state.event(e, out).err();
            }
        });
        if let Some(failure) = failure {
            return Err(failure);
        }
        if state.ended {
            return Ok(());
        }
        match state.decoder {
            Decoder::Gemini(_) => {
                state.end(out);
                Ok(())
            }
            _ => Err(StreamFailure::upstream(
                "the upstream stream ended before its end",
            )),
        }
    }

    /// The token counts the provider reported, once known, read from its own format's
    /// counts (the OpenAI form has no place for Anthropic's cache writes).
    pub fn tokens(&self) -> Option<TokenUsage> {
        match &self.state.decoder {
            Decoder::OpenAi(d) => d.usage().as_ref().map(openai::usage::tokens),
            Decoder::Anthropic(d) => Some(anthropic::usage::tokens(d.reported())),
            Decoder::Gemini(d) => d.reported().map(gemini::usage::tokens),
            Decoder::Responses => None,
        }
    }
}

impl Decoder {
    /// The `id`, `created` and `model` a decoder puts around the choices it reads without a
    /// chunk (an OpenAI stream's plain text chunks, every Anthropic or Gemini event).
    fn head(&self) -> Option<Head<'_>> {
        match self {
            Decoder::OpenAi(d) => d.head(),
            Decoder::Anthropic(d) => Some(d.head()),
            Decoder::Gemini(d) => Some(d.head()),
            Decoder::Responses => None,
        }
    }
}

impl Translation {
    fn usage(&self) -> Option<Usage> {
        match &self.decoder {
            Decoder::OpenAi(d) => d.usage(),
            Decoder::Anthropic(d) => Some(d.usage()),
            Decoder::Gemini(d) => d.usage(),
            Decoder::Responses => None,
        }
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> Result<(), StreamFailure> {
        // A probe's work is done once content has started.
        if self.encoder.is_none() && self.content {
            return Ok(());
        }
        match self.decode(event, out) {
            // A probe watches a stream relayed as it is: an event it cannot read is the
            // app's to read, and ends the hold-back.
            Err(e) if e.unreadable && self.encoder.is_none() => {
                self.content = true;
                Ok(())
            }
            result => result,
        }
    }

    fn decode(&mut self, event: &Event, out: &mut Vec<u8>) -> Result<(), StreamFailure> {
        if self.ended {
            return Ok(());
        }
        let finished = match &mut self.decoder {
            Decoder::OpenAi(d) => {
                d.event(&event.data, &mut self.chunks, &mut self.choices)?;
                d.done()
            }
            Decoder::Anthropic(d) => {
                if let Some(text) = d.text(&event.data) {
                    self.text(text, out);
                    return Ok(());
                }
                d.parsed(&event.data, &mut self.choices)?;
                d.ended()
            }
            Decoder::Gemini(d) => {
                if let Some(text) = d.text(&event.data) {
                    self.text(text, out);
                    return Ok(());
                }
                d.parsed(&event.data, &mut self.choices)?;
                false
            }
            Decoder::Responses => {
                let kind = event.name.as_str();
                self.content |= !matches!(kind, "response.created" | "response.in_progress");
                matches!(
                    kind,
                    "response.completed" | "response.incomplete" | "response.failed" | "error"
                )
            }
        };
        if !self.content {
            self.content = self.chunks.iter().flat_map(|c| &c.choices).any(has_content)
                || self.choices.iter().any(has_content);
        }
        if let Some(transcript) = &mut self.transcript {
            for chunk in &self.chunks {
                openai::transcript::chunk(chunk, transcript);
            }
            for choice in &self.choices {
                openai::transcript::choice(choice, transcript);
            }
        }
        match &mut self.encoder {
            Some(encoder) => {
                if let Some(head) = self.decoder.head() {
                    self.choices
                        .drain(..)
                        .for_each(|c| encoder.choice(head, c, out));
                }
                self.chunks.drain(..).for_each(|c| encoder.chunk(c, out));
            }
            None => {
                self.chunks.clear();
                self.choices.clear();
            }
        }
        debug_assert!(self.choices.is_empty(), "every encoder takes the choices");
        if finished {
            self.end(out);
        }
        Ok(())
    }

    /// A piece of the answer's text that the decoder read without making a choice of it:
    /// what a choice 0 of that text alone does, step by step (a stream is mostly these, and
    /// a choice made, moved and dropped for each cost more than its text).
    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.content = true;
        if let Some(transcript) = &mut self.transcript {
            openai::transcript::text(text, transcript);
        }
        if let (Some(encoder), Some(head)) = (&mut self.encoder, self.decoder.head()) {
            encoder.text(head, text, out);
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.ended = true;
        // The end of an answer is content too: an empty answer is still an answer.
        self.content = true;
        let usage = self.usage();
        if let Some(encoder) = &mut self.encoder {
            encoder.finish(usage, out);
            if let (Some(transcript), Some(reason)) = (&mut self.transcript, encoder.ending()) {
                transcript.ended_with(reason);
            }
        }
    }
}

/// Writes OpenAI chunks as SSE events. What every chunk of a stream repeats (`id`, `object`,
/// `created`, `model`) is serialised once and copied after that: per chunk, only `choices`
/// and `usage` are (the profile of a translated stream had a tenth of its time in
/// serialising and escaping the same strings again).
#[derive(Default)]
struct ChunkWriter {
    /// `{"id":…,"object":…,"created":…,"model":…,` of `of`.
    prefix: Vec<u8>,
    of: Option<(Arc<str>, u64, Arc<str>)>,
}

/// The head of a chunk, in [`ChatChunk`]'s field order.
#[derive(Serialize)]
struct ChunkHead<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
}

impl ChunkWriter {
    /// A chunk of the answer's `choices`, with `usage: null` when the app asked for usage:
    /// the provider's own usage chunk (no choices) is the gateway's business, and the app
    /// gets one at the end if it asked.
    fn answer(
        &mut self,
        include_usage: bool,
        head: Head<'_>,
        choices: &[ChunkChoice],
        out: &mut Vec<u8>,
    ) {
        if choices.is_empty() {
            return;
        }
        let usage = answer_usage(include_usage);
        self.write(head, &usage, out, |out| write_choices(out, choices));
    }

    /// What [`Self::answer`] writes for a choice 0 of `text` alone, with no choice made.
    fn text(&mut self, include_usage: bool, head: Head<'_>, text: &str, out: &mut Vec<u8>) {
        let usage = answer_usage(include_usage);
        self.write(head, &usage, out, |out| write_text_choice(out, 0, text));
    }

    /// Appends `data: {chunk as JSON}\n\n` for the chunk of `head`, the choices `choices`
    /// writes and `usage`: the same bytes as serialising it whole.
    fn write(
        &mut self,
        (id, created, model): Head<'_>,
        usage: &UsageField,
        out: &mut Vec<u8>,
        choices: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    ) {
        let same = self
            .of
            .as_ref()
            .is_some_and(|of| *of.0 == **id && of.1 == created && *of.2 == **model);
        if !same {
            self.start((id, created, model));
        }
        let prefix = &self.prefix;
        write_event(out, None, |out| {
            out.extend_from_slice(prefix);
            out.extend_from_slice(b"\"choices\":");
            choices(out)?;
            if !usage.is_absent() {
                out.extend_from_slice(b",\"usage\":");
                serde_json::to_writer(&mut *out, usage)?;
            }
            out.push(b'}');
            Ok(())
        });
    }

    fn start(&mut self, (id, created, model): Head<'_>) {
        let head = ChunkHead {
            id,
            object: ChunkObject::NAME,
            created,
            model,
        };
        self.prefix.clear();
        if serde_json::to_writer(&mut self.prefix, &head).is_ok() {
            // `{…}` -> `{…,`: the chunk's other fields follow.
            self.prefix.pop();
            self.prefix.push(b',');
        }
        self.of = Some((id.clone(), created, model.clone()));
    }
}

/// Writes a chunk's choices: one choice of text alone (most of a stream) as bytes around
/// its text, anything else serialised; the bytes are serde's either way (tested). A chunk
/// of text serialised whole cost a quarter of translating Anthropic to chat. The patterns
/// name every field, so a field added to a choice or a delta fails to compile here.
fn write_choices(out: &mut Vec<u8>, choices: &[ChunkChoice]) -> serde_json::Result<()> {
    let [ChunkChoice {
        index,
        delta:
            Delta {
                role: None,
                content: Some(text),
                reasoning_content: None,
                thinking_blocks: None,
                tool_calls: None,
                annotations: None,
                web_search_call: None,
            },
        finish_reason: None,
        logprobs: None,
    }] = choices
    else {
        return serde_json::to_writer(out, choices);
    };
    write_text_choice(out, *index, text)
}

/// The usage field of a chunk of the answer: `null` when the app asked for usage (it gets
/// its own chunk at the end), else none.
fn answer_usage(include_usage: bool) -> UsageField {
    if include_usage {
        UsageField::Null
    } else {
        UsageField::Absent
    }
}

/// Writes choices that are one choice of `text` alone, as serde writes them.
fn write_text_choice(out: &mut Vec<u8>, index: u32, text: &str) -> serde_json::Result<()> {
    out.extend_from_slice(br#"[{"index":"#);
    serde_json::to_writer(&mut *out, &index)?;
    out.extend_from_slice(br#","delta":{"content":"#);
    serde_json::to_writer(&mut *out, text)?;
    out.extend_from_slice(br#"},"finish_reason":null,"logprobs":null}]"#);
    Ok(())
}

/// A choice that carries part of the answer, not only its preamble.
fn has_content(c: &ChunkChoice) -> bool {
    let d = &c.delta;
    c.finish_reason.is_some()
        || d.content.as_deref().is_some_and(|t| !t.is_empty())
        || d.reasoning_content
            .as_deref()
            .is_some_and(|t| !t.is_empty())
        || d.tool_calls.is_some()
        || d.thinking_blocks.is_some()
}

impl Encoder {
    /// The one finish reason a stream in the app's format ends with, when that format names
    /// it once at the end rather than per chunk: Anthropic's `stop_reason`, the Responses
    /// API's `status`, as the encoder wrote them.
    fn ending(&self) -> Option<&'static str> {
        match self {
            Encoder::OpenAi { .. } => None,
            Encoder::Anthropic(e) => Some(e.stop_reason()),
            Encoder::Responses(e) => Some(e.status()),
        }
    }

    fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi {
                include_usage,
                writer,
            } => {
                let head = (&chunk.id, chunk.created, &chunk.model);
                writer.answer(*include_usage, head, &chunk.choices, out);
            }
            Encoder::Anthropic(e) => e.chunk(&chunk, out),
            Encoder::Responses(e) => e.chunk(&chunk, out),
        }
    }

    /// A choice a decoder read, of the stream `head` names: written as it is where the
    /// app's format has no chunks, or in its chunk.
    fn choice(&mut self, head: Head<'_>, choice: ChunkChoice, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi {
                include_usage,
                writer,
            } => writer.answer(*include_usage, head, std::slice::from_ref(&choice), out),
            Encoder::Anthropic(e) => e.chunk(&ChatChunk::around(head, choice), out),
            Encoder::Responses(e) => e.choice(&choice, out),
        }
    }

    /// A choice 0 of `text` alone, written as [`Self::choice`] writes it.
    fn text(&mut self, head: Head<'_>, text: &str, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi {
                include_usage,
                writer,
            } => writer.text(*include_usage, head, text, out),
            Encoder::Responses(e) => e.text_alone(text, out),
            Encoder::Anthropic(_) => {
                self.choice(head, ChunkChoice::of_text(0, text.to_owned()), out)
            }
        }
    }

    fn finish(&mut self, usage: Option<Usage>, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi {
                include_usage,
                writer,
            } => {
                // The last chunk's head, which the writer holds.
                if let (true, Some((id, created, model))) = (*include_usage, writer.of.clone()) {
                    let usage = UsageField::Some(usage.unwrap_or_default());
                    writer.write((&id, created, &model), &usage, out, |out| {
                        write_choices(out, &[])
                    });
                }
                write_data(out, openai::stream::DONE.as_bytes());
            }
            Encoder::Anthropic(e) => {
                if let Some(u) = usage {
                    e.chunk(
                        &ChatChunk {
                            usage: UsageField::Some(u),
                            ..ChatChunk::default()
                        },
                        out,
                    );
                }
                e.finish(out);
            }
            Encoder::Responses(e) => e.finish(usage, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::anthropic::request::JsonMode;

    /// Text written with no choice made is written as a choice 0 of that text alone, and
    /// assembled into the trace's answer as one.
    #[test]
    fn text_alone_is_what_a_choice_of_it_is() {
        let (id, model): (Arc<str>, Arc<str>) = ("c1".into(), "m".into());
        let head = (&id, 7, &model);
        for include_usage in [false, true] {
            for text in ["", "plain", "with \"quotes\" and \u{e9}\n"] {
                let encoder = || Encoder::OpenAi {
                    include_usage,
                    writer: ChunkWriter::default(),
                };
                let (mut a, mut b) = (encoder(), encoder());
                let (mut by_choice, mut alone) = (Vec::new(), Vec::new());
                let delta = Delta {
                    content: Some(text.to_string()),
                    ..Delta::default()
                };
                a.choice(
                    head,
                    ChunkChoice::new(0, delta.clone(), None),
                    &mut by_choice,
                );
                b.text(head, text, &mut alone);
                assert_eq!(String::from_utf8(alone), String::from_utf8(by_choice));
                let (mut x, mut y) = (Assembled::default(), Assembled::default());
                openai::transcript::choice(&ChunkChoice::new(0, delta, None), &mut x);
                openai::transcript::text(text, &mut y);
                let text_of = |a: Assembled| a.finish().message.map(|m| m.get().to_string());
                assert_eq!(text_of(x), text_of(y));
            }
        }
    }

    /// A translated Anthropic stream's counts keep its cache reads and writes.
    #[test]
    fn translated_counts_are_read_from_the_providers_own() {
        let mut plan = ResponsePlan::identity(Wire::OpenAi, "m");
        plan.from = Wire::Anthropic;
        let mut t = StreamTranslator::new(&plan);
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":20,\"cache_creation_input_tokens\":30,\"output_tokens\":1}}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut out = Vec::new();
        t.feed(sse.as_bytes(), &mut out).unwrap();
        let u = t.tokens().unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.cached_tokens,
                u.cache_write_tokens,
                u.completion_tokens
            ),
            (60, 20, 30, 5)
        );
        assert_eq!(u.total_tokens, 65);
    }

    /// An Anthropic stream with every kind of block: thinking (signed and redacted), text,
    /// a tool call, and the forced JSON tool's input.
    const EVERY_BLOCK: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n\
        data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me \"}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"think.\"}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig==\"}}\n\n\
        data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n\
        data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
        data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"He\"}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"llo \\\"q\\\"\"}}\n\n\
        data: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
        data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n\
        data: {\"type\":\"content_block_stop\",\"index\":3}\n\n\
        data: {\"type\":\"content_block_start\",\"index\":4,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"answer\",\"input\":{}}}\n\n\
        data: {\"type\":\"content_block_delta\",\"index\":4,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"ok\\\":true}\"}}\n\n\
        data: {\"type\":\"content_block_stop\",\"index\":4}\n\n\
        data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n\
        data: {\"type\":\"message_stop\"}\n\n";

    /// Ids made afresh numbered in the order they first appear, and times left out.
    fn placeholders(sse: &[u8]) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        let mut events = Vec::new();
        let mut parser = SseParser::default();
        parser
            .feed(sse, &mut |e| {
                let mut v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
                fresh_ids(&mut v, &mut seen);
                events.push(v);
            })
            .unwrap();
        events
    }

    /// Numbers the ids in `v` made afresh (`seen` holds those met so far), and leaves its
    /// times out.
    fn fresh_ids(v: &mut serde_json::Value, seen: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("created_at");
                map.values_mut().for_each(|x| fresh_ids(x, seen));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|x| fresh_ids(x, seen)),
            serde_json::Value::String(s) => {
                // `resp_` and the items' 32 hex digits; a Gemini call's 16 (and what follows
                // them).
                let fresh = s.split_once('_').is_some_and(|(_, rest)| {
                    let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
                    hex == 32 || (hex == 16 && s.starts_with("call_"))
                });
                if fresh {
                    let n = seen.iter().position(|x| x == s).unwrap_or_else(|| {
                        seen.push(s.clone());
                        seen.len() - 1
                    });
                    *s = format!("id_{n}");
                }
            }
            _ => {}
        }
    }

    /// A trace's answer, its fresh ids numbered.
    fn answer(output: Output) -> (serde_json::Value, Vec<String>, bool) {
        let mut message = serde_json::from_str(output.message.unwrap().get()).unwrap();
        fresh_ids(&mut message, &mut Vec::new());
        (message, output.finish_reasons, output.truncated)
    }

    /// A Gemini stream of two candidates: only the first is the response's.
    const TWO_CANDIDATES: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"one\"}],\"role\":\"model\"},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"two\"}],\"role\":\"model\"},\"index\":1}]}\n\n\
        data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":1},{\"content\":{\"parts\":[{\"text\":\".\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,\"totalTokenCount\":7}}\n\n";

    /// A decoder whose events the test wraps in chunks itself.
    trait ReadsChunks {
        fn choices(&mut self, data: &str) -> Vec<ChunkChoice>;
        fn head(&self) -> Head<'_>;
        fn usage(&self) -> Option<Usage>;

        fn chunks(&mut self, data: &str) -> Vec<ChatChunk> {
            let choices = self.choices(data);
            let around = |c| ChatChunk::around(self.head(), c);
            choices.into_iter().map(around).collect()
        }
    }

    impl ReadsChunks for AnthropicToOpenAi {
        fn choices(&mut self, data: &str) -> Vec<ChunkChoice> {
            let mut choices = Vec::new();
            self.event(data, &mut choices).unwrap();
            choices
        }
        fn head(&self) -> Head<'_> {
            AnthropicToOpenAi::head(self)
        }
        fn usage(&self) -> Option<Usage> {
            Some(AnthropicToOpenAi::usage(self))
        }
    }

    impl ReadsChunks for GeminiToOpenAi {
        fn choices(&mut self, data: &str) -> Vec<ChunkChoice> {
            let mut choices = Vec::new();
            self.event(data, &mut choices).unwrap();
            choices
        }
        fn head(&self) -> Head<'_> {
            GeminiToOpenAi::head(self)
        }
        fn usage(&self) -> Option<Usage> {
            GeminiToOpenAi::usage(self)
        }
    }

    /// A stream translated for the Responses API with its answer assembled, through the
    /// translator (no chunks made) and through chunks the test makes: the events and the
    /// answers are the same.
    fn same_through_chunks(plan: &ResponsePlan, stream: &str, decoder: &mut dyn ReadsChunks) {
        let mut direct = Vec::new();
        let mut t = StreamTranslator::new(plan);
        t.assemble(1 << 20);
        t.feed(stream.as_bytes(), &mut direct).unwrap();
        t.finish(&mut direct).unwrap();

        let mut encoder = ResponsesFromOpenAi::new("m".into(), plan.tool_names.clone());
        let mut chunked = Vec::new();
        let mut transcript = Assembled::bounded(1 << 20);
        let mut parser = SseParser::default();
        parser
            .feed(stream.as_bytes(), &mut |e| {
                for chunk in decoder.chunks(&e.data) {
                    openai::transcript::chunk(&chunk, &mut transcript);
                    encoder.chunk(&chunk, &mut chunked);
                }
            })
            .unwrap();
        encoder.finish(decoder.usage(), &mut chunked);
        transcript.ended_with(encoder.status());
        assert_eq!(placeholders(&direct), placeholders(&chunked), "{stream}");
        let (direct, chunked) = (t.transcript().unwrap(), transcript.finish());
        assert_eq!(answer(direct), answer(chunked));
    }

    fn fixture(provider: &str, name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(provider)
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    /// Anthropic and Gemini streams reach the Responses encoder as choices, with no chunks
    /// made around them, and it writes (and assembles for the trace) what reading them in
    /// chunks does: every Anthropic block kind, the fixtures, with and without a forced JSON
    /// tool, and two Gemini candidates. The golden files (`tests/conformance`) hold the
    /// events themselves.
    #[test]
    fn choices_reach_the_responses_encoder_as_chunks_would() {
        let names = [
            "stream_text.sse",
            "stream_tool.sse",
            "stream_web_search.sse",
        ];
        let mut anthropic = vec![EVERY_BLOCK.to_string()];
        anthropic.extend(names.map(|n| fixture("anthropic", n)));
        for (stream, forced) in anthropic.iter().flat_map(|s| [(s, false), (s, true)]) {
            let mut plan = ResponsePlan::identity(Wire::Responses, "m");
            plan.from = Wire::Anthropic;
            if forced {
                plan.json_mode = JsonMode::ForcedTool("answer".into());
            }
            let mut decoder = AnthropicToOpenAi::new(plan.json_mode.clone());
            same_through_chunks(&plan, stream, &mut decoder);
        }
        let mut gemini = vec![TWO_CANDIDATES.to_string()];
        gemini.extend(names.map(|n| fixture("gemini", n)));
        for stream in &gemini {
            let mut plan = ResponsePlan::identity(Wire::Responses, "m");
            plan.from = Wire::Gemini;
            let mut decoder = GeminiToOpenAi::new(plan.model.to_string());
            same_through_chunks(&plan, stream, &mut decoder);
        }
    }

    /// The writer's bytes are those of serialising each chunk whole, whatever changes.
    #[test]
    fn chunks_are_written_as_serialising_them_whole_would() {
        let id: Arc<str> = "chatcmpl-1\"x".into();
        let model: Arc<str> = "claude-é".into();
        let text = |t: &str| Delta {
            content: Some(t.into()),
            ..Delta::default()
        };
        let of = |index, delta, finish| {
            ChatChunk::around((&id, 7, &model), ChunkChoice::new(index, delta, finish))
        };
        let mut chunks = vec![
            of(0, text("a\nb"), None),
            of(2, text("\"q\" \\ \u{7} \u{1F98A}"), None),
            of(0, text("c"), Some("stop")),
            ChatChunk::around(
                (&id, 7, &"other".into()),
                ChunkChoice::new(1, Delta::default(), None),
            ),
        ];
        chunks[1].usage = UsageField::Null;
        let mut last = chunks[1].clone();
        last.choices.clear();
        last.usage = UsageField::Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
            total_tokens: 5,
            ..Usage::default()
        });
        chunks.push(last);
        let mut writer = ChunkWriter::default();
        for chunk in &chunks {
            let mut out = Vec::new();
            let head = (&chunk.id, chunk.created, &chunk.model);
            writer.write(head, &chunk.usage, &mut out, |out| {
                write_choices(out, &chunk.choices)
            });
            let whole = serde_json::to_string(chunk).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("data: {whole}\n\n")
            );
        }
    }

    proptest::proptest! {
        /// A probe of an OpenAI stream (which takes a chunk of plain text for content without
        /// reading its head) says content has started after the same event as a reader that
        /// reads every chunk by serde: the first that it cannot read or that carries content.
        /// The role chunk, when there is one, has a head and an end of its own, so the text
        /// chunks after it may be ones serde cannot read (a second `choices` after the first,
        /// a head of the wrong shape).
        #[test]
        fn a_probe_sees_content_start_where_serde_does(
            role_fields in proptest::option::of(proptest::collection::vec(proptest::sample::select(openai::stream::HEAD_FIELDS), 0..4)),
            fields in proptest::collection::vec(proptest::sample::select(openai::stream::HEAD_FIELDS), 0..6),
            texts in proptest::collection::vec(proptest::sample::select(vec!["", "a", "b \"q\""]), 1..4),
            end in proptest::sample::select(openai::stream::ENDS),
        ) {
            let role = role_fields.map(|fields| {
                let head = openai::stream::test_head(&fields);
                format!(
                    r#"{head}"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#
                )
            });
            let head = openai::stream::test_head(&fields);
            let events = role
                .into_iter()
                .chain(texts.iter().map(|t| openai::stream::test_chunk(&head, t, end)));
            let mut probe = StreamTranslator::probe(&ResponsePlan::identity(Wire::OpenAi, "m"));
            let mut serde = ChunkReader::default();
            for data in events {
                let sse = format!("data: {data}\n\n");
                probe.feed(sse.as_bytes(), &mut Vec::new()).unwrap();
                // Spaced out, the choices key is no fast path's: serde reads the chunk whole.
                let spaced = data.replace("\"choices\":", "\"choices\" :");
                let (mut chunks, mut choices) = (Vec::new(), Vec::new());
                let started = match serde.event(&spaced, &mut chunks, &mut choices) {
                    Err(_) => true,
                    Ok(()) => chunks.iter().flat_map(|c| &c.choices).chain(&choices).any(has_content),
                };
                proptest::prop_assert_eq!(probe.content_started(), started, "{}", data);
                if started {
                    break;
                }
            }
        }
    }
}
