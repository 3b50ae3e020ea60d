//! A stream gathered into the whole answer it tells, in the same format: how the cache keeps
//! a streamed answer, so that it can be replayed to a request that streams and to one that
//! does not.
//!
//! Built on `serde_json::Value` rather than the typed structs: every field the stream carried
//! is kept (logprobs, citations, thinking signatures), not only those translation knows.
//! Runs once per stored stream, after the app has its last byte.

use super::sse::SseParser;
use crate::telemetry::record::TokenUsage;
use crate::wire::Wire;
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// The whole answer (JSON, in the `ingress` format) of a stream the app got as `pieces`; none
/// if the stream did not end as a complete success (no end marker, an error event, an event
/// that could not be read). `usage` stands in for an OpenAI usage chunk the app did not ask
/// for (the gateway read it and dropped it on the way).
pub fn whole(ingress: Wire, pieces: &[Bytes], usage: Option<&TokenUsage>) -> Option<Vec<u8>> {
    let mut gathered = match ingress {
        Wire::OpenAi => Gathered::OpenAi(OpenAiStream::default()),
        Wire::Anthropic => Gathered::Anthropic(AnthropicStream::default()),
        Wire::Gemini => Gathered::Gemini(GeminiStream::default()),
        Wire::Responses => Gathered::Responses(ResponsesStream::default()),
    };
    let mut readable = true;
    let mut on_event = |e: &super::sse::Event| readable &= gathered.event(&e.data).is_some();
    let mut parser = SseParser::default();
    for piece in pieces {
        parser.feed(piece, &mut on_event).ok()?;
    }
    parser.finish(&mut on_event);
    if !readable {
        return None;
    }
    let whole = match gathered {
        Gathered::OpenAi(stream) => stream.into_whole(usage)?,
        Gathered::Anthropic(stream) => stream.into_whole()?,
        Gathered::Gemini(stream) => stream.into_whole()?,
        Gathered::Responses(stream) => stream.whole?,
    };
    serde_json::to_vec(&whole).ok()
}

enum Gathered {
    OpenAi(OpenAiStream),
    Anthropic(AnthropicStream),
    Gemini(GeminiStream),
    Responses(ResponsesStream),
}

impl Gathered {
    /// Takes one event's data; none when it cannot be read or reports an error.
    fn event(&mut self, data: &str) -> Option<()> {
        match self {
            Gathered::OpenAi(stream) => stream.event(data),
            Gathered::Anthropic(stream) => stream.event(data),
            Gathered::Gemini(stream) => stream.event(data),
            Gathered::Responses(stream) => stream.event(data),
        }
    }
}

/// Responses API events: nothing to gather, since the terminal event holds the whole
/// response.
#[derive(Default)]
struct ResponsesStream {
    whole: Option<Value>,
}

impl ResponsesStream {
    fn event(&mut self, data: &str) -> Option<()> {
        let mut event: Map<String, Value> = serde_json::from_str(data).ok()?;
        match event.get("type").and_then(Value::as_str) {
            // A stop at the token limit is an answer too, as it is in chat completions.
            Some("response.completed" | "response.incomplete") => {
                self.whole = Some(event.remove("response")?);
                Some(())
            }
            Some("error" | "response.failed") => None,
            // The items as they stream, and the gateway's own request breakdown.
            _ => Some(()),
        }
    }
}

/// Chat completion chunks, gathered.
#[derive(Default)]
struct OpenAiStream {
    /// `id`, `created`, `model`, `system_fingerprint`, `service_tier`: from the first chunk
    /// that has each.
    head: Map<String, Value>,
    choices: Vec<OpenAiChoice>,
    usage: Option<Value>,
    done: bool,
}

#[derive(Default)]
struct OpenAiChoice {
    index: u64,
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Vec<OpenAiToolCall>,
    finish_reason: Option<Value>,
    logprobs: Vec<Value>,
}

