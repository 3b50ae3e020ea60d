//! Gemini's half of a trace's text: a request's conversation (its system instruction first,
//! each content's text joined), and an answer read into an [`Assembled`] message from a whole
//! answer, one stream chunk, or the JSON array of chunks its non-SSE stream is.
//!
//! The answer's types are small, borrowed and lenient: only `candidates[0]`'s parts, finish
//! reason and calls; a part of a kind they do not know is read as text-less, never a reason
//! to drop the chunk.

use super::UsageMetadata;
use crate::telemetry::record::TokenUsage;
use crate::translate::assembled::{Assembled, CallPart};
use crate::translate::first::{Element, First};
use crate::translate::json_text::OptionalStr;
use serde::Deserialize;
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Value};

/// The conversation of a `generateContent` request.
pub fn input(body: &[u8]) -> Option<Box<RawValue>> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let mut messages = Vec::new();
    if let Some(system) = body.get("systemInstruction") {
        messages.push(json!({"role": "system", "content": text_of(system)}));
    }
    for content in body.get("contents")?.as_array()? {
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        messages.push(json!({"role": role, "content": text_of(content)}));
    }
    to_raw_value(&messages).ok()
}

/// The text of a Gemini content's parts, joined.
fn text_of(content: &Value) -> Value {
    let parts = content.get("parts").and_then(Value::as_array);
    let text: String = parts
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    Value::String(text)
}

/// A whole answer or one stream chunk, as JSON text; the token counts it reports, read in
/// the same pass (every chunk of a Gemini stream carries the running totals, so a tap that
/// assembles the answer would otherwise parse each chunk twice).
pub fn read(data: &str, into: &mut Assembled) -> Option<TokenUsage> {
    let mut chunk = serde_json::from_str::<Chunk>(data).ok()?;
    let usage = chunk.usage_metadata.take();
    read_chunk(chunk, into);
    usage.as_ref().map(super::usage::tokens)
}

/// The non-SSE stream: a JSON array of chunks.
pub fn read_array(bytes: &[u8], into: &mut Assembled) {
    if let Ok(chunks) = serde_json::from_slice::<Vec<Chunk>>(bytes) {
        chunks.into_iter().for_each(|c| read_chunk(c, into));
    }
}

/// `candidates[0].content.parts`: text, thoughts, and whole calls.
fn read_chunk(chunk: Chunk<'_>, into: &mut Assembled) {
    let Some(candidate) = chunk.candidates.0 else {
        return;
    };
    into.seen();
    into.finish_reason(candidate.finish_reason.as_deref());
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        if let Some(call) = part.function_call {
            into.next_call(CallPart {
                id: None,
                name: call.name.as_deref(),
                arguments: call.args.map(RawValue::get),
            });
        } else if part.thought == Some(true) {
            into.reasoning(part.text.as_deref());
        } else {
            into.text(part.text.as_deref());
        }
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    candidates: First<Candidate<'a>>,
    #[serde(default, rename = "usageMetadata")]
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default)]
    finish_reason: OptionalStr<'a>,
}

impl Element for Candidate<'_> {}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow, default)]
    text: OptionalStr<'a>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default)]
    function_call: Option<Call<'a>>,
}

#[derive(Deserialize)]
struct Call<'a> {
    #[serde(borrow, default)]
    name: OptionalStr<'a>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
}
