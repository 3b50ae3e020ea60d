//! The text of a request and of its answer, for its trace: read back from the bytes that went
//! by, in whatever format the app spoke, after the request is over (never on its path).
//!
//! The input is the conversation as the app sent it (a system prompt given apart becomes the
//! first message). The output is one assistant message in OpenAI's shape, whatever the
//! format: streams are assembled from their deltas, tool calls included.
//!
//! Both come out as JSON text: the exporters only copy them, so the conversation is sliced
//! out of the body rather than built into a tree, and each stream event is read into small
//! borrowed structs that keep only the fields an answer is assembled from.

use crate::telemetry::capture::{Format, Output};
use serde::{Deserialize, Serialize};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Value};
use std::borrow::Cow;

/// A request's conversation, from its body.
pub fn input(format: Format, body: &[u8]) -> Option<Box<RawValue>> {
    match format {
        Format::OpenAi | Format::Responses => {
            let body: OpenAiRequest = serde_json::from_slice(body).ok()?;
            body.messages.or(body.input).map(RawValue::to_owned)
        }
        Format::Anthropic => {
            let body: AnthropicRequest = serde_json::from_slice(body).ok()?;
            let messages = body.messages?;
            match body.system {
                Some(system) => with_system(system, messages),
                None => is_array(messages).then(|| messages.to_owned()),
            }
        }
        Format::Gemini => gemini_input(&serde_json::from_slice(body).ok()?),
        Format::Raw => None,
    }
}

/// The fields of an OpenAI request that hold its conversation (chat, or the Responses API).
#[derive(Deserialize)]
struct OpenAiRequest<'a> {
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AnthropicRequest<'a> {
    #[serde(borrow)]
    system: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
}

fn is_array(raw: &RawValue) -> bool {
    raw.get().starts_with('[')
}

/// `[{"role":"system","content":<system>}, ...messages]`, spliced as text.
fn with_system(system: &RawValue, messages: &RawValue) -> Option<Box<RawValue>> {
    let inner = messages.get().strip_prefix('[')?.strip_suffix(']')?.trim();
    let sep = if inner.is_empty() { "" } else { "," };
    let text = format!(
        r#"[{{"role":"system","content":{}}}{sep}{inner}]"#,
        system.get()
    );
    RawValue::from_string(text).ok()
}

fn gemini_input(body: &Value) -> Option<Box<RawValue>> {
    let mut messages = Vec::new();
    if let Some(system) = body.get("systemInstruction") {
        messages.push(json!({"role": "system", "content": gemini_text(system)}));
    }
    for content in body.get("contents")?.as_array()? {
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        messages.push(json!({"role": role, "content": gemini_text(content)}));
    }
    to_raw_value(&messages).ok()
}

/// The answer the app got, from the bytes captured (`stream`: SSE events).
pub fn output(format: Format, stream: bool, bytes: &[u8]) -> Output {
    if format == Format::Raw {
        let text = String::from_utf8_lossy(bytes);
        let message = Message {
            seen: !text.is_empty(),
            text: text.into_owned(),
            ..Message::default()
        };
        return message.finish();
    }
    let mut message = Message::default();
    if stream {
        let mut parser = super::sse::SseParser::default();
        let mut on_event = |e: &super::sse::Event| message.read(format, &e.data);
        let _ = parser.feed(bytes, &mut on_event);
        parser.finish(&mut on_event);
    } else if format == Format::Gemini && bytes.trim_ascii_start().starts_with(b"[") {
        // Gemini's non-SSE stream: a JSON array of chunks.
        if let Ok(chunks) = serde_json::from_slice::<Vec<GeminiChunk>>(bytes) {
            chunks.into_iter().for_each(|c| message.gemini(c));
        }
    } else if let Ok(text) = std::str::from_utf8(bytes) {
        message.read(format, text);
    }
    message.finish()
}

/// A whole chat completion or one chunk of its stream: only what an answer is made of.
#[derive(Deserialize)]
struct OpenAiAnswer<'a> {
    #[serde(borrow, default)]
    choices: First<OpenAiChoice<'a>>,
}