#[derive(Default)]
struct OpenAiToolCall {
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
    fn event(&mut self, data: &str) -> Option<()> {
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

    fn into_whole(self, usage: Option<&TokenUsage>) -> Option<Value> {
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

    fn into_whole(self) -> Value {
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
trait Indexed: Default {
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

/// Messages stream events, gathered.
#[derive(Default)]
struct AnthropicStream {
    /// From `message_start`, with `message_delta`'s fields merged in.
    message: Option<Map<String, Value>>,
    /// Content blocks in index order, each with the `input` JSON text of a tool call so far.
    blocks: Vec<(Map<String, Value>, String)>,
    done: bool,
}

impl AnthropicStream {
    fn event(&mut self, data: &str) -> Option<()> {
        let event: Map<String, Value> = serde_json::from_str(data).ok()?;
        let index = event.get("index").and_then(Value::as_u64);
        let index = index.and_then(|i| usize::try_from(i).ok());
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.message = Some(event.get("message")?.as_object()?.clone());
            }
            Some("content_block_start") => {
                let block = (
                    event.get("content_block")?.as_object()?.clone(),
                    String::new(),
                );
                // Blocks start in index order: the next one, or one started again.
                match index? {
                    next if next == self.blocks.len() => self.blocks.push(block),
                    again => *self.blocks.get_mut(again)? = block,
                }
            }
            Some("content_block_delta") => {
                let (block, input) = self.blocks.get_mut(index?)?;
                add_delta(block, input, event.get("delta")?)?;
            }
            Some("content_block_stop") => {
                let (block, input) = self.blocks.get_mut(index?)?;
                if !input.is_empty() {
                    block.insert("input".into(), serde_json::from_str(input).ok()?);
                }
            }
            Some("message_delta") => self.message_delta(&event)?,
            Some("message_stop") => self.done = true,
            Some("error") => return None,
            // `ping`, and events of the gateway's own (a request breakdown).
            _ => {}
        }
        Some(())
    }

    fn message_delta(&mut self, event: &Map<String, Value>) -> Option<()> {
        let message = self.message.as_mut()?;
        for (name, value) in event
            .get("delta")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            message.insert(name.clone(), value.clone());
        }
        if let Some(counts) = event.get("usage").and_then(Value::as_object) {
            let usage = message.entry("usage").or_insert_with(|| json!({}));
            if !usage.is_object() {
                *usage = json!({});
            }
            if let Value::Object(usage) = usage {
                for (name, count) in counts.iter().filter(|(_, c)| !c.is_null()) {
                    usage.insert(name.clone(), count.clone());
                }
            }
        }
        Some(())
    }

    fn into_whole(self) -> Option<Value> {
        let mut message = self.message.filter(|_| self.done)?;
        let content: Vec<Value> = self
            .blocks
            .into_iter()
            .map(|(block, _)| Value::Object(block))
            .collect();
        message.insert("content".into(), content.into());
        Some(Value::Object(message))
    }
}

/// Applies one `content_block_delta` to its block (a tool call's input is kept as text until
/// the block stops).
fn add_delta(block: &mut Map<String, Value>, input: &mut String, delta: &Value) -> Option<()> {
    let text = |name: &str| delta.get(name).and_then(Value::as_str);
    match delta.get("type").and_then(Value::as_str)? {
        "text_delta" => append(block, "text", text("text")?),
        "thinking_delta" => append(block, "thinking", text("thinking")?),
        "signature_delta" => {
            block.insert("signature".into(), text("signature")?.into());
        }
        "input_json_delta" => input.push_str(text("partial_json")?),
        "citations_delta" => {
            let citation = delta.get("citation")?.clone();
            match block.get_mut("citations").and_then(Value::as_array_mut) {
                Some(citations) => citations.push(citation),
                None => {
                    block.insert("citations".into(), json!([citation]));
                }
            }
        }
        _ => {}
    }
    Some(())
}

fn append(fields: &mut Map<String, Value>, field: &str, text: &str) {
    match fields.get_mut(field) {
        Some(Value::String(so_far)) => so_far.push_str(text),
        _ => {
            fields.insert(field.into(), text.into());
        }
    }
}

/// `streamGenerateContent` chunks, gathered: each chunk is a `GenerateContentResponse`
/// holding the parts that are new. The stream has no end marker: it is whole once a
/// candidate has a `finishReason`.
#[derive(Default)]
struct GeminiStream {
    /// The fields of the chunks but `candidates`: the last value of each.
    whole: Map<String, Value>,
    /// Candidates by index, with their parts so far.
    candidates: Vec<(u64, Map<String, Value>)>,
    finished: bool,
}

impl GeminiStream {
    fn event(&mut self, data: &str) -> Option<()> {
        let mut chunk: Map<String, Value> = serde_json::from_str(data).ok()?;
        if chunk.contains_key("error") {
            return None;
        }
        if let Some(Value::Array(candidates)) = chunk.remove("candidates") {
            for candidate in candidates {
                self.candidate(candidate);
            }
        }
        // responseId, modelVersion, usageMetadata, promptFeedback: the last one counts.
        self.whole.extend(chunk);
        Some(())
    }

    fn candidate(&mut self, candidate: Value) {
        let Value::Object(mut candidate) = candidate else {
            return;
        };
        let index = candidate.get("index").and_then(Value::as_u64).unwrap_or(0);
        self.finished |= candidate.get("finishReason").is_some_and(|r| !r.is_null());
        let parts = match candidate
            .get_mut("content")
            .and_then(|c| c.get_mut("parts"))
        {
            Some(Value::Array(parts)) => std::mem::take(parts),
            _ => Vec::new(),
        };
        let at = match self.candidates.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                self.candidates.push((index, Map::new()));
                self.candidates.len() - 1
            }
        };
        let so_far = &mut self.candidates[at].1;
        let mut kept_parts = match so_far.remove("content") {
            Some(Value::Object(content)) => content,
            _ => Map::new(),
        };
        let all = kept_parts
            .entry("parts")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(all) = all {
            for part in parts {
                add_part(all, part);
            }
        }
        if let Some(Value::Object(content)) = candidate.remove("content") {
            for (name, value) in content.into_iter().filter(|(n, _)| n != "parts") {
                kept_parts.insert(name, value);
            }
        }
        so_far.extend(candidate);
        so_far.insert("content".into(), Value::Object(kept_parts));
    }

