//! OpenAI Chat Completions wire types: the canonical form every translation goes through.
//!
//! Requests from other formats become a [`ChatRequest`]; answers from other providers become
//! a [`ChatResponse`] or a series of [`ChatChunk`]s, and the reverse. Fields the gateway does
//! not translate are ignored on input and never invented on output.

pub(crate) mod collect;
pub(crate) mod replay;
pub(crate) mod stream;
pub(crate) mod transcript;
pub(crate) mod usage;

use super::error::TranslateError;
use super::json_text::{unexpected, CheckedRaw, JsonString};
use super::text_or_list::text_or_list;
use super::web_search::{Annotation, WebSearchCall, WebSearchOptions};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "null_as_false"
    )]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How hard a reasoning model thinks: `minimal`, `low`, `medium`, `high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Anthropic's extended thinking, passed by apps through `extra_body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// The built-in web search (`web_search`): each provider gets its own search, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_options: Option<WebSearchOptions>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

impl ChatRequest {
    /// Whether the app asked for the final usage chunk of a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The output limit the app set, by either name.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text_or_list(d, Stop::One, Stop::Many)
    }
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Message {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Reasoning text from a model that thinks (carried, not sent back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Anthropic thinking blocks with their signatures, which must come back unchanged on the
    /// next turn (the convention LiteLLM uses, so SDK users already know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<Value>>,
    /// Pages the content cites (`url_citation`s), as OpenAI's search models give them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<Annotation>>,
    /// The searches a provider ran to answer (the Responses API's `web_search_call` items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_calls: Option<Vec<WebSearchCall>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Carried as JSON text: most of a conversation's bytes, passed on as they came.
    Text(JsonString),
    Parts(Vec<Part>),
}

impl<'de> Deserialize<'de> for Content {
    /// A string is kept as its JSON text; a list of parts is read from that text, and
    /// anything else is refused naming both shapes.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = match JsonString::of_raw(CheckedRaw::deserialize(d)?.0) {
            Ok(text) => return Ok(Content::Text(text)),
            Err(raw) => raw,
        };
        if raw.get().starts_with('[') {
            return serde_json::from_str(raw.get())
                .map(Content::Parts)
                .map_err(D::Error::custom);
        }
        let value: Value = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        Err(D::Error::invalid_type(
            unexpected(&value),
            &"a string or an array",
        ))
    }
}

impl Content {
    /// The content as one string's JSON text: a string as it came, or its text parts
    /// joined (a tool message's result, passed on to a provider as text).
    pub(crate) fn into_text(self) -> JsonString {
        match self {
            Content::Text(text) => text,
            parts => parts.text().into(),
        }
    }

    /// The text of the content: a string, or its text parts joined.
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.text().into_owned(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FilePart>,
}

/// `data:<media type>;base64,<data>` -> (media type, data): how OpenAI's API takes images
/// and files inline.
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// A `file` part: a document given inline (`file_data`, a base64 data URL) or as the id of a
/// file kept by OpenAI.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FilePart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
}

