//! Streams, event by event: Anthropic events -> OpenAI choices ([`ToOpenAi`]) and OpenAI
//! chunks -> Anthropic events ([`FromOpenAi`]). Nothing waits for the end of the stream.
//!
//! The choices are what the other encoders read: a chat stream's in chunks of the stream's
//! [`ToOpenAi::head`], the Responses API's as they are, with no chunk made between.

use super::request::JsonMode;
use super::response::{usage_from_openai, usage_to_openai};
use super::*;
use crate::error::{anthropic_error_status, StreamFailure};
use crate::translate::json_text::plain_string;
use crate::translate::openai::stream::ToChoices;
use crate::translate::openai::{
    completion_id, now_unix, ChatChunk, ChunkChoice, Delta, FunctionDelta, Head, ToolCallDelta,
    Usage,
};
use crate::translate::sse::{write_event, write_json, Empty};
use crate::translate::web_search::{anthropic_citations, AnthropicSearches};
use serde_json::json;
use std::borrow::Cow;
use std::sync::Arc;

/// One Anthropic stream event, read in one pass: the fields of every event type side by side
/// (serde's tagged enums would buffer each event whole before reading it).
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u32,
    /// The rare parts are boxed: an event is moved whole a few times as it is read, and
    /// inline they made it twice the size (the copies were a tenth of a translation).
    #[serde(default)]
    message: Option<Box<StartMessage>>,
    #[serde(default)]
    content_block: Option<Box<Value>>,
    #[serde(default)]
    #[serde(borrow)]
    delta: Option<EventDelta<'a>>,
    #[serde(default)]
    usage: Option<Box<AUsage>>,
    #[serde(default)]
    error: Option<Box<ErrorBody>>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: AUsage,
}

/// A `content_block_delta`'s or a `message_delta`'s `delta`.
#[derive(Deserialize, Default)]
struct EventDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Cow<'a, str>,
    /// The one string a delta carries, under the key its type names: a `text_delta`'s
    /// `text`, an `input_json_delta`'s `partial_json`, a `thinking_delta`'s `thinking`, a
    /// `signature_delta`'s `signature`, a message's `stop_reason`. One field, not five: an
    /// event is moved whole several times as it is read, and copies of a larger one were
    /// a tenth of a translation.
    #[serde(
        alias = "text",
        alias = "partial_json",
        alias = "thinking",
        alias = "signature",
        alias = "stop_reason"
    )]
    payload: Option<String>,
    /// A `citations_delta`'s citation.
    citation: Option<Box<Value>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The text of a `text_delta` event written as Anthropic writes it
/// (`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"…"}}`),
/// text with no escapes, and its block's index: most of a stream, read without a parser by
/// the decoder, the transcript of a relayed stream and the cache's gatherer (in the streams
/// bench, this took the answer's share of a relayed stream from 5.4 to 2.1 us). Anything
/// else, `None`, is left to serde; the text's bytes are then what serde would have read
/// (tested in `transcript`).
pub(super) fn plain_text_delta(data: &str) -> Option<(usize, &str)> {
    const HEAD: &str = r#"{"type":"content_block_delta","index":"#;
    const DELTA: &str = r#","delta":{"type":"text_delta","text":""#;
    const TAIL: &str = r#""}}"#;
    let (index, rest) = block_index(data.strip_prefix(HEAD)?)?;
    let text = rest.strip_prefix(DELTA)?.strip_suffix(TAIL)?;
    plain_string(text).then_some((index as usize, text))
}

/// The index of a text block's start written as Anthropic writes it, empty
/// (`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`):
/// every text block opens so, and read by serde its block was a map of its own.
fn empty_text_block(data: &str) -> Option<u32> {
    const HEAD: &str = r#"{"type":"content_block_start","index":"#;
    const BLOCK: &str = r#","content_block":{"type":"text","text":""}}"#;
    let (index, rest) = block_index(data.strip_prefix(HEAD)?)?;
    (rest == BLOCK).then_some(index)
}

