//! The chat format's half of a trace's text: a request's conversation, and the answer read
//! into an [`Assembled`] message from a whole completion, one stream chunk's text, or one
//! chunk the decoder already typed (a translated stream is never parsed twice).

use super::stream::{choices_at, is_done, plain_text, CHOICES_KEY};
use super::{ChatChunk, ChunkChoice, Usage};
use crate::body::JsonBody;
use crate::telemetry::record::TokenUsage;
use crate::translate::assembled::{Assembled, CallPart};
use crate::translate::first::{Element, First};
use crate::translate::json_text::OptionalStr;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The conversation of a chat or Responses API request (`messages`, or `input`).
pub fn conversation(body: &JsonBody) -> Option<Box<RawValue>> {
    body.get_non_null("messages")
        .or_else(|| body.get_non_null("input"))
        .map(RawValue::to_owned)
}

/// A whole answer's choice 0's `message`, or a chunk's choice 0's `delta`, as JSON text;
/// whether the chunk's choices were one choice of plain text that is not empty, read
/// without a parser (a probe's content whatever else the chunk holds: see
/// `stream::plain_content`). The end marker is no chunk: it is not parsed (it failed as
/// one, and each failure allocated an error).
pub fn read(data: &str, into: &mut Assembled) -> bool {
    if is_done(data) {
        return false;
    }
    let Some((choice, plain_text)) = choice_zero(data) else {
        return false;
    };
    read_choice(choice, into);
    plain_text
}

/// A whole completion, read once for both its trace's answer (into `into`, as [`read`]
/// reads it) and its usage (as [`super::usage::of_body`] reads it); `None` when it does not
/// read as one (a key given twice, a field of the wrong type), for the two to read it apart.
pub fn answer(data: &str, into: &mut Assembled) -> Option<Option<TokenUsage>> {
    let whole: Whole = serde_json::from_str(data).ok()?;
    if let Some(choice) = whole.choices.0 {
        read_choice(choice, into);
    }
    Some(whole.usage.as_ref().map(super::usage::tokens))
}

/// Choice 0 of a whole answer or a chunk, into the message.
fn read_choice(choice: Choice<'_>, into: &mut Assembled) {
    into.seen();
    into.finish_reason(choice.finish_reason.as_deref());
    let Some(part) = choice.message else { return };
    into.text(part.content.as_deref());
    into.reasoning(part.reasoning_content.as_deref());
    for (i, call) in part.tool_calls.into_iter().flatten().enumerate() {
        let function = call.function.as_ref();
        let part = CallPart {
            id: call.id.as_deref(),
            name: function.and_then(|f| f.name.as_deref()),
            arguments: function.and_then(|f| f.arguments.as_deref()),
        };
        into.call(call.index.unwrap_or(i), part);
    }
}

/// A chunk as the decoder typed it: its choice 0, as [`read`] would take it.
pub fn chunk(chunk: &ChatChunk, into: &mut Assembled) {
    if let Some(zero) = chunk.choices.iter().find(|c| c.index == 0) {
        choice(zero, into);
    }
}

/// A decoded choice (an Anthropic or Gemini stream's come without a chunk): only choice 0
/// is the answer's.
pub fn choice(zero: &ChunkChoice, into: &mut Assembled) {
    if zero.index != 0 {
        return;
    }
    into.seen();
    into.finish_reason(zero.finish_reason.as_deref());
    let delta = &zero.delta;
    into.text(delta.content.as_deref());
    into.reasoning(delta.reasoning_content.as_deref());
    for call in delta.tool_calls.iter().flatten() {
        let function = call.function.as_ref();
        let part = CallPart {
            id: call.id.as_deref(),
            name: function.and_then(|f| f.name.as_deref()),
            arguments: function.and_then(|f| f.arguments.as_deref()),
        };
        into.call(call.index as usize, part);
    }
}

/// A piece of text alone, as [`choice`] reads a choice 0 of nothing but that text.
pub fn text(text: &str, into: &mut Assembled) {
    into.seen();
    into.text(Some(text));
}

/// A whole chat completion, as far as its answer and its usage.
#[derive(Deserialize)]
struct Whole<'a> {
    #[serde(borrow, default)]
    choices: First<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// A whole chat completion or one chunk of its stream: only what an answer is made of.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    choices: First<Choice<'a>>,
}

