//! A whole answer told again as a stream in the same format: how the cache answers a
//! streaming request from a stored answer (itself a whole answer, or a stream gathered by
//! `collect`).
//!
//! The stream says what the answer says (text, tool calls, thinking, finish reason, usage)
//! in as few events as the format allows, under a fresh id (a Responses API answer keeps its
//! own: `previous_response_id` names it), as SSE text ready to write.

use super::anthropic::message_id;
use super::openai::{completion_id, now_unix};
use super::sse::write_json;
use crate::wire::Wire;
use serde_json::{json, Map, Value};

/// The stream of a whole answer in the `ingress` format; none if it cannot be read. An
/// OpenAI stream ends with a usage chunk only when `include_usage`.
pub fn stream(ingress: Wire, whole: &[u8], include_usage: bool) -> Option<Vec<u8>> {
    let whole: Map<String, Value> = serde_json::from_slice(whole).ok()?;
    match ingress {
        Wire::OpenAi => openai(whole, include_usage),
        Wire::Anthropic => anthropic(whole),
        Wire::Gemini => Some(gemini(whole)),
        Wire::Responses => super::responses::replay::stream(whole),
    }
}

/// A whole Gemini answer is a chunk of its stream: the stream is that one chunk, under a
/// fresh `responseId`.
fn gemini(mut whole: Map<String, Value>) -> Vec<u8> {
    let id = format!("{:024x}", rand::random::<u128>() >> 32);
    whole.insert("responseId".into(), id.into());
    let mut out = Vec::new();
    write_json(&mut out, None, &whole);
    out
}