/// The block index `rest` begins with, and what follows it: a JSON number an index holds
/// (`0`, or up to 9 digits without a leading 0).
fn block_index(rest: &str) -> Option<(u32, &str)> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let number = &rest[..digits];
    if !(number == "0" || (1..=9).contains(&digits) && !number.starts_with('0')) {
        return None;
    }
    Some((number.parse().ok()?, &rest[digits..]))
}

/// Anthropic events -> OpenAI choices (for a chat stream, in chunks).
pub struct ToOpenAi {
    id: Arc<str>,
    created: u64,
    model: Arc<str>,
    json_mode: JsonMode,
    /// Anthropic block index -> OpenAI tool-call index, for tool_use blocks (tool blocks are
    /// counted on their own: OpenAI's `index` numbers the calls, not the blocks).
    tool_blocks: Vec<(u32, u32)>,
    /// The block carrying the forced JSON tool, whose input is the answer's content.
    forced_block: Option<u32>,
    usage: AUsage,
    ended: bool,
    /// Web searches Anthropic runs in its turn: each `server_tool_use` block (its index, and
    /// its input as it streams) until its `web_search_tool_result` comes.
    searches: AnthropicSearches,
    search_blocks: Vec<(u32, String, String)>,
    /// Characters of content written so far: where a cited text block starts.
    text_chars: usize,
    /// The text block being written: its index, where it started, and what it cites.
    text_block: Option<(u32, usize, Vec<Value>)>,
}

impl ToOpenAi {
    pub fn new(json_mode: JsonMode) -> Self {
        ToOpenAi {
            id: completion_id().into(),
            created: now_unix(),
            ..ToOpenAi::probing(json_mode)
        }
    }

    /// A reader for a probe, which writes nothing: no id or time is made for its chunks.
    pub fn probing(json_mode: JsonMode) -> Self {
        ToOpenAi {
            id: Arc::default(),
            created: 0,
            model: Arc::default(),
            json_mode,
            tool_blocks: Vec::new(),
            forced_block: None,
            usage: AUsage::default(),
            ended: false,
            searches: AnthropicSearches::default(),
            search_blocks: Vec::new(),
            text_chars: 0,
            text_block: None,
        }
    }
}

