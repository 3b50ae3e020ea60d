//! A whole chat answer -> a Responses API `response` object: reasoning first (with the
//! provider's opaque thinking as `encrypted_content`), then the web searches the provider
//! ran, then the message (its citations as `url_citation` annotations), then the tool calls,
//! in the order the model made them (a `custom` tool's as a `custom_tool_call`).

use super::super::openai::ChatResponse;
use super::super::web_search::{final_status, responses_item};
use super::ToolNames;
use super::{
    call_item, ending, item_id, reasoning_item, response_object, End, MessageItem, TextPart,
};
use crate::body::raw_json;

/// The answer as a `response` object's JSON.
pub fn from_openai(answer: ChatResponse, tool_names: &ToolNames) -> serde_json::Result<Vec<u8>> {
    let created_at = if answer.created > 0 {
        answer.created
    } else {
        super::super::openai::now_unix()
    };
    // Each item as the JSON text it is written as (the message's text is not copied).
    let mut output = Vec::new();
    let mut finish = None;
    if let Some(choice) = answer.choices.into_iter().next() {
        let m = choice.message;
        let summary = m.reasoning_content.unwrap_or_default();
        let thinking = m.thinking_blocks.unwrap_or_default();
        if !summary.is_empty() || !thinking.is_empty() {
            output.push(raw_json(&reasoning_item(
                &item_id("rs"),
                summary.as_str(),
                &thinking,
            )));
        }
        for call in m.web_search_calls.iter().flatten() {
            output.push(raw_json(&responses_item(
                &item_id("ws"),
                call,
                final_status(call),
            )));
        }
        let text = m.content.map(|c| c.text()).filter(|t| !t.is_empty());
        if let Some(text) = text {
            let cited: Vec<_> = m
                .annotations
                .iter()
                .flatten()
                .map(|a| a.to_responses())
                .collect();
            let (id, part) = (item_id("msg"), [TextPart::new(text.as_str(), &cited)]);
            let item = MessageItem::new(&id, "completed", &part);
            output.push(raw_json(&item));
        }
        for call in m.tool_calls.into_iter().flatten() {
            output.push(raw_json(&call_item(
                &item_id(tool_names.call_prefix(&call.function.name)),
                "completed",
                &call.id,
                (&call.function.name, tool_names),
                &call.function.arguments,
            )));
        }
        finish = choice.finish_reason;
    }
    let (status, incomplete_details) = ending(finish.as_deref());
    let end = End {
        created_at,
        incomplete_details,
        usage: answer.usage,
    };
    let id = item_id("resp");
    serde_json::to_vec(&response_object(&id, &answer.model, status, &output, &end))
}
