//! The text of a request and of its answer, for its trace: read back from the bytes that went
//! by, in whatever format the app spoke, after the request is over (never on its path).
//!
//! The input is the conversation as the app sent it (a system prompt given apart becomes the
//! first message). The output is one assistant message in OpenAI's shape, whatever the
//! format: streams are assembled from their deltas, tool calls included.

use crate::telemetry::capture::{Format, Output};
use serde_json::{json, Map, Value};

/// A request's conversation, from its body.
pub fn input(format: Format, body: &[u8]) -> Option<Value> {
    let body: Value = serde_json::from_slice(body).ok()?;
    match format {
        Format::OpenAi => body.get("messages").or_else(|| body.get("input")).cloned(),
        Format::Anthropic => {
            let mut messages = Vec::new();
            if let Some(system) = body.get("system") {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.extend(body.get("messages")?.as_array()?.iter().cloned());
            Some(Value::Array(messages))
        }
        Format::Gemini => {
            let mut messages = Vec::new();
            if let Some(system) = body.get("systemInstruction") {
                messages.push(json!({"role": "system", "content": gemini_text(system)}));
            }
            for content in body.get("contents")?.as_array()? {
                let role = content
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or("user");
                messages.push(json!({"role": role, "content": gemini_text(content)}));
            }
            Some(Value::Array(messages))
        }
        Format::Raw => None,
    }
}

/// The answer the app got, from the bytes captured (`stream`: SSE events).
pub fn output(format: Format, stream: bool, bytes: &[u8]) -> Output {
    let mut message = Message::default();
    let each = |data: &str, message: &mut Message| {
        if let Ok(v) = serde_json::from_str::<Value>(data) {
            match format {
                Format::OpenAi => message.openai(&v, stream),
                Format::Anthropic => message.anthropic(&v),
                Format::Gemini => message.gemini(&v),
                Format::Raw => {}
            }
        }
    };
    if format == Format::Raw {
        let text = String::from_utf8_lossy(bytes);
        return Output {
            message: (!text.is_empty()).then(|| json!({"role": "assistant", "content": text})),
            finish_reasons: Vec::new(),
        };
    }
    if stream {
        let mut parser = super::sse::SseParser::default();
        let mut on_event = |e: &super::sse::Event| each(&e.data, &mut message);
        let _ = parser.feed(bytes, &mut on_event);
        parser.finish(&mut on_event);
    } else if format == Format::Gemini && bytes.trim_ascii_start().starts_with(b"[") {
        // Gemini's non-SSE stream: a JSON array of chunks.
        if let Ok(Value::Array(chunks)) = serde_json::from_slice::<Value>(bytes) {
            chunks.iter().for_each(|c| message.gemini(c));
        }
    } else {
        each(&String::from_utf8_lossy(bytes), &mut message);
    }
    message.finish()
}

/// An assistant message being assembled.
#[derive(Default)]
struct Message {
    seen: bool,
    text: String,
    reasoning: String,
    /// By index: id, name, arguments.
    tools: Vec<(String, String, String)>,
    finish_reasons: Vec<String>,
}

impl Message {
    fn tool(&mut self, index: usize) -> Option<&mut (String, String, String)> {
        // An index far past the calls seen is not a real call: never grow without bound.
        if index > self.tools.len() + 64 {
            return None;
        }
        if self.tools.len() <= index {
            self.tools.resize_with(index + 1, Default::default);
        }
        self.tools.get_mut(index)
    }

    fn finish_reason(&mut self, reason: Option<&Value>) {
        if let Some(r) = reason.and_then(Value::as_str) {
            self.finish_reasons.push(r.to_string());
        }
    }

    /// A whole answer's `choices[0].message`, or a chunk's `choices[0].delta`.
    fn openai(&mut self, v: &Value, stream: bool) {
        let Some(choice) = v.pointer("/choices/0") else {
            return;
        };
        self.seen = true;
        self.finish_reason(choice.get("finish_reason"));
        let part = choice.get(if stream { "delta" } else { "message" });
        let Some(part) = part else { return };
        push_str(&mut self.text, part.get("content"));
        push_str(&mut self.reasoning, part.get("reasoning_content"));
        for (i, call) in part
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .map_or(i, |n| n as usize);
            if let Some(tool) = self.tool(index) {
                push_str(&mut tool.0, call.get("id"));
                push_str(&mut tool.1, call.pointer("/function/name"));
                push_str(&mut tool.2, call.pointer("/function/arguments"));
            }
        }
    }

    /// A whole Messages answer, or one of its stream's events.
    fn anthropic(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("message") => {
                self.seen = true;
                for (i, block) in v
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    self.anthropic_block(i, block);
                }
                self.finish_reason(v.get("stop_reason"));
            }
            Some("content_block_start") => {
                self.seen = true;
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                if let Some(block) = v.get("content_block") {
                    self.anthropic_block(index, block);
                }
            }
            Some("content_block_delta") => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let Some(delta) = v.get("delta") else { return };
                push_str(&mut self.text, delta.get("text"));
                push_str(&mut self.reasoning, delta.get("thinking"));
                if let Some(partial) = delta.get("partial_json") {
                    if let Some(tool) = self.tool(index) {
                        push_str(&mut tool.2, Some(partial));
                    }
                }
            }
            Some("message_delta") => self.finish_reason(v.pointer("/delta/stop_reason")),
            _ => {}
        }
    }

    /// A content block: text, thinking, or a tool call (kept at its block index).
    fn anthropic_block(&mut self, index: usize, block: &Value) {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => push_str(&mut self.text, block.get("text")),
            Some("thinking") => push_str(&mut self.reasoning, block.get("thinking")),
            Some("tool_use") => {
                let input = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                    .map(Value::to_string);
                if let Some(tool) = self.tool(index) {
                    push_str(&mut tool.0, block.get("id"));
                    push_str(&mut tool.1, block.get("name"));
                    tool.2.push_str(input.as_deref().unwrap_or_default());
                }
            }
            _ => {}
        }
    }

    /// A whole answer or one chunk: `candidates[0].content.parts`.
    fn gemini(&mut self, v: &Value) {
        let Some(candidate) = v.pointer("/candidates/0") else {
            return;
        };
        self.seen = true;
        self.finish_reason(candidate.get("finishReason"));
        let parts = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            if let Some(call) = part.get("functionCall") {
                let index = self.tools.len();
                if let Some(tool) = self.tool(index) {
                    push_str(&mut tool.1, call.get("name"));
                    tool.2 = call.get("args").map(Value::to_string).unwrap_or_default();
                }
            } else if part.get("thought").and_then(Value::as_bool) == Some(true) {
                push_str(&mut self.reasoning, part.get("text"));
            } else {
                push_str(&mut self.text, part.get("text"));
            }
        }
    }

    fn finish(self) -> Output {
        if !self.seen {
            return Output::default();
        }
        let mut message = Map::new();
        message.insert("role".into(), "assistant".into());
        message.insert("content".into(), self.text.into());
        if !self.reasoning.is_empty() {
            message.insert("reasoning_content".into(), self.reasoning.into());
        }
        let calls: Vec<Value> = self
            .tools
            .into_iter()
            .filter(|(_, name, _)| !name.is_empty())
            .map(|(id, name, arguments)| {
                json!({"id": id, "type": "function",
                       "function": {"name": name, "arguments": arguments}})
            })
            .collect();
        if !calls.is_empty() {
            message.insert("tool_calls".into(), calls.into());
        }
        Output {
            message: Some(Value::Object(message)),
            finish_reasons: self.finish_reasons,
        }
    }
}