impl ToChoices for ToOpenAi {
    /// The text of a plain text delta (most of a stream), borrowed from the event: the
    /// translation writes it as a choice 0 of text alone (of empty text, none), with no
    /// choice made. `None` for any other event, which [`Self::parsed`] takes.
    fn text<'a>(&mut self, data: &'a str) -> Option<&'a str> {
        let (_, text) = plain_text_delta(data)?;
        self.text_chars += text.chars().count();
        Some(text)
    }

    /// Translates an event that [`Self::text`] did not take, read by serde (an empty text
    /// block's start is not: see [`empty_text_block`]): the stream's translation tries
    /// `text` first itself, and each event is looked at once.
    fn parsed(&mut self, data: &str, out: &mut Vec<ChunkChoice>) -> Result<(), StreamFailure> {
        if let Some(index) = empty_text_block(data) {
            // What `block_start` does for an empty text block with no citations.
            self.text_block = Some((index, self.text_chars, Vec::new()));
            return Ok(());
        }
        let event: StreamEvent = serde_json::from_str(data)
            .map_err(|e| StreamFailure::unreadable(format!("unreadable Anthropic event: {e}")))?;
        match event.kind.as_ref() {
            "message_start" => {
                let message = event.message.map_or(
                    StartMessage {
                        model: String::new(),
                        usage: AUsage::default(),
                    },
                    |m| *m,
                );
                self.model = message.model.into();
                self.usage = message.usage;
                out.push(choice_of(
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "content_block_start" => {
                let block = event.content_block.map_or(Value::Null, |b| *b);
                self.block_start(event.index, &block, out);
            }
            "content_block_delta" => {
                self.block_delta(event.index, event.delta.unwrap_or_default(), out);
            }
            "message_delta" => {
                if let Some(usage) = event.usage {
                    self.usage.output_tokens = usage.output_tokens;
                }
                if let Some(reason) = event.delta.and_then(|d| d.payload) {
                    let finish = match (reason.as_str(), self.forced_block) {
                        ("tool_use", Some(_)) => "stop",
                        (reason, _) => finish_reason(reason),
                    };
                    out.push(choice_of(Delta::default(), Some(finish)));
                }
            }
            "content_block_stop" => self.block_stop(event.index, out),
            "message_stop" => self.ended = true,
            "error" => {
                let error = event.error.map_or(
                    ErrorBody {
                        kind: String::new(),
                        message: "error event without a message".into(),
                    },
                    |e| *e,
                );
                return Err(StreamFailure::reported(
                    anthropic_error_status(&error.kind),
                    error.message,
                ));
            }
            // `ping` and event types added later: nothing to translate.
            _ => {}
        }
        Ok(())
    }
}

impl ToOpenAi {
    fn block_start(&mut self, index: u32, block: &Value, out: &mut Vec<ChunkChoice>) {
        match block["type"].as_str() {
            Some("tool_use") => {
                let name = block["name"].as_str().unwrap_or_default();
                if matches!(&self.json_mode, JsonMode::ForcedTool(forced) if forced == name) {
                    self.forced_block = Some(index);
                    return;
                }
                let tool_index = self.tool_blocks.len() as u32;
                self.tool_blocks.push((index, tool_index));
                let call = ToolCallDelta {
                    index: tool_index,
                    id: block["id"].as_str().map(str::to_string),
                    kind: Some("function".into()),
                    function: Some(FunctionDelta {
                        name: Some(name.to_string()),
                        arguments: Some(String::new()),
                    }),
                };
                out.push(tool_choice(call));
            }
            Some("text") => {
                let cites = block["citations"].as_array().cloned().unwrap_or_default();
                self.text_block = Some((index, self.text_chars, cites));
                if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                    out.push(self.content(text.to_string()));
                }
            }
            Some("server_tool_use") => {
                let id = block["id"].as_str().unwrap_or_default();
                let input = block.get("input").filter(|i| i.get("query").is_some());
                self.searches.started(id, input);
                self.search_blocks
                    .push((index, id.to_string(), String::new()));
            }
            Some("web_search_tool_result") => {
                let id = block["tool_use_id"].as_str().unwrap_or_default();
                let call = self.searches.finished(id, &block["content"]);
                out.push(choice_of(
                    Delta {
                        web_search_call: Some(Box::new(call)),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            Some("redacted_thinking") => out.push(choice_of(
                Delta {
                    thinking_blocks: Some(
                        vec![json!({"type": "redacted_thinking", "data": block["data"]})].into(),
                    ),
                    ..Delta::default()
                },
                None,
            )),
            _ => {}
        }
    }

    fn block_delta(&mut self, index: u32, delta: EventDelta<'_>, out: &mut Vec<ChunkChoice>) {
        match delta.kind.as_ref() {
            "text_delta" => {
                if let Some(text) = delta.payload.filter(|t| !t.is_empty()) {
                    out.push(self.content(text));
                }
            }
            "input_json_delta" => {
                let Some(partial_json) = delta.payload.filter(|p| !p.is_empty()) else {
                    return;
                };
                if self.forced_block == Some(index) {
                    out.push(self.content(partial_json));
                } else if let Some((_, _, input)) = self
                    .search_blocks
                    .iter_mut()
                    .find(|(block, ..)| *block == index)
                {
                    input.push_str(&partial_json);
                } else if let Some(&(_, tool_index)) =
                    self.tool_blocks.iter().find(|(block, _)| *block == index)
                {
                    out.push(tool_choice(ToolCallDelta {
                        index: tool_index,
                        function: Some(FunctionDelta {
                            name: None,
                            arguments: Some(partial_json),
                        }),
                        ..ToolCallDelta::default()
                    }));
                }
            }
            "citations_delta" => {
                if let (Some((block, _, cites)), Some(citation)) =
                    (self.text_block.as_mut(), delta.citation)
                {
                    if *block == index {
                        cites.push(*citation);
                    }
                }
            }
            "thinking_delta" => out.push(choice_of(
                Delta {
                    reasoning_content: delta.payload,
                    ..Delta::default()
                },
                None,
            )),
            "signature_delta" => out.push(choice_of(
                Delta {
                    thinking_blocks: Some(
                        vec![
                            json!({"type": "thinking", "thinking": "", "signature": delta.payload}),
                        ]
                        .into(),
                    ),
                    ..Delta::default()
                },
                None,
            )),
            _ => {}
        }
    }

    /// A block ends: a search's input is whole; a cited text block's span is known.
    fn block_stop(&mut self, index: u32, out: &mut Vec<ChunkChoice>) {
        if let Some(at) = self.search_blocks.iter().position(|(b, ..)| *b == index) {
            let (_, id, input) = self.search_blocks.remove(at);
            self.searches.input(&id, &input);
        }
        let Some((_, start, cites)) = self.text_block.take_if(|(b, ..)| *b == index) else {
            return;
        };
        let annotations = anthropic_citations(&cites, start, self.text_chars);
        if !annotations.is_empty() {
            out.push(choice_of(
                Delta {
                    annotations: Some(annotations.into()),
                    ..Delta::default()
                },
                None,
            ));
        }
    }

    /// The stream's id, time and model, which a chat chunk of its choices repeats.
    pub fn head(&self) -> Head<'_> {
        (&self.id, self.created, &self.model)
    }

    fn content(&mut self, text: String) -> ChunkChoice {
        self.text_chars += text.chars().count();
        ChunkChoice::of_text(0, text)
    }

    /// Whether `message_stop` arrived: a stream that ends before it was cut off.
    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn usage(&self) -> Usage {
        usage_to_openai(&self.usage)
    }

    /// The counts the stream reported so far, as Anthropic gives them.
    pub fn reported(&self) -> &AUsage {
        &self.usage
    }
}

/// The one choice (index 0) of a translated Anthropic stream.
fn choice_of(delta: Delta, finish: Option<&str>) -> ChunkChoice {
    ChunkChoice::new(0, delta, finish)
}

fn tool_choice(call: ToolCallDelta) -> ChunkChoice {
    choice_of(
        Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        },
        None,
    )
}

/// The block an OpenAI stream is writing into, on the Anthropic side.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OpenBlock {
    Text(u32),
    Tool { block: u32, openai_index: u32 },
}

/// OpenAI chunks -> Anthropic events.
pub struct FromOpenAi {
    id: String,
    model: String,
    started: bool,
    open: Option<OpenBlock>,
    next_block: u32,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
}

impl FromOpenAi {
    pub fn new(model: String) -> Self {
        FromOpenAi {
            id: message_id(),
            model,
            started: false,
            open: None,
            next_block: 0,
            stop_reason: None,
            usage: None,
        }
    }

    /// Translates one chunk, appending the events it makes.
    pub fn chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        self.start(out);
        if let crate::translate::openai::UsageField::Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(OpenBlock::Text(_))) {
                let block = self.open_block(out, OpenedBlock::Text { text: "" });
                self.open = Some(OpenBlock::Text(block));
            }
            self.delta(out, TEXT_DELTA, text);
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            let same = matches!(self.open, Some(OpenBlock::Tool { openai_index, .. }) if openai_index == call.index);
            if !same || call.id.is_some() {
                let function = call.function.as_ref();
                let block = OpenedBlock::ToolUse {
                    id: call.id.as_deref().unwrap_or_default(),
                    name: function.and_then(|f| f.name.as_deref()).unwrap_or_default(),
                    input: Empty {},
                };
                let block = self.open_block(out, block);
                self.open = Some(OpenBlock::Tool {
                    block,
                    openai_index: call.index,
                });
            }
            if let Some(args) = call.function.as_ref().and_then(|f| f.arguments.as_deref()) {
                if !args.is_empty() {
                    self.delta(out, INPUT_JSON_DELTA, args);
                }
            }
        }
        if let Some(finish) = choice.finish_reason.as_deref() {
            self.close(out);
            self.stop_reason = Some(stop_reason(finish));
        }
    }

    /// The `stop_reason` the message ends with (`end_turn` when no chunk gave a reason).
    pub fn stop_reason(&self) -> &'static str {
        self.stop_reason.unwrap_or("end_turn")
    }

    /// Ends the message: the stop reason and the final counts, then `message_stop`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let usage = self
            .usage
            .as_ref()
            .map(usage_from_openai)
            .unwrap_or_default();
        let delta = MessageDelta {
            delta: StopDelta {
                stop_reason: self.stop_reason(),
                stop_sequence: None,
            },
            usage: AUsage {
                cache_read_input_tokens: Some(usage.cache_read_input_tokens.unwrap_or(0)),
                ..usage
            },
        };
        write_json(out, Some("message_delta"), &delta);
        write_event(out, Some("message_stop"), |out| {
            out.extend_from_slice(br#"{"type":"message_stop"}"#);
            Ok(())
        });
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let start = MessageStart {
            message: StartedMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: AUsage::default(),
            },
        };
        write_json(out, Some("message_start"), &start);
    }

    fn open_block(&mut self, out: &mut Vec<u8>, block: OpenedBlock<'_>) -> u32 {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        let start = BlockEvent {
            kind: "content_block_start",
            index,
            content_block: Some(block),
        };
        write_json(out, Some(start.kind), &start);
        index
    }

    /// Writes a `content_block_delta` of the open block, `text` under `key` in a delta of
    /// type `kind`. Written as bytes around the text: a stream is mostly these, and
    /// serialising each (an event holding a tagged enum) was an eighth of translating chat
    /// to Anthropic.
    fn delta(&self, out: &mut Vec<u8>, (kind, key): DeltaKind, text: &str) {
        let index = match self.open {
            Some(OpenBlock::Text(i)) | Some(OpenBlock::Tool { block: i, .. }) => i,
            None => return,
        };
        write_event(out, Some("content_block_delta"), |out| {
            out.extend_from_slice(br#"{"type":"content_block_delta","index":"#);
            serde_json::to_writer(&mut *out, &index)?;
            for part in [r#","delta":{"type":""#, kind, r#"",""#, key, r#"":"#] {
                out.extend_from_slice(part.as_bytes());
            }
            serde_json::to_writer(&mut *out, text)?;
            out.extend_from_slice(b"}}");
            Ok(())
        });
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(OpenBlock::Text(i) | OpenBlock::Tool { block: i, .. }) = self.open.take() {
            let stop = BlockEvent {
                kind: "content_block_stop",
                index: i,
                content_block: None,
            };
            write_json(out, Some(stop.kind), &stop);
        }
    }
}

