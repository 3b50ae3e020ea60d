//! Gemini stream (`streamGenerateContent?alt=sse`) -> OpenAI choices, event by event (for a
//! chat stream, in chunks of the stream's [`ToOpenAi::head`]).
//!
//! Each event is a partial answer holding only its new parts. A `functionCall` always arrives
//! whole, so each becomes one complete tool-call chunk. Gemini sends no end marker: the
//! stream ends when the body does.

use super::frame::TextFrame;
use super::response::{usage_to_openai, Translated};
use super::*;
use crate::error::StreamFailure;
use crate::translate::json_text::OptionalStr;
use crate::translate::openai::stream::ToChoices;
use crate::translate::openai::{
    completion_id, now_unix, ChunkChoice, Delta, FunctionDelta, Head, ToolCallDelta, Usage,
};
use crate::translate::web_search::GroundingMetadata;
use std::borrow::Cow;
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
    /// The last lone text event (see [`TextFrame`]): its candidate's index, and whether its
    /// text is a thought.
    frame: TextFrame<(u32, bool)>,
}

/// The text of `piece`, its candidate's index and whether it is a thought: if the event is
/// one candidate's one text part, read borrowed (no escape), with no finish, grounding, call
/// or error beside it.
fn lone_text<'a>(piece: &Piece<'a>) -> Option<(&'a str, u32, bool)> {
    let [candidate] = piece.candidates.as_slice() else {
        return None;
    };
    if piece.error.is_some()
        || candidate.finish_reason.is_some()
        || candidate.grounding_metadata.is_some()
    {
        return None;
    }
    let [part] = candidate.content.as_ref()?.parts.as_slice() else {
        return None;
    };
    let Some(Cow::Borrowed(text)) = part.text.0 else {
        return None;
    };
    if part.function_call.is_some() {
        return None;
    }
    Some((text, index_of(0, candidate), part.thought == Some(true)))
}

/// Candidates a stream is read for: Gemini gives at most 8 (`candidateCount`). An index
/// far past that is not a real candidate, and would size the per-candidate state.
const MAX_CANDIDATES: u32 = 128;

/// One event, parsed; refused if it cannot be read or names a candidate past
/// [`MAX_CANDIDATES`].
fn read_piece(data: &str) -> Result<Piece<'_>, StreamFailure> {
    let piece: Piece = serde_json::from_str(data)
        .map_err(|e| StreamFailure::unreadable(format!("unreadable Gemini event: {e}")))?;
    let positions = piece.candidates.iter().enumerate();
    if let Some(index) = positions
        .map(|(position, c)| index_of(position, c))
        .find(|index| *index >= MAX_CANDIDATES)
    {
        let message = format!("unreadable Gemini event: candidate index {index}");
        return Err(StreamFailure::unreadable(message));
    }
    Ok(piece)
}

/// A candidate's index: its own, else its place in the event.
fn index_of(position: usize, candidate: &PieceCandidate) -> u32 {
    candidate
        .index
        .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX))
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
            ..ToOpenAi::probing(model)
        }
    }

    /// A reader for a probe, which writes nothing: no id or time is made for its chunks.
    pub fn probing(model: String) -> Self {
        ToOpenAi {
            id: Arc::default(),
            created: 0,
            model: model.into(),
            candidates: Vec::new(),
            usage: None,
            frame: TextFrame::default(),
        }
    }
}