const CHOICES_KEY: &str = "\"choices\":";

/// `choices[0]` of a whole answer or a chunk. Most of a chunk's bytes are the fields before
/// its choices (id, object, created, model), and reading them cost half of a stream's
/// transcript; so the reading starts at the `"choices":` key when the text has it (it
/// cannot be inside a string, where its quotes would be escaped), and the whole object is
/// read only when that does not parse.
fn first_choice(data: &str) -> Option<OpenAiChoice<'_>> {
    let at_key = choices_finder().find(data.as_bytes());
    if let Some(choices) = at_key.and_then(|i| data.get(i + CHOICES_KEY.len()..)) {
        let mut reader = serde_json::Deserializer::from_str(choices);
        if let Ok(First(choice)) = First::deserialize(&mut reader) {
            return choice;
        }
    }
    let answer: OpenAiAnswer = serde_json::from_str(data).ok()?;
    answer.choices.0
}

/// The `"choices":` searcher, built once: building one costs more than a search.
fn choices_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(CHOICES_KEY));
    &FINDER
}

/// A Gemini answer or chunk: only what a transcript reads, borrowed, and lenient (a part
/// of a kind it does not know is read as text-less, never a reason to drop the chunk).
#[derive(Deserialize)]
struct GeminiChunk<'a> {
    #[serde(borrow, default)]
    candidates: First<GeminiCandidate<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate<'a> {
    #[serde(borrow, default)]
    content: Option<GeminiContent<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct GeminiContent<'a> {
    #[serde(borrow, default)]
    parts: Vec<GeminiPart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPart<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default)]
    function_call: Option<GeminiCall<'a>>,
}

#[derive(Deserialize)]
struct GeminiCall<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
}

/// The first element of an array, the rest skipped: no `Vec` per stream chunk for the one
/// choice a transcript reads.
struct First<T>(Option<T>);

impl<T> Default for First<T> {
    fn default() -> Self {
        First(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<First<T>, A::Error> {
                let first = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        deserializer.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
    /// `message` in a whole answer, `delta` in a chunk.
    #[serde(borrow, alias = "delta")]
    message: Option<OpenAiPart<'a>>,
}

#[derive(Deserialize)]
struct OpenAiPart<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<OpenAiToolCall<'a>>>,
}

#[derive(Deserialize)]
struct OpenAiToolCall<'a> {
    index: Option<usize>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<OpenAiFunction<'a>>,
}

#[derive(Deserialize)]
struct OpenAiFunction<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// A whole `response` object, or a stream event: only the terminal events (which hold the
/// whole response) are read.
#[derive(Deserialize)]
struct ResponsesAnswer<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    output: Option<Vec<ResponsesItem<'a>>>,
    #[serde(borrow)]
    response: Option<Box<ResponsesAnswer<'a>>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesItem<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    content: Option<Vec<ResponsesPart<'a>>>,
    #[serde(borrow)]
    summary: Option<Vec<ResponsesPart<'a>>>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
    /// A `custom_tool_call`'s free-form input (shown as its arguments).
    #[serde(borrow)]
    input: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResponsesPart<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

/// A whole Messages answer or one event of its stream.
#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    index: Option<usize>,
    #[serde(borrow)]
    delta: Option<AnthropicDelta<'a>>,
    #[serde(borrow)]
    content_block: Option<AnthropicBlock<'a>>,
    #[serde(borrow)]
    content: Option<Vec<AnthropicBlock<'a>>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicBlock<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

/// An assistant message being assembled.
#[derive(Default)]
struct Message {
    seen: bool,
    text: String,
    reasoning: String,
    /// By index: id, name, arguments.
    tools: Vec<(String, String, String)>,
    finish_reasons: Vec<String>,
}

impl Message {
    /// One whole answer or one stream event, as JSON text (already known to be UTF-8, so
    /// its strings are not checked again).
    fn read(&mut self, format: Format, data: &str) {
        match format {
            Format::OpenAi => {
                if let Some(choice) = first_choice(data) {
                    self.openai(choice);
                }
            }
            Format::Anthropic => {
                if let Ok(event) = serde_json::from_str(data) {
                    self.anthropic(event);
                }
            }
            Format::Gemini => {
                if let Ok(chunk) = serde_json::from_str::<GeminiChunk>(data) {
                    self.gemini(chunk);
                }
            }
            Format::Responses => {
                if let Ok(answer) = serde_json::from_str::<ResponsesAnswer>(data) {
                    self.responses(answer);
                }
            }
            Format::Raw => {}
        }
    }