/// An event about one content block (its start or its stop), written from borrowed parts.
/// Fields in the API's order.
#[derive(Serialize)]
struct BlockEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_block: Option<OpenedBlock<'a>>,
}

/// A content block as `content_block_start` opens it: empty text, or a tool call whose
/// input is still to come.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OpenedBlock<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

/// `message_start`, written from borrowed parts like the rest of the message's events (a
/// `json!` map for each, once a stream, cost as much as a tenth of a short translation).
/// Fields in the API's order.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message_start")]
struct MessageStart<'a> {
    message: StartedMessage<'a>,
}

/// The message as `message_start` announces it: no content, no stop, no tokens yet.
#[derive(Serialize)]
struct StartedMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: AUsage,
}

/// `message_delta`: why the message stopped, and its counts.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message_delta")]
struct MessageDelta<'a> {
    delta: StopDelta<'a>,
    usage: AUsage,
}

#[derive(Serialize)]
struct StopDelta<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<()>,
}

/// A `content_block_delta`'s `delta` type, and the key its text is under: constants,
/// written as they are (they need no escaping).
type DeltaKind = (&'static str, &'static str);
const TEXT_DELTA: DeltaKind = ("text_delta", "text");
const INPUT_JSON_DELTA: DeltaKind = ("input_json_delta", "partial_json");

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
