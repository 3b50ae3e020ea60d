//! Gemini's half of a trace's text: a request's conversation (its system instruction first,
//! each content's text joined), and an answer read into an [`Assembled`] message from a whole
//! answer, one stream chunk, or the JSON array of chunks its non-SSE stream is.
//!
//! The answer's types are small, borrowed and lenient: only `candidates[0]`'s parts, finish
//! reason and calls; a part of a kind they do not know is read as text-less, never a reason
//! to drop the chunk.

use super::frame::TextFrame;
use super::UsageMetadata;
use crate::telemetry::record::TokenUsage;
use crate::translate::assembled::{Assembled, CallPart};
use crate::translate::first::{Element, First};
use crate::translate::json_text::OptionalStr;
use serde::Deserialize;
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Value};
use std::borrow::Cow;

/// The conversation of a `generateContent` request.
pub fn input(body: &[u8]) -> Option<Box<RawValue>> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let mut messages = Vec::new();
    if let Some(system) = body.get("systemInstruction") {
        messages.push(json!({"role": "system", "content": joined_text(system)}));
    }
    for content in body.get("contents")?.as_array()? {
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        messages.push(json!({"role": role, "content": joined_text(content)}));
    }
    to_raw_value(&messages).ok()
}

/// The text of a Gemini content's parts, joined.
fn joined_text(content: &Value) -> Value {
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
    let (chunk, usage) = parse(data)?;
    read_chunk(chunk, into);
    usage
}

/// A chunk, and the token counts it reports.
fn parse(data: &str) -> Option<(Chunk<'_>, Option<TokenUsage>)> {
    let mut chunk = serde_json::from_str::<Chunk>(data).ok()?;
    let usage = chunk.usage_metadata.take();
    Some((chunk, usage.as_ref().map(super::usage::tokens)))
}

/// A relayed stream's chunks, read one after the other as [`read`] reads each; a chunk that
/// is the last lone text chunk but for its text is read without a parse (see
/// [`TextFrame`]).
#[derive(Debug, Default)]
pub struct StreamReader {
    /// Whether the framed text is a thought, and the counts its chunk reported.
    frame: TextFrame<(bool, Option<TokenUsage>)>,
}

impl StreamReader {
    /// The stream's next chunk, read into `into`; the counts it reports.
    pub fn read(&mut self, data: &str, into: &mut Assembled) -> Option<TokenUsage> {
        if let Some(text) = self.frame.text_of(data) {
            let (thought, usage) = self.frame.noted;
            // What `read_chunk` does with the framed chunk (no finish), but for the text.
            into.seen();
            if thought {
                into.reasoning(Some(text));
            } else {
                into.text(Some(text));
            }
            return usage;
        }
        let Some((chunk, usage)) = parse(data) else {
            self.frame.clear();
            return None;
        };
        let lone = lone_text(&chunk).map(|(text, thought)| (text, (thought, usage)));
        self.frame.set(data, lone);
        read_chunk(chunk, into);
        usage
    }
}

/// The text of `chunk`'s first candidate and whether it is a thought, if that candidate is
/// one text part, read borrowed (no escape), and no finish: what [`read_chunk`] reads of it
/// is then that text alone.
fn lone_text<'a>(chunk: &Chunk<'a>) -> Option<(&'a str, bool)> {
    let candidate = chunk.candidates.0.as_ref()?;
    if candidate.finish_reason.is_some() {
        return None;
    }
    let [part] = candidate.content.as_ref()?.parts.as_slice() else {
        return None;
    };
    let Some(Cow::Borrowed(text)) = part.text.0 else {
        return None;
    };
    part.function_call
        .is_none()
        .then_some((text, part.thought == Some(true)))
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

#[cfg(test)]
mod tests {
    use super::super::frame::test_events::{
        any_texts, reads_texts, text_event, text_events, with_candidate, LAST,
    };
    use super::*;
    use crate::telemetry::capture::Output;

    /// Whether the stream reader reads each of `events` as [`read`] reads it alone: the same
    /// counts and the same answer from it. Gives how many chunks the frame took.
    fn reads_as_each_read(events: &[String]) -> Result<usize, String> {
        let mut reader = StreamReader::default();
        let mut taken = 0;
        for data in events {
            taken += usize::from(reader.frame.text_of(data).is_some());
            let (mut framed, mut alone) = (Assembled::bounded(1024), Assembled::bounded(1024));
            if reader.read(data, &mut framed) != read(data, &mut alone) {
                return Err(format!("{data}: other counts"));
            }
            let (framed, alone) = (framed.finish(), alone.finish());
            let message = |o: &Output| o.message.as_ref().map(|m| m.get().to_string());
            let same = message(&framed) == message(&alone)
                && framed.finish_reasons == alone.finish_reasons
                && framed.truncated == alone.truncated;
            if !same {
                return Err(format!("{data}: {framed:?} against {alone:?}"));
            }
        }
        Ok(taken)
    }

    #[test]
    fn a_relayed_stream_is_read_as_each_chunk_read_alone_reads_it() {
        let mut events = text_events(&["Hello", " there", ", friend"], false, 25);
        events.extend(text_events(&["Let", " me"], true, 25));
        events.push(text_event("with \"quotes\"", false, 25));
        events.push(text_event("more", false, 26));
        events.push(text_event("and more", false, 26));
        events.push(with_candidate(
            "two",
            r#""index": 0},{"content": {"parts": [{"text": "x"}]},"index": 1}"#,
        ));
        events.push(with_candidate(
            "three",
            r#""index": 0},{"content": {"parts": [{"text": "x"}]},"index": 1}"#,
        ));
        events.push("{not json".into());
        events.push(LAST.into());
        // " there", ", friend", " me", "and more" and "three".
        assert_eq!(reads_as_each_read(&events), Ok(5));
    }

    proptest::proptest! {
        /// Whatever the texts, their kinds and the counts beside them, a stream reads as each
        /// chunk read alone reads it.
        #[test]
        fn any_relayed_stream_reads_as_each_chunk_read_alone_reads_it(texts in any_texts()) {
            let read = reads_texts(&texts, reads_as_each_read);
            proptest::prop_assert!(read.is_ok(), "{read:?}");
        }
    }
}
