//! OpenAI's Responses API (`/v1/responses`), as an ingress: its requests become the OpenAI
//! chat form (`request`), and chat answers and streams become `response` objects and the
//! Responses API's typed events (`response`, `stream`), so a coding agent speaking it can use
//! any provider. Toward OpenAI itself the API is spoken natively: nothing here is used.

pub(crate) mod collect;
pub(crate) mod replay;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
pub(crate) mod transcript;
pub(crate) mod usage;

use super::openai::Usage;
use super::sse::{write_json, Empty};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::Arc;

/// The tools of a request that other providers cannot take as they are, so their calls
/// must be turned back on the way out.
///
/// `namespace` tools (the Codex CLI groups its sub-agent tools in one): other providers have
/// flat tools only, so each function of a namespace goes to them named
/// `{namespace}__{name}`, and a call of such a name comes back as the namespace's own call
/// (`namespace` and `name`). Only the request's namespaces are split back, so a function
/// that merely has `__` in its name is left whole.
///
/// `custom` tools (free-form text in, such as a patch): other providers have JSON-schema
/// functions only, so each goes to them as a function of one string, `input`, and a call of
/// it comes back as a `custom_tool_call` whose `input` is that string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNames {
    namespaces: Arc<[String]>,
    custom: Arc<[String]>,
}

/// Between a namespace and a function of it, in the flat name.
const NAMESPACE_SEPARATOR: &str = "__";

/// The one parameter a `custom` tool has as a function.
const CUSTOM_INPUT: &str = "input";

impl ToolNames {
    fn new(namespaces: Vec<String>, custom: Vec<String>) -> ToolNames {
        ToolNames {
            namespaces: namespaces.into(),
            custom: custom.into(),
        }
    }

    /// A flat name as a namespace (if it is in one of the request's) and a name.
    fn split<'a>(&self, flat: &'a str) -> (Option<&'a str>, &'a str) {
        for namespace in self.namespaces.iter() {
            let inner = flat
                .strip_prefix(namespace.as_str())
                .and_then(|rest| rest.strip_prefix(NAMESPACE_SEPARATOR));
            if let Some(name) = inner {
                return (Some(&flat[..namespace.len()]), name);
            }
        }
        (None, flat)
    }

    /// Whether calls of `name` are of a `custom` tool.
    fn is_custom(&self, name: &str) -> bool {
        self.custom.iter().any(|c| c == name)
    }

    /// The id prefix of a call's output item.
    fn call_prefix(&self, name: &str) -> &'static str {
        if self.is_custom(name) {
            "ctc"
        } else {
            "fc"
        }
    }
}

/// A `custom` tool's input as its function's arguments: `{"input": "..."}`.
fn custom_arguments(input: &str) -> String {
    json!({ CUSTOM_INPUT: input }).to_string()
}

/// A `custom` tool's input from its function's arguments (the arguments as they are, if a
/// model did not keep to the one string it was given).
fn custom_input(arguments: &str) -> String {
    let parsed = serde_json::from_str::<Value>(arguments).ok();
    match parsed.as_ref().and_then(|v| v.get(CUSTOM_INPUT)?.as_str()) {
        Some(input) => input.to_string(),
        None => arguments.to_string(),
    }
}

/// The flat name of `name` in `namespace`.
fn flat_name(namespace: &str, name: &str) -> String {
    format!("{namespace}{NAMESPACE_SEPARATOR}{name}")
}

/// A fresh id with a Responses API prefix (`resp`, `msg`, `fc`, `ctc`, `rs`).
fn item_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

/// Chat usage in the Responses API's shape.
fn usage(u: &Usage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: CachedTokens {
            cached_tokens: u.cached_tokens(),
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: ReasoningTokens {
            reasoning_tokens: u
                .completion_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
        },
        total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
    }
}