impl FilePart {
    /// The file given inline, as (media type, base64 data): what other providers can take.
    pub fn inline(&self) -> Result<(&str, &str), TranslateError> {
        let refuse = |why: &str| Err(TranslateError::invalid("messages", why));
        match (&self.file_data, &self.file_id) {
            (Some(data), _) => match parse_data_url(data) {
                Some(inline) => Ok(inline),
                None => refuse("a file's file_data must be a base64 data URL (data:<type>;base64,...)"),
            },
            (None, Some(_)) => refuse(
                "a file_id names a file kept by OpenAI, which only OpenAI models can read: send the file as file_data",
            ),
            (None, None) => refuse("a file part needs file_data"),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// A JSON document as a string, as OpenAI sends it.
    #[serde(default)]
    pub arguments: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The schema as the app wrote it: carried as JSON text, never built into a tree (a
    /// coding agent's tools are tens of kilobytes of schemas, on every turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Box<RawValue>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `auto`, `none` or `required`.
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: ToolName,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolName {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchema },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JsonSchema {
    #[serde(default = "default_schema_name")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

fn default_schema_name() -> String {
    "response".to_string()
}

/// A whole answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

fn completion_object() -> String {
    "chat.completion".to_string()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: Message,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
/// Also read from the Responses API's shape (`input_tokens`, `output_tokens`, ...), which
/// passthrough answers carry.
pub struct Usage {
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: u64,
    #[serde(default, alias = "output_tokens")]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(
        default,
        alias = "input_tokens_details",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(
        default,
        alias = "output_tokens_details",
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct CompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.map_or(0, |d| d.cached_tokens)
    }
}

/// What every chunk of a stream repeats: its `id`, `created` and `model`.
pub type Head<'a> = (&'a Arc<str>, u64, &'a Arc<str>);

/// One streamed piece of an answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatChunk {
    /// Shared by every chunk of a stream (`rc`: an `Arc` is serialised as what it holds).
    #[serde(deserialize_with = "arc_str")]
    pub id: Arc<str>,
    #[serde(default)]
    pub object: ChunkObject,
    #[serde(default)]
    pub created: u64,
    #[serde(default, deserialize_with = "arc_str")]
    pub model: Arc<str>,
    pub choices: Vec<ChunkChoice>,
    /// `null` on every chunk when the app asked for usage, absent otherwise; the usage chunk
    /// has `choices: []` and this set.
    #[serde(default, skip_serializing_if = "UsageField::is_absent")]
    pub usage: UsageField,
}

/// An `Arc<str>` read straight from the text: serde's own goes through a `Box<str>`, two
/// allocations and two copies, for each of a chunk's id and model (a tenth of translating
/// a chat stream).
fn arc_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = Arc<str>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Arc<str>, E> {
            Ok(Arc::from(s))
        }
    }
    d.deserialize_str(Text)
}

/// A chunk's `object`, always `chat.completion.chunk`, so nothing is kept: an upstream's is
/// read and dropped (the gateway writes only chunks it made). Kept as text, it made a
/// chunk too large to be moved without a call to memcpy, and a chunk is moved several
/// times on its way through a translation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkObject;

impl ChunkObject {
    pub const NAME: &'static str = "chat.completion.chunk";
}

impl Serialize for ChunkObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Self::NAME)
    }
}

impl<'de> Deserialize<'de> for ChunkObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| ChunkObject)
    }
}

impl ChatChunk {
    /// A chunk around one choice.
    pub fn around((id, created, model): Head<'_>, choice: ChunkChoice) -> Self {
        ChatChunk {
            id: id.clone(),
            object: ChunkObject,
            created,
            model: model.clone(),
            choices: vec![choice],
            usage: UsageField::Absent,
        }
    }
}

/// A chunk's `usage`: absent, explicitly `null`, or counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsageField {
    #[default]
    Absent,
    Null,
    Some(Usage),
}

impl UsageField {
    pub fn is_absent(&self) -> bool {
        *self == UsageField::Absent
    }
}

impl Serialize for UsageField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UsageField::Some(u) => u.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for UsageField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Usage>::deserialize(d)?.map_or(UsageField::Null, UsageField::Some))
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Boxed, as it is rare and a choice is moved several times for every chunk.
    #[serde(default)]
    pub logprobs: Option<Box<Value>>,
}

impl ChunkChoice {
    pub fn new(index: u32, delta: Delta, finish: Option<&str>) -> Self {
        ChunkChoice {
            index,
            delta,
            finish_reason: finish.map(str::to_string),
            logprobs: None,
        }
    }

    /// A choice of `text` alone (most of a stream).
    pub fn of_text(index: u32, text: String) -> Self {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        ChunkChoice::new(index, delta, None)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Box<[Value]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Citations of the text streamed so far (see [`Message::annotations`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Box<[Annotation]>>,
    /// A search the provider ran, finished (see [`Message::web_search_calls`]); boxed, as it
    /// is rare and a delta is moved for every chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_call: Option<Box<WebSearchCall>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A fresh `chatcmpl-` id.
pub fn completion_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

/// Seconds since the Unix epoch, for `created`.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sdks_send() {
        let r: ChatRequest = serde_json::from_str(
            r#"{"model":"m","stream":null,"messages":[
                {"role":"system","content":"s"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"r"}],
              "tool_choice":{"type":"function","function":{"name":"f"}},"stop":"x",
              "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}}"#,
        )
        .unwrap();
        assert!(!r.stream);
        assert_eq!(r.messages.len(), 4);
        assert!(matches!(r.tool_choice, Some(ToolChoice::Named(_))));
        assert!(matches!(
            r.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
        assert_eq!(r.stop.unwrap().into_vec(), ["x"]);
    }

    #[test]
    fn chunk_usage_is_absent_null_or_counts() {
        let mut c = ChatChunk::default();
        assert!(!serde_json::to_string(&c).unwrap().contains("usage"));
        c.usage = UsageField::Null;
        assert!(serde_json::to_string(&c)
            .unwrap()
            .contains("\"usage\":null"));
        let parsed: ChatChunk = serde_json::from_str(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#).unwrap();
        assert!(matches!(parsed.usage, UsageField::Some(u) if u.total_tokens == 3));
    }
}