    fn tool(&mut self, index: usize) -> Option<&mut (String, String, String)> {
        // An index far past the calls seen is not a real call: never grow without bound.
        if index > self.tools.len() + 64 {
            return None;
        }
        if self.tools.len() <= index {
            self.tools.resize_with(index + 1, Default::default);
        }
        self.tools.get_mut(index)
    }

    fn finish_reason(&mut self, reason: Option<&str>) {
        if let Some(r) = reason {
            self.finish_reasons.push(r.to_string());
        }
    }

    /// A whole answer's `choices[0].message`, or a chunk's `choices[0].delta`.
    fn openai(&mut self, choice: OpenAiChoice) {
        self.seen = true;
        self.finish_reason(choice.finish_reason.as_deref());
        let Some(part) = choice.message else { return };
        push(&mut self.text, part.content.as_deref());
        push(&mut self.reasoning, part.reasoning_content.as_deref());
        for (i, call) in part.tool_calls.into_iter().flatten().enumerate() {
            if let Some(tool) = self.tool(call.index.unwrap_or(i)) {
                push(&mut tool.0, call.id.as_deref());
                if let Some(function) = call.function {
                    push(&mut tool.1, function.name.as_deref());
                    push(&mut tool.2, function.arguments.as_deref());
                }
            }
        }
    }

