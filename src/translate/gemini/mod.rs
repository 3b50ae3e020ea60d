//! Gemini `generateContent`: wire types and the translations to and from the OpenAI form.

pub(crate) mod collect;
mod frame;
pub(crate) mod replay;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod schema;
pub(crate) mod stream;
pub(crate) mod transcript;
pub(crate) mod usage;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    pub contents: Vec<GContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<GContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<GTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<GPart>,
}

/// One part of a turn. All but the text are boxed: a streamed answer's parts are nearly all
/// text, and each part is moved as it is read and translated (inline, the rare kinds made a
/// part three times its size, and the copies a fifth of a translated Gemini stream).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Box<Blob>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<Box<FileData>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<Box<GFunctionCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<Box<GFunctionResponse>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque; must come back unchanged with the part on the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    pub mime_type: String,
    pub data: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    pub mime_type: String,
    pub file_uri: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GFunctionCall {
    pub name: String,
    #[serde(default)]
    pub args: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GFunctionResponse {
    pub name: String,
    /// As JSON text: a tool's text result is wrapped as it came.
    #[serde(deserialize_with = "super::json_text::tree_as_text")]
    pub response: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<schema::Schema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<Value>,
}

/// A tool entry: the app's functions, or Google Search grounding (`{"google_search": {}}`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GTool {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub function_declarations: Vec<FunctionDeclaration>,
    #[serde(
        rename = "google_search",
        alias = "googleSearch",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub google_search: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDeclaration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<schema::Schema>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    pub function_calling_config: FunctionCallingConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_function_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    /// Boxed strings, never grown: a stream's every chunk is read into this and moved, and
    /// past 128 bytes each move is a call to memcpy.
    #[serde(default)]
    pub model_version: Option<Box<str>>,
    #[serde(default)]
    pub response_id: Option<Box<str>>,
    /// Boxed, like `error`: both are rare (inline they made a chunk twice its size).
    #[serde(default)]
    pub prompt_feedback: Option<Box<Value>>,
    /// Set instead of the rest when a stream fails midway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<GError>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GError {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default)]
    pub content: Option<GContent>,
    /// What Google Search grounding searched and which spans cite which pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounding_metadata: Option<Box<crate::translate::web_search::GroundingMetadata>>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub index: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub total_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
}

/// Gemini `finishReason` -> OpenAI `finish_reason` (a call to a function overrides it:
/// Gemini says STOP even when it called one).
pub fn finish_reason(reason: &str, called_functions: bool) -> &'static str {
    if called_functions {
        return "tool_calls";
    }
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

/// Gemini has no tool-call ids: each call gets a fresh one, with its `thoughtSignature`
/// appended after this marker so the next turn can give it back (stateless: the id travels
/// through the app).
const SIGNATURE_MARK: &str = "__thought__";

pub fn tool_call_id(signature: Option<&str>) -> String {
    let id = format!("call_{:016x}", rand::random::<u64>());
    match signature {
        Some(sig) if !sig.is_empty() => format!("{id}{SIGNATURE_MARK}{sig}"),
        _ => id,
    }
}

/// The signature carried in a tool-call id made by [`tool_call_id`].
pub fn signature_of(id: &str) -> Option<&str> {
    id.split_once(SIGNATURE_MARK).map(|(_, sig)| sig)
}
