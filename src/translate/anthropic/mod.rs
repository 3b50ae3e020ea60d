//! Anthropic Messages: wire types and the translations to and from the OpenAI form.
//!
//! `request`: OpenAI request -> Messages request (Anthropic provider) and the reverse (the
//! Anthropic ingress serving other models). `response` and `stream`: answers both ways.

pub(crate) mod collect;
pub(crate) mod replay;
pub mod request;
pub(crate) mod response;
pub(crate) mod stream;
pub(crate) mod transcript;
pub(crate) mod usage;

use super::json_text::CheckedRaw;
use super::text_or_list::text_or_list;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// Used when a request sets no output limit: Anthropic requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The API version sent when the app sends none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MessagesRequest {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    pub messages: Vec<AMessage>,
    pub max_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ATool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<AToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<AMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// `effort`: how much the model spends on its answer (read, never sent by translation).
    #[serde(default, skip_serializing)]
    pub output_config: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for System {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text_or_list(d, System::Text, System::Blocks)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AMessage {
    pub role: String,
    pub content: AContent,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AContent {
    Text(String),
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for AContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text_or_list(d, AContent::Text, |blocks: Vec<TurnBlock>| {
            AContent::Blocks(blocks.into_iter().map(|b| b.0).collect())
        })
    }
}

/// A block of a turn, as [`Block`] reads it, but for a `tool_result` whose `type` comes first
/// (as the SDKs and Claude Code write it): that one is read straight from the text, its
/// content kept as JSON text. serde reads a tagged enum from a buffer of its own, unescaping
/// every string into it (a file's worth of text in a tool's result), and the result's text
/// was then escaped again for the provider.
struct TurnBlock(Block);

impl<'de> Deserialize<'de> for TurnBlock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TurnBlockVisitor)
    }
}

struct TurnBlockVisitor;

impl<'de> Visitor<'de> for TurnBlockVisitor {
    type Value = TurnBlock;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a content block")
    }

    /// Any other block, and a tool result whose type is not its first key, is gathered
    /// into a tree (as serde's buffer would hold it) and read as [`Block`] reads it.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TurnBlock, A::Error> {
        let mut fields = serde_json::Map::new();
        if let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if key == "type" && value == "tool_result" {
                return read_tool_result(map).map(TurnBlock);
            }
            fields.insert(key, value);
        }
        while let Some(key) = map.next_key::<String>()? {
            // Refused, as serde refuses a field given twice (a tree would keep the last).
            if fields.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
            }
            let value = map.next_value()?;
            fields.insert(key, value);
        }
        Block::deserialize(Value::Object(fields))
            .map(TurnBlock)
            .map_err(de::Error::custom)
    }
}

/// The rest of a `tool_result` block, read as [`Block::ToolResult`] is, its content as text.
fn read_tool_result<'de, A: MapAccess<'de>>(mut map: A) -> Result<Block, A::Error> {
    let (mut tool_use_id, mut content, mut is_error) = (None, None, None);
    let mut seen = Vec::with_capacity(3);
    while let Some(key) = map.next_key::<String>()? {
        let field = match key.as_str() {
            "tool_use_id" => "tool_use_id",
            "content" => "content",
            "is_error" => "is_error",
            "type" => return Err(de::Error::duplicate_field("type")),
            _ => {
                map.next_value::<de::IgnoredAny>()?;
                continue;
            }
        };
        if seen.contains(&field) {
            return Err(de::Error::duplicate_field(field));
        }
        seen.push(field);
        match field {
            "tool_use_id" => tool_use_id = Some(map.next_value()?),
            "content" => content = map.next_value::<Option<CheckedRaw>>()?.map(|c| c.0),
            _ => is_error = map.next_value()?,
        }
    }
    Ok(Block::ToolResult {
        tool_use_id: tool_use_id.ok_or_else(|| de::Error::missing_field("tool_use_id"))?,
        content,
        is_error,
    })
}

impl AContent {
    pub fn into_blocks(self) -> Vec<Block> {
        match self {
            AContent::Text(text) => vec![Block::Text {
                text,
                cache_control: None,
                citations: None,
            }],
            AContent::Blocks(blocks) => blocks,
        }
    }
}

/// A content block. Types the gateway does not translate fail to parse, and the request is
/// refused with a clear message instead of losing part of the conversation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
        /// The pages (web search results) this text cites.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Vec<Value>>,
    },
    Image {
        source: ImageSource,
    },
    /// A PDF or a plain text document.
    Document {
        source: DocumentSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// A tool Anthropic ran itself (web search) in its answer: its name and input.
    ServerToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// What a web search found: a list of results, or an error object.
    WebSearchToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Value,
    },
    ToolResult {
        tool_use_id: String,
        /// As JSON text (a string, or text blocks): a tool's text is passed on as it came.
        /// Read as a tree where serde reads the block from its own buffer, which cannot give
        /// JSON text (see `TurnBlock` for where it does not).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "super::json_text::optional_tree_as_text"
        )]
        content: Option<Box<RawValue>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

/// Where a document's bytes are: inline (a PDF as base64, or text as it is) or at a URL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocumentSource {
    Base64 { media_type: String, data: String },
    Text { media_type: String, data: String },
    Url { url: String },
}

/// A tool: the app's own (a name and an input schema), or one Anthropic runs itself (a
/// server tool such as web search: a `type` and its settings).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ATool {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// As JSON text, as the chat form's `parameters` (see there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Box<RawValue>>,
    /// A server tool's settings (`allowed_domains`, `user_location`, ...), and any other
    /// field a tool came with (`cache_control`).
    #[serde(flatten)]
    pub settings: serde_json::Map<String, Value>,
}

impl ATool {
    /// One of the app's tools, run by the app.
    pub fn function(
        name: String,
        description: Option<String>,
        input_schema: Box<RawValue>,
    ) -> ATool {
        ATool {
            kind: None,
            name,
            description,
            input_schema: Some(input_schema),
            settings: serde_json::Map::new(),
        }
    }

    /// Whether Anthropic runs it (a server tool), not the app.
    pub fn is_server_tool(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| k != "custom")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// A whole Messages answer.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant")]
    pub role: String,
    #[serde(default)]
    pub model: String,
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: AUsage,
}

fn message_type() -> String {
    "message".to_string()
}

fn assistant() -> String {
    "assistant".to_string()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
pub struct AUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A fresh `msg_` id.
pub fn message_id() -> String {
    format!("msg_{:024x}", rand::random::<u128>() >> 32)
}