    /// A whole response, or a stream's terminal event (`response.completed`, ...).
    fn responses(&mut self, answer: ResponsesAnswer) {
        let answer = match answer.kind.as_deref() {
            None | Some("response") => answer,
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                match answer.response {
                    Some(response) => *response,
                    None => return,
                }
            }
            Some(_) => return,
        };
        self.seen = true;
        self.finish_reason(answer.status.as_deref());
        for item in answer.output.into_iter().flatten() {
            let texts = |parts: Option<Vec<ResponsesPart>>| {
                parts
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.text)
                    .collect::<String>()
            };
            match &*item.kind {
                "message" => self.text.push_str(&texts(item.content)),
                "reasoning" => self.reasoning.push_str(&texts(item.summary)),
                "function_call" | "custom_tool_call" => {
                    let index = self.tools.len();
                    if let Some(tool) = self.tool(index) {
                        push(&mut tool.0, item.call_id.as_deref());
                        push(&mut tool.1, item.name.as_deref());
                        push(&mut tool.2, item.arguments.or(item.input).as_deref());
                    }
                }
                _ => {}
            }
        }
    }

    /// A whole Messages answer, or one of its stream's events.
    fn anthropic(&mut self, event: AnthropicEvent) {
        let index = event.index.unwrap_or(0);
        match &*event.kind {
            "message" => {
                self.seen = true;
                for (i, block) in event.content.iter().flatten().enumerate() {
                    self.anthropic_block(i, block);
                }
                self.finish_reason(event.stop_reason.as_deref());
            }
            "content_block_start" => {
                self.seen = true;
                if let Some(block) = &event.content_block {
                    self.anthropic_block(index, block);
                }
            }
            "content_block_delta" => {
                let Some(delta) = event.delta else { return };
                push(&mut self.text, delta.text.as_deref());
                push(&mut self.reasoning, delta.thinking.as_deref());
                if let Some(partial) = delta.partial_json.as_deref() {
                    if let Some(tool) = self.tool(index) {
                        tool.2.push_str(partial);
                    }
                }
            }
            "message_delta" => {
                let reason = event.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                self.finish_reason(reason);
            }
            _ => {}
        }
    }

    /// A content block: text, thinking, or a tool call (kept at its block index).
    fn anthropic_block(&mut self, index: usize, block: &AnthropicBlock) {
        match &*block.kind {
            "text" => push(&mut self.text, block.text.as_deref()),
            "thinking" => push(&mut self.reasoning, block.thinking.as_deref()),
            "tool_use" => {
                // A streamed call starts with `{}` and sends its arguments as deltas.
                let input = block
                    .input
                    .map(RawValue::get)
                    .filter(|i| !is_empty_object(i));
                if let Some(tool) = self.tool(index) {
                    push(&mut tool.0, block.id.as_deref());
                    push(&mut tool.1, block.name.as_deref());
                    push(&mut tool.2, input);
                }
            }
            _ => {}
        }
    }

    /// A whole answer or one chunk: `candidates[0].content.parts`.
    /// A Gemini answer or chunk, read with the Gemini decoder's own types.
    fn gemini(&mut self, chunk: GeminiChunk<'_>) {
        let Some(candidate) = chunk.candidates.0 else {
            return;
        };
        self.seen = true;
        self.finish_reason(candidate.finish_reason.as_deref());
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(call) = part.function_call {
                let index = self.tools.len();
                if let Some(tool) = self.tool(index) {
                    push(&mut tool.1, call.name.as_deref());
                    tool.2 = call.args.map(|a| a.get().to_string()).unwrap_or_default();
                }
            } else if part.thought == Some(true) {
                push(&mut self.reasoning, part.text.as_deref());
            } else {
                push(&mut self.text, part.text.as_deref());
            }
        }
    }

    fn finish(self) -> Output {
        if !self.seen {
            return Output::default();
        }
        let message = AssistantMessage {
            role: "assistant",
            content: &self.text,
            reasoning_content: &self.reasoning,
            tool_calls: self
                .tools
                .iter()
                .filter(|(_, name, _)| !name.is_empty())
                .map(|(id, name, arguments)| ToolCall {
                    id,
                    kind: "function",
                    function: Function { name, arguments },
                })
                .collect(),
        };
        Output {
            message: to_raw_value(&message).ok(),
            finish_reasons: self.finish_reasons,
        }
    }
}

/// The assembled answer, in OpenAI's `message` shape.
#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning_content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

fn push(into: &mut String, value: Option<&str>) {
    if let Some(s) = value {
        into.push_str(s);
    }
}

fn is_empty_object(json: &str) -> bool {
    json.bytes().filter(|b| !b.is_ascii_whitespace()).eq(*b"{}")
}