    fn into_whole(mut self) -> Option<Value> {
        if !self.finished {
            return None;
        }
        let candidates: Vec<Value> = self
            .candidates
            .into_iter()
            .map(|(_, c)| Value::Object(c))
            .collect();
        self.whole.insert("candidates".into(), candidates.into());
        Some(Value::Object(self.whole))
    }
}

/// Adds a streamed part: text continues the last part when both are text of the same kind
/// (thought or not); any other part is a part of its own.
fn add_part(parts: &mut Vec<Value>, part: Value) {
    let text_kind = |p: &Value| {
        let plain = p
            .as_object()
            .is_some_and(|o| o.keys().all(|k| matches!(k.as_str(), "text" | "thought")));
        (plain && p.get("text").is_some()).then(|| p.get("thought").cloned())
    };
    if let (Some(last), Some(kind)) = (parts.last_mut(), text_kind(&part)) {
        let text = part.get("text").and_then(Value::as_str);
        if let (true, Some(last), Some(text)) =
            (text_kind(last) == Some(kind), last.as_object_mut(), text)
        {
            append(last, "text", text);
            return;
        }
    }
    parts.push(part);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gather(ingress: Wire, stream: &str, piece: usize) -> Option<Value> {
        let pieces: Vec<Bytes> = stream
            .as_bytes()
            .chunks(piece)
            .map(Bytes::copy_from_slice)
            .collect();
        let whole = whole(ingress, &pieces, None)?;
        serde_json::from_slice(&whole).ok()
    }

    const OPENAI: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: {\"request_breakdown\":{\"cost\":0}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn an_openai_stream_becomes_its_chat_completion_in_pieces_of_any_size() {
        for piece in [1, 7, 4096] {
            let whole = gather(Wire::OpenAi, OPENAI, piece).unwrap();
            assert_eq!(whole["id"], "chatcmpl-1");
            assert_eq!(whole["object"], "chat.completion");
            assert_eq!(whole["model"], "gpt-4o");
            let choice = &whole["choices"][0];
            assert_eq!(choice["message"]["content"], "Hello");
            assert_eq!(choice["finish_reason"], "tool_calls");
            let call = &choice["message"]["tool_calls"][0];
            assert_eq!(call["id"], "call_1");
            assert_eq!(call["function"]["name"], "get");
            assert_eq!(call["function"]["arguments"], "{\"a\":1}");
            assert_eq!(whole["usage"]["total_tokens"], 5);
        }
    }

    #[test]
    fn an_openai_stream_without_its_end_or_with_an_error_is_not_kept() {
        let cut = OPENAI.replace("data: [DONE]\n\n", "");
        assert!(gather(Wire::OpenAi, &cut, 64).is_none());
        let failed = OPENAI.replace(
            "data: [DONE]",
            "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]",
        );
        assert!(gather(Wire::OpenAi, &failed, 64).is_none());
    }

    #[test]
    fn a_usage_chunk_the_app_did_not_get_is_filled_in() {
        let without = OPENAI.replace(
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
            "",
        );
        let usage = TokenUsage {
            prompt_tokens: 4,
            completion_tokens: 6,
            total_tokens: 10,
            ..TokenUsage::default()
        };
        let pieces = [Bytes::from(without)];
        let whole: Value =
            serde_json::from_slice(&whole(Wire::OpenAi, &pieces, Some(&usage)).unwrap()).unwrap();
        assert_eq!(whole["usage"]["total_tokens"], 10);
    }

    const ANTHROPIC: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn an_anthropic_stream_becomes_its_message_in_pieces_of_any_size() {
        for piece in [1, 13, 4096] {
            let whole = gather(Wire::Anthropic, ANTHROPIC, piece).unwrap();
            assert_eq!(whole["id"], "msg_1");
            assert_eq!(whole["stop_reason"], "tool_use");
            assert_eq!(whole["usage"]["input_tokens"], 9);
            assert_eq!(whole["usage"]["output_tokens"], 12);
            let content = whole["content"].as_array().unwrap();
            assert_eq!(content[0]["thinking"], "hmm");
            assert_eq!(content[0]["signature"], "sig");
            assert_eq!(content[1], json!({"type": "text", "text": "Hi there"}));
            assert_eq!(content[2]["input"], json!({"a": 1}));
        }
    }

    #[test]
    fn a_gemini_stream_becomes_its_whole_answer_once_it_finished() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"},{\"functionCall\":{\"name\":\"get\",\"args\":{}}}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"totalTokenCount\":7}}\r\n\r\n",
        );
        for piece in [1, 9, 4096] {
            let whole = gather(Wire::Gemini, stream, piece).unwrap();
            let candidate = &whole["candidates"][0];
            assert_eq!(
                candidate["content"]["parts"],
                json!([{"text": "Hello"}, {"functionCall": {"name": "get", "args": {}}}])
            );
            assert_eq!(candidate["content"]["role"], "model");
            assert_eq!(candidate["finishReason"], "STOP");
            assert_eq!(whole["usageMetadata"]["totalTokenCount"], 7);
            assert_eq!(whole["modelVersion"], "gemini-2.5-flash");
        }
        let unfinished = stream.replace(",\"finishReason\":\"STOP\"", "");
        assert!(gather(Wire::Gemini, &unfinished, 64).is_none());
    }

    #[test]
    fn hostile_events_are_refused_without_a_panic() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":5}}\n\n";
        for event in [
            "{\"type\":\"content_block_start\",\"index\":100000000000,\"content_block\":{\"type\":\"text\"}}",
            "{\"type\":\"content_block_start\",\"index\":18446744073709551615,\"content_block\":{\"type\":\"text\"}}",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":\"x\"}",
            "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":1}}",
        ] {
            let stream = format!("{start}data: {event}\n\ndata: {{\"type\":\"message_stop\"}}\n\n");
            let _ = gather(Wire::Anthropic, &stream, 64);
        }
    }

    #[test]
    fn an_anthropic_stream_cut_or_failed_is_not_kept() {
        let cut = ANTHROPIC.replace(
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            "",
        );
        assert!(gather(Wire::Anthropic, &cut, 64).is_none());
        let failed = ANTHROPIC.replace(
            "event: message_stop",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\nevent: message_stop",
        );
        assert!(gather(Wire::Anthropic, &failed, 64).is_none());
    }
}