/// A response's `usage`, in the API's field order: written from its fields, where a `json!`
/// value built three maps, hashing every key, for each response.
#[derive(Serialize)]
struct ResponseUsage {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

/// A chat `finish_reason` as a response's `status` and `incomplete_details`.
fn ending(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A provider's opaque thinking (Anthropic's signed thinking blocks) as a reasoning item's
/// `encrypted_content`: the app sends it back unread on its next turn, and the sidecar keeps
/// nothing. It is the blocks' JSON text: opaque to the app, exact for the provider.
fn encrypted_content(thinking: &[Value]) -> Option<String> {
    (!thinking.is_empty())
        .then(|| serde_json::to_string(thinking).ok())
        .flatten()
}

/// The thinking blocks an `encrypted_content` holds; nothing for one this gateway did not
/// write (OpenAI's own, from an earlier turn on another model).
fn thinking_of(encrypted: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(encrypted)
        .ok()
        .filter(|blocks| blocks.iter().all(Value::is_object))
        .unwrap_or_default()
}

/// A `reasoning` output item, written from borrowed parts like a message item.
#[derive(Serialize)]
struct ReasoningItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    summary: Summary<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted_content: Option<String>,
}

fn reasoning_item<'a>(
    id: &'a str,
    summary: impl Into<JsonText<'a>>,
    thinking: &[Value],
) -> ReasoningItem<'a> {
    ReasoningItem {
        id,
        kind: "reasoning",
        summary: Summary(summary.into()),
        encrypted_content: encrypted_content(thinking),
    }
}

/// A reasoning item's summary: no part, or its one `summary_text`.
struct Summary<'a>(JsonText<'a>);

impl Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Some(self.0).filter(|t| !t.is_empty());
        s.collect_seq(text.map(SummaryPart::new))
    }
}

/// A text as a JSON string: written as it is, or escaped already. A streamed item's whole
/// text is written again in each of the events that close it, and a long answer paid for its
/// escaping in every one: it is escaped once for all of them (into a [`raw`] value).
#[derive(Clone, Copy, Debug)]
enum JsonText<'a> {
    Plain(&'a str),
    /// A JSON string, quotes and escapes included.
    Escaped(&'a RawValue),
}

impl JsonText<'_> {
    fn is_empty(&self) -> bool {
        match self {
            JsonText::Plain(text) => text.is_empty(),
            JsonText::Escaped(json) => json.get() == "\"\"",
        }
    }
}

impl<'a> From<&'a str> for JsonText<'a> {
    fn from(text: &'a str) -> Self {
        JsonText::Plain(text)
    }
}

impl Serialize for JsonText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonText::Plain(text) => s.serialize_str(text),
            JsonText::Escaped(json) => json.serialize(s),
        }
    }
}

/// A `summary_text` part.
#[derive(Serialize)]
#[serde(tag = "type", rename = "summary_text")]
struct SummaryPart<'a> {
    text: JsonText<'a>,
}

impl<'a> SummaryPart<'a> {
    fn new(text: impl Into<JsonText<'a>>) -> Self {
        SummaryPart { text: text.into() }
    }
}

/// A `message` output item: its one `output_text` part, or none yet. Written from borrowed
/// parts, where a `json!` map cost a stream more than its deltas (it writes an item when
/// it is added, when it is done, and in the whole response).
#[derive(Serialize)]
struct MessageItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'a str,
    role: &'static str,
    content: &'a [TextPart<'a>],
}

impl<'a> MessageItem<'a> {
    fn new(id: &'a str, status: &'a str, content: &'a [TextPart<'a>]) -> Self {
        MessageItem {
            id,
            kind: "message",
            status,
            role: "assistant",
            content,
        }
    }
}

/// An `output_text` part, with its citations.
#[derive(Serialize)]
#[serde(tag = "type", rename = "output_text")]
struct TextPart<'a> {
    text: JsonText<'a>,
    annotations: &'a [Value],
}

impl<'a> TextPart<'a> {
    fn new(text: impl Into<JsonText<'a>>, annotations: &'a [Value]) -> Self {
        TextPart {
            text: text.into(),
            annotations,
        }
    }
}

/// A `function_call` output item (named in its namespace, if the flat name is of one).
fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    (name, namespaces): (&str, &ToolNames),
    arguments: &str,
) -> Value {
    let (namespace, name) = namespaces.split(name);
    let mut item = json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    });
    if let Some(namespace) = namespace {
        item["namespace"] = namespace.into();
    }
    item
}