impl ToChoices for ToOpenAi {
    /// The text of an event that is the framed one with text of candidate 0 (no thought),
    /// borrowed from the event: the translation writes it as a choice 0 of text alone (of
    /// empty text, none), with no choice made. `None` for any other event, which
    /// [`Self::parsed`] takes.
    fn text<'a>(&mut self, data: &'a str) -> Option<&'a str> {
        if self.frame.noted != (0, false) {
            return None;
        }
        let state = self.candidates.first_mut()?;
        let text = self.frame.text_of(data)?;
        state.text.push_str(text);
        Some(text)
    }

    /// Translates an event that [`Self::text`] did not take: the framed one when it is
    /// another candidate's or a thought (`text` takes candidate 0's text only, and has
    /// already looked at the frame for it), else read by serde. The stream's translation
    /// tries `text` first itself, and each event is looked at once.
    fn parsed(&mut self, data: &str, out: &mut Vec<ChunkChoice>) -> Result<(), StreamFailure> {
        let tried = self.frame.noted == (0, false) && !self.candidates.is_empty();
        if let Some(text) = self.frame.text_of(data).filter(|_| !tried) {
            self.framed_text(text, out);
            return Ok(());
        }
        let piece = read_piece(data).inspect_err(|_| self.frame.clear())?;
        let lone = lone_text(&piece).map(|(text, index, thought)| (text, (index, thought)));
        self.frame.set(data, lone);
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
            self.candidate(index_of(position, &candidate), candidate, out);
        }
        Ok(())
    }
}

