//! Gemini answer -> OpenAI answer.

use super::*;
use crate::translate::openai::{
    completion_id, now_unix, ChatResponse, Choice, CompletionTokensDetails, Content, FunctionCall,
    Message, PromptTokensDetails, ToolCall, Usage,
};

/// Gemini usage -> OpenAI usage: thinking tokens are completion tokens (they are billed as
/// output), and are also reported as reasoning tokens.
pub fn usage_to_openai(u: &UsageMetadata) -> Usage {
    let completion = u.candidates_token_count + u.thoughts_token_count;
    Usage {
        prompt_tokens: u.prompt_token_count,
        completion_tokens: completion,
        total_tokens: u.prompt_token_count + completion,
        prompt_tokens_details: (u.cached_content_token_count > 0).then_some(PromptTokensDetails {
            cached_tokens: u.cached_content_token_count,
        }),
        completion_tokens_details: (u.thoughts_token_count > 0).then_some(
            CompletionTokensDetails {
                reasoning_tokens: u.thoughts_token_count,
            },
        ),
    }
}

/// What one candidate's parts say, in OpenAI terms.
#[derive(Default)]
pub struct Translated {
    pub text: String,
    pub reasoning: String,
    pub calls: Vec<ToolCall>,
}

impl Translated {
    /// One part, whole answer's or stream's: a call (with a fresh id that carries the part's
    /// `thoughtSignature`), or else its text, as answer text or as a thought.
    pub fn part(
        &mut self,
        call: Option<Box<GFunctionCall>>,
        text: Option<&str>,
        thought: Option<bool>,
        signature: Option<&str>,
    ) {
        if let Some(call) = call {
            self.calls.push(ToolCall {
                id: tool_call_id(signature),
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: if call.args.is_null() {
                        "{}".into()
                    } else {
                        call.args.to_string()
                    },
                },
            });
        } else if let Some(text) = text {
            let into = if thought == Some(true) {
                &mut self.reasoning
            } else {
                &mut self.text
            };
            into.push_str(text);
        }
    }
}

/// Sorts a candidate's parts into answer text, thoughts and tool calls.
pub fn translate_parts(parts: Vec<GPart>) -> Translated {
    let mut out = Translated::default();
    for part in parts {
        let (text, signature) = (part.text.as_deref(), part.thought_signature.as_deref());
        out.part(part.function_call, text, part.thought, signature);
    }
    out
}

/// Gemini answer -> OpenAI answer; `model` is used when Gemini does not name its version.
pub fn to_openai(resp: GenerateResponse, model: &str) -> ChatResponse {
    let mut choices: Vec<Choice> = resp
        .candidates
        .into_iter()
        .enumerate()
        .map(|(position, candidate)| {
            let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
            let t = translate_parts(parts);
            let grounding = candidate.grounding_metadata.as_ref();
            let searches = grounding.map(|g| g.searches()).unwrap_or_default();
            let annotations = grounding
                .map(|g| g.annotations(&t.text))
                .unwrap_or_default();
            let finish = finish_reason(
                candidate.finish_reason.as_deref().unwrap_or("STOP"),
                !t.calls.is_empty(),
            );
            Choice {
                index: candidate.index.unwrap_or(position as u32),
                message: Message {
                    role: "assistant".into(),
                    content: (!t.text.is_empty() || t.calls.is_empty())
                        .then(|| Content::Text(t.text.into())),
                    tool_calls: (!t.calls.is_empty()).then_some(t.calls),
                    reasoning_content: (!t.reasoning.is_empty()).then_some(t.reasoning),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    web_search_calls: (!searches.is_empty()).then_some(searches),
                    ..Message::default()
                },
                finish_reason: Some(finish.to_string()),
                logprobs: None,
            }
        })
        .collect();
    if choices.is_empty() {
        // A blocked prompt: no candidates, only `promptFeedback.blockReason`.
        choices.push(Choice {
            index: 0,
            message: Message {
                role: "assistant".into(),
                ..Message::default()
            },
            finish_reason: Some("content_filter".into()),
            logprobs: None,
        });
    }
    ChatResponse {
        id: resp
            .response_id
            .map_or_else(completion_id, |id| format!("chatcmpl-{id}")),
        object: "chat.completion".into(),
        created: now_unix(),
        model: resp
            .model_version
            .map_or_else(|| model.to_string(), String::from),
        choices,
        usage: resp.usage_metadata.as_ref().map(usage_to_openai),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_calls_thoughts_and_usage() {
        let resp: GenerateResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "planning", "thought": true},
                {"text": "Sure. "},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]},
              "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 19, "thoughtsTokenCount": 4, "cachedContentTokenCount": 2},
            "modelVersion": "gemini-2.5-flash", "responseId": "abc"})).unwrap();
        let out = serde_json::to_value(to_openai(resp, "x")).unwrap();
        assert_eq!(out["id"], "chatcmpl-abc");
        assert_eq!(out["model"], "gemini-2.5-flash");
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Sure. ");
        assert_eq!(message["reasoning_content"], "planning");
        let call = &message["tool_calls"][0];
        assert_eq!(
            call["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(signature_of(call["id"].as_str().unwrap()), Some("c2ln"));
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 4}})
        );
    }

    #[test]
    fn finish_reasons_and_blocked_prompts() {
        for (reason, finish) in [
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("OTHER", "stop"),
        ] {
            let resp: GenerateResponse = serde_json::from_value(json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]})).unwrap();
            assert_eq!(
                to_openai(resp, "m").choices[0].finish_reason.as_deref(),
                Some(finish)
            );
        }
        let blocked: GenerateResponse =
            serde_json::from_value(json!({"promptFeedback": {"blockReason": "SAFETY"}})).unwrap();
        let out = to_openai(blocked, "m");
        assert_eq!(
            out.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert_eq!(out.model, "m");
    }
}