/// Choice 0 of a whole answer or a chunk. Most of a chunk's bytes are the fields before
/// its choices (id, object, created, model), and reading them cost half of a stream's
/// transcript; so the reading starts at the `"choices":` key when the text has it at its
/// top level (see [`top_level_choices`]), and the whole object is read otherwise or when
/// that does not parse. With it, whether the choices were one choice of plain text that is
/// not empty, read without a parser.
fn choice_zero(data: &str) -> Option<(Choice<'_>, bool)> {
    let choices = top_level_choices(data);
    if let Some((text, _)) = choices.and_then(plain_text) {
        return Some((Choice::of_text(text), !text.is_empty()));
    }
    Some((parsed_choice(data, choices)?, false))
}

/// The text after the chunk's top-level `"choices":` key (see [`choices_at`]).
fn top_level_choices(data: &str) -> Option<&str> {
    data.get(choices_at(data)? + CHOICES_KEY.len()..)
}

/// Choice 0 as serde reads it: from the `"choices":` key, or else the whole object.
fn parsed_choice<'a>(data: &'a str, choices: Option<&'a str>) -> Option<Choice<'a>> {
    if let Some(choices) = choices {
        let mut reader = serde_json::Deserializer::from_str(choices);
        if let Ok(First(choice)) = First::deserialize(&mut reader) {
            return choice;
        }
    }
    let answer: Answer = serde_json::from_str(data).ok()?;
    answer.choices.0
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct Choice<'a> {
    /// Absent where the answer has one choice.
    #[serde(default)]
    index: u32,
    #[serde(borrow)]
    finish_reason: OptionalStr<'a>,
    /// `message` in a whole answer, `delta` in a chunk.
    #[serde(borrow, alias = "delta")]
    message: Option<Part<'a>>,
}

impl<'a> Choice<'a> {
    /// Choice 0 of nothing but text.
    fn of_text(text: &'a str) -> Self {
        Choice {
            index: 0,
            finish_reason: OptionalStr(None),
            message: Some(Part {
                content: OptionalStr(Some(Cow::Borrowed(text))),
                reasoning_content: OptionalStr(None),
                tool_calls: None,
            }),
        }
    }
}