impl ToOpenAi {
    /// An event that is the framed one with `text`: its text or thought chunk, as a parse
    /// would make it (the candidate has begun, at the framed event; an empty text makes
    /// none).
    fn framed_text(&mut self, text: &str, out: &mut Vec<ChunkChoice>) {
        let (index, thought) = self.frame.noted;
        let Some(state) = self.candidates.get_mut(index as usize) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        let choice = if thought {
            let delta = Delta {
                reasoning_content: Some(text.into()),
                ..Delta::default()
            };
            ChunkChoice::new(index, delta, None)
        } else {
            state.text.push_str(text);
            ChunkChoice::of_text(index, text.into())
        };
        out.push(choice);
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
            out.push(ChunkChoice::of_text(index, t.text));
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
    use super::super::frame::test_events::{
        any_texts, reads_texts, text_event, text_events, with_candidate, LAST,
    };
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

    /// Whether `events` translate as they do when every one is parsed (the frame cleared
    /// before each): the same choices, usage and model, and the same failures. Gives how
    /// many events the frame took.
    fn reads_as_a_parse(events: &[String]) -> Result<usize, String> {
        let mut framed = ToOpenAi::new("m".into());
        let mut parsed = ToOpenAi::new("m".into());
        let mut taken = 0;
        for data in events {
            taken += usize::from(framed.frame.text_of(data).is_some());
            let (mut got, mut expected) = (Vec::new(), Vec::new());
            let read = framed.event(data, &mut got).is_ok();
            parsed.frame.clear();
            if read != parsed.event(data, &mut expected).is_ok() {
                return Err(format!("{data}: read {read}, parsed {}", !read));
            }
            if without_ids(got) != without_ids(expected) {
                return Err(format!("{data}: other choices"));
            }
        }
        let usage = |t: &ToOpenAi| serde_json::to_string(&t.usage()).unwrap();
        if usage(&framed) != usage(&parsed) || framed.head().2 != parsed.head().2 {
            return Err("other usage or model".into());
        }
        Ok(taken)
    }

    /// Choices as JSON, without the ids the gateway makes afresh for calls and searches.
    fn without_ids(choices: Vec<ChunkChoice>) -> serde_json::Value {
        fn strip(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Object(map) => {
                    map.remove("id");
                    map.values_mut().for_each(strip);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut json = serde_json::to_value(choices).unwrap();
        strip(&mut json);
        json
    }

    #[test]
    fn text_events_alike_but_for_their_text_are_read_by_the_frame_as_a_parse_reads_them() {
        let mut events = text_events(&["Hello", " there", ", friend", "!"], false, 25);
        events.push(LAST.to_string());
        assert_eq!(
            reads_as_a_parse(&events),
            Ok(3),
            "all but the first and last"
        );
        let thoughts = text_events(&["Let", " me", " think"], true, 25);
        assert_eq!(reads_as_a_parse(&thoughts), Ok(2));
    }

    #[test]
    fn an_event_that_differs_beside_its_text_is_parsed_and_frames_the_next() {
        let events = [
            text_event("a", false, 25),
            text_event("b", false, 25),
            text_event("with \"quotes\"", false, 25),
            text_event("c", false, 25),
            text_event("d", false, 26),
            text_event("e", false, 26),
            text_event("f", true, 26),
            text_event("g", false, 26),
            "{not json".to_string(),
        ];
        // b and e: the escaped text is parsed and frames nothing, so c is parsed too.
        assert_eq!(reads_as_a_parse(&events), Ok(2));
    }

    #[test]
    fn an_event_with_more_than_its_text_is_never_framed() {
        let grounding = r#""index": 0,"groundingMetadata": {"webSearchQueries": ["q"]}}"#;
        let second = r#""index": 0},{"content": {"parts": [{"text": "x"}]},"index": 1}"#;
        for candidate in [r#""finishReason": "STOP","index": 0}"#, grounding, second] {
            let events: Vec<String> = ["a", "b", "c"]
                .iter()
                .map(|t| with_candidate(t, candidate))
                .collect();
            assert_eq!(reads_as_a_parse(&events), Ok(0), "{candidate}");
        }
        let call = text_event("a", false, 25).replace(
            r#"{"text": "a"}"#,
            r#"{"text": "a","functionCall": {"name": "f","args": {}}}"#,
        );
        assert_eq!(reads_as_a_parse(&[call.clone(), call]), Ok(0));
    }

    #[test]
    fn a_second_candidate_is_framed_under_its_own_index() {
        let events: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|t| with_candidate(t, r#""index": 1}"#))
            .collect();
        assert_eq!(reads_as_a_parse(&events), Ok(2));
    }

    #[test]
    fn grounding_cites_the_text_the_frame_read() {
        let mut events = text_events(&["Rust 2024 ", "shipped ", "with "], false, 25);
        events.push(with_candidate(
            "Rust 1.85.",
            r#""finishReason": "STOP","index": 0,"groundingMetadata": {"webSearchQueries": ["rust 2024"],"groundingChunks": [{"web": {"uri": "https://example.com/r","title": "rust-lang.org"}}],"groundingSupports": [{"segment": {"startIndex": 10,"endIndex": 25,"text": "shipped with Ru"},"groundingChunkIndices": [0]}]}}"#,
        ));
        assert_eq!(reads_as_a_parse(&events), Ok(2));
        let mut t = ToOpenAi::new("m".into());
        let mut choices = Vec::new();
        for e in &events {
            t.event(e, &mut choices).unwrap();
        }
        let cited = choices.iter().find_map(|c| c.delta.annotations.as_ref());
        let cited = serde_json::to_value(cited.expect("citations")).unwrap();
        assert_eq!(cited[0]["url_citation"]["start_index"], 10, "{cited}");
    }

    #[test]
    fn a_candidate_index_past_any_real_one_is_refused() {
        let far = with_candidate("a", r#""index": 4000000000}"#);
        let err = ToOpenAi::new("m".into())
            .event(&far, &mut Vec::new())
            .unwrap_err();
        assert!(err.message.contains("candidate index"), "{}", err.message);
        assert_eq!(reads_as_a_parse(&[far.clone(), far]), Ok(0));
        // A refused event changes nothing, and leaves no frame behind it either.
        let (a, b) = (text_event("a", false, 25), text_event("b", false, 25));
        let far = a.replace(r#""index": 0}"#, r#""index": 4000000000}"#);
        assert_eq!(reads_as_a_parse(&[a, far, b]), Ok(0));
    }

    proptest::proptest! {
        /// Whatever the texts, their kinds and the usage beside them, a stream reads as a
        /// parse of every event reads it.
        #[test]
        fn any_text_stream_reads_as_a_parse_reads_it(texts in any_texts()) {
            let read = reads_texts(&texts, reads_as_a_parse);
            proptest::prop_assert!(read.is_ok(), "{read:?}");
        }
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
