//! Whole answers: Messages -> OpenAI (Claude behind the OpenAI API) and OpenAI -> Messages
//! (other models behind the Anthropic API).

use super::request::JsonMode;
use super::*;
use crate::translate::openai::{
    completion_id, now_unix, ChatResponse, Choice, Content, FunctionCall, Message,
    PromptTokensDetails, ToolCall, Usage,
};
use crate::translate::web_search::{anthropic_citations, AnthropicSearches};
use serde_json::json;

/// Anthropic usage -> OpenAI usage: prompt tokens include cache reads and writes (OpenAI
/// counts every input token), and cache reads are kept as `cached_tokens`.
pub fn usage_to_openai(usage: &AUsage) -> Usage {
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let prompt = usage.input_tokens + cache_read + usage.cache_creation_input_tokens.unwrap_or(0);
    Usage {
        prompt_tokens: prompt,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt + usage.output_tokens,
        prompt_tokens_details: (cache_read > 0).then_some(PromptTokensDetails {
            cached_tokens: cache_read,
        }),
        completion_tokens_details: None,
    }
}

/// OpenAI usage -> Anthropic usage (`input_tokens` excludes cache reads there).
pub fn usage_from_openai(usage: &Usage) -> AUsage {
    let cached = usage.cached_tokens();
    AUsage {
        input_tokens: usage.prompt_tokens.saturating_sub(cached),
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: None,
        cache_read_input_tokens: (cached > 0).then_some(cached),
    }
}

/// Messages answer -> OpenAI answer.
pub fn to_openai(resp: MessagesResponse, json_mode: &JsonMode) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    let mut forced_answer = None;
    let (mut searches, mut searched, mut annotations) =
        (AnthropicSearches::default(), Vec::new(), Vec::new());
    for block in resp.content {
        match block {
            Block::Text {
                text: t, citations, ..
            } => {
                let start = text.chars().count();
                text.push_str(&t);
                if let Some(citations) = citations {
                    let end = start + t.chars().count();
                    annotations.extend(anthropic_citations(&citations, start, end));
                }
            }
            Block::ServerToolUse { id, input, .. } => searches.started(&id, Some(&input)),
            Block::WebSearchToolResult {
                tool_use_id,
                content,
            } => searched.push(searches.finished(&tool_use_id, &content)),
            Block::ToolUse { id, name, input } => match json_mode {
                JsonMode::ForcedTool(forced) if *forced == name => {
                    forced_answer = Some(input.to_string());
                }
                _ => calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall {
                        name,
                        arguments: input.to_string(),
                    },
                }),
            },
            Block::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                thinking_blocks.push(
                    json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                );
            }
            Block::RedactedThinking { data } => {
                thinking_blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
            Block::Image { .. } | Block::Document { .. } | Block::ToolResult { .. } => {}
        }
    }
    let forced = forced_answer.is_some();
    let content = forced_answer.or((!text.is_empty()).then_some(text));
    let finish = match resp.stop_reason.as_deref() {
        // The forced tool was the answer, not a call for the app to run.
        Some("tool_use") if forced => "stop",
        Some(reason) => finish_reason(reason),
        None => "stop",
    };
    ChatResponse {
        id: completion_id(),
        object: "chat.completion".into(),
        created: now_unix(),
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message: Message {
                role: "assistant".into(),
                content: content.map(|text| Content::Text(text.into())),
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
                annotations: (!annotations.is_empty()).then_some(annotations),
                web_search_calls: (!searched.is_empty()).then_some(searched),
                ..Message::default()
            },
            finish_reason: Some(finish.to_string()),
            logprobs: None,
        }],
        usage: Some(usage_to_openai(&resp.usage)),
    }
}

/// OpenAI answer -> Messages answer (the first choice).
pub fn from_openai(resp: ChatResponse) -> MessagesResponse {
    let choice = resp.choices.into_iter().next().unwrap_or_default();
    let mut content = Vec::new();
    if let Some(text) = choice
        .message
        .content
        .map(|c| c.text())
        .filter(|t| !t.is_empty())
    {
        content.push(Block::Text {
            text,
            cache_control: None,
            citations: None,
        });
    }
    for call in choice.message.tool_calls.into_iter().flatten() {
        content.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            // Models occasionally emit invalid JSON; the app still gets the text it can see.
            input: serde_json::from_str(&call.function.arguments)
                .unwrap_or_else(|_| json!({"_raw_arguments": call.function.arguments})),
        });
    }
    MessagesResponse {
        id: message_id(),
        kind: "message".into(),
        role: "assistant".into(),
        model: resp.model,
        content,
        stop_reason: Some(stop_reason(choice.finish_reason.as_deref().unwrap_or("stop")).into()),
        stop_sequence: None,
        usage: resp
            .usage
            .as_ref()
            .map(usage_from_openai)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic(v: serde_json::Value) -> MessagesResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn text_tools_and_usage() {
        let out = to_openai(
            anthropic(
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": "Let me "}, {"type": "text", "text": "check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 3}}),
            ),
            &JsonMode::Off,
        );
        let v = serde_json::to_value(&out).unwrap();
        assert!(out.id.starts_with("chatcmpl-"));
        assert_eq!(v["model"], "claude-x");
        assert_eq!(v["choices"][0]["message"]["content"], "Let me check.");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0],
            json!({"id": "toolu_1", "type": "function", "function": {"name": "get", "arguments": "{\"city\":\"Paris\"}"}})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 113, "completion_tokens": 5, "total_tokens": 118, "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }

    #[test]
    fn forced_json_tool_is_the_content() {
        let out = to_openai(
            anthropic(
                json!({"id": "m", "content": [{"type": "tool_use", "id": "t", "name": "answer", "input": {"a": 1}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}}),
            ),
            &JsonMode::ForcedTool("answer".into()),
        );
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "{\"a\":1}");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn stop_reasons_and_thinking() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("refusal", "content_filter"),
        ] {
            let out = to_openai(
                anthropic(
                    json!({"id": "m", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "x"}], "stop_reason": stop}),
                ),
                &JsonMode::Off,
            );
            assert_eq!(out.choices[0].finish_reason.as_deref(), Some(finish));
            assert_eq!(
                out.choices[0].message.reasoning_content.as_deref(),
                Some("t")
            );
            assert_eq!(
                out.choices[0].message.thinking_blocks.as_ref().unwrap()[0]["signature"],
                "s"
            );
        }
    }

    #[test]
    fn openai_answers_become_messages() {
        let resp: ChatResponse = serde_json::from_value(json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":2}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24, "prompt_tokens_details": {"cached_tokens": 8}}})).unwrap();
        let v = serde_json::to_value(from_openai(resp)).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(v["type"], "message");
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 2}}])
        );
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 8})
        );
    }
}