/// The text of a Gemini content's parts, joined.
fn gemini_text(content: &Value) -> Value {
    let parts = content.get("parts").and_then(Value::as_array);
    let text: String = parts
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(out: &Output) -> Value {
        serde_json::from_str(out.message.as_ref().unwrap().get()).unwrap()
    }

    fn parsed(raw: Option<Box<RawValue>>) -> Value {
        serde_json::from_str(raw.unwrap().get()).unwrap()
    }

    #[test]
    fn openai_streams_are_assembled_with_their_tool_calls() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let out = output(Format::OpenAi, true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out.finish_reasons, vec!["tool_calls"]);
    }

    #[test]
    fn gemini_chunks_are_read_leniently() {
        // A part of a kind the transcript does not know (the decoder's types have no field
        // for it), thoughts, a call.
        let sse = concat!(
            "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"thought\":true,\"text\":\"hmm\"},{\"executableCode\":{\"code\":\"1\"}},{\"text\":\"Hi\"}]}}],\"modelVersion\":\"g\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"get\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\"}]}\r\n\r\n",
        );
        let out = output(Format::Gemini, true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(
            (m["content"].as_str(), m["reasoning_content"].as_str()),
            (Some("Hi"), Some("hmm"))
        );
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out.finish_reasons, vec!["STOP"]);
    }

    #[test]
    fn a_choice_is_read_from_its_key_and_the_whole_chunk_when_that_fails() {
        let text = |data: &str| {
            let mut m = Message::default();
            m.read(Format::OpenAi, data);
            m.text
        };
        // Fields before the choices, a second choice, and the key's text inside a string.
        let chunk = r#"{"id":"x \"choices\": [","model":"m","choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#;
        assert_eq!(text(chunk), "a");
        // Spaced out, the key is not found as text: the whole chunk is read.
        assert_eq!(text(r#"{"choices" : [{"delta":{"content":"c"}}]}"#), "c");
        // No choice (a usage chunk), or choices of the wrong type: nothing.
        assert_eq!(text(r#"{"choices":[],"usage":{"total_tokens":1}}"#), "");
        assert_eq!(text(r#"{"choices":"no"}"#), "");
    }

    #[test]
    fn anthropic_streams_are_assembled() {
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"ls\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"d\\\":\\\"/\\\"}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n",
        );
        let out = output(Format::Anthropic, true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "Hi there");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"d\":\"/\"}");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(out.finish_reasons, vec!["tool_use"]);
    }

    #[test]
    fn a_responses_stream_is_read_from_its_terminal_event_custom_calls_too() {
        let sse = concat!(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":[",
            "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"hi\"}]},",
            "{\"type\":\"custom_tool_call\",\"call_id\":\"c1\",\"name\":\"apply_patch\",\"input\":\"*** Begin Patch\"}]}}\n\n",
        );
        let out = output(Format::Responses, true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "hi");
        let call = &m["tool_calls"][0];
        assert_eq!(
            (
                &call["id"],
                &call["function"]["name"],
                &call["function"]["arguments"]
            ),
            (
                &json!("c1"),
                &json!("apply_patch"),
                &json!("*** Begin Patch")
            )
        );
        assert_eq!(out.finish_reasons, vec!["completed"]);
    }

    #[test]
    fn whole_answers_of_each_format() {
        let openai = br#"{"choices":[{"message":{"role":"assistant","content":"a"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            message(&output(Format::OpenAi, false, openai))["content"],
            "a"
        );
        let anthropic = br#"{"type":"message","content":[{"type":"text","text":"b"},{"type":"tool_use","id":"t","name":"f","input":{"x":1}}],"stop_reason":"end_turn"}"#;
        let out = output(Format::Anthropic, false, anthropic);
        assert_eq!(message(&out)["content"], "b");
        assert_eq!(
            message(&out)["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        let gemini = br#"{"candidates":[{"content":{"parts":[{"text":"c"},{"functionCall":{"name":"g","args":{"y":2}}}]},"finishReason":"STOP"}]}"#;
        let out = output(Format::Gemini, false, gemini);
        assert_eq!(message(&out)["content"], "c");
        assert_eq!(message(&out)["tool_calls"][0]["function"]["name"], "g");
        assert_eq!(out.finish_reasons, vec!["STOP"]);
        assert!(output(Format::OpenAi, false, b"garbage").message.is_none());
    }

    #[test]
    fn inputs_of_each_format() {
        let openai = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(parsed(input(Format::OpenAi, openai))[0]["content"], "hi");
        let anthropic = br#"{"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#;
        let a = parsed(input(Format::Anthropic, anthropic));
        assert_eq!(
            (a[0]["role"].as_str(), a[1]["content"].as_str()),
            (Some("system"), Some("hi"))
        );
        let gemini = br#"{"contents":[{"role":"user","parts":[{"text":"h"},{"text":"i"}]}]}"#;
        assert_eq!(parsed(input(Format::Gemini, gemini))[0]["content"], "hi");
        assert!(input(Format::OpenAi, b"{").is_none());
        let no_messages = br#"{"system":"s","messages":[]}"#;
        assert_eq!(
            parsed(input(Format::Anthropic, no_messages))
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