/// Per choice: the role, the text (with its logprobs), a refusal, each tool call, then the
/// finish reason; then the usage chunk if asked, and `[DONE]`.
fn openai(whole: Map<String, Value>, include_usage: bool) -> Option<Vec<u8>> {
    let mut head = Map::new();
    head.insert("id".into(), completion_id().into());
    head.insert("object".into(), "chat.completion.chunk".into());
    head.insert("created".into(), now_unix().into());
    for name in ["model", "system_fingerprint", "service_tier"] {
        if let Some(value) = whole.get(name).filter(|v| !v.is_null()) {
            head.insert(name.into(), value.clone());
        }
    }
    let mut out = Vec::new();
    let mut chunk = |choices: Value, usage: Option<&Value>| {
        let mut chunk = head.clone();
        chunk.insert("choices".into(), choices);
        if let Some(usage) = usage {
            chunk.insert("usage".into(), usage.clone());
        }
        write_json(&mut out, None, &chunk);
    };
    for choice in whole.get("choices")?.as_array()? {
        let index = choice.get("index").cloned().unwrap_or_else(|| 0.into());
        let message = choice.get("message")?;
        let delta = |delta: Value, extra: Option<(&str, &Value)>| {
            let mut one = json!({"index": index, "delta": delta, "finish_reason": null});
            if let Some((name, value)) = extra {
                one[name] = value.clone();
            }
            json!([one])
        };
        let role = message.get("role").cloned().unwrap_or("assistant".into());
        let content = message.get("content").and_then(Value::as_str);
        let first = json!({"role": role, "content": content.map(|_| "")});
        chunk(delta(first, None), None);
        if let Some(text) = content.filter(|t| !t.is_empty()) {
            let logprobs = choice.get("logprobs").filter(|l| !l.is_null());
            chunk(
                delta(
                    json!({ "content": text }),
                    logprobs.map(|l| ("logprobs", l)),
                ),
                None,
            );
        }
        if let Some(refusal) = message.get("refusal").filter(|r| r.is_string()) {
            chunk(delta(json!({ "refusal": refusal }), None), None);
        }
        let calls = message.get("tool_calls").and_then(Value::as_array);
        for (i, call) in calls.into_iter().flatten().enumerate() {
            let mut call = call.as_object()?.clone();
            call.insert("index".into(), i.into());
            chunk(delta(json!({ "tool_calls": [call] }), None), None);
        }
        let reason = choice.get("finish_reason").unwrap_or(&Value::Null);
        chunk(delta(json!({}), Some(("finish_reason", reason))), None);
    }
    if include_usage {
        chunk(json!([]), Some(whole.get("usage").unwrap_or(&Value::Null)));
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Some(out)
}

/// `message_start` (no content yet), each block (started empty, then its content as one
/// delta, then stopped), `message_delta` with the stop reason and usage, `message_stop`.
fn anthropic(mut whole: Map<String, Value>) -> Option<Vec<u8>> {
    let content = match whole.remove("content") {
        Some(Value::Array(blocks)) => blocks,
        _ => return None,
    };
    let stop_reason = whole.insert("stop_reason".into(), Value::Null);
    let stop_sequence = whole.insert("stop_sequence".into(), Value::Null);
    whole.insert("id".into(), message_id().into());
    whole.insert("content".into(), json!([]));
    let usage = whole.get("usage").cloned().unwrap_or_else(|| json!({}));
    let mut start_usage = usage.as_object().cloned().unwrap_or_default();
    start_usage.insert("output_tokens".into(), 0.into());
    whole.insert("usage".into(), Value::Object(start_usage));
    let mut out = Vec::new();
    let mut event = |name: &str, value: Value| write_json(&mut out, Some(name), &value);
    event(
        "message_start",
        json!({"type": "message_start", "message": whole}),
    );
    for (index, block) in content.into_iter().enumerate() {
        let (start, deltas) = unrolled(block);
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    let delta = json!({"stop_reason": stop_reason, "stop_sequence": stop_sequence});
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": delta, "usage": usage}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    Some(out)
}

/// A block as its `content_block_start` carries it, and the deltas that fill it in. Blocks
/// that never stream in pieces (tool results, redacted thinking) start whole.
fn unrolled(mut block: Value) -> (Value, Vec<Value>) {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut take = |field: &str, empty: Value| match block.get_mut(field) {
        Some(value) => std::mem::replace(value, empty),
        None => Value::Null,
    };
    let deltas = match kind.as_str() {
        "text" => {
            let text = take("text", "".into());
            let citations = take("citations", json!([]));
            let mut deltas = vec![json!({"type": "text_delta", "text": text})];
            for citation in citations.as_array().into_iter().flatten() {
                deltas.push(json!({"type": "citations_delta", "citation": citation}));
            }
            deltas
        }
        "thinking" => {
            let thinking = take("thinking", "".into());
            let signature = take("signature", "".into());
            let mut deltas = vec![json!({"type": "thinking_delta", "thinking": thinking})];
            if signature.is_string() {
                deltas.push(json!({"type": "signature_delta", "signature": signature}));
            }
            deltas
        }
        "tool_use" | "server_tool_use" => {
            let input = take("input", json!({}));
            let partial_json = serde_json::to_string(&input).unwrap_or_default();
            vec![json!({"type": "input_json_delta", "partial_json": partial_json})]
        }
        _ => Vec::new(),
    };
    (block, deltas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::collect;
    use bytes::Bytes;

    fn round_trip(ingress: Wire, whole: &Value, include_usage: bool) -> (Value, String) {
        let bytes = serde_json::to_vec(whole).unwrap();
        let sse = String::from_utf8(stream(ingress, &bytes, include_usage).unwrap()).unwrap();
        let pieces = [Bytes::from(sse.clone())];
        let back = collect::whole(ingress, &pieces, None).unwrap();
        (serde_json::from_slice(&back).unwrap(), sse)
    }

    #[test]
    fn an_openai_answer_replays_as_a_stream_that_gathers_back_to_it() {
        let whole = json!({
            "id": "chatcmpl-old", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello",
                "refusal": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get", "arguments": "{\"a\":1}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        });
        let (back, sse) = round_trip(Wire::OpenAi, &whole, true);
        assert_ne!(back["id"], "chatcmpl-old", "a replay has a fresh id");
        assert_eq!(back["choices"], whole["choices"]);
        assert_eq!(back["usage"], whole["usage"]);
        assert!(sse.ends_with("data: [DONE]\n\n"));
        let (_, without) = round_trip(Wire::OpenAi, &whole, false);
        assert!(
            !without.contains("\"usage\""),
            "no usage chunk unless asked"
        );
    }

    #[test]
    fn odd_stored_answers_are_refused_without_a_panic() {
        let odd = br#"{"choices":[{"message":{"tool_calls":[1]}}],"usage":"x"}"#;
        assert!(stream(Wire::OpenAi, odd, true).is_none());
        let odd = br#"{"content":[{"type":"text","text":"a"}],"usage":"x"}"#;
        assert!(stream(Wire::Anthropic, odd, false).is_some());
        assert!(stream(Wire::Anthropic, b"[]", false).is_none());
    }

    #[test]
    fn a_gemini_answer_replays_as_one_chunk() {
        let whole = json!({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"},
            "index": 0, "finishReason": "STOP"}], "responseId": "old"});
        let (back, _) = round_trip(Wire::Gemini, &whole, false);
        assert_eq!(back["candidates"], whole["candidates"]);
        assert_ne!(back["responseId"], "old");
    }

    #[test]
    fn an_anthropic_answer_replays_as_a_stream_that_gathers_back_to_it() {
        let whole = json!({
            "id": "msg_old", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hi there"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": 1}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 12},
        });
        let (back, sse) = round_trip(Wire::Anthropic, &whole, false);
        assert_ne!(back["id"], "msg_old");
        for field in ["content", "stop_reason", "usage", "model"] {
            assert_eq!(back[field], whole[field], "{field}");
        }
        assert!(sse.starts_with("event: message_start\n"));
        assert!(sse.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn a_response_replays_as_typed_events_that_gather_back_to_it() {
        let whole = json!({
            "id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "model": "claude-x", "output": [
                {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "plan"}]},
                {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
                {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "c1",
                 "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"id": "ctc_1", "type": "custom_tool_call", "status": "completed", "call_id": "c2",
                 "name": "apply_patch", "input": "patch"}],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        });
        let (back, sse) = round_trip(Wire::Responses, &whole, false);
        assert_eq!(
            back, whole,
            "the terminal event holds the response as it was"
        );
        let events: Vec<Value> = sse
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.custom_tool_call_input.delta",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i);
        }
        assert_eq!(events[0]["response"]["status"], "in_progress");
        assert_eq!(events[8]["item"]["content"], json!([]));
        assert_eq!(
            (&events[10]["item_id"], &events[10]["delta"]),
            (&json!("msg_1"), &json!("Hi"))
        );
        assert_eq!(events[15]["delta"], "{\"cmd\":\"ls\"}");
        let failed =
            "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{}}\n\n";
        assert!(collect::whole(Wire::Responses, &[Bytes::from(failed)], None).is_none());
    }
}
