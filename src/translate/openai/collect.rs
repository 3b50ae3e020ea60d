//! A chat completion stream gathered into its whole completion (for the cache): every field
//! the chunks carried is kept (`serde_json::Value`), logprobs included.

use crate::telemetry::record::TokenUsage;
use serde_json::{json, Map, Value};

/// Chat completion chunks, gathered.
#[derive(Default)]
pub(crate) struct OpenAiStream {
    /// `id`, `created`, `model`, `system_fingerprint`, `service_tier`: from the first chunk
    /// that has each.
    head: Map<String, Value>,
    choices: Vec<OpenAiChoice>,
    usage: Option<Value>,
    done: bool,
}

#[derive(Default)]
pub(crate) struct OpenAiChoice {
    index: u64,
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<OpenAiToolCall>,
    finish_reason: Option<Value>,
    logprobs: Vec<Value>,
}

#[derive(Default)]
pub(crate) struct OpenAiToolCall {
    index: u64,
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

const OPENAI_HEAD: [&str; 5] = [
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

impl OpenAiStream {
    pub(crate) fn event(&mut self, data: &str) -> Option<()> {
        if data == "[DONE]" {
            self.done = true;
            return Some(());
        }
        let chunk: Map<String, Value> = serde_json::from_str(data).ok()?;
        if chunk.contains_key("error") {
            return None;
        }
        if !chunk.contains_key("choices") {
            // An event of the gateway's own (a request breakdown).
            return Some(());
        }
        for name in OPENAI_HEAD {
            match chunk.get(name) {
                Some(value) if !value.is_null() && !self.head.contains_key(name) => {
                    self.head.insert(name.to_string(), value.clone());
                }
                _ => {}
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        for choice in chunk.get("choices")?.as_array()? {
            self.choice(choice);
        }
        Some(())
    }

    fn choice(&mut self, choice: &Value) {
        let at = by_index(&mut self.choices, choice);
        if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
            at.finish_reason = Some(reason.clone());
        }
        if let Some(tokens) = choice
            .pointer("/logprobs/content")
            .and_then(Value::as_array)
        {
            at.logprobs.extend(tokens.iter().cloned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(role) = delta.get("role").filter(|r| !r.is_null()) {
            at.role = Some(role.clone());
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            at.content.get_or_insert_with(String::new).push_str(text);
        }
        if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
            at.refusal.get_or_insert_with(String::new).push_str(text);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            at.tool_call(call);
        }
    }

    pub(crate) fn into_whole(self, usage: Option<&TokenUsage>) -> Option<Value> {
        if !self.done || self.choices.is_empty() {
            return None;
        }
        let mut whole = self.head;
        whole.insert("object".into(), "chat.completion".into());
        let choices = self.choices.into_iter().map(OpenAiChoice::into_whole);
        whole.insert("choices".into(), choices.collect());
        let usage = self.usage.or_else(|| usage.map(openai_usage));
        whole.insert("usage".into(), usage.unwrap_or(Value::Null));
        Some(Value::Object(whole))
    }
}

impl OpenAiChoice {
    fn tool_call(&mut self, call: &Value) {
        let at = by_index(&mut self.tool_calls, call);
        if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
            at.id = Some(id.clone());
        }
        if let Some(kind) = call.get("type").filter(|v| !v.is_null()) {
            at.kind = Some(kind.clone());
        }
        if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
            at.name.push_str(name);
        }
        if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
            at.arguments.push_str(arguments);
        }
    }

    pub(crate) fn into_whole(self) -> Value {
        let mut message = json!({
            "role": self.role.unwrap_or_else(|| "assistant".into()),
            "content": self.content,
            "refusal": self.refusal,
        });
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .into_iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": c.kind.unwrap_or_else(|| "function".into()),
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
            message["tool_calls"] = calls.into();
        }
        let logprobs = if self.logprobs.is_empty() {
            Value::Null
        } else {
            json!({ "content": self.logprobs })
        };
        json!({
            "index": self.index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": self.finish_reason,
        })
    }
}

/// Choices and tool calls: streamed in pieces that name the one they add to by `index`.
pub(crate) trait Indexed: Default {
    fn index(&self) -> u64;
    fn with_index(index: u64) -> Self;
}

impl Indexed for OpenAiChoice {
    fn index(&self) -> u64 {
        self.index
    }

    fn with_index(index: u64) -> Self {
        OpenAiChoice {
            index,
            ..OpenAiChoice::default()
        }
    }
}

impl Indexed for OpenAiToolCall {
    fn index(&self) -> u64 {
        self.index
    }

    fn with_index(index: u64) -> Self {
        OpenAiToolCall {
            index,
            ..OpenAiToolCall::default()
        }
    }
}

/// The entry of `items` that `piece`'s `index` names, added (in arrival order) if new.
fn by_index<'a, T: Indexed>(items: &'a mut Vec<T>, piece: &Value) -> &'a mut T {
    let index = piece.get("index").and_then(Value::as_u64).unwrap_or(0);
    let at = match items.iter().position(|item| item.index() == index) {
        Some(at) => at,
        None => {
            items.push(T::with_index(index));
            items.len() - 1
        }
    };
    &mut items[at]
}

/// An OpenAI `usage` object for counts the gateway read from a chunk the app did not get.
fn openai_usage(u: &TokenUsage) -> Value {
    let mut usage = json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    });
    if u.cached_tokens > 0 {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": u.cached_tokens });
    }
    if u.reasoning_tokens > 0 {
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": u.reasoning_tokens });
    }
    usage
}
