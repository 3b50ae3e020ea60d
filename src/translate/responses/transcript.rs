//! The Responses API's half of a trace's answer: read into an [`Assembled`] message from a
//! whole `response` object, or from a stream's terminal event, which holds the whole
//! response (every other event is skipped, most without being parsed).

use crate::telemetry::record::TokenUsage;
use crate::translate::assembled::{Assembled, CallPart};
use crate::translate::json_text::OptionalStr;
use crate::translate::openai::usage::tokens;
use crate::translate::openai::Usage;
use serde::Deserialize;
use std::borrow::Cow;

/// A whole response, or one stream event, as JSON text; the token counts it reports, read
/// in the same pass.
pub fn read(data: &str, into: &mut Assembled) -> Option<TokenUsage> {
    if !super::may_hold_response(data.as_bytes()) {
        return None;
    }
    let answer = serde_json::from_str::<Answer>(data).ok()?;
    let answer = match answer.kind.as_deref() {
        None | Some("response") => answer,
        Some(kind) if super::TERMINAL.contains(&kind) => *answer.response?,
        Some(_) => return None,
    };
    into.seen();
    into.finish_reason(answer.status.as_deref());
    for item in answer.output.into_iter().flatten() {
        let texts = |parts: Option<Vec<Part>>| {
            parts
                .into_iter()
                .flatten()
                .filter_map(|p| p.text.0)
                .collect::<String>()
        };
        match &*item.kind {
            "message" => into.text(Some(&texts(item.content))),
            "reasoning" => into.reasoning(Some(&texts(item.summary))),
            "function_call" | "custom_tool_call" => into.next_call(CallPart {
                id: item.call_id.as_deref(),
                name: item.name.as_deref(),
                arguments: item.arguments.as_deref().or(item.input.as_deref()),
            }),
            _ => {}
        }
    }
    answer.usage.as_ref().map(tokens)
}

/// A whole `response` object, or a stream event: only the terminal events (which hold the
/// whole response) are read.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, rename = "type")]
    kind: OptionalStr<'a>,
    #[serde(borrow)]
    output: Option<Vec<Item<'a>>>,
    #[serde(borrow)]
    response: Option<Box<Answer<'a>>>,
    #[serde(borrow)]
    status: OptionalStr<'a>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    content: Option<Vec<Part<'a>>>,
    #[serde(borrow)]
    summary: Option<Vec<Part<'a>>>,
    #[serde(borrow)]
    call_id: OptionalStr<'a>,
    #[serde(borrow)]
    name: OptionalStr<'a>,
    #[serde(borrow)]
    arguments: OptionalStr<'a>,
    /// A `custom_tool_call`'s free-form input (shown as its arguments).
    #[serde(borrow)]
    input: OptionalStr<'a>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: OptionalStr<'a>,
}