/// A `custom_tool_call` output item.
fn custom_call_item(id: &str, status: &str, call_id: &str, name: &str, input: &str) -> Value {
    json!({
        "id": id,
        "type": "custom_tool_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "input": input,
    })
}

/// The output item of a tool call: a `custom_tool_call` for a `custom` tool, else a
/// `function_call` (named in its namespace, if the flat name is of one).
fn call_item(
    id: &str,
    status: &str,
    call_id: &str,
    (name, tools): (&str, &ToolNames),
    arguments: &str,
) -> Value {
    if tools.is_custom(name) {
        custom_call_item(id, status, call_id, name, &custom_input(arguments))
    } else {
        function_call_item(id, status, call_id, (name, tools), arguments)
    }
}

/// A `response` object around `output` (its items as values, or as JSON text).
fn response_object<'a, T: Serialize>(
    id: &'a str,
    model: &'a str,
    status: &'a str,
    output: &'a [T],
    end: &'a End,
) -> ResponseObject<'a, T> {
    ResponseObject {
        id,
        object: "response",
        created_at: end.created_at,
        status,
        error: None,
        incomplete_details: &end.incomplete_details,
        model,
        output,
        parallel_tool_calls: true,
        tool_choice: "auto",
        tools: [],
        usage: end.usage.as_ref().map(usage),
        metadata: Empty {},
    }
}

/// A `response` object, written from its fields: built as a `Value` first, its map cost
/// more than a short stream's deltas (a stream writes three: created, in progress, done).
#[derive(Serialize)]
struct ResponseObject<'a, T> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'a str,
    error: Option<()>,
    incomplete_details: &'a Value,
    model: &'a str,
    output: &'a [T],
    parallel_tool_calls: bool,
    tool_choice: &'static str,
    tools: [(); 0],
    usage: Option<ResponseUsage>,
    metadata: Empty,
}

/// Numbers a stream's events (`sequence_number`, from 0) and writes them from borrowed
/// parts: an event that holds the response or an item is written from it where it lies
/// (put in a `json!` object it would be copied first, and the terminal event holds all of
/// the output).
#[derive(Debug, Default)]
struct Sequence(u64);

impl Sequence {
    /// The next number.
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0 - 1
    }

    /// Writes `event: <kind>` and data of `fields` with `type` and the next
    /// `sequence_number` beside them.
    fn write(&mut self, out: &mut Vec<u8>, kind: &str, fields: impl Serialize) {
        #[derive(Serialize)]
        struct Event<'a, T> {
            #[serde(rename = "type")]
            kind: &'a str,
            sequence_number: u64,
            #[serde(flatten)]
            fields: T,
        }
        let event = Event {
            kind,
            sequence_number: self.next(),
            fields,
        };
        write_json(out, Some(kind), &event);
    }
}

/// The data of `response.created`, `.in_progress` and the terminal events.
#[derive(Serialize)]
struct OfResponse<'a, R: ?Sized> {
    response: &'a R,
}

/// The data of `response.output_item.added` and `.done`.
#[derive(Serialize)]
struct OfItem<'a, T: ?Sized> {
    output_index: usize,
    item: &'a T,
}

/// What a response object says beside its output.
struct End {
    created_at: u64,
    incomplete_details: Value,
    usage: Option<Usage>,
}

/// The stream event types that hold the whole response (its output and usage).
const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Whether a stream event may hold the whole response: false for one written as the API
/// writes them, `type` first (`{"type":"response.output_text.delta",...`), with any other
/// type. Most of a stream's events are deltas, and this tells them apart unparsed; an event
/// that starts otherwise (or whose type has an escape in it) is parsed to be sure.
fn may_hold_response(data: &[u8]) -> bool {
    leading_type(data).is_none_or(is_terminal)
}

fn is_terminal(kind: &[u8]) -> bool {
    TERMINAL.iter().any(|t| t.as_bytes() == kind)
}

/// The type of an event that starts with it, as the API writes them; none when the text
/// starts otherwise or the type has an escape in it.
fn leading_type(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(b"{\"type\":\"")?;
    let kind = &rest[..memchr::memchr(b'"', rest)?];
    (!kind.contains(&b'\\')).then_some(kind)
}

#[cfg(test)]
mod tests;
