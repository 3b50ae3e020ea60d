//! Gemini stream (`streamGenerateContent?alt=sse`) -> OpenAI choices, event by event (for a
//! chat stream, in chunks of the stream's [`ToOpenAi::head`]).
//!
//! Each event is a partial answer holding only its new parts. A `functionCall` always arrives
//! whole, so each becomes one complete tool-call chunk. Gemini sends no end marker: the
//! stream ends when the body does.

use super::response::{usage_to_openai, Translated};
use super::*;
use crate::error::StreamFailure;
use crate::translate::json_text::OptionalStr;
use crate::translate::openai::{
    completion_id, now_unix, ChunkChoice, Delta, FunctionDelta, Head, ToolCallDelta, Usage,
};
use crate::translate::web_search::GroundingMetadata;
use std::sync::Arc;

/// One event, borrowed from its text where that is what a stream is mostly made of: a few
/// words of text, the model's name, a finish reason (the whole answer's owned types cost an
/// allocation for each). What the stream does not translate (a part's inline data, the
/// prompt's feedback) is not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Piece<'a> {
    #[serde(default, borrow)]
    candidates: Vec<PieceCandidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    model_version: OptionalStr<'a>,
    #[serde(default)]
    error: Option<Box<GError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PieceCandidate<'a> {
    #[serde(default, borrow)]
    content: Option<PieceContent<'a>>,
    #[serde(default)]
    grounding_metadata: Option<Box<GroundingMetadata>>,
    #[serde(default, borrow)]
    finish_reason: OptionalStr<'a>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Deserialize)]
struct PieceContent<'a> {
    #[serde(default, borrow)]
    parts: Vec<PiecePart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PiecePart<'a> {
    #[serde(default, borrow)]
    text: OptionalStr<'a>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default, borrow)]
    thought_signature: OptionalStr<'a>,
    /// Calls come whole and seldom: read as the whole answer's are.
    #[serde(default)]
    function_call: Option<Box<GFunctionCall>>,
}

/// Gemini events -> OpenAI choices, one per candidate and part.
pub struct ToOpenAi {
    id: Arc<str>,
    created: u64,
    model: Arc<str>,
    /// Per candidate index: tool calls so far (their OpenAI `index`), and whether the role
    /// chunk was sent.
    candidates: Vec<CandidateState>,
    usage: Option<UsageMetadata>,
}

#[derive(Default, Clone)]
struct CandidateState {
    started: bool,
    calls: u32,
    /// The text so far: Google Search grounding cites spans of it, after the fact.
    text: String,
    /// The latest grounding metadata, told when the candidate finishes.
    grounding: Option<Box<crate::translate::web_search::GroundingMetadata>>,
}

impl ToOpenAi {
    pub fn new(model: String) -> Self {
        ToOpenAi {
            id: completion_id().into(),
            created: now_unix(),
            model: model.into(),
            candidates: Vec::new(),
            usage: None,
        }
    }