fn push_str(into: &mut String, value: Option<&Value>) {
    if let Some(s) = value.and_then(Value::as_str) {
        into.push_str(s);
    }
}

/// The text of a Gemini content's parts, joined.
fn gemini_text(content: &Value) -> Value {
    let parts = content.get("parts").and_then(Value::as_array);
    let text: String = parts
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(out: &Output) -> &Value {
        out.message.as_ref().unwrap()
    }

    #[test]
    fn openai_streams_are_assembled_with_their_tool_calls() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        let out = output(Format::OpenAi, true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "Hello");
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(out.finish_reasons, vec!["tool_calls"]);
    }

    #[test]
    fn anthropic_streams_are_assembled() {
        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"there\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"ls\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"d\\\":\\\"/\\\"}\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n",
        );
        let out = output(Format::Anthropic, true, sse.as_bytes());
        let m = message(&out);
        assert_eq!(m["content"], "Hi there");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"d\":\"/\"}");
        assert_eq!(m["tool_calls"][0]["id"], "toolu_1");
        assert_eq!(out.finish_reasons, vec!["tool_use"]);
    }

    #[test]
    fn whole_answers_of_each_format() {
        let openai = br#"{"choices":[{"message":{"role":"assistant","content":"a"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            message(&output(Format::OpenAi, false, openai))["content"],
            "a"
        );
        let anthropic = br#"{"type":"message","content":[{"type":"text","text":"b"},{"type":"tool_use","id":"t","name":"f","input":{"x":1}}],"stop_reason":"end_turn"}"#;
        let out = output(Format::Anthropic, false, anthropic);
        assert_eq!(message(&out)["content"], "b");
        assert_eq!(
            message(&out)["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        let gemini = br#"{"candidates":[{"content":{"parts":[{"text":"c"},{"functionCall":{"name":"g","args":{"y":2}}}]},"finishReason":"STOP"}]}"#;
        let out = output(Format::Gemini, false, gemini);
        assert_eq!(message(&out)["content"], "c");
        assert_eq!(message(&out)["tool_calls"][0]["function"]["name"], "g");
        assert_eq!(out.finish_reasons, vec!["STOP"]);
        assert_eq!(output(Format::OpenAi, false, b"garbage"), Output::default());
    }

    #[test]
    fn inputs_of_each_format() {
        let openai = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(input(Format::OpenAi, openai).unwrap()[0]["content"], "hi");
        let anthropic = br#"{"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#;
        let a = input(Format::Anthropic, anthropic).unwrap();
        assert_eq!(
            (a[0]["role"].as_str(), a[1]["content"].as_str()),
            (Some("system"), Some("hi"))
        );
        let gemini = br#"{"contents":[{"role":"user","parts":[{"text":"h"},{"text":"i"}]}]}"#;
        assert_eq!(input(Format::Gemini, gemini).unwrap()[0]["content"], "hi");
        assert_eq!(input(Format::OpenAi, b"{"), None);
    }
}