/// The trace's answer is choice 0's, as [`chunk`] reads it.
impl Element for Choice<'_> {
    fn wanted(&self) -> bool {
        self.index == 0
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct Part<'a> {
    #[serde(borrow)]
    content: OptionalStr<'a>,
    #[serde(borrow)]
    reasoning_content: OptionalStr<'a>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct ToolCall<'a> {
    index: Option<usize>,
    #[serde(borrow)]
    id: OptionalStr<'a>,
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
struct Function<'a> {
    #[serde(borrow)]
    name: OptionalStr<'a>,
    #[serde(borrow)]
    arguments: OptionalStr<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(data: &str) -> String {
        let mut m = Assembled::default();
        read(data, &mut m);
        let out = m.finish();
        out.message.map_or(String::new(), |raw| {
            let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            v["content"].as_str().unwrap_or_default().to_string()
        })
    }

    #[test]
    fn a_choice_is_read_from_its_key_and_the_whole_chunk_when_that_fails() {
        // Fields before the choices, a second choice, and the key's text inside a string.
        let chunk = r#"{"id":"x \"choices\": [","model":"m","choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#;
        assert_eq!(text(chunk), "a");
        // Spaced out, the key is not found as text: the whole chunk is read.
        assert_eq!(text(r#"{"choices" : [{"delta":{"content":"c"}}]}"#), "c");
        // No choice (a usage chunk), or choices of the wrong type: nothing.
        assert_eq!(text(r#"{"choices":[],"usage":{"total_tokens":1}}"#), "");
        assert_eq!(text(r#"{"choices":"no"}"#), "");
        // With `n` > 1, choice 0 wherever it is in the array, and only it.
        let two = r#"{"choices":[{"index":1,"delta":{"content":"b"}},{"index":0,"delta":{"content":"a"}}]}"#;
        assert_eq!(text(two), "a");
        assert_eq!(
            text(r#"{"choices":[{"index":1,"delta":{"content":"b"}}]}"#),
            ""
        );
    }

    /// Choice 0 as the fast path and serde read it.
    fn both(data: &str) -> (Option<Choice<'_>>, Option<Choice<'_>>) {
        (choice_zero(data).map(|(c, _)| c), parsed_choice(data, None))
    }

    /// A bracket inside a string of the head is no nesting: the chunk keeps the fast path.
    #[test]
    fn brackets_inside_the_heads_strings_are_not_nesting() {
        for head in [
            r#"{"id":"a{b","#,
            r#"{"id":"x\"[","#,
            r#"{"m":"\\","n":"]{","#,
        ] {
            let data = format!(
                r#"{head}"choices":[{{"index":0,"delta":{{"content":"hi"}},"finish_reason":null}}]}}"#
            );
            assert!(top_level_choices(&data).is_some(), "{data}");
            let (read, serde) = both(&data);
            assert_eq!(read, serde, "{data}");
        }
        for head in [r#"{"a":{"#, r#"{"a":"s",["#, r#"{"a":"\\",{"#] {
            assert!(
                top_level_choices(&format!(r#"{head}"choices":[]}}"#)).is_none(),
                "{head}"
            );
        }
    }

    /// A `choices` key nested in a field before the chunk's own is not taken for it, by
    /// the fast path or by the reading from the key.
    #[test]
    fn only_the_top_levels_choices_are_read() {
        let own = r#""choices":[{"index":0,"delta":{"content":"own"},"finish_reason":null}]}"#;
        for before in [
            r#"{"meta":{"choices":[{"index":0,"delta":{"content":"nested"},"finish_reason":null}]},"#,
            r#"{"meta":[{"choices":[{"index":0,"delta":{"content":"nested"}}]}],"#,
        ] {
            let data = format!("{before}{own}");
            let (read, serde) = both(&data);
            assert_eq!(read, serde, "{data}");
            assert_eq!(
                read.and_then(|c| c.message)
                    .and_then(|m| m.content.0)
                    .as_deref(),
                Some("own"),
                "{data}"
            );
        }
    }

    /// A chunk of plain text is read without a parser, and as serde reads it; every other
    /// shape is left to serde.
    #[test]
    fn plain_text_chunks_read_as_serde_reads_them() {
        let head =
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":"#;
        let plain = [
            r#"[{"index":0,"delta":{"content":"tok é 🦊"},"logprobs":null,"finish_reason":null}]}"#,
            r#"[{"index":0,"delta":{"content":""},"finish_reason":null}],"usage":null}"#,
            r#"[{"index":0,"delta":{"content":"x"},"finish_reason":null,"logprobs":null}]}"#,
        ];
        let other = [
            r#"[{"index":0,"delta":{"content":"a \"q\" \n"},"finish_reason":null}]}"#,
            "[{\"index\":0,\"delta\":{\"content\":\"raw\u{1}\"},\"finish_reason\":null}]}",
            r#"[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#,
            r#"[{"index":0,"delta":{"content":"x","role":"assistant"},"finish_reason":null}]}"#,
            r#"[{"index":0,"delta":{"content":"x"},"finish_reason":null},{"index":1,"delta":{}}]}"#,
            r#"[{"index":0,"delta":{"content":"x"},"finish_reason":null"#,
            r#"[{"index":1,"delta":{"content":"x"},"finish_reason":null}]}"#,
        ];
        for (choices, fast) in plain
            .iter()
            .map(|c| (c, true))
            .chain(other.iter().map(|c| (c, false)))
        {
            let data = format!("{head}{choices}");
            let at = data.find("\"choices\":").unwrap() + CHOICES_KEY.len();
            assert_eq!(plain_text(&data[at..]).is_some(), fast, "{data}");
            let (read, serde) = both(&data);
            assert_eq!(read, serde, "{data}");
        }
    }

    proptest::proptest! {
        /// Whatever the text, the fast path reads what serde reads.
        #[test]
        fn any_text_reads_as_serde_reads_it(text in ".*", raw in "[^\"\\\\]{0,8}", tail in 0usize..3) {
            let tails = [r#"},"logprobs":null,"finish_reason":null}]}"#, r#"},"finish_reason":null}]}"#, r#"}}]}"#];
            let escaped = serde_json::to_string(&text).unwrap();
            for content in [escaped, format!("\"{raw}\"")] {
                let data = format!(r#"{{"choices":[{{"index":0,"delta":{{"content":{content}{}"#, tails[tail]);
                let (read, serde) = both(&data);
                proptest::prop_assert_eq!(read, serde);
            }
        }
    }

    /// A typed chunk assembles as its text does.
    #[test]
    fn typed_chunks_assemble_as_their_text() {
        let data = [
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi","reasoning_content":"r"}}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        ];
        let (mut typed, mut read_back) = (Assembled::default(), Assembled::default());
        for d in data {
            chunk(&serde_json::from_str(d).unwrap(), &mut typed);
            read(d, &mut read_back);
        }
        let (typed, read_back) = (typed.finish(), read_back.finish());
        assert_eq!(
            typed.message.unwrap().get(),
            read_back.message.unwrap().get()
        );
        assert_eq!(typed.finish_reasons, read_back.finish_reasons);
    }
}