    /// Translates one event's data, appending the choices it makes.
    pub fn event(&mut self, data: &str, out: &mut Vec<ChunkChoice>) -> Result<(), StreamFailure> {
        let piece: Piece = serde_json::from_str(data)
            .map_err(|e| StreamFailure::unreadable(format!("unreadable Gemini event: {e}")))?;
        if let Some(error) = piece.error {
            return Err(StreamFailure::reported(error.code, error.message));
        }
        // Every chunk names the model: it is copied only when it changes.
        if let Some(version) = piece.model_version.0.filter(|v| **v != *self.model) {
            self.model = version.as_ref().into();
        }
        if piece.usage_metadata.is_some() {
            self.usage = piece.usage_metadata;
        }
        for (position, candidate) in piece.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u32);
            self.candidate(index, candidate, out);
        }
        Ok(())
    }

    fn candidate(&mut self, index: u32, candidate: PieceCandidate, out: &mut Vec<ChunkChoice>) {
        let slot = index as usize;
        if self.candidates.len() <= slot {
            self.candidates.resize(slot + 1, CandidateState::default());
        }
        if !std::mem::replace(&mut self.candidates[slot].started, true) {
            out.push(ChunkChoice::new(
                index,
                Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            ));
        }
        let mut t = Translated::default();
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            let (text, signature) = (part.text.as_deref(), part.thought_signature.as_deref());
            t.part(part.function_call, text, part.thought, signature);
        }
        if candidate.grounding_metadata.is_some() {
            self.candidates[slot].grounding = candidate.grounding_metadata;
        }
        if !t.reasoning.is_empty() {
            out.push(ChunkChoice::new(
                index,
                Delta {
                    reasoning_content: Some(t.reasoning),
                    ..Delta::default()
                },
                None,
            ));
        }
        if !t.text.is_empty() {
            self.candidates[slot].text.push_str(&t.text);
            out.push(ChunkChoice::new(
                index,
                Delta {
                    content: Some(t.text),
                    ..Delta::default()
                },
                None,
            ));
        }
        for call in t.calls {
            let call_index = self.candidates[slot].calls;
            self.candidates[slot].calls += 1;
            let delta = ToolCallDelta {
                index: call_index,
                id: Some(call.id),
                kind: Some("function".into()),
                function: Some(FunctionDelta {
                    name: Some(call.function.name),
                    arguments: Some(call.function.arguments),
                }),
            };
            out.push(ChunkChoice::new(
                index,
                Delta {
                    tool_calls: Some(vec![delta]),
                    ..Delta::default()
                },
                None,
            ));
        }
        if let Some(reason) = candidate.finish_reason.0 {
            self.grounding(index, out);
            let finish = finish_reason(&reason, self.candidates[slot].calls > 0);
            out.push(ChunkChoice::new(index, Delta::default(), Some(finish)));
        }
    }

    /// A finished candidate's Google searches, and the citations of its text.
    fn grounding(&mut self, index: u32, out: &mut Vec<ChunkChoice>) {
        let state = &mut self.candidates[index as usize];
        let Some(grounding) = state.grounding.take() else {
            return;
        };
        // The citations first, while the text they cite is still the item being written.
        let annotations = grounding.annotations(&state.text);
        if !annotations.is_empty() {
            let delta = Delta {
                annotations: Some(annotations.into()),
                ..Delta::default()
            };
            out.push(ChunkChoice::new(index, delta, None));
        }
        for call in grounding.searches() {
            let delta = Delta {
                web_search_call: Some(Box::new(call)),
                ..Delta::default()
            };
            out.push(ChunkChoice::new(index, delta, None));
        }
    }

    /// The stream's id, time and model, which a chat chunk of its choices repeats.
    pub fn head(&self) -> Head<'_> {
        (&self.id, self.created, &self.model)
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(usage_to_openai)
    }

    /// The running totals the stream reported last, as Gemini gives them.
    pub fn reported(&self) -> Option<&UsageMetadata> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::openai::ChatChunk;
    use crate::translate::sse::SseParser;

    #[test]
    fn fixture_stream_with_split_text_and_a_call() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gemini/stream_tool.sse");
        let sse = std::fs::read(path).unwrap();
        let mut events = Vec::new();
        SseParser::default()
            .feed(&sse, &mut |e| events.push(e.clone()))
            .unwrap();
        let mut t = ToOpenAi::new("gemini-2.5-flash".into());
        let mut choices = Vec::new();
        for e in &events {
            t.event(&e.data, &mut choices).unwrap();
        }
        let chunks: Vec<ChatChunk> = choices
            .into_iter()
            .map(|c| ChatChunk::around(t.head(), c))
            .collect();
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c.choices[0].delta.content.clone())
            .collect();
        assert_eq!(text, "Let me check the weather.");
        let calls: Vec<&ToolCallDelta> = chunks
            .iter()
            .filter_map(|c| c.choices[0].delta.tool_calls.as_ref())
            .flatten()
            .collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].index, 0);
        assert_eq!(
            calls[0].function.as_ref().unwrap().arguments.as_deref(),
            Some("{\"city\":\"Paris\",\"unit\":\"celsius\"}")
        );
        assert_eq!(
            chunks.last().unwrap().choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
        let usage = t.usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (30, 12));
    }

    #[test]
    fn in_stream_errors_fail() {
        let mut t = ToOpenAi::new("g".into());
        let err = t
            .event(
                r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
                &mut Vec::new(),
            )
            .unwrap_err();
        assert_eq!(err.status, 503);
    }

    #[test]
    fn a_chunk_its_parts_and_candidates_are_small_enough_to_be_moved_inline() {
        // Each is moved as a chunk is read and translated; past 128 bytes each move is a
        // call to memcpy.
        let part = std::mem::size_of::<PiecePart>();
        let candidate = std::mem::size_of::<PieceCandidate>();
        let chunk = std::mem::size_of::<Piece>();
        assert!(part <= 128, "PiecePart is {part} bytes");
        assert!(candidate <= 128, "PieceCandidate is {candidate} bytes");
        assert!(chunk <= 128, "Piece is {chunk} bytes");
    }
}
